"""data_parallel and data_parallel_train_step against jax.jit and Keras 3's DataParallel.

Rows, per backend (8 forced host CPU devices; every GPU as well when one is present):

* a 3-layer MLP forward pass on a host (NumPy) batch that divides by the device count, and on
  one that does not (padding and stripping included);
* the same forward pass on a tiny batch: the fixed cost of splitting, placing and stripping;
* one adam training step;
* the forward pass and the training step of the same MLP as a Keras 3 model under
  ``keras.distribution.DataParallel`` on the same devices (a batch that divides: Keras 3
  rejects the others);
* the per-step cost of ``data_parallel_train_step`` on a small MLP (batch 8, 64 and 1024, on
  1 and on 8 devices) beside a hand-written ``jax.jit`` step with ``in_shardings`` on the same
  mesh: steps dispatched back to back, both loops waiting on the step from two calls ago (the
  bound that keeps host CPU devices from aborting), so the host work per step shows.

The reference of the first rows is the same computation under plain ``jax.jit`` on one device;
a second row compares with ``jax.jit`` over a batch sharded by hand (the GSPMD recipe, which
needs a batch that divides). The limit is the row's FLOPs at the matmul rate of all the row's
devices together, measured in the same run (each device multiplying its own 1024x1024 blocks
at once, best of many rounds): the time the arithmetic alone needs on that hardware.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # the Keras rows run Keras 3 on JAX
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

try:  # must precede the first JAX computation; harmless if another script already ran one
    jax.config.update("jax_num_cpu_devices", 8)
except RuntimeError:
    pass

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from benchmarks._harness import Row, best_of, print_table  # noqa: E402
from jkutils.parallel import (  # noqa: E402
    data_parallel,
    data_parallel_train_step,
    make_data_mesh,
    replicate,
)

WIDTH = 512


def _params(rng: np.random.Generator) -> dict:
    shapes = {"w1": (WIDTH, WIDTH), "w2": (WIDTH, WIDTH), "w3": (WIDTH, 10)}
    return {k: (rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32) for k, s in shapes.items()}


def apply(params, x):
    h = jax.nn.relu(x @ params["w1"])
    h = jax.nn.relu(h @ params["w2"])
    return h @ params["w3"]


def per_example_loss(params, batch):
    return optax.softmax_cross_entropy_with_integer_labels(apply(params, batch["x"]), batch["y"])


def _forward_flops(rows: int) -> float:
    return 2.0 * rows * (WIDTH * WIDTH * 2 + WIDTH * 10)


def _matmul_rate(devices: list, repeat: int) -> float:
    """FLOP/s of all ``devices`` together, each multiplying its own 1024x1024 float32 blocks."""
    n = 1024
    mesh = make_data_mesh(devices)
    a = jax.device_put(jnp.ones((len(devices) * n, n), jnp.float32), NamedSharding(mesh, P("data")))
    w = replicate(jnp.ones((n, n), jnp.float32), mesh)
    matmul = jax.jit(lambda a, w: a @ w)
    matmul(a, w).block_until_ready()
    seconds = best_of(lambda: matmul(a, w).block_until_ready(), repeat=3 * repeat)
    return len(devices) * 2.0 * n**3 / seconds


def _timed(fn, repeat: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    return best_of(lambda: jax.block_until_ready(fn()), repeat=repeat)


def _forward_rows(devices: list, rows: int, label: str, rate: float, repeat: int) -> list[Row]:
    rng = np.random.default_rng(0)
    params, x = _params(rng), rng.normal(size=(rows, WIDTH)).astype(np.float32)
    mesh = make_data_mesh(devices)
    parallel = data_parallel(apply, mesh=mesh)
    params_on_mesh = replicate(params, mesh)
    one_device = jax.jit(apply)
    params_on_one = jax.device_put(params, devices[0])
    ours = _timed(lambda: parallel(params_on_mesh, x), repeat)
    ref = _timed(lambda: one_device(params_on_one, jax.device_put(x, devices[0])), repeat)
    area = f"parallel/{devices[0].platform}x{len(devices)}"
    limit = _forward_flops(rows) / rate
    measure = f"MLP forward, host batch {rows} ({label})"
    out = [Row(area, measure, ours, "jax.jit, 1 device", ref, "matmul FLOP rate", limit)]
    if rows % len(devices) == 0:
        gspmd = jax.jit(apply)
        sharding = NamedSharding(mesh, P("data"))
        peer = _timed(lambda: gspmd(params_on_mesh, jax.device_put(x, sharding)), repeat)
        out.append(
            Row(area, measure, ours, "jax.jit, sharded batch", peer, "matmul FLOP rate", limit)
        )
    return out


def _train_rows(devices: list, rows: int, rate: float, repeat: int) -> list[Row]:
    rng = np.random.default_rng(1)
    opt = optax.adam(1e-3)
    batch = {
        "x": rng.normal(size=(rows, WIDTH)).astype(np.float32),
        "y": rng.integers(0, 10, size=rows).astype(np.int32),
    }
    mesh = make_data_mesh(devices)
    step = data_parallel_train_step(per_example_loss, opt, mesh=mesh)
    state = {"ours": replicate((_params(rng), opt.init(_params(rng))), mesh)}

    def ours_step():
        params, opt_state, loss = step(*state["ours"], batch)
        state["ours"] = (params, opt_state)
        return loss

    def plain(params, opt_state, batch):
        loss, grads = jax.value_and_grad(lambda p: per_example_loss(p, batch).mean())(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    plain = jax.jit(plain, donate_argnums=(0, 1))
    state["ref"] = jax.device_put((_params(rng), opt.init(_params(rng))), devices[0])

    def ref_step():
        params, opt_state, loss = plain(*state["ref"], jax.device_put(batch, devices[0]))
        state["ref"] = (params, opt_state)
        return loss

    area = f"parallel/{devices[0].platform}x{len(devices)}"
    return [
        Row(
            area,
            f"adam train step, host batch {rows}",
            _timed(ours_step, repeat),
            "jax.jit, 1 device",
            _timed(ref_step, repeat),
            "matmul FLOP rate",
            3 * _forward_flops(rows) / rate,
        )
    ]


def _keras_model(keras):
    dense = [keras.layers.Dense(WIDTH, activation="relu", use_bias=False) for _ in range(2)]
    return keras.Sequential([keras.Input((WIDTH,)), *dense, keras.layers.Dense(10, use_bias=False)])


def _keras_rows(devices: list, rows: int, rate: float, repeat: int) -> list[Row]:
    """The same MLP as a Keras 3 model under ``keras.distribution.DataParallel``, beside ours.

    Keras's fastest paths are timed: ``predict`` with the whole batch as one batch (its
    predict function is cached) and ``train_on_batch``. Keras needs a batch that divides.
    """
    try:
        import keras

        kdevices = keras.distribution.list_devices(devices[0].platform)[: len(devices)]
    except Exception:  # Keras missing or on another backend: no Keras rows
        return []
    if keras.backend.backend() != "jax" or len(kdevices) != len(devices):
        return []
    rng = np.random.default_rng(2)
    x = rng.normal(size=(rows, WIDTH)).astype(np.float32)
    y = rng.integers(0, 10, size=rows).astype(np.int32)
    area = f"parallel/{devices[0].platform}x{len(devices)}"
    try:
        with keras.distribution.DataParallel(devices=kdevices).scope():
            model = _keras_model(keras)
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            predict = _timed(lambda: model.predict(x, batch_size=rows, verbose=0), repeat)
            train = _timed(lambda: model.train_on_batch(x, y), repeat)
    except Exception as error:  # report, and keep the other rows
        print(f"Keras 3 DataParallel on {area} failed: {error!r}", file=sys.stderr)
        return []

    mesh = make_data_mesh(devices)
    params = replicate(_params(rng), mesh)
    parallel = data_parallel(apply, mesh=mesh)
    ours_predict = _timed(lambda: np.asarray(parallel(params, x)), repeat)
    opt = optax.adam(1e-3)
    step = data_parallel_train_step(per_example_loss, opt, mesh=mesh)
    state = [replicate((_params(rng), opt.init(_params(rng))), mesh)]

    def ours_step():
        params, opt_state, loss = step(*state[0], {"x": x, "y": y})
        state[0] = (params, opt_state)
        return loss

    ours_train = _timed(ours_step, repeat)
    keras_name = "Keras 3 DataParallel"
    return [
        Row(
            area,
            f"MLP forward to NumPy, host batch {rows}",
            ours_predict,
            f"{keras_name} predict",
            predict,
            "matmul FLOP rate",
            _forward_flops(rows) / rate,
        ),
        Row(
            area,
            f"adam train step, host batch {rows}",
            ours_train,
            f"{keras_name} train_on_batch",
            train,
            "matmul FLOP rate",
            3 * _forward_flops(rows) / rate,
        ),
    ]


SMALL = 32


def _small_params(rng: np.random.Generator) -> dict:
    shapes = {"w1": (SMALL, SMALL), "b1": (SMALL,), "w2": (SMALL, 10), "b2": (10,)}
    return {k: (rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32) for k, s in shapes.items()}


def _small_loss(params, batch):
    h = jnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()


def _step_loop(step, state: list, batch: dict, steps: int):
    """``steps`` back-to-back steps, waiting on the step from 2 calls ago, as a callable."""

    def loop():
        pending = []
        for _ in range(steps):
            *state[:], loss = step(*state, batch)
            pending.append(loss)
            if len(pending) > 2:
                pending.pop(0).block_until_ready()
        jax.block_until_ready(pending)

    loop()  # compile and warm up
    return loop


def _interleaved_best(loops: list, rounds: int) -> list[float]:
    """Best seconds of each loop over ``rounds`` rounds that run them in turn, so that a
    change in the machine's load falls on all of them alike."""
    best = [float("inf")] * len(loops)
    for _ in range(rounds):
        for i, loop in enumerate(loops):
            best[i] = min(best[i], best_of(loop, repeat=1))
    return best


