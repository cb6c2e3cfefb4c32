"""Train a Flax Linen classifier with batch norm and dropout on every device.

Run from the repository root:  ``python examples/train_linen.py [STEPS]`` (default 300).

The Linen loss from Flax's batch-norm guide (``module.apply`` with ``mutable=["batch_stats"]``,
dropout through ``rngs``) runs through ``data_parallel_train_step(..., has_state=True)``: the
step threads ``batch_stats`` and gives each device its own dropout key.
"""

from __future__ import annotations

import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)  # 8 host devices on a CPU; before any computation

import flax.linen as nn  # noqa: E402
import grain  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _blobs import BATCH, CLASSES, blobs  # noqa: E402

import jkutils  # noqa: E402


class Classifier(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(64, use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, axis_name=jkutils.DATA_AXIS)(x)
        x = nn.Dropout(0.2, deterministic=not train)(nn.relu(x))
        return nn.Dense(CLASSES)(x)


module = Classifier()


def loss_fn(params, state, batch, *, key):
    logits, updates = module.apply(
        {"params": params, **state},
        batch["x"],
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": key},
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, (updates, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])})


def main(steps: int) -> float:
    keys = jkutils.set_random_seed(0, names=["data", "split", "model", "shuffle", "dropout"])
    train, test = jkutils.split_dataset(
        blobs(keys["data"]), left_size=0.8, shuffle=True, key=keys["split"]
    )
    variables = module.init(keys["model"], train["x"][:BATCH], train=False)
    jkutils.print_summary(
        module.bind(variables), inputs=(train["x"][:BATCH],), call_kwargs={"train": False}
    )

    step = jkutils.data_parallel_train_step(loss_fn, optax.adam(1e-2), has_aux=True, has_state=True)
    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}
    opt_state = step.init(params)
    seed = jkutils.seed_from_key(keys["shuffle"])
    batches = (
        grain.MapDataset.source(jkutils.ArraySource(train)).shuffle(seed=seed).repeat().batch(BATCH)
    )
    bar = jkutils.Progbar(steps)
    for i, batch in zip(range(steps), batches):
        key = jax.random.fold_in(keys["dropout"], i)
        params, state, opt_state, loss, aux = step(params, state, opt_state, batch, key=key)
        bar.update(i + 1, values=[("loss", loss), ("accuracy", aux["accuracy"])])

    predict = jkutils.data_parallel(lambda v, x: module.apply(v, x, train=False))
    logits = predict({"params": params, **state}, test["x"])
    accuracy = float(np.mean(np.argmax(logits, -1) == test["y"]))
    print(f"held-out accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
