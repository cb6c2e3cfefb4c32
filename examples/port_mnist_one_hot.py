"""Keras's MNIST loop with one-hot labels, ported: to_categorical, split_dataset, a training loop.

Keras: ``y = keras.utils.to_categorical(y, 10)``, ``model.compile(loss="categorical_crossentropy",
optimizer="adam")``, ``model.fit(x, y, validation_split=0.1)``. Here the labels are one-hot
encoded the same way, ``split_dataset(..., seed=1)`` holds out the validation rows, and
``get("categorical_crossentropy")`` is Keras's loss: probabilities in by default, or
``from_logits=True`` for raw scores (what this model outputs).

To keep the example offline and quick, the "digits" are 8x8 blobs drawn at random per class;
swap ``make_digits`` for ``keras.datasets.mnist.load_data()`` to train on MNIST itself.

Run: ``python examples/port_mnist_one_hot.py``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jkutils  # noqa: E402

CLASSES = 10
cross_entropy = jkutils.get("categorical_crossentropy")
optimizer = jkutils.get("adam")(learning_rate=1e-2)


def make_digits(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Flattened 8x8 images: one fixed pattern per class plus noise; labels 0-9."""
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 1, (CLASSES, 64)).astype(np.float32)
    y = rng.integers(0, CLASSES, n)
    x = patterns[y] + rng.normal(0, 0.3, (n, 64)).astype(np.float32)
    return x, y


def logits(params, x):
    return x @ params["w"] + params["b"]


@jax.jit
def train_step(params, opt_state, x, y_one_hot):
    def loss_fn(p):
        return jnp.mean(cross_entropy(y_one_hot, logits(p, x), from_logits=True))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def main() -> float:
    x, y = make_digits()
    y = jkutils.to_categorical(y, CLASSES)  # as in Keras: float32 one-hot rows
    (x_train, y_train), (x_val, y_val) = jkutils.split_dataset(
        (x, y), left_size=0.9, shuffle=True, seed=1
    )
    params = {"w": jnp.zeros((64, CLASSES)), "b": jnp.zeros(CLASSES)}
    opt_state = optimizer.init(params)
    batch = 128
    steps = len(x_train) // batch
    for _epoch in range(3):
        bar = jkutils.Progbar(steps)
        for step in range(steps):
            rows = slice(step * batch, (step + 1) * batch)
            params, opt_state, loss = train_step(params, opt_state, x_train[rows], y_train[rows])
            bar.update(step + 1, [("loss", loss)])
    accuracy = float(np.mean(np.argmax(logits(params, x_val), 1) == np.argmax(y_val, 1)))
    print(f"validation accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
