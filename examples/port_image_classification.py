"""The data section of Keras's "image classification from scratch" tutorial, ported.

Keras:

    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        "PetImages", validation_split=0.2, subset="both", seed=1337,
        image_size=(180, 180), batch_size=128)

jkutils: the same call with ``key=jax.random.key(1337)`` instead of ``seed=1337``. The folder
here is made up (reddish "cats", bluish "dogs", so that a small model can tell them apart), the
images come as uint8 and are decoded by two worker processes that are kept across epochs, and a
logistic regression on pooled colours is trained in a plain JAX loop.

Run: ``python examples/port_image_classification.py``
"""

from __future__ import annotations

import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jkutils
from jkutils.data import image_dataset_from_directory


def make_pet_images(root: pathlib.Path, count: int = 120) -> None:
    """``root/Cat/*.jpg`` and ``root/Dog/*.jpg``: noisy photos tinted by class."""
    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % 2
        tint = np.array([60, 0, -60] if label == 0 else [-60, 0, 60])
        pixels = np.clip(rng.normal(128, 50, (120, 160, 3)) + tint, 0, 255).astype(np.uint8)
        folder = root / ("Cat" if label == 0 else "Dog")
        folder.mkdir(parents=True, exist_ok=True)
        jkutils.save_img(folder / f"{i}.jpg", pixels, scale=False)


def features(images: np.ndarray) -> jax.Array:
    """Mean colour of each image, scaled to [0, 1]: (batch, 3)."""
    return jnp.asarray(images, jnp.float32).mean(axis=(1, 2)) / 255.0


def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main() -> None:
    root = pathlib.Path(tempfile.mkdtemp()) / "PetImages"
    make_pet_images(root)
    train_ds, val_ds = image_dataset_from_directory(
        root,
        validation_split=0.2,
        subset="both",
        key=jax.random.key(1337),
        image_size=(64, 64),
        batch_size=16,
    )
    print("classes:", train_ds.class_names)

    params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
    optimizer = optax.adam(0.1)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    for epoch in range(8):  # a new order every epoch; the workers start once
        for images, labels in train_ds.for_epoch(epoch).with_workers(2):
            params, opt_state, loss = step(params, opt_state, features(images), labels)
    print(f"last training loss: {float(loss):.4f}")

    correct = total = 0
    for images, labels in val_ds.with_workers(2):
        predicted = np.asarray(jnp.argmax(features(images) @ params["w"] + params["b"], -1))
        correct += int((predicted == labels).sum())
        total += len(labels)
    print(f"validation images: {total}")
    print(f"validation accuracy: {correct / total:.3f}")


if __name__ == "__main__":
    main()
