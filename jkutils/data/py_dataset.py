"""Keras-style ``PyDataset`` / ``Sequence``: a dataset of whole batches, iterated one epoch at a
time in index order with thread or process workers, plus ``to_grain`` for grain pipelines.

Worker iteration keeps at most ``max_queue_size`` batches ahead of the consumer, always yields
batches in index order, re-raises a worker's exception in the caller (same type, with the
worker's traceback) and shuts every worker down before the exception reaches user code. Process
workers are started with the ``spawn`` method (forking a process that runs JAX is unsafe) and
receive the dataset through cloudpickle at the start of every epoch, so state changed by the
hooks reaches them; the processes themselves are kept from one epoch to the next, also when an
epoch is closed early (starting Python and importing JAX again costs seconds), and stopped when
the dataset is garbage-collected, when the interpreter exits, or when an epoch fails. The pools
live in ``_workers``."""

from __future__ import annotations

import ast
import itertools
import sys
import types
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from jkutils._user_warnings import warn_user
from jkutils.data import _workers
from jkutils.data._grain import prepare_for_grain

__all__ = ["PyDataset", "Sequence", "to_grain"]

_DEFAULTS = {"workers": 1, "use_multiprocessing": False, "max_queue_size": 10}


class PyDataset:
    """Base class for datasets whose items are whole batches (Keras 3's ``PyDataset``).

    Subclass it, call ``super().__init__(**kwargs)``, and implement ``__getitem__(index)``
    returning batch ``index`` plus ``__len__`` (or a ``num_batches`` property; ``None`` means
    endless; a subclass with neither is endless too, as in Keras). ``on_epoch_begin`` /
    ``on_epoch_end`` are optional hooks.

    ``iter(ds)`` runs one epoch: ``on_epoch_begin()``, the batches ``ds[0], ds[1], ...`` in
    order, then ``on_epoch_end()``. Each hook runs exactly once per epoch, in the thread that
    iterates, never while a batch is being loaded on the object it sees. ``on_epoch_end`` runs
    when the batches are exhausted or the iterator is closed early (``break`` closes it); not
    when a batch raised.

    Batches are loaded ahead of the consumer (at most ``max_queue_size`` of them) by
    ``workers`` threads when ``workers > 1``, or by ``workers`` spawned processes when
    ``use_multiprocessing=True`` (then the dataset must pickle with cloudpickle; it is sent to
    the processes at the start of each epoch, and the processes are reused across epochs until
    the dataset is garbage-collected); otherwise in the iterating thread. A script that uses
    process workers needs an ``if __name__ == "__main__":`` guard (each worker imports it
    again); an epoch started from unguarded top-level code raises ``RuntimeError`` at once. A
    batch that raises stops the epoch: every worker is shut down and the exception is raised at
    that batch's place in the order, with the worker's traceback. A worker process that dies
    raises ``RuntimeError`` naming it, how it ended and the batch; workers exit by themselves
    when the main process dies.

    Args:
        workers: number of worker threads or processes.
        use_multiprocessing: use processes instead of threads (for CPU-bound Python batches).
        max_queue_size: most batches loaded ahead of the consumer; 0 loads each batch only
            when it is asked for.

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
            warn_user(
                f"{type(self).__name__} should call `super().__init__(**kwargs)` in its "
                "constructor; using workers=1, use_multiprocessing=False, max_queue_size=10",
                UserWarning,
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
        self._max_queue_size = _checked_count(value, "max_queue_size", minimum=0)

    # -- the subclass API ----------------------------------------------------------------------

    def __getitem__(self, index: int) -> Any:
        """Return batch ``index``. Subclasses must override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    @property
    def num_batches(self) -> int | None:
        """Batches per epoch: ``len(self)`` by default; ``None`` means endless.

        Raises:
            NotImplementedError: the subclass defines neither ``__len__`` nor ``num_batches``
                (iterating such a dataset is endless, as in Keras).
        """
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            f"{type(self).__name__} implements neither __len__ nor the `num_batches` property, "
            "so it is endless (return None from num_batches to say so)"
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
    """``ds.num_batches`` (or ``len(ds)`` for plain sequences), checked; None when endless,
    including a PyDataset (ours or Keras's) that implements neither."""
    try:
        count = ds.num_batches if hasattr(ds, "num_batches") else len(ds)
    except NotImplementedError:
        return None
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
    ds.__dict__["_epoch_running"] = True
    try:
        ds.on_epoch_begin()
        try:
            yield from _batches(ds, indices)
        except GeneratorExit:
            ds.on_epoch_end()  # closed early: the epoch still ends, after the workers stopped
            raise
        ds.on_epoch_end()
    finally:
        ds.__dict__["_epoch_running"] = False


