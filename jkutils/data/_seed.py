"""Keras's ``seed=`` argument for functions that take a JAX PRNG ``key``."""

from __future__ import annotations

import numbers
from typing import Any

import jax


def key_or_seed(key: Any, seed: Any) -> Any:
    """``key``, or ``jax.random.key(seed)`` when Keras's int ``seed`` is given instead.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: both ``key`` and ``seed`` are given.

    Example:
        >>> import jax
        >>> bool(jax.random.key_data(key_or_seed(None, 1)).tolist()
        ...      == jax.random.key_data(jax.random.key(1)).tolist())
        True
    """
    if seed is None:
        return key
    if key is not None:
        raise ValueError(
            f"Give `key` (a JAX PRNG key) or `seed` (an int), not both. "
            f"Received: key={key!r}, seed={seed!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "`seed` must be an int (the key is then jax.random.key(seed)), or pass `key=` a JAX "
            f"PRNG key. Received: seed={seed!r} (of type {type(seed).__name__})"
        )
    return jax.random.key(int(seed))
