"""Refusing outputs that cannot fit in memory, before anything is allocated."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: int) -> str:
    """``n`` bytes in binary units, two decimals from KiB up.

    Example:
        >>> human_bytes(3 * 2**40)
        '3.00 TiB'
    """
    if n < 1024:
        return f"{n} B"
    exponent = min(int(math.log(n, 1024)), len(_UNITS) - 1)
    return f"{n / 1024**exponent:.2f} {_UNITS[exponent]}"


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(shape: tuple[int, ...], dtype: Any, what: str) -> None:
    """Raise ValueError when an array of ``shape`` and ``dtype`` exceeds this machine's RAM.

    Args:
        shape: the output shape.
        dtype: the output dtype.
        what: the call and the argument responsible, e.g. ``"pad_sequences: maxlen=9"``.

    Example:
        >>> check_fits_in_memory((10, 3), "float32", "to_categorical")
    """
    size = math.prod(shape) * np.dtype(dtype).itemsize
    limit = physical_memory()
    if limit is not None and size > limit:
        raise ValueError(
            f"{what}: the output of shape {shape} and dtype {np.dtype(dtype)} would take "
            f"{human_bytes(size)}, more than this machine's {human_bytes(limit)} of memory."
        )