def _step_overhead_rows(devices: list, rows: int, repeat: int) -> list[Row]:
    rng = np.random.default_rng(3)
    opt = optax.adam(1e-3)
    mesh = make_data_mesh(devices)
    batch = {
        "x": rng.normal(size=(rows, SMALL)).astype(np.float32),
        "y": rng.integers(0, 10, size=rows).astype(np.int32),
    }
    repl, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    def plain(params, opt_state, batch):
        loss, grads = jax.value_and_grad(_small_loss)(params, batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    hand = jax.jit(plain, in_shardings=(repl, repl, split), out_shardings=(repl, repl, repl))
    params = _small_params(rng)
    ref_state = list(jax.device_put((params, opt.init(params)), repl))
    ours = data_parallel_train_step(_small_loss, opt, mesh=mesh)
    our_state = list(jax.device_put((params, opt.init(params)), repl))
    steps = 50 if len(devices) > 1 else 200
    loops = [_step_loop(hand, ref_state, batch, steps), _step_loop(ours, our_state, batch, steps)]
    ref, mine = (t / steps for t in _interleaved_best(loops, 3 * repeat))
    area = f"parallel/{devices[0].platform}x{len(devices)}"
    return [
        Row(
            area,
            f"adam step per call, small MLP, host batch {rows}",
            mine,
            "jax.jit + in_shardings, same mesh",
            ref,
            target="<= 1.1x ref",
        )
    ]


def _backend_rows(devices: list, quick: bool) -> list[Row]:
    repeat = 3 if quick else 7
    rate = _matmul_rate(devices, repeat)
    big = 1024 if quick else 4096
    rows = _forward_rows(devices, big, "divides", rate, repeat)
    rows += _forward_rows(devices, big - 3, "padded", rate, repeat)
    rows += _forward_rows(devices, 5, "tiny: fixed cost", rate, repeat)
    rows += _train_rows(devices, big - 3, rate, repeat)
    rows += _keras_rows(devices, big, rate, repeat)
    for count in (1, len(devices)) if len(devices) > 1 else (1,):
        for batch in (8, 64, 1024):
            rows += _step_overhead_rows(devices[:count], batch, repeat)
    return rows


def rows(quick: bool = False) -> list[Row]:
    """Benchmark rows on the host CPU devices and, when present, on every GPU."""
    out = _backend_rows(jax.devices("cpu")[:8], quick)
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if gpus:
        out += _backend_rows(gpus, quick)
    return out


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
