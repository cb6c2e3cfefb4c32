"""3000 training steps (and 3000 data_parallel calls) dispatched without waiting, 8 CPU devices.

Run by test_parallel.py in a subprocess: on the host CPU runtime, many collective programs in
flight at once abort the process (all-reduce termination timeout), so this must finish.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jkutils.parallel import data_parallel, data_parallel_train_step  # noqa: E402

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000


WIDTH = 256  # enough work per step that dispatch runs ahead of the devices


def loss_fn(w, batch):
    return jnp.mean((jnp.tanh(batch["x"] @ w) - batch["y"]) ** 2)


rng = np.random.default_rng(0)
batch = {
    "x": rng.normal(size=(125, WIDTH)).astype(np.float32) / 16,
    "y": np.zeros((125, WIDTH), np.float32),
}
step = data_parallel_train_step(loss_fn, optax.sgd(0.5), 8)
w = np.eye(WIDTH, dtype=np.float32)
opt_state = step.init(w)
first = None
for _ in range(STEPS):
    w, opt_state, loss = step(w, opt_state, batch)  # never waited on
    first = loss if first is None else first
apply = data_parallel(lambda w, x: jnp.tanh(x @ w), 8)
outs = [apply(w, batch["x"]) for _ in range(STEPS)]
print(f"done {float(first):.6g} {float(loss):.6g} {float(jnp.abs(outs[-1]).max()):.6g}")
