"""Train an Equinox MLP on every device with jkutils' data-parallel step.

Run from the repository root:  ``python examples/train_equinox.py [STEPS]`` (default 300).

The Equinox loss, ``loss_fn(model, batch)`` with ``jax.vmap(model)``, goes to
``data_parallel_train_step`` unchanged; the module's activation functions are compiled in as
constants, as ``eqx.filter_jit`` does, and the step returns the trained module.
"""

from __future__ import annotations

import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)  # 8 host devices on a CPU; before any computation

import equinox as eqx  # noqa: E402
import grain  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _blobs import BATCH, CLASSES, FEATURES, blobs  # noqa: E402

import jkutils  # noqa: E402


def loss_fn(model, batch):
    logits = jax.vmap(model)(batch["x"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}


def main(steps: int) -> float:
    keys = jkutils.set_random_seed(0, names=["data", "split", "model", "shuffle"])
    train, test = jkutils.split_dataset(
        blobs(keys["data"]), left_size=0.8, shuffle=True, key=keys["split"]
    )
    model = eqx.nn.MLP(FEATURES, CLASSES, 64, 2, activation=jax.nn.gelu, key=keys["model"])
    jkutils.print_summary(model, inputs=(train["x"][0],))

    step = jkutils.data_parallel_train_step(loss_fn, optax.adam(1e-2), has_aux=True)
    opt_state = step.init(model)
    seed = jkutils.seed_from_key(keys["shuffle"])
    batches = (
        grain.MapDataset.source(jkutils.ArraySource(train)).shuffle(seed=seed).repeat().batch(BATCH)
    )
    bar = jkutils.Progbar(steps)
    for i, batch in zip(range(steps), batches):
        model, opt_state, loss, aux = step(model, opt_state, batch)
        bar.update(i + 1, values=[("loss", loss), ("accuracy", aux["accuracy"])])

    predict = jkutils.data_parallel(lambda m, x: jax.vmap(m)(x))
    accuracy = float(np.mean(np.argmax(predict(model, test["x"]), -1) == test["y"]))
    print(f"held-out accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
