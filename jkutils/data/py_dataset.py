"""Keras-style ``PyDataset`` / ``Sequence``: a dataset of whole batches, iterated one epoch at a
time in index order with thread or process workers, plus ``to_grain`` for grain pipelines.

Worker iteration keeps at most ``max_queue_size`` batches ahead of the consumer, always yields
batches in index order, re-raises a worker's exception in the caller (same type, with the
worker's traceback) and shuts every worker down before the exception or the epoch-end hook
reaches user code. Process workers are started with the ``spawn`` method (forking a process
that runs JAX is unsafe) and receive the dataset through cloudpickle at the start of every
epoch, so state changed by the hooks reaches them; the processes themselves are kept from one
epoch to the next (starting Python and importing JAX again each epoch costs seconds) and stopped
when the dataset is garbage-collected, when the interpreter exits, or when an epoch fails or is
closed early.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import queue
import signal
import traceback
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle

from jkutils.data._grain import prepare_for_grain

__all__ = ["PyDataset", "Sequence", "to_grain"]

_DEFAULTS = {"workers": 1, "use_multiprocessing": False, "max_queue_size": 10}
_POLL_SECONDS = 0.1
_JOIN_SECONDS = 5.0


class PyDataset:
    """Base class for datasets whose items are whole batches (Keras 3's ``PyDataset``).

    Subclass it, call ``super().__init__(**kwargs)``, and implement ``__getitem__(index)``
    returning batch ``index`` plus ``__len__`` (or a ``num_batches`` property; ``None`` means
    endless). ``on_epoch_begin`` / ``on_epoch_end`` are optional hooks.

    ``iter(ds)`` runs one epoch: ``on_epoch_begin()``, the batches ``ds[0], ds[1], ...`` in
    order, then ``on_epoch_end()``. Each hook runs exactly once per epoch, in the thread that
    iterates, never while a batch is being loaded. ``on_epoch_end`` runs when the batches are
    exhausted or the iterator is closed early (``break`` closes it); not when a batch raised.

    Batches are loaded ahead of the consumer (at most ``max_queue_size`` of them) by
    ``workers`` threads when ``workers > 1``, or by ``workers`` spawned processes when
    ``use_multiprocessing=True`` (then the dataset must pickle with cloudpickle; it is sent to
    the processes at the start of each epoch, and the processes are reused across epochs until
    the dataset is garbage-collected); otherwise in the iterating thread. A batch that raises
    stops the epoch: every worker is shut down and the exception is raised at that batch's
    place in the order, with the worker's traceback.

    Args:
        workers: number of worker threads or processes.
        use_multiprocessing: use processes instead of threads (for CPU-bound Python batches).
        max_queue_size: most batches loaded ahead of the consumer.

    Example:
        >>> class Squares(PyDataset):
        ...     def __init__(self, n, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.n = n
        ...     def __len__(self):
        ...         return self.n
        ...     def __getitem__(self, i):
        ...         return np.full((4,), i * i)
        >>> [int(b[0]) for b in Squares(3, workers=2)]
        [0, 1, 4]
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    # -- settings (validated; defaults with a warning if a subclass skipped __init__) -----------

    def _setting(self, name: str) -> Any:
        value = self.__dict__.get("_" + name)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} should call `super().__init__(**kwargs)` in its "
                "constructor; using workers=1, use_multiprocessing=False, max_queue_size=10",
                stacklevel=3,
            )
            for key, default in _DEFAULTS.items():
                self.__dict__.setdefault("_" + key, default)
            value = self.__dict__["_" + name]
        return value

    @property
    def workers(self) -> int:
        return self._setting("workers")

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = _checked_count(value, "workers", minimum=0)

    @property
    def use_multiprocessing(self) -> bool:
        return self._setting("use_multiprocessing")

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(
                f"`use_multiprocessing` must be a bool. Received: use_multiprocessing={value!r}"
            )
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        return self._setting("max_queue_size")

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = _checked_count(value, "max_queue_size", minimum=1)

    # -- the subclass API ----------------------------------------------------------------------

    def __getitem__(self, index: int) -> Any:
        """Return batch ``index``. Subclasses must override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    @property
    def num_batches(self) -> int | None:
        """Batches per epoch: ``len(self)`` by default; ``None`` means endless."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            f"{type(self).__name__} must implement __len__ or the `num_batches` property "
            "(return None for an endless dataset)"
        )

    def on_epoch_begin(self) -> None:
        """Called once before the first batch of each epoch."""

    def on_epoch_end(self) -> None:
        """Called once after the last batch of each epoch."""

    def __iter__(self) -> Iterator[Any]:
        """One epoch of batches in index order (see the class docstring)."""
        return _epoch(self)


