"""Keras's ``set_random_seed``, ported: one seed, one key per random stream.

Keras: ``keras.utils.set_random_seed(42)`` seeds Python, NumPy and the backend's global
generator, and every layer draws from it. JAX has no global generator: the same call seeds
Python and NumPy and returns keys, one per named stream, that you pass where randomness is
needed. Adding a stream later leaves the other keys unchanged.

Run: ``python examples/port_set_random_seed.py``.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jkutils  # noqa: E402


def dropout(key, x, rate):
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jax.numpy.where(keep, x / (1.0 - rate), 0.0)


def main() -> dict:
    keys = jkutils.set_random_seed(42, names=["params", "dropout", "shuffle"])
    params = jax.random.normal(keys["params"], (4, 4))
    for step in range(3):  # a new dropout mask per step, reproducible from the seed
        mask_key = jax.random.fold_in(keys["dropout"], step)
        out = dropout(mask_key, params, rate=0.5)
        print(f"step {step}: {int((out == 0).sum())} of 16 units dropped")
    grain_seed = jkutils.seed_from_key(keys["shuffle"])  # an int seed for grain's shuffle
    print("python:", random.random(), "numpy:", np.random.rand(), "grain seed:", grain_seed)
    more = jkutils.set_random_seed(42, names=["params", "dropout", "shuffle", "noise"])
    same = all((jax.random.key_data(keys[n]) == jax.random.key_data(more[n])).all() for n in keys)
    print("adding a stream keeps the others:", bool(same))
    return keys


if __name__ == "__main__":
    main()
