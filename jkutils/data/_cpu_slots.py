"""A bound on CPU-bound reads running at once in this process: one per usable CPU.

grain reads a ``MapDataset`` through 16 threads by default (``ReadOptions.num_threads``), in
the calling process and in each ``mp_prefetch`` worker. For image decoding that is CPU work,
so on a machine with fewer cores than threads the extra threads only evict each other's data
from the caches: on 2 cores, 16 decoding threads gave 40 % fewer images per second than 2.
Loaders whose reads are CPU-bound take a slot for each batch; the other threads wait without
using the CPU, and grain still hands the batches out in order.
"""

from __future__ import annotations

import os
import threading

__all__ = ["cpu_slots", "usable_cpus"]

_MOST = 16  # grain's default thread count: never fewer slots than threads beyond this

_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_slots() -> threading.BoundedSemaphore:
    """The process's semaphore of ``min(16, usable_cpus())`` slots (use it as ``with``).

    Example:
        >>> with cpu_slots():
        ...     pass
    """
    global _slots
    if _slots is None:
        with _lock:
            if _slots is None:
                _slots = threading.BoundedSemaphore(min(_MOST, usable_cpus()))
    return _slots


def _forget_slots() -> None:
    """A forked child starts with every slot free (the parent's holders are not copied)."""
    global _slots, _lock
    _slots = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_slots)
