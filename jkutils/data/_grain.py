"""What a plain script needs before grain runs worker processes over jkutils sources.

Two things go wrong when a script that is not run by ``absl.app.run`` hands data to grain's
multiprocessing (``mp_prefetch``, ``DataLoader(worker_count>0)``):

* grain reads absl flags when its workers start, and absl raises ``UnparsedFlagAccessError``
  while nobody has parsed them. :func:`prepare_for_grain` marks them parsed (when they are not
  yet): nothing is read from ``sys.argv``, and a later ``absl.app.run`` still parses its flags.
* grain passes each NumPy array from a worker to the main process in shared memory, and the
  main process frees it (unlinks the segment) when the array is garbage-collected, on a
  background thread. At interpreter exit, segments whose unlink is still queued, and arrays
  still alive (the last batch of a loop, batches the prefetcher had buffered), are never
  unlinked, so ``multiprocessing.resource_tracker`` warns about "leaked shared_memory objects"
  (it then frees them itself). :func:`prepare_for_grain` registers one exit hook that closes
  the grain iterators still open (as grain asks: this stops their workers and unlinks what they
  had sent), waits for the queued unlinks and unlinks the segments of arrays still alive. The
  mappings stay valid until the process ends, so code running later at exit can still read the
  arrays.
"""

from __future__ import annotations

import atexit
import gc
import threading

_lock = threading.Lock()
_exit_hook_registered = False


def prepare_for_grain() -> None:
    """Mark absl flags parsed if they are not, and free grain's shared memory at exit (once).

    Called by jkutils whenever it hands a source or dataset to grain; cheap after the first
    call.

    Example:
        >>> prepare_for_grain()
        >>> from absl import flags
        >>> flags.FLAGS.is_parsed()
        True
    """
    global _exit_hook_registered
    _mark_absl_flags_parsed()
    with _lock:
        if not _exit_hook_registered:
            atexit.register(_release_shared_memory)
            _exit_hook_registered = True


def _mark_absl_flags_parsed() -> None:
    try:
        from absl import flags
    except ImportError:  # grain without absl: nothing to do
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _release_shared_memory() -> None:
    """Close live grain iterators, finish queued unlinks, unlink what arrays are still alive."""
    try:
        import grain
        from grain._src.python.ipc.shared_memory_array import SharedMemoryArray
    except ImportError:  # another grain layout: leave it to grain
        return
    _close_iterators(grain.DatasetIterator)
    # From here on an array that is collected unlinks its own segment at once (the background
    # pool is being shut down), and does nothing once its segment is unlinked: arrays collected
    # during interpreter teardown would otherwise run grain's __del__ after the modules it uses
    # are gone (printing "Exception ignored"); the operating system unmaps them at exit.
    SharedMemoryArray.__del__ = _unlink_now
    pool = getattr(SharedMemoryArray, "_del_thread_pool", None)
    if pool is not None:
        pool.close()
        pool.join()
    for obj in gc.get_objects():
        if isinstance(obj, SharedMemoryArray):
            _unlink_now(obj)


def _close_iterators(iterator_type: type) -> None:
    """``close()`` every live grain iterator, as grain asks of ``mp_prefetch`` users.

    Closing stops the worker processes and unlinks the batches they had sent but nobody read.
    Closed iterators then skip grain's ``__del__``, which would close them again during
    interpreter teardown, when the modules it needs are gone.
    """
    for obj in gc.get_objects():
        if isinstance(obj, iterator_type):
            try:
                obj.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - a broken pipeline must not stop the others' cleanup
                pass
    iterator_type.__del__ = _no_cleanup  # type: ignore[attr-defined]


def _no_cleanup(self: object) -> None:
    return None


def _unlink_now(array: object) -> None:
    """Unlink the segment an array is responsible for, once; never raises (runs at exit)."""
    try:
        if array._unlink_on_del:  # type: ignore[attr-defined]
            array._unlink_on_del = False  # type: ignore[attr-defined]
            array.shm.unlink()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - at exit there is no caller left to tell
        pass