Sequence = PyDataset
"""Keras 2's name for :class:`PyDataset`."""


def _checked_count(value: Any, argname: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{argname}` must be an int. Received: {argname}={value!r}")
    if value < minimum:
        raise ValueError(f"`{argname}` must be at least {minimum}. Received: {argname}={value}")
    return value


def _batch_count(ds: Any) -> int | None:
    """``ds.num_batches`` (or ``len(ds)`` for plain sequences), checked."""
    count = ds.num_batches if hasattr(ds, "num_batches") else len(ds)
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(
            f"{type(ds).__name__}.num_batches must be an int >= 0 or None. Received: {count!r}"
        )
    return count


# -- one epoch --------------------------------------------------------------------------------


def _epoch(ds: PyDataset) -> Iterator[Any]:
    if ds.__dict__.get("_epoch_running"):
        raise RuntimeError(
            f"an epoch of this {type(ds).__name__} is already being iterated; finish or close "
            "that iterator first (each epoch runs its hooks exactly once)"
        )
    count = _batch_count(ds)
    indices = range(count) if count is not None else itertools.count()
    ds._epoch_running = True
    try:
        ds.on_epoch_begin()
        try:
            yield from _batches(ds, indices)
        except GeneratorExit:
            ds.on_epoch_end()  # closed early: the epoch still ends, after the workers stopped
            raise
        ds.on_epoch_end()
    finally:
        ds._epoch_running = False


def _batches(ds: PyDataset, indices: Iterable[int]) -> Iterator[Any]:
    workers = ds.workers
    if ds.use_multiprocessing and workers > 0:
        yield from _process_batches(ds, indices)
    elif workers > 1:
        with _ThreadPool(ds, workers) as pool:
            yield from _in_order(pool, indices, ds.max_queue_size)
    else:
        yield from _in_this_thread(ds, indices)


def _in_this_thread(ds: Any, indices: Iterable[int]) -> Iterator[Any]:
    """The batches loaded one by one in the iterating thread (a failure notes its batch)."""
    for index in indices:
        try:
            batch = ds[index]
        except Exception as exc:
            exc.add_note(f"Raised while loading batch {index} of {type(ds).__name__}.")
            raise
        yield batch


def _in_order(pool: Any, indices: Iterable[int], depth: int) -> Iterator[Any]:
    """Yield ``pool``'s results for ``indices`` in order, keeping ``depth`` requests ahead."""
    upcoming = iter(indices)
    pending: deque[int] = deque()
    for index in itertools.islice(upcoming, depth):
        pool.submit(index)
        pending.append(index)
    while pending:
        index = pending.popleft()
        batch = pool.result(index)
        for following in itertools.islice(upcoming, 1):
            pool.submit(following)
            pending.append(following)
        yield batch


def _noted(exc: BaseException, name: str, index: int | None, where: str) -> BaseException:
    batch = f"batch {index}" if index is not None else "the dataset"
    exc.add_note(f"Raised while loading {batch} of {name} in a worker {where}.")
    return exc


class _ThreadPool:
    """Batches loaded by a thread pool; results are futures keyed by index."""

    def __init__(self, ds: Any, workers: int):
        self._ds = ds
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="jkutils-pydataset")
        self._futures: dict[int, Any] = {}

    def submit(self, index: int) -> None:
        self._futures[index] = self._executor.submit(self._ds.__getitem__, index)

    def result(self, index: int) -> Any:
        try:
            return self._futures.pop(index).result()
        except Exception as exc:
            _noted(exc, type(self._ds).__name__, index, "thread")
            raise

    def __enter__(self) -> _ThreadPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Threads cannot be interrupted: cancel what has not started and wait for the rest, so
        # no batch is still running when the caller sees the error or the epoch-end hook runs.
        self._executor.shutdown(wait=True, cancel_futures=True)


class _WorkerTraceback(Exception):
    """Carries the formatted traceback of an exception raised in a worker process."""

    def __str__(self) -> str:
        return "\n\n" + self.args[0]


_OK, _ERROR = 0, 1


class _ExceptionState:
    """An exception's type, ``args`` and attributes, for exceptions that pickle but cannot be
    unpickled (an ``__init__`` with more required arguments than it passes to ``super``)."""

    def __init__(self, exc: BaseException):
        self.type, self.args, self.attributes = type(exc), exc.args, vars(exc)

    def rebuilt(self) -> BaseException:
        """The exception again, of its original type, made without calling its ``__init__``."""
        exc = self.type.__new__(self.type, *self.args)
        exc.args = self.args
        vars(exc).update(self.attributes)
        return exc


def _error_payload(exc: BaseException) -> bytes:
    """The exception and its formatted traceback, pickled so that the parent can load them: by
    reference if possible, else by value; the exception itself, else its state (type, args,
    attributes); else a RuntimeError that names the original type."""
    text = "".join(traceback.format_exception(exc))
    for dumps in (pickle.dumps, cloudpickle.dumps):
        for item in (exc, _ExceptionState(exc)):
            try:
                payload = dumps((item, text))
                pickle.loads(payload)  # some exceptions pickle but fail to unpickle
                return payload
            except Exception:
                continue
    return pickle.dumps(
        (RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"), text)
    )


def _process_worker(requests: Any, results: Any) -> None:
    """Worker process main loop: take a dataset, then load the batches asked for, until told to
    stop. A new dataset message (one per epoch) replaces the previous dataset."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    ds = None
    while (message := requests.get()) is not None:
        kind, value = message
        if kind == "dataset":
            try:
                ds = pickle.loads(value)
            except BaseException as exc:
                results.put((None, _ERROR, _error_payload(exc)))
            continue
        try:
            results.put((value, _OK, pickle.dumps(ds[value], protocol=pickle.HIGHEST_PROTOCOL)))
        except BaseException as exc:
            results.put((value, _ERROR, _error_payload(exc)))


def _raised(name: str, index: int | None, payload: bytes) -> BaseException:
    """The exception a worker reported, with its traceback attached as the cause."""
    try:
        exc, text = pickle.loads(payload)
        if isinstance(exc, _ExceptionState):
            exc = exc.rebuilt()
    except Exception as err:
        exc = RuntimeError(f"a worker raised an exception that could not be unpickled: {err}")
        text = ""
    exc.__cause__ = _WorkerTraceback(text)
    return _noted(exc, name, index, "process")


def _payload(ds: Any) -> bytes:
    """``ds`` pickled for the workers (cloudpickle, so classes from ``__main__`` travel too)."""
    try:
        return cloudpickle.dumps(ds)
    except Exception as exc:
        exc.add_note(
            f"use_multiprocessing=True sends the {type(ds).__name__} to worker processes, "
            "so it must be picklable (drop open files in __getstate__ or use threads)"
        )
        raise


class _ProcessPool:
    """Spawned worker processes, each with its own request queue, sharing one result queue.

    Batch ``i`` goes to worker ``i % size``. A pool outlives an epoch: the next epoch sends
    every worker the freshly pickled dataset, so hook-made changes reach the workers without
    paying for new processes.
    """

    def __init__(self, size: int):
        context = multiprocessing.get_context("spawn")
        self.size = size
        self._requests = [context.Queue() for _ in range(size)]
        self._results = context.Queue()
        self._ready: dict[int, tuple[int, bytes]] = {}
        self._name = ""  # the dataset's class name; no reference, so the dataset can be freed
        self._processes = [
            context.Process(
                target=_process_worker,
                args=(requests, self._results),
                name=f"jkutils-pydataset-{n}",
                daemon=True,
            )
            for n, requests in enumerate(self._requests)
        ]
        for process in self._processes:
            process.start()

    def alive(self) -> bool:
        return all(process.exitcode is None for process in self._processes)

    def load(self, ds: Any, payload: bytes) -> None:
        """Hand every worker this epoch's copy of the dataset."""
        self._name = type(ds).__name__
        for requests in self._requests:
            requests.put(("dataset", payload))

    def submit(self, index: int) -> None:
        self._requests[index % self.size].put(("batch", index))

    def result(self, index: int) -> Any:
        while index not in self._ready:
            self._receive()
        status, payload = self._ready.pop(index)
        if status == _ERROR:
            raise _raised(self._name, index, payload)
        return pickle.loads(payload)

    def _receive(self) -> None:
        """Wait (briefly) for one message from the workers and file it by batch index."""
        try:
            index, status, payload = self._results.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            self._check_alive()
            return
        if index is None:  # the dataset could not be unpickled in a worker
            raise _raised(self._name, None, payload)
        self._ready[index] = (status, payload)

    def _check_alive(self) -> None:
        """Raise if a worker died; workers only exit when told to."""
        dead = [process for process in self._processes if process.exitcode is not None]
        if dead and self._results.empty():
            process = dead[0]
            raise RuntimeError(
                f"worker process {process.name} (pid {process.pid}) of {self._name} "
                "exited unexpectedly with exit code "
                f"{process.exitcode}"
            )

    def shutdown(self, graceful: bool) -> None:
        """Stop the workers (asking first when ``graceful``, then terminating) and reap them."""
        if not self._processes:
            return
        if graceful:
            for requests in self._requests:
                requests.put(None)
            for process in self._processes:
                process.join(_JOIN_SECONDS)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join()
            process.close()
        for channel in (*self._requests, self._results):
            channel.cancel_join_thread()
            channel.close()
        self._processes = []


_POOLS: dict[int, _ProcessPool] = {}


def _retire(owner: int, pool: _ProcessPool, graceful: bool = True) -> None:
    if _POOLS.get(owner) is pool:
        del _POOLS[owner]
    pool.shutdown(graceful)


def _process_pool(ds: Any, workers: int) -> tuple[_ProcessPool, bool]:
    """A pool loaded with this epoch's ``ds``, and whether it is kept for later epochs (kept
    pools are stopped when ``ds`` is garbage-collected or the interpreter exits)."""
    payload = _payload(ds)
    pool = _POOLS.get(id(ds))
    if pool is not None and not (pool.size == workers and pool.alive()):
        _retire(id(ds), pool)
        pool = None
    kept = True
    if pool is None:
        pool = _ProcessPool(workers)
        try:
            weakref.finalize(ds, _retire, id(ds), pool)
            _POOLS[id(ds)] = pool
        except TypeError:  # not weak-referenceable: the pool lives for this epoch only
            kept = False
    pool.load(ds, payload)
    return pool, kept


def _process_batches(ds: Any, indices: Iterable[int]) -> Iterator[Any]:
    pool, kept = _process_pool(ds, ds.workers)
    try:
        yield from _in_order(pool, indices, ds.max_queue_size)
    except BaseException:
        _retire(id(ds), pool, graceful=False)  # errors, Ctrl-C, early close: stop at once
        raise
    if not kept:
        _retire(id(ds), pool)


# -- grain ------------------------------------------------------------------------------------


class _BatchSource:
    """A grain random-access source whose element ``i`` is batch ``i`` of a PyDataset."""

    def __init__(self, ds: Any, count: int):
        self._ds = ds
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self._count:
            raise IndexError(f"batch index {index} is out of range for {self._count} batches")
        return self._ds[index]

    def __repr__(self) -> str:
        return f"_BatchSource({type(self._ds).__qualname__}, num_batches={self._count})"


def to_grain(ds: Any) -> Any:
    """A ``grain.MapDataset`` whose element ``i`` is ``ds[i]`` (one whole batch).

    Works for any :class:`PyDataset` (also Keras's own) or sequence of batches with a finite
    length. grain then owns the parallelism (``.to_iter_dataset().mp_prefetch(...)`` or a
    ``grain.DataLoader``) and the order (``.shuffle(seed)`` shuffles batches); the PyDataset's
    ``workers`` settings and epoch hooks are not used, since grain has no epochs to report.

    Raises:
        ValueError: ``ds`` is endless (``num_batches`` is None).

    Example:
        >>> ds = to_grain(Squares(10)).shuffle(seed=0)
        >>> it = iter(ds.to_iter_dataset())
    """
    import grain

    prepare_for_grain()
    count = _batch_count(ds)
    if count is None:
        raise ValueError(
            f"to_grain needs a finite dataset; {type(ds).__name__}.num_batches is None"
        )
    return grain.MapDataset.source(_BatchSource(ds, count))
