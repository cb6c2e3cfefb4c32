"""PyDataset / Sequence with real worker threads and spawned worker processes: index order, hooks
exactly once, bounded prefetch, exceptions with worker tracebacks, clean shutdown (no zombies),
Ctrl-C, and to_grain. Datasets used by process workers live at module level so workers can
import them."""

import gc
import itertools
import multiprocessing
import os
import sys
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

from jkutils.data.py_dataset import PyDataset, Sequence, to_grain

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BatchFailed(Exception):
    pass


class Numbers(PyDataset):
    """Batch i is ``[i, pid]``; batch ``fail_at`` raises; per-batch jitter scrambles finishing
    order; hooks are recorded."""

    def __init__(self, n, fail_at=None, jitter=0.0, exit_at=None, **kwargs):
        super().__init__(**kwargs)
        self.n, self.fail_at, self.jitter, self.exit_at = n, fail_at, jitter, exit_at
        self.events = []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if self.jitter:
            time.sleep(self.jitter * ((index * 7919) % 5) / 5)
        if index == self.fail_at:
            raise BatchFailed(f"batch {index} is broken")
        if index == self.exit_at:
            os._exit(3)
        return np.array([index, os.getpid()])

    def on_epoch_begin(self):
        self.events.append("begin")

    def on_epoch_end(self):
        self.events.append("end")


def _indices(batches):
    return [int(b[0]) for b in batches]


def _pool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("jkutils-pydataset")]


def _assert_reaped(pids):
    assert multiprocessing.active_children() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # not even a zombie is left
            os.kill(pid, 0)


# -- the subclass API ----------------------------------------------------------------------------


def test_sequence_is_pydataset_and_settings_are_validated():
    assert Sequence is PyDataset
    ds = Numbers(3, workers=4, use_multiprocessing=False, max_queue_size=2)
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (4, False, 2)
    assert ds.num_batches == 3
    with pytest.raises(ValueError, match="workers"):
        Numbers(3, workers=-1)
    with pytest.raises(TypeError, match="workers"):
        Numbers(3, workers=2.0)
    with pytest.raises(ValueError, match="max_queue_size"):
        Numbers(3, max_queue_size=-1)
    with pytest.raises(TypeError, match="use_multiprocessing"):
        Numbers(3, use_multiprocessing=1)


