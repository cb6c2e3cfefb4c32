"""jkutils quick start: seeds as keys, one-hot labels inside jit, normalisation and padding."""

import jax
import jax.numpy as jnp
import numpy as np

import jkutils


def main() -> None:
    keys = jkutils.set_random_seed(0, names=["data", "params"])
    labels = jax.random.randint(keys["data"], (8,), 0, 4)
    one_hot = jax.jit(lambda y: jkutils.to_categorical(y, 4))(labels)
    print("labels:", np.asarray(labels).tolist())
    print("one-hot row sums:", np.asarray(one_hot.sum(axis=1)).tolist())
    print("normalized:", np.asarray(jkutils.normalize(jnp.array([3.0, 4.0]))).tolist())
    print("padded:\n", jkutils.pad_sequences([[1], [2, 3], [4, 5, 6]]))


if __name__ == "__main__":
    main()
