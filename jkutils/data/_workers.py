"""Worker pools that load ``PyDataset`` batches and directory datasets' elements: daemon threads,
and spawned processes that each talk to the parent over a private pipe.

Both pools offer ``submit(index)`` and ``result(index)``; the caller keeps them in index order.

Process workers are built to fail loudly rather than hang or linger:

- Each worker has its own duplex pipe, and the parent holds the only other end. A worker that
  dies, even half-way through sending a batch, closes its end, so the parent's read ends with
  end-of-file at once and the error names the worker, how it ended and the batch.
- Each worker watches its parent (the sentinel every spawned child gets) from a thread and exits
  as soon as the parent is gone, whatever it was doing.
- Stopping is bounded: idle workers are asked to exit, then any still alive are terminated, then
  killed, with a deadline at each step, so a ``SIGTERM`` handler in the script cannot stall it.
- A pool outlives an epoch. Closing an epoch early only bumps a shared epoch number: workers skip
  the requests of an abandoned epoch without loading them, and the parent drops their replies.
- Pools for the directory datasets' decoding (``import_main=False``) start workers that do not
  import the parent's main script: what they run (file loaders, NumPy, Pillow) is importable on
  its own, so a script that imports JAX does not make every worker import JAX too (about a
  second each). Such pools are lent to one iterator at a time and kept for the next one.

``concurrent.futures.ProcessPoolExecutor`` does not give these by itself: its workers share one
result pipe (a reply cut by a killed worker leaves the reader waiting for bytes that the other
workers' open ends may never send), they wait for work without watching their parent, a broken
pool does not say which batch was lost, and its shutdown joins without a deadline.
"""

from __future__ import annotations

import atexit
import io
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import multiprocessing.util  # registers its exit hook now, so ours (registered later) runs first
import os
import pickle
import queue
import signal
import threading
import time
import traceback
import types
import weakref
from collections import ChainMap
from concurrent.futures import Future
from typing import Any

import cloudpickle

_ASK_SECONDS = 2.0  # idle workers asked to exit
_TERMINATE_SECONDS = 2.0  # after SIGTERM
_KILL_SECONDS = 5.0  # after SIGKILL (cannot be caught)
_NO_GUARD_EXIT = 86  # a worker re-running an unguarded script exits with this code
_OK, _ERROR, _STALE = 0, 1, 2
_THREAD_PREFIX = "jkutils-pydataset"
_MAINLESS_PREFIX = "jkutils-decode-"  # worker processes that do not import the main script


def noted(exc: BaseException, name: str, index: int | None, where: str) -> BaseException:
    """``exc`` with a note naming the batch (or the dataset) and the kind of worker."""
    batch = f"batch {index}" if index is not None else "the dataset"
    exc.add_note(f"Raised while loading {batch} of {name} in a worker {where}.")
    return exc


# -- threads ------------------------------------------------------------------------------------


