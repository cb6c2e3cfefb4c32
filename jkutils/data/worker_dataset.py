"""One epoch of a directory dataset read by worker processes that import neither JAX nor grain.

grain's ``mp_prefetch`` spawns its workers for every iterator, and each one imports grain (which
imports JAX) and the main script again before it reads a file: about a second per epoch on a
small machine, a third of an epoch of 2,000 photos. The workers here import only the loaders,
NumPy and Pillow, are lent to one iterator at a time and kept for the next epoch, and send
each batch back through their own pipe (:mod:`jkutils.data._workers`).
"""

from __future__ import annotations

import weakref
from typing import Any

import grain

from jkutils.data import _workers
from jkutils.data._cpu_slots import usable_cpus
from jkutils.data._file_batches import FileBatches

__all__ = ["WorkerDataset", "stop_idle_workers"]

_DEFAULT_MOST = 16  # default workers at most, however many CPUs (each holds ~50 MB)


def _checked_positive(value: Any, argname: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{argname}` must be a positive int. Received: {argname}={value!r}")
    return value


class WorkerDataset(grain.IterDataset):
    """A ``grain.IterDataset`` of one epoch's elements, read in order by worker processes.

    Made by :meth:`DirectoryDataset.with_workers
    <jkutils.data.directory.DirectoryDataset.with_workers>`. Each iterator borrows
    ``num_workers`` processes (started on first use, then kept for later iterators), keeps
    ``per_worker_buffer_size`` elements per worker in flight, and yields the elements in the
    dataset's order. A file that cannot be read raises its error (naming the file, with the
    worker's traceback) at its batch's place; a worker that dies raises ``RuntimeError``
    naming it, how it ended and the batch. Iterators support ``get_state``/``set_state``.

    Args:
        batches: the epoch's files, labels and loader.
        num_workers: worker processes (default: the usable CPUs, at most 16).
        per_worker_buffer_size: elements asked of each worker ahead of the consumer.

    Example:
        >>> for images, labels in train.for_epoch(0).with_workers(4):  # doctest: +SKIP
        ...     ...
    """

    def __init__(
        self,
        batches: FileBatches,
        num_workers: int | None = None,
        per_worker_buffer_size: int = 2,
    ):
        super().__init__()
        self._batches = batches
        self._num_workers = _checked_positive(
            min(_DEFAULT_MOST, usable_cpus()) if num_workers is None else num_workers,
            "num_workers",
        )
        self._buffer = _checked_positive(per_worker_buffer_size, "per_worker_buffer_size")

    def __len__(self) -> int:
        return len(self._batches)

    def __str__(self) -> str:
        return (
            f"WorkerDataset(elements={len(self)}, num_workers={self._num_workers}, "
            f"per_worker_buffer_size={self._buffer})"
        )

    def __iter__(self) -> WorkerIterator:
        return WorkerIterator(self._batches, self._num_workers, self._num_workers * self._buffer)


def stop_idle_workers() -> int:
    """Stop the worker processes kept for later iterators (they are stopped at exit anyway);
    workers in use by a live iterator are left alone. Returns how many processes stopped.

    Example:
        >>> stop_idle_workers() >= 0
        True
    """
    return _workers.stop_idle_pools()


class WorkerIterator(grain.DatasetIterator):
    """The iterator of a :class:`WorkerDataset` (see there); its state is the next index."""

    def __init__(self, batches: FileBatches, num_workers: int, depth: int):
        super().__init__()
        self._batches = batches
        self._length = len(batches)
        self._num_workers = num_workers
        self._depth = depth
        self._next = 0  # the index of the next element to yield
        self._asked = 0  # elements asked of the workers so far (from _next on)
        self._pool: _workers.ProcessPool | None = None
        self._release: weakref.finalize | None = None

    def _borrow(self) -> _workers.ProcessPool:
        if self._pool is None:
            pool = _workers.lend_pool(self._num_workers)
            try:
                pool.begin_epoch("DirectoryDataset", _workers.dataset_payload(self._batches))
            except BaseException:
                pool.broken = True  # a worker died while idle, or the hand-over was cut
                _workers.take_back(pool)
                raise
            # an iterator dropped half-way (a ``break``) gives its pool back when collected
            self._release = weakref.finalize(self, _workers.take_back, pool)
            self._pool = pool
            self._asked = self._next
        return self._pool

    def _give_back(self) -> None:
        if self._release is not None:
            self._release()  # runs take_back once and detaches the finalizer
        self._pool, self._release = None, None

    def __next__(self) -> Any:
        if self._closed:
            raise ValueError("Attempting to use a closed iterator.")
        if self._next >= self._length:
            self._give_back()
            raise StopIteration
        pool = self._borrow()
        try:
            while self._asked < min(self._length, self._next + self._depth):
                pool.submit(self._asked)
                self._asked += 1
            element = pool.result(self._next)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Ctrl-C may have cut a reply half-read: the pipes cannot be trusted again
                pool.broken = True
            self._next = self._length  # the epoch ends with the error, as a generator's would
            self._give_back()
            raise
        self._next += 1
        if self._next == self._length:
            self._give_back()  # the workers are free before the consumer asks past the end
        return element

    def get_state(self) -> dict[str, Any]:
        return {"next_index": self._next}

    def set_state(self, state: dict[str, Any]) -> None:
        index = state.get("next_index") if isinstance(state, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= self._length:
            raise ValueError(
                f"`state` must be a dict with `next_index` in [0, {self._length}]. "
                f"Received: state={state!r}"
            )
        self._give_back()  # what was asked ahead is skipped; the next element asks afresh
        self._next = index

    def close(self) -> None:
        self._closed = True
        self._give_back()

    def __str__(self) -> str:
        return f"WorkerIterator(next_index={self._next}, elements={self._length})"