def _batches(ds: PyDataset, indices: Iterable[int]) -> Iterator[Any]:
    workers = ds.workers
    if ds.use_multiprocessing and workers > 0:
        yield from _process_batches(ds, indices)
    elif workers > 1:
        yield from _thread_batches(ds, indices, workers)
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
    """Yield ``pool``'s results for ``indices`` in order, keeping ``depth`` requests ahead of the
    batch being consumed (``depth=0``: each batch is requested when it is asked for)."""
    upcoming = iter(indices)
    pending: deque[int] = deque()
    for index in itertools.islice(upcoming, depth):
        pool.submit(index)
        pending.append(index)
    while True:
        if not pending:
            for index in itertools.islice(upcoming, 1):
                pool.submit(index)
                pending.append(index)
            if not pending:
                return
        index = pending.popleft()
        batch = pool.result(index)
        for following in itertools.islice(upcoming, 1 if depth else 0):
            pool.submit(following)
            pending.append(following)
        yield batch


def _thread_batches(ds: Any, indices: Iterable[int], workers: int) -> Iterator[Any]:
    pool = _workers.ThreadPool(ds, workers)
    try:
        yield from _in_order(pool, indices, ds.max_queue_size)
    except (KeyboardInterrupt, SystemExit):
        pool.close(wait=False)  # the user asked to stop: do not wait for a batch that may hang
        raise
    except BaseException:
        pool.close(wait=True)  # no batch is running when the error or the hook reaches the user
        raise
    pool.close(wait=True)


def _process_batches(ds: Any, indices: Iterable[int]) -> Iterator[Any]:
    _workers.exit_if_bootstrapping()
    _refuse_unguarded_script(ds)
    payload = _workers.dataset_payload(ds)
    pool, kept = _workers.pool_for(ds, ds.workers)
    try:
        pool.begin_epoch(type(ds).__name__, payload)
        yield from _in_order(pool, indices, ds.max_queue_size)
    except GeneratorExit:  # closed early: keep the workers, skip what is left of the epoch
        pool.abandon_epoch()
        if not kept:
            pool.shutdown(graceful=True)
        raise
    except BaseException:  # a failed batch, a dead worker, Ctrl-C: stop every worker now
        _workers.retire(id(ds), graceful=False)
        pool.shutdown(graceful=False)
        raise
    if not kept:
        pool.shutdown(graceful=True)


def _refuse_unguarded_script(ds: Any) -> None:
    """Raise if this epoch is run by a script's top-level code outside an
    ``if __name__ == "__main__":`` block: every spawned worker would run it again."""
    where = _unguarded_script_line()
    if where is not None:
        path, line = where
        raise RuntimeError(
            f"{type(ds).__name__}(use_multiprocessing=True) starts its workers with spawn: each "
            f"worker imports your script again, and line {line} of {path} is top-level code, so "
            "every worker would run it too. Move the script's top-level code (everything but "
            'imports and definitions) under `if __name__ == "__main__":`, or use threads '
            "(use_multiprocessing=False)."
        )


def _tests_main_name(test: ast.expr) -> bool:
    """True when ``test`` compares ``__name__`` with ``"__main__"`` somewhere (either way round,
    also inside ``and`` / ``or``)."""
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and [type(op) for op in node.ops] == [ast.Eq]:
            sides = [node.left, node.comparators[0]]
            names = [side.id for side in sides if isinstance(side, ast.Name)]
            constants = [side.value for side in sides if isinstance(side, ast.Constant)]
            if names == ["__name__"] and constants == ["__main__"]:
                return True
    return False


def _unguarded_script_line() -> tuple[str, int] | None:
    """The file and line of the main script's top-level statement that is running now, when that
    statement is not inside an ``if __name__ == "__main__":`` block; else None."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"
    ):
        frame = frame.f_back
    if frame is None or getattr(sys.modules.get("__main__"), "__file__", None) is None:
        return None  # no script file (interactive, -c, a notebook): spawn re-runs nothing
    path = frame.f_code.co_filename
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    line = frame.f_lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _tests_main_name(node.test):
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                return None
    return path, line


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
            f"to_grain needs a finite dataset; {type(ds).__name__} is endless (num_batches is "
            "None, or neither __len__ nor num_batches is implemented)"
        )
    return grain.MapDataset.source(_BatchSource(ds, count))
