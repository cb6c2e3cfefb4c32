"""Text of arrays and sizes: ``f32[2,8]``, ``1.50 KiB``, bits per element."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["array_text", "leaf_size", "readable_size", "short_dtype"]

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def readable_size(num_bytes: float) -> str:
    """``num_bytes`` in binary units (1 KiB = 1024 B) with two decimals.

    The numbers are the ones Keras prints; the units are spelled ``KiB``, ``MiB``, ... so that
    they cannot be read as decimal kilobytes.

    Example:
        >>> readable_size(1536)
        '1.50 KiB'
    """
    value = float(num_bytes)
    for unit in _SIZE_UNITS[:-1]:
        if value < 1024:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} {_SIZE_UNITS[-1]}"


@functools.lru_cache(maxsize=256)
def short_dtype(dtype: Any) -> str:
    """JAX's compact dtype spelling: ``float32`` -> ``f32``, ``uint8`` -> ``u8``."""
    name = str(jnp.dtype(dtype)) if not _is_key_dtype(dtype) else str(dtype)
    for long, short in (
        ("bfloat", "bf"),
        ("complex", "c"),
        ("float", "f"),
        ("uint", "u"),
        ("int", "i"),
    ):
        if name.startswith(long):
            return short + name[len(long) :]
    return name


def array_text(shape: Sequence[int], dtype: Any) -> str:
    """``f32[2,8]``-style text for an array's dtype and shape."""
    return f"{short_dtype(dtype)}[{','.join(str(d) for d in shape)}]"


def _is_key_dtype(dtype: Any) -> bool:
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


@functools.lru_cache(maxsize=256)
def _dtype_bits(dtype: Any) -> int:
    """Bits per element (4 for int4, 64 for a threefry key)."""
    if _is_key_dtype(dtype):
        return 8 * dtype.itemsize
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.iinfo(dtype).bits
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.finfo(dtype).bits
    return 8 * dtype.itemsize


def leaf_size(leaf: Any) -> tuple[int, float]:
    """``(element count, bytes)`` of one array-like leaf."""
    count = math.prod(leaf.shape)
    return count, count * _dtype_bits(leaf.dtype) / 8
