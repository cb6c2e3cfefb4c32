"""The data-parallel train step on real Flax NNX, Flax Linen and Equinox models (8 CPU devices).

Each test trains with the step and with the framework's own single-device jitted step
(``jax.jit`` over NNX split/merge and ``module.apply``, ``eqx.filter_jit``); same numbers.
"""

from __future__ import annotations

import pathlib
import re

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jkutils.parallel import DATA_AXIS, data_parallel, data_parallel_train_step

STEPS = 3
TX = optax.adam(0.05)


def _batch(size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(size, 4)).astype(np.float32),
        "y": rng.integers(0, 3, size=size).astype(np.int32),
    }


def _close(got, expected, rtol=1e-4, atol=1e-5):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- NNX


class NnxMLP(nnx.Module):
    def __init__(self, rngs, axis_name=None, batch_norm=False):
        # No bias before batch norm: its gradient is rounding noise, which adam amplifies.
        self.hidden = nnx.Linear(4, 8, use_bias=not batch_norm, rngs=rngs)
        self.bn = nnx.BatchNorm(8, axis_name=axis_name, rngs=rngs) if batch_norm else None
        self.head = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        h = self.hidden(x)
        if self.bn is not None:
            h = self.bn(h)
        return self.head(nnx.relu(h))


def nnx_loss(model, batch):
    logits = model(batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()


def _nnx_reference(model, batch, steps=STEPS):
    """Single-device training with jax.jit over NNX's functional split/merge API."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def step(params, rest, opt_state):
        def loss_fn(params):
            model = nnx.merge(graphdef, params, rest, copy=True)
            return nnx_loss(model, batch), nnx.state(model, nnx.Not(nnx.Param))

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = TX.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    opt_state, losses = TX.init(params), []
    for _ in range(steps):
        params, rest, opt_state, loss = step(params, rest, opt_state)
        losses.append(float(loss))
    return nnx.merge(graphdef, params, rest), losses


def _train(step, model, batch, steps=STEPS):
    opt_state, losses = step.init(model), []
    for _ in range(steps):
        model, opt_state, loss = step(model, opt_state, batch)
        losses.append(float(loss))
    return model, losses


@pytest.mark.parametrize("size", [16, 13, 3])
def test_nnx_scalar_mean_loss_matches_one_device_jit(size):
    batch = _batch(size)
    model, losses = _train(data_parallel_train_step(nnx_loss, TX, 8), NnxMLP(nnx.Rngs(0)), batch)
    ref_model, ref_losses = _nnx_reference(NnxMLP(nnx.Rngs(0)), batch)
    assert isinstance(model, NnxMLP)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    _close(nnx.state(model), nnx.state(ref_model))


def test_nnx_synced_batch_norm_matches_one_device_on_a_batch_that_divides():
    batch = _batch(16)
    step = data_parallel_train_step(nnx_loss, TX, 8)
    model, losses = _train(step, NnxMLP(nnx.Rngs(0), axis_name=DATA_AXIS, batch_norm=True), batch)
    ref_model, ref_losses = _nnx_reference(NnxMLP(nnx.Rngs(0), batch_norm=True), batch)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(model.bn.mean[...], ref_model.bn.mean[...], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.bn.var[...], ref_model.bn.var[...], rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(model.bn.mean[...]).max()) > 0  # the running mean moved
    _close(nnx.state(model, nnx.Param), nnx.state(ref_model, nnx.Param))


def test_nnx_model_passed_in_stays_usable_and_unchanged():
    model = NnxMLP(nnx.Rngs(0))
    before = jax.tree.map(np.array, nnx.state(model))
    step = data_parallel_train_step(nnx_loss, TX, 8)
    trained, _, _ = step(model, step.init(model), _batch(16))
    _close(nnx.state(model), before)  # no deleted buffer, no change
    model(_batch(2)["x"])
    assert not np.allclose(trained.head.kernel[...], model.head.kernel[...])


def test_donate_true_reuses_the_buffers_passed_in():
    model = NnxMLP(nnx.Rngs(0))
    step = data_parallel_train_step(nnx_loss, TX, 8, donate=True)
    model = jax.device_put(model, jax.sharding.NamedSharding(step.mesh, jax.P()))
    opt_state = jax.device_put(step.init(model), jax.sharding.NamedSharding(step.mesh, jax.P()))
    step(model, opt_state, _batch(16))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


class NnxDropout(nnx.Module):
    def __init__(self, rngs):
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.scale = nnx.Param(jnp.ones(4))

    def __call__(self, x, key):
        return self.drop(x * self.scale, rngs=nnx.Rngs(dropout=key))


def _dropout_loss(model, batch, *, key):
    out = model(batch, key)
    return jnp.mean(out), out


def test_key_gives_each_device_and_each_step_its_own_stream():
    step = data_parallel_train_step(_dropout_loss, optax.sgd(0.0), 8, has_aux=True)
    model = NnxDropout(nnx.Rngs(0))
    opt_state = step.init(model)
    ones = np.ones((16, 4), np.float32)  # the same row everywhere: only the key differs
    root = jax.random.key(7)
    outs = [step(model, opt_state, ones, key=jax.random.fold_in(root, i))[3] for i in (0, 0, 1)]
    np.testing.assert_array_equal(outs[0], outs[1])  # deterministic
    assert not np.array_equal(outs[0], outs[2])  # a new step, new numbers
    per_device = np.asarray(outs[0]).reshape(8, 2, 4)
    assert len({per_device[d].tobytes() for d in range(8)}) == 8  # a stream per device
    assert set(np.unique(outs[0])) <= {0.0, 2.0}  # inverted dropout at rate 0.5


# ----------------------------------------------------------------------------- Linen


class LinenBN(nn.Module):
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(8, use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name)(x)
        x = nn.Dropout(0.5, deterministic=True)(nn.relu(x))
        return nn.Dense(3)(x)


def _linen_loss(module):
    def loss_fn(params, state, batch, train):
        logits, updates = module.apply(
            {"params": params, **state}, batch["x"], train, mutable=["batch_stats"]
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, (
            updates,
            {"logits": logits, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])},
        )

    return loss_fn


def _linen_reference(variables, batch):
    loss_fn = _linen_loss(LinenBN())

    @jax.jit
    def step(params, state, opt_state):
        (loss, (state, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, state, batch, True
        )
        updates, opt_state = TX.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss, aux

    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}
    opt_state, losses = TX.init(params), []
    for _ in range(STEPS):
        params, state, opt_state, loss, aux = step(params, state, opt_state)
        losses.append(float(loss))
    return params, state, losses, aux


def _linen_train(step, variables, batch):
    """STEPS steps of a Linen (params, batch_stats) step with aux, in training mode."""
    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}
    opt_state, losses = step.init(params), []
    for _ in range(STEPS):
        params, state, opt_state, loss, aux = step(params, state, opt_state, batch, True)
        losses.append(float(loss))
    return params, state, losses, aux


@pytest.mark.parametrize(("size", "exact"), [(16, False), (13, True)])
def test_linen_synced_batch_norm_state_and_aux_match_jax_jit(size, exact):
    # A batch that divides is exact by default; one that does not with exact_batch_stats.
    batch = _batch(size)
    variables = LinenBN().init(jax.random.key(0), batch["x"], False)
    step = data_parallel_train_step(
        _linen_loss(LinenBN(axis_name=DATA_AXIS)),
        TX,
        8,
        has_aux=True,
        has_state=True,
        static_argnums=3,
        exact_batch_stats=exact,
    )
    params, state, losses, aux = _linen_train(step, variables, batch)
    assert aux["logits"].shape == (size, 3)  # in batch order, without the layout's copies
    ref_params, ref_state, ref_losses, ref_aux = _linen_reference(variables, batch)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    _close(params, ref_params)
    _close(state, ref_state)
    _close(aux, ref_aux)
    assert float(jnp.abs(state["batch_stats"]["BatchNorm_0"]["mean"]).max()) > 0


def test_linen_aux_metrics_are_means_over_real_rows_and_outputs_come_in_order():
    batch = _batch(13)
    module = LinenBN()  # no batch statistics involved when using running averages
    variables = module.init(jax.random.key(0), batch["x"], False)
    step = data_parallel_train_step(
        _linen_loss(module), optax.sgd(0.0), 8, has_aux=True, has_state=True, static_argnums=3
    )
    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}
    _, _, _, loss, aux = step(params, state, step.init(params), batch, False)
    logits = module.apply(variables, batch["x"], False)
    expected_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    assert aux["logits"].shape == (13, 3)
    np.testing.assert_allclose(aux["logits"], logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(loss), float(expected_loss), rtol=1e-5)
    expected_accuracy = np.mean(np.argmax(np.asarray(logits), -1) == batch["y"])
    assert float(aux["accuracy"]) == pytest.approx(expected_accuracy, rel=1e-6)


# ----------------------------------------------------------------------------- Equinox


def eqx_loss(model, batch):
    logits = jax.vmap(model)(batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()


def _eqx_model():
    return eqx.nn.MLP(4, 3, 8, 2, activation=jax.nn.tanh, key=jax.random.key(0))


@pytest.mark.parametrize("size", [16, 13])
def test_equinox_module_with_function_fields_matches_filter_jit(size):
    batch = _batch(size)

    @eqx.filter_jit
    def ref_step(model, opt_state):
        loss, grads = eqx.filter_value_and_grad(eqx_loss)(model, batch)
        updates, opt_state = TX.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    ref, ref_state, ref_losses = _eqx_model(), TX.init(eqx.filter(_eqx_model(), eqx.is_array)), []
    for _ in range(STEPS):
        ref, ref_state, loss = ref_step(ref, ref_state)
        ref_losses.append(float(loss))
    model, losses = _train(data_parallel_train_step(eqx_loss, TX, 8), _eqx_model(), batch)
    assert isinstance(model, eqx.nn.MLP) and model.activation is jax.nn.tanh
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    _close(eqx.filter(model, eqx.is_array), eqx.filter(ref, eqx.is_array))


def test_equinox_module_runs_under_data_parallel():
    model, x = _eqx_model(), _batch(13)["x"]
    out = data_parallel(lambda m, x: jax.vmap(m)(x), 8)(model, x)
    np.testing.assert_allclose(out, jax.vmap(model)(x), rtol=1e-5, atol=1e-6)


def test_static_argnums_lets_a_positional_flag_pick_python_branches():
    def loss_fn(model, batch, squared):
        err = jax.vmap(model)(batch["x"])[:, 0] - batch["y"]
        return jnp.mean(err**2) if squared else jnp.mean(jnp.abs(err))

    batch = _batch(13)
    step = data_parallel_train_step(loss_fn, optax.sgd(0.0), 8, static_argnums=2)
    model = _eqx_model()
    err = jax.vmap(model)(batch["x"])[:, 0] - batch["y"]
    for squared, expected in ((True, jnp.mean(err**2)), (False, jnp.mean(jnp.abs(err)))):
        _, _, loss = step(model, step.init(model), batch, squared)
        assert float(loss) == pytest.approx(float(expected), rel=1e-5)


class EqxNormed(eqx.Module):
    lin: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.lin = eqx.nn.Linear(4, 8, use_bias=False, key=k1)
        self.bn = eqx.nn.BatchNorm(8, axis_name="batch", mode="batch")
        self.head = eqx.nn.Linear(8, 3, key=k2)

    def __call__(self, x, state):
        h, state = self.bn(self.lin(x), state)
        return self.head(jax.nn.relu(h)), state


def eqx_state_loss(model, state, batch):
    batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    logits, state = batched(batch["x"], state)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean(), state


@pytest.mark.parametrize("devices", [1, 8])
def test_equinox_state_is_threaded_like_filter_jit(devices):
    batch = _batch(16)

    @eqx.filter_jit
    def ref_step(model, state, opt_state):
        (loss, state), grads = eqx.filter_value_and_grad(eqx_state_loss, has_aux=True)(
            model, state, batch
        )
        updates, opt_state = TX.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, opt_state, loss

    ref, ref_state = eqx.nn.make_with_state(EqxNormed)(jax.random.key(0))
    ref_opt = TX.init(eqx.filter(ref, eqx.is_inexact_array))
    model, state = eqx.nn.make_with_state(EqxNormed)(jax.random.key(0))
    step = data_parallel_train_step(eqx_state_loss, TX, devices, has_state=True)
    opt_state = step.init(model)
    for _ in range(STEPS):
        ref, ref_state, ref_opt, ref_loss = ref_step(ref, ref_state, ref_opt)
        model, state, opt_state, loss = step(model, state, opt_state, batch)
    running = [leaf for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    assert running and float(jnp.abs(running[0]).max()) > 0  # the running mean moved
    if devices == 1:  # one device normalises over the whole batch: the same numbers
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-5)
        _close(state, ref_state)
        _close(eqx.filter(model, eqx.is_array), eqx.filter(ref, eqx.is_array))
    else:  # each device normalises over its own 2 rows (documented): not the same loss
        assert float(loss) != pytest.approx(float(ref_loss), rel=1e-3)


@pytest.mark.parametrize("kind", ["nnx", "equinox"])
def test_modules_compile_once_over_many_steps(kind):
    traces = []
    base = nnx_loss if kind == "nnx" else eqx_loss

    def loss_fn(model, batch):
        traces.append(1)  # runs only while tracing
        return base(model, batch)

    model = NnxMLP(nnx.Rngs(0)) if kind == "nnx" else _eqx_model()
    step = data_parallel_train_step(loss_fn, TX, 8)
    opt_state = step.init(model)
    for _ in range(4):  # a host model first, then the placed one the step gave back
        model, opt_state, _ = step(model, opt_state, _batch(13))
    assert len(traces) == 1


def test_the_training_recipes_in_the_docs_run_as_written():
    page = (pathlib.Path(__file__).parents[1] / "docs" / "parallel.md").read_text()
    section = page[page.index("### Training") : page.index("#### Extra arguments")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 3  # NNX, Linen, Equinox
    namespace = {}
    exec(compile("\n".join(blocks), "docs/parallel.md", "exec"), namespace)
    assert np.isfinite(float(namespace["loss"]))
    assert isinstance(namespace["mlp"], eqx.nn.MLP)


# ----------------------------------------------------------------------------- exact statistics


@pytest.mark.parametrize("size", [13, 3])
def test_exact_batch_stats_gives_one_device_batch_norm_on_a_batch_that_does_not_divide(size):
    batch = _batch(size)
    step = data_parallel_train_step(nnx_loss, TX, 8, exact_batch_stats=True)
    model, losses = _train(step, NnxMLP(nnx.Rngs(0), axis_name=DATA_AXIS, batch_norm=True), batch)
    ref_model, ref_losses = _nnx_reference(NnxMLP(nnx.Rngs(0), batch_norm=True), batch)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(model.bn.mean[...], ref_model.bn.mean[...], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.bn.var[...], ref_model.bn.var[...], rtol=1e-4, atol=1e-6)
    _close(nnx.state(model, nnx.Param), nnx.state(ref_model, nnx.Param))


def test_without_exact_batch_stats_synced_batch_norm_differs_on_an_uneven_batch():
    # The documented default: devices hold different numbers of real rows and Flax averages
    # their statistics with equal weight, so the running mean is not the batch's.
    batch = _batch(13)
    step = data_parallel_train_step(nnx_loss, TX, 8)
    model, _ = _train(step, NnxMLP(nnx.Rngs(0), axis_name=DATA_AXIS, batch_norm=True), batch, 1)
    ref_model, _ = _nnx_reference(NnxMLP(nnx.Rngs(0), batch_norm=True), batch, 1)
    assert not np.allclose(model.bn.mean[...], ref_model.bn.mean[...], rtol=1e-4, atol=1e-6)