class ThreadPool:
    """``workers`` daemon threads loading batches; results are futures keyed by index.

    The threads are daemons, so a batch that never returns cannot keep the interpreter from
    exiting once the caller has given up on it (Ctrl-C).
    """

    def __init__(self, ds: Any, workers: int):
        self._ds = ds
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._futures: dict[int, Future] = {}
        self._threads = [
            threading.Thread(target=self._work, name=f"{_THREAD_PREFIX}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, index = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._ds[index])
            except BaseException as exc:
                future.set_exception(exc)

    def submit(self, index: int) -> None:
        future: Future = Future()
        self._futures[index] = future
        self._tasks.put((future, index))

    def result(self, index: int) -> Any:
        try:
            return self._futures.pop(index).result()
        except Exception as exc:
            noted(exc, type(self._ds).__name__, index, "thread")
            raise

    def close(self, wait: bool) -> None:
        """Cancel what has not started and stop the threads; with ``wait``, also wait for the
        batches still running (threads cannot be interrupted)."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


# -- what travels to a process worker ------------------------------------------------------


def _code_at(make: Any, args: tuple, filename: str) -> types.CodeType:
    return make(*args).replace(co_filename=filename)


def _code_reduce(code: types.CodeType) -> tuple:
    """cloudpickle's reduction of a code object, keeping its file name (cloudpickle writes
    ``<dynamic-code>``), so tracebacks in workers show the user's file and line."""
    make, args = cloudpickle.Pickler.dispatch_table[types.CodeType](code)
    return _code_at, (make, args, code.co_filename)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


def dataset_payload(ds: Any) -> bytes:
    """``ds`` pickled for the workers (cloudpickle, so classes from ``__main__`` travel too)."""
    buffer = io.BytesIO()
    try:
        pickler = (
            _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
            if types.CodeType in cloudpickle.Pickler.dispatch_table
            else cloudpickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        )
        pickler.dump(ds)
    except Exception as exc:
        exc.add_note(
            f"use_multiprocessing=True sends the {type(ds).__name__} to worker processes, "
            "so it must be picklable (drop open files in __getstate__ or use threads)"
        )
        raise
    return buffer.getvalue()


class WorkerTraceback(Exception):
    """Carries the formatted traceback of an exception raised in a worker process."""

    def __str__(self) -> str:
        return "\n\n" + self.args[0]


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


def _raised(name: str, index: int | None, payload: bytes) -> BaseException:
    """The exception a worker reported, with its traceback attached as the cause."""
    try:
        exc, text = pickle.loads(payload)
        if isinstance(exc, _ExceptionState):
            exc = exc.rebuilt()
    except Exception as err:
        exc = RuntimeError(f"a worker raised an exception that could not be unpickled: {err}")
        text = ""
    exc.__cause__ = WorkerTraceback(text)
    return noted(exc, name, index, "process")


# -- the process worker ------------------------------------------------------------------------


def _exit_with_parent() -> None:
    """Start a thread that ends this process as soon as its parent is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="jkutils-parent-watch", daemon=True).start()


def _reset_signals() -> None:
    # Ctrl-C is the parent's to handle; SIGTERM handlers come from the re-imported script (or a
    # module the dataset imports) and are meant for the parent, not for a batch loader.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _reply(conn: Any, epoch: int, index: int | None, status: int, value: Any) -> None:
    try:
        message = pickle.dumps((epoch, index, status, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # the batch does not pickle
        message = pickle.dumps((epoch, index, _ERROR, _error_payload(exc)))
    conn.send_bytes(message)


def _worker_main(conn: Any, current_epoch: Any) -> None:
    """Worker process main loop: take a dataset, then load the batches asked for, until told to
    stop or the parent is gone. A new dataset message (one per epoch) replaces the previous one.
    Requests from an epoch that is no longer ``current_epoch`` are answered without loading."""
    _reset_signals()
    _exit_with_parent()
    ds = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent closed its end
        if message is None:
            return
        kind, epoch, value = message
        if kind == "dataset":
            ds = None
            try:
                ds = pickle.loads(value)
            except BaseException as exc:
                _reply(conn, epoch, None, _ERROR, _error_payload(exc))
            _reset_signals()
            continue
        if ds is None or epoch != current_epoch.value:
            _reply(conn, epoch, value, _STALE, None)
            continue
        try:
            batch = ds[value]
        except BaseException as exc:
            _reply(conn, epoch, value, _ERROR, _error_payload(exc))
            continue
        if epoch == current_epoch.value:
            _reply(conn, epoch, value, _OK, batch)
        else:  # abandoned while loading: do not send it
            _reply(conn, epoch, value, _STALE, None)


def exit_if_bootstrapping() -> None:
    """In a spawned worker that is still importing the parent's script (code outside an
    ``if __name__ == "__main__":`` block), exit quietly with a code the parent explains."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        os._exit(_NO_GUARD_EXIT)


# -- the process pool ---------------------------------------------------------------------------


