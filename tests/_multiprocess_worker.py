"""One process of a 2-process x 4-CPU-device JAX program, started by test_multiprocess.py.

Usage: ``python _multiprocess_worker.py PORT PROCESS_ID OUT.npz``. The process joins the
program through ``jax.distributed.initialize`` on 127.0.0.1:PORT, takes its share of a fixed
batch, runs the data-parallel train step, ``data_parallel`` and ``shard_batch`` over a mesh of
all 8 devices, and saves what it computed to OUT.npz. The model, data and optimizer live here
so that the tests compute their single-process references from the very same definitions
(test_parallel.py uses them too).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jkutils import parallel
from jkutils.data.split import process_shard

NUM_PROCESSES = 2
LOCAL_DEVICES = 4
BATCH = 13  # does not divide by 8 devices, nor split evenly between the 2 processes
STEPS = 3
LEARNING_RATE = 0.1


def init_params() -> dict:
    rng = np.random.default_rng(0)
    return {
        "w1": rng.normal(scale=0.5, size=(5, 8)).astype(np.float32),
        "b1": np.zeros(8, np.float32),
        "w2": rng.normal(scale=0.5, size=(8, 3)).astype(np.float32),
    }


def full_batch(size: int = BATCH) -> dict:
    """Inputs ``x``, integer labels ``y`` and sample weights ``w`` for ``size`` examples."""
    rng = np.random.default_rng(1)
    return {
        "x": rng.normal(size=(size, 5)).astype(np.float32),
        "y": rng.integers(0, 3, size=size).astype(np.int32),
        "w": rng.uniform(0.5, 1.5, size=size).astype(np.float32),
    }


def apply(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


def per_example_loss(params, batch):
    """Sample-weighted softmax cross-entropy, one value per example."""
    logits = apply(params, batch["x"])
    return batch["w"] * optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])


def optimizer():
    # sgd's update scales with the gradient, so a wrongly combined gradient cannot hide.
    return optax.sgd(LEARNING_RATE, momentum=0.9)


def _local_share(batch):
    """This process's rows of ``batch`` (a pytree of arrays), cut by jkutils' process sharding
    of data sources: contiguous blocks, the first processes taking one extra row."""
    shard = process_shard(batch)  # process index and count from jax.distributed
    return shard.batch(len(shard))[0]


def main(port: int, process_id: int, out_path: str) -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"  # read when the first computation starts a backend
    jax.config.update("jax_num_cpu_devices", LOCAL_DEVICES)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=NUM_PROCESSES,
        process_id=process_id,
        initialization_timeout=60,
    )
    assert jax.process_count() == NUM_PROCESSES and jax.device_count() == 8
    mesh = parallel.make_data_mesh()
    batch = _local_share(full_batch())

    opt = optimizer()
    step = parallel.data_parallel_train_step(per_example_loss, opt, mesh=mesh)
    params, opt_state = parallel.replicate((init_params(), opt.init(init_params())), mesh)
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(float(loss))

    outputs = parallel.data_parallel(apply, mesh=mesh)(init_params(), batch["x"])

    rows = _local_share(np.arange(16, dtype=np.float32).reshape(16, 1))
    global_rows = parallel.shard_batch(rows, mesh)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    total = jax.jit(lambda a: a.sum(), out_shardings=replicated)

    np.savez(
        out_path,
        losses=np.array(losses),
        outputs=np.asarray(outputs),
        local_share_x=batch["x"],
        shard_sum=np.asarray(total(global_rows)),
        shard_shape=np.array(global_rows.shape),
        **{f"param_{name}": np.asarray(value) for name, value in params.items()},
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