def test_missing_super_init_warns_and_uses_defaults():
    class Lazy(PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return index

    ds = Lazy()
    with pytest.warns(UserWarning, match="super\\(\\).__init__") as caught:
        assert ds.workers == 1
    assert [w.filename for w in caught] == [__file__]  # the user's line, not jkutils'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(ds) == [0, 1] and ds.max_queue_size == 10
    with pytest.warns(UserWarning, match="super\\(\\).__init__") as caught:
        line = sys._getframe().f_lineno + 1
        assert list(Lazy()) == [0, 1]  # warned from inside the epoch, still names this line
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


def test_num_batches_and_getitem_must_be_implemented():
    class Nothing(PyDataset):
        pass

    with pytest.raises(NotImplementedError, match="num_batches"):
        Nothing().num_batches  # noqa: B018

    class NoItems(PyDataset):
        def __len__(self):
            return 1

    with pytest.raises(NotImplementedError, match="__getitem__"):
        list(NoItems())

    class BadCount(Numbers):
        num_batches = -1

    with pytest.raises(ValueError, match="num_batches"):
        list(BadCount(1))


@pytest.mark.parametrize("workers", [1, 3])
def test_endless_dataset(workers):
    class Endless(PyDataset):
        num_batches = None

        def __getitem__(self, index):
            return index

    assert list(itertools.islice(Endless(workers=workers), 25)) == list(range(25))


class NoLength(PyDataset):
    """Neither ``__len__`` nor ``num_batches``: endless, as in Keras."""

    def __getitem__(self, index):
        return np.array([index, os.getpid()])


@pytest.mark.parametrize(
    "settings",
    [{}, {"workers": 3}, {"workers": 2, "use_multiprocessing": True}],
    ids=["serial", "threads", "processes"],
)
def test_dataset_without_length_is_endless(settings):
    ds = NoLength(**settings)
    for _ in range(2):
        iterator = iter(ds)
        assert _indices(itertools.islice(iterator, 30)) == list(range(30))
        iterator.close()
    del ds, iterator
    gc.collect()
    assert multiprocessing.active_children() == []


def test_max_queue_size_zero_loads_each_batch_when_asked():
    assert _indices(Numbers(5, workers=0, max_queue_size=0)) == list(range(5))  # Keras accepts it
    ds = Tracked(12, delay=0.001, workers=3, max_queue_size=0)
    for index in ds:
        with ds.lock:
            assert max(ds.started) == index  # nothing is loaded ahead of the consumer
    assert ds.started == list(range(12))


# -- order, hooks, prefetch ------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_epochs_in_index_order_with_hooks_once(workers):
    ds = Numbers(12, jitter=0.02, workers=workers)
    for epoch in range(2):
        assert _indices(ds) == list(range(12))
        assert ds.events == ["begin", "end"] * (epoch + 1)
    assert _pool_threads() == []


class Rendezvous(Numbers):
    """Batch i is ``[i, pid, ok, epochs ended]``: batches 0 and 1 each wait (up to a timeout)
    until the other has started, so both get ``ok=1`` only if two workers ran them at once."""

    def __init__(self, n, folder, **kwargs):
        super().__init__(n, **kwargs)
        self.folder = folder

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        ended = self.events.count("end")
        if index > 1:
            return np.append(batch, [1, ended])
        mine = os.path.join(self.folder, f"{ended}-{index}")
        other = os.path.join(self.folder, f"{ended}-{1 - index}")
        open(mine, "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(other) and time.monotonic() < deadline:
            time.sleep(0.01)
        return np.append(batch, [int(os.path.exists(other)), ended])


def test_process_workers_run_in_parallel_in_order_and_see_hook_changes(tmp_path):
    ds = Rendezvous(10, str(tmp_path), workers=2, use_multiprocessing=True, max_queue_size=4)
    first = list(ds)
    assert _indices(first) == list(range(10))
    assert all(int(b[2]) == 1 for b in first)  # batches 0 and 1 overlapped
    pids = {int(b[1]) for b in first}
    assert len(pids) == 2 and os.getpid() not in pids
    assert ds.events == ["begin", "end"]
    second = list(ds)
    assert _indices(second) == list(range(10)) and all(int(b[2]) == 1 for b in second)
    assert {int(b[3]) for b in first} == {0} and {int(b[3]) for b in second} == {1}
    assert {int(b[1]) for b in second} == pids  # the next epoch reuses the same processes
    del ds, first, second
    gc.collect()
    _assert_reaped(pids)  # dropping the dataset stops and reaps its workers


class Tracked(PyDataset):
    def __init__(self, n, delay, **kwargs):
        super().__init__(**kwargs)
        self.n, self.delay = n, delay
        self.lock = threading.Lock()
        self.started, self.active, self.most_active = [], 0, 0

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        with self.lock:
            self.started.append(index)
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        return index


def test_prefetch_is_bounded_by_max_queue_size():
    ds = Tracked(30, delay=0.001, workers=4, max_queue_size=3)
    for index in ds:
        time.sleep(0.003)  # slow consumer: workers would run ahead if allowed
        with ds.lock:
            assert max(ds.started) <= index + 3


def test_threads_overlap_io_bound_batches():
    ds = Tracked(8, delay=0.1, workers=4)
    assert list(ds) == list(range(8))
    assert ds.most_active >= 2  # several batches were sleeping at the same time


def test_early_break_ends_the_epoch_once_and_stops_workers():
    ds = Numbers(50, workers=3)
    for batch in ds:
        if batch[0] == 4:
            break
    assert ds.events == ["begin", "end"]
    assert _pool_threads() == []


def test_two_epochs_at_once_are_refused():
    ds = Numbers(5)
    first = iter(ds)
    next(first)
    with pytest.raises(RuntimeError, match="already being iterated"):
        next(iter(ds))
    first.close()
    assert _indices(ds) == list(range(5))


# -- errors ----------------------------------------------------------------------------------


def test_thread_worker_error_reaches_caller_with_its_traceback():
    ds = Numbers(20, fail_at=6, jitter=0.01, workers=3)
    received = []
    with pytest.raises(BatchFailed, match="batch 6 is broken") as info:
        for batch in ds:
            received.append(int(batch[0]))
    assert received == list(range(6))
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "__getitem__" in frames  # the worker's frame is in the traceback
    assert any("batch 6 of Numbers in a worker thread" in n for n in info.value.__notes__)
    assert _pool_threads() == []
    assert ds.events == ["begin"]  # no epoch-end for a failed epoch
    ds.fail_at = None
    assert _indices(ds) == list(range(20))  # the next epoch runs
    assert ds.events == ["begin", "begin", "end"]


def test_process_worker_error_reaches_caller_and_workers_are_reaped():
    ds = Numbers(20, fail_at=5, workers=2, use_multiprocessing=True)
    received = []
    with pytest.raises(BatchFailed, match="batch 5 is broken") as info:
        for batch in ds:
            received.append(batch)
    assert _indices(received) == list(range(5))
    worker_text = str(info.value.__cause__)
    assert "__getitem__" in worker_text and "BatchFailed: batch 5 is broken" in worker_text
    assert any("in a worker process" in n for n in info.value.__notes__)
    _assert_reaped({int(b[1]) for b in received})
    ds.fail_at = None
    iterator = iter(ds)  # the next epoch runs on fresh workers
    head = list(itertools.islice(iterator, 8))
    assert _indices(head) == list(range(8))
    iterator.close()
    assert ds.events == ["begin", "begin", "end"]
    pids = {int(b[1]) for b in head}
    assert pids.isdisjoint(int(b[1]) for b in received)
    whole = list(ds)  # closing early kept the workers: the next epoch reuses them
    assert _indices(whole) == list(range(20)) and {int(b[1]) for b in whole} == pids
    del ds, iterator, head, whole, info  # info's traceback holds the failed epoch and its dataset
    gc.collect()
    _assert_reaped(pids)


def test_dead_worker_process_is_reported():
    ds = Numbers(10, exit_at=2, workers=1, use_multiprocessing=True)
    with pytest.raises(RuntimeError, match="exit code 3"):
        list(ds)
    assert multiprocessing.active_children() == []


class HoldsALock(Numbers):
    def __init__(self, n, **kwargs):
        super().__init__(n, **kwargs)
        self.lock = threading.Lock()


class BreaksOnLoad(Numbers):
    def __setstate__(self, state):
        raise BatchFailed("cannot be rebuilt in a worker")


def test_pickling_problems_with_process_workers():
    with pytest.raises(TypeError, match="pickle") as info:
        list(HoldsALock(3, workers=2, use_multiprocessing=True))
    assert any("must be picklable" in n for n in info.value.__notes__)
    with pytest.raises(BatchFailed, match="rebuilt"):
        list(BreaksOnLoad(3, workers=1, use_multiprocessing=True))
    assert multiprocessing.active_children() == []


# -- grain ---------------------------------------------------------------------------------------


def test_to_grain_gives_one_batch_per_element():
    import grain

    ds = to_grain(Numbers(7, workers=3))
    assert isinstance(ds, grain.MapDataset) and len(ds) == 7
    assert _indices(ds) == list(range(7))
    assert sorted(_indices(ds.shuffle(seed=0))) == list(range(7))
    assert int(ds[3][0]) == 3


def test_to_grain_accepts_keras_pydatasets_and_rejects_endless():
    import keras

    class KerasBatches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return np.full((2,), index)

    assert [int(b[0]) for b in to_grain(KerasBatches())] == [0, 1, 2, 3]

    class Endless(PyDataset):
        num_batches = None

        def __getitem__(self, index):
            return index

    with pytest.raises(ValueError, match="finite"):
        to_grain(Endless())


class NeedsTwoArguments(Exception):
    """Pickles, but unpickling calls ``__init__(message)`` without ``code``."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class RaisesAwkwardError(Numbers):
    def __getitem__(self, index):
        if index == 2:
            raise NeedsTwoArguments(f"batch {index} failed", code=7)
        return super().__getitem__(index)


def test_process_worker_error_that_cannot_be_unpickled_keeps_its_type():
    ds = RaisesAwkwardError(5, workers=2, use_multiprocessing=True)
    with pytest.raises(NeedsTwoArguments, match="batch 2 failed") as info:
        list(ds)
    assert info.value.code == 7
    assert "NeedsTwoArguments: batch 2 failed" in str(info.value.__cause__)
    assert any("batch 2" in note for note in info.value.__notes__)
    assert multiprocessing.active_children() == []


def test_error_in_the_iterating_thread_notes_its_batch():
    with pytest.raises(BatchFailed) as info:
        list(Numbers(5, fail_at=3))
    assert any("batch 3 of Numbers" in note for note in info.value.__notes__)