def _ended(process: Any) -> str:
    code = process.exitcode
    if code is None:
        return "closed its connection"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (often the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return f"was killed by signal {name}{hint}"
    if code == _NO_GUARD_EXIT:
        return (
            "exited while re-running the script: with spawn, each worker imports the main "
            'script again, so put its top-level code under `if __name__ == "__main__":`'
        )
    return f"exited unexpectedly with exit code {code}"


def _await_exit(processes: list, seconds: float) -> None:
    """Wait until every process in ``processes`` has exited, at most ``seconds`` in all."""
    deadline = time.monotonic() + seconds
    while alive := [p for p in processes if p.exitcode is None]:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        multiprocessing.connection.wait([p.sentinel for p in alive], timeout=left)
        for process in alive:
            process.join(0)


_stock_preparation_data = multiprocessing.spawn.get_preparation_data
_install_lock = threading.Lock()


def _preparation_data(name: str) -> dict:
    """What a spawned child needs to start (the standard library's answer), without the main
    script for jkutils' own decoding workers, which run only importable code."""
    data = _stock_preparation_data(name)
    if name.startswith(_MAINLESS_PREFIX):
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
    return data


def _skip_main_for_mainless_workers() -> None:
    """Have ``multiprocessing`` start processes named ``jkutils-decode-*`` without importing
    the main script (every other process starts as before)."""
    with _install_lock:
        if multiprocessing.spawn.get_preparation_data is not _preparation_data:
            multiprocessing.spawn.get_preparation_data = _preparation_data


class ProcessPool:
    """Spawned worker processes, each with its own pipe; batch ``i`` goes to worker ``i % size``.

    A worker answers its requests in order, so the next reply on worker ``k``'s pipe is for the
    oldest batch it was asked for.
    """

    def __init__(self, size: int, import_main: bool = True):
        context = multiprocessing.get_context("spawn")
        if not import_main:
            _skip_main_for_mainless_workers()
        prefix = "jkutils-pydataset-" if import_main else _MAINLESS_PREFIX
        self.size = size
        self.broken = False
        self._epoch = 0
        self._current_epoch = context.Value("q", 0, lock=False)  # shared with the workers
        self._name = ""  # the dataset's class name; no reference, so the dataset can be freed
        self._conns: list[Any] = []
        self._processes: list[Any] = []
        self._outstanding = [0] * size  # batch requests each worker has not answered yet
        try:
            for n in range(size):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_worker_main,
                    args=(theirs, self._current_epoch),
                    name=f"{prefix}{n}",
                    daemon=True,
                )
                try:
                    process.start()
                except BaseException:
                    mine.close()
                    raise
                finally:
                    theirs.close()  # the worker now holds the only other end
                self._conns.append(mine)
                self._processes.append(process)
        except BaseException:
            self.shutdown(graceful=False)
            raise

    def usable(self) -> bool:
        return not self.broken and all(p.exitcode is None for p in self._processes)

    def begin_epoch(self, name: str, payload: bytes) -> None:
        """Hand every worker this epoch's copy of the dataset, once it has answered what an
        epoch closed early still asked of it (a worker busy sending a batch reads nothing)."""
        self._name = name
        for worker in range(self.size):
            while self._outstanding[worker]:
                self._reply(worker, "a batch of an epoch closed early")
        self._epoch += 1
        self._current_epoch.value = self._epoch
        for worker in range(self.size):
            self._send(worker, ("dataset", self._epoch, payload), "the dataset")

    def abandon_epoch(self) -> None:
        """Tell the workers to skip what is left of this epoch (it was closed early)."""
        self._current_epoch.value = 0

    def submit(self, index: int) -> None:
        worker = index % self.size
        self._send(worker, ("batch", self._epoch, index), f"batch {index}")
        self._outstanding[worker] += 1

    def result(self, index: int) -> Any:
        worker = index % self.size
        while True:
            epoch, got, status, value = self._reply(worker, f"batch {index}")
            if epoch != self._epoch:
                continue  # a reply for an epoch that was closed early
            if status == _ERROR:
                raise _raised(self._name, got, value)
            if got != index or status != _OK:
                raise RuntimeError(
                    f"worker process {self._processes[worker].name} of {self._name} answered "
                    f"batch {got} (status {status}) when batch {index} was due"
                )
            return value

    def _send(self, worker: int, message: Any, loading: str) -> None:
        try:
            self._conns[worker].send(message)
        except OSError:
            raise self._died(worker, loading) from None

    def _reply(self, worker: int, loading: str) -> tuple:
        """The next reply from ``worker``: ``(epoch, index, status, value)``, ``index`` being
        None for a dataset that failed to load. ``loading`` names what is awaited, for errors."""
        conn, process = self._conns[worker], self._processes[worker]
        try:
            multiprocessing.connection.wait([conn, process.sentinel])
            if not conn.poll():
                raise EOFError
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the worker is gone, possibly half-way through a reply
            raise self._died(worker, loading) from None
        reply = pickle.loads(message)
        if reply[1] is not None:
            self._outstanding[worker] -= 1
        return reply

    def _died(self, worker: int, loading: str) -> RuntimeError:
        self.broken = True
        process = self._processes[worker]
        process.join(_KILL_SECONDS)
        return RuntimeError(
            f"worker process {process.name} (pid {process.pid}) of {self._name} "
            f"{_ended(process)}, while loading {loading}"
        )

    def shutdown(self, graceful: bool) -> None:
        """Stop the workers and free their pipes: with ``graceful``, idle workers are asked to
        exit first; then whatever is still alive is terminated and, failing that, killed."""
        processes = self._processes
        if graceful:
            for conn, busy in zip(self._conns, self._outstanding):
                if busy == 0:
                    try:
                        conn.send(None)
                    except OSError:
                        pass
            _await_exit(processes, _ASK_SECONDS)
        for stop, seconds in (("terminate", _TERMINATE_SECONDS), ("kill", _KILL_SECONDS)):
            alive = [p for p in processes if p.exitcode is None]
            for process in alive:
                getattr(process, stop)()
            _await_exit(alive, seconds)
        for process in processes:
            if process.exitcode is not None:
                process.close()
        for conn in self._conns:
            conn.close()
        self._conns, self._processes = [], []


