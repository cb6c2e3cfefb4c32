"""Buffers kept per thread and reused: for loaders that decode and resize thousands of
same-sized images.

Allocating each image's temporaries afresh is slow in a way NumPy cannot see: the C allocator
hands blocks of a few hundred kilobytes back to the operating system when they are freed, so
every new one is page-faulted in again (measured: 400 faults and 0.5 ms for one 500x375
photo, a third of its decoding time). A buffer reused by the same thread is faulted in once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["scratch_array"]

# a buffer larger than this is not kept: one huge photo must not pin its temporaries in every
# reading thread for the rest of the process (a 500x375 photo needs about 1 MiB per buffer)
_KEPT_BYTES = 32 << 20


class _Buffers(threading.local):
    """This thread's flat buffers, one per role and dtype, grown when a larger one is asked."""

    def __init__(self) -> None:
        self.by_role: dict[tuple[str, np.dtype], np.ndarray] = {}


_buffers = _Buffers()


def scratch_array(role: str, shape: Sequence[int], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array of ``shape`` in this thread's buffer for ``role``.

    It stays valid until this thread asks for ``role`` again; different roles never overlap.
    An array of more than 32 MiB is a fresh one, not kept.

    Example:
        >>> a = scratch_array("doc", (2, 3), np.float32)
        >>> a.shape, a.dtype
        ((2, 3), dtype('float32'))
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > _KEPT_BYTES:
        return np.empty(shape, dtype)
    buffer = _buffers.by_role.get((role, dtype))
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype)
        _buffers.by_role[role, dtype] = buffer
    return buffer[:size].reshape(shape)
