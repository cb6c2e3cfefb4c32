"""Train a Flax NNX classifier on every device with jkutils' data-parallel step.

Run from the repository root:  ``python examples/train_nnx.py [STEPS]`` (default 300).

The usual NNX loss, ``loss_fn(model, batch)`` calling ``model(x)``, is passed unchanged to
``data_parallel_train_step``; the step takes and returns the NNX module itself. Batch norm
statistics are shared across devices through ``axis_name=jkutils.DATA_AXIS``, and dropout
draws from the per-step key the step folds for each device.
"""

from __future__ import annotations

import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)  # 8 host devices on a CPU; before any computation

import grain  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _blobs import BATCH, CLASSES, FEATURES, blobs  # noqa: E402
from flax import nnx  # noqa: E402

import jkutils  # noqa: E402


class Classifier(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(FEATURES, 64, use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(64, axis_name=jkutils.DATA_AXIS, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.head = nnx.Linear(64, CLASSES, rngs=rngs)

    def __call__(self, x, key=None):
        h = nnx.relu(self.norm(self.hidden(x)))
        return self.head(self.drop(h, rngs=None if key is None else nnx.Rngs(dropout=key)))


def loss_fn(model, batch, *, key):
    logits = model(batch["x"], key)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}


def main(steps: int) -> float:
    keys = jkutils.set_random_seed(0, names=["data", "split", "model", "shuffle", "dropout"])
    train, test = jkutils.split_dataset(
        blobs(keys["data"]), left_size=0.8, shuffle=True, key=keys["split"]
    )
    model = Classifier(nnx.Rngs(0))
    model.eval()  # the summary calls the model outside the step: running statistics there
    jkutils.print_summary(model, inputs=(train["x"][:BATCH],))
    model.train()

    step = jkutils.data_parallel_train_step(loss_fn, optax.adam(1e-2), has_aux=True)
    opt_state = step.init(model)
    seed = jkutils.seed_from_key(keys["shuffle"])
    batches = (
        grain.MapDataset.source(jkutils.ArraySource(train)).shuffle(seed=seed).repeat().batch(BATCH)
    )
    bar = jkutils.Progbar(steps)
    for i, batch in zip(range(steps), batches):
        key = jax.random.fold_in(keys["dropout"], i)
        model, opt_state, loss, aux = step(model, opt_state, batch, key=key)
        bar.update(i + 1, values=[("loss", loss), ("accuracy", aux["accuracy"])])

    model.eval()  # running batch statistics, no dropout
    predict = jkutils.data_parallel(lambda m, x: m(x))
    accuracy = float(np.mean(np.argmax(predict(model, test["x"]), -1) == test["y"]))
    print(f"held-out accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