# -- pools kept per dataset -----------------------------------------------------------------

_POOLS: dict[int, ProcessPool] = {}
_WATCHED: set[int] = set()


def retire(owner: int, graceful: bool = True) -> None:
    """Stop and forget the pool kept for dataset ``owner`` (an ``id``), if any."""
    pool = _POOLS.pop(owner, None)
    if pool is not None:
        pool.shutdown(graceful)


def _forget(owner: int) -> None:
    _WATCHED.discard(owner)
    retire(owner)


def pool_for(ds: Any, workers: int) -> tuple[ProcessPool, bool]:
    """A working pool of ``workers`` processes for ``ds``, and whether it is kept for later
    epochs (kept pools are stopped when ``ds`` is garbage-collected or the interpreter exits)."""
    owner = id(ds)
    pool = _POOLS.get(owner)
    if pool is not None and pool.size == workers and pool.usable():
        return pool, True
    retire(owner, graceful=pool is not None and pool.usable())
    pool = ProcessPool(workers)
    if owner not in _WATCHED:
        try:
            weakref.finalize(ds, _forget, owner)
        except TypeError:  # not weak-referenceable: the pool lives for this epoch only
            return pool, False
        _WATCHED.add(owner)
    _POOLS[owner] = pool
    return pool, True


# -- decoding pools lent to one iterator at a time ---------------------------------------------

_IDLE: dict[int, list[ProcessPool]] = {}  # by size
_LENT: set[ProcessPool] = set()
_lending_lock = threading.Lock()


def lend_pool(size: int) -> ProcessPool:
    """A working pool of ``size`` workers that do not import the main script, for one
    iterator's use until :func:`take_back`: an idle one kept from earlier, or a new one."""
    with _lending_lock:
        idle = _IDLE.get(size, [])
        while idle:
            pool = idle.pop()
            if pool.usable():
                _LENT.add(pool)
                return pool
            pool.shutdown(graceful=False)
    pool = ProcessPool(size, import_main=False)
    with _lending_lock:
        _LENT.add(pool)
    return pool


def take_back(pool: ProcessPool) -> None:
    """End ``pool``'s loan: a working pool waits (idle) for the next :func:`lend_pool`, with
    whatever it was still asked to load skipped; a broken one is stopped."""
    with _lending_lock:
        if pool not in _LENT:
            return
        _LENT.discard(pool)
        if pool.usable():
            pool.abandon_epoch()
            _IDLE.setdefault(pool.size, []).append(pool)
            return
    pool.shutdown(graceful=False)


def stop_idle_pools() -> int:
    """Stop the decoding pools that wait for a loan; the number of worker processes stopped."""
    with _lending_lock:
        pools = [pool for idle in _IDLE.values() for pool in idle]
        _IDLE.clear()
    for pool in pools:
        pool.shutdown(graceful=True)
    return sum(pool.size for pool in pools)


def _stop_all() -> None:
    for owner in list(_POOLS):
        retire(owner)
    with _lending_lock:
        lent = list(_LENT)
        _LENT.clear()
    stop_idle_pools()
    for pool in lent:
        pool.shutdown(graceful=True)


atexit.register(_stop_all)
