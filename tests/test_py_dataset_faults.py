"""PyDataset workers under faults, with real processes and real signals: a worker killed while it
sends a batch, a parent killed under its workers, workers that ignore SIGTERM, Ctrl-C while a
thread hangs, scripts without a main guard, and the resources left after many early-closed
epochs. Every test has a timeout, so a hang fails instead of blocking the run."""

import contextlib
import gc
import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from _processes import gone_within as _gone_within
from _processes import running as _running

from jkutils.data.py_dataset import PyDataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG_BATCH_BYTES = 16 * 2**20  # far more than a pipe buffers, so sending it takes many writes


@contextlib.contextmanager
def _script(tmp_path, source, *args, **popen_kwargs):
    """Run ``source`` as a script file; whatever happens in the block, it is killed and reaped
    on the way out, so a failing test cannot leave it running."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, str(path), *args], env=env, text=True, **popen_kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        with proc:  # closes its pipes and reaps it
            pass


def _kill_survivors(pids):
    for pid in pids:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


class Marked(PyDataset):
    """Batch i is ``[i, pid]``; batch ``big_at`` is a large array, made after touching
    ``marker``; batch ``stuck_at`` ignores SIGTERM and sleeps."""

    def __init__(self, n, marker="", big_at=None, stuck_at=None, ballast=0, **kwargs):
        super().__init__(**kwargs)
        self.n, self.marker, self.big_at, self.stuck_at = n, marker, big_at, stuck_at
        self.ballast = np.ones(ballast, np.uint8)  # sent to the workers with the dataset

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.big_at:
            open(self.marker, "w").close()
            return np.zeros(BIG_BATCH_BYTES, np.uint8)
        if index == self.stuck_at:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(self.marker, "w").close()
            time.sleep(600)
        return np.array([index, os.getpid()])


def _stopped_in_batch_1(marker, **settings):
    """A one-process ``Marked`` epoch, its first batch taken and its worker inside batch 1;
    returns the dataset, the epoch's iterator and the worker's pid."""
    ds = Marked(4, marker, workers=1, use_multiprocessing=True, max_queue_size=2, **settings)
    iterator = iter(ds)
    pid = int(next(iterator)[1])
    deadline = time.monotonic() + 60
    while not os.path.exists(marker):
        assert time.monotonic() < deadline, "the worker never reached batch 1"
        time.sleep(0.01)
    return ds, iterator, pid


@pytest.mark.timeout(90)
def test_worker_killed_while_sending_a_batch_raises_and_the_next_epoch_works(tmp_path):
    ds, iterator, pid = _stopped_in_batch_1(str(tmp_path / "sending"), big_at=1)
    time.sleep(0.5)  # batch 1 is made; its reply fills the pipe and the worker waits to send
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RuntimeError) as info:
        next(iterator)
    message = str(info.value)
    assert "jkutils-pydataset-0" in message and f"pid {pid}" in message
    assert "SIGKILL" in message and "batch 1" in message
    assert _gone_within([pid], 5) == []
    ds.big_at = None
    batches = list(ds)  # the next epoch starts new workers and runs to the end
    assert [int(b[0]) for b in batches] == [0, 1, 2, 3]
    assert pid not in {int(b[1]) for b in batches}


@pytest.mark.timeout(60)
def test_an_epoch_closed_while_a_big_batch_is_sent_does_not_block_the_next(tmp_path):
    # the worker is stuck sending batch 1 to a parent that no longer reads it, and the next
    # epoch's dataset is too big for the pipe: the parent must take the batch off first
    ds, iterator, pid = _stopped_in_batch_1(
        str(tmp_path / "sending"), big_at=1, ballast=BIG_BATCH_BYTES
    )
    time.sleep(0.5)  # batch 1 is made and being sent
    iterator.close()
    ds.big_at = None
    batches = list(ds)
    assert [int(b[0]) for b in batches] == [0, 1, 2, 3]
    assert {int(b[1]) for b in batches} == {pid}  # the same worker, reused


@pytest.mark.timeout(60)
def test_stopping_workers_that_ignore_sigterm_ends_with_sigkill(tmp_path):
    # the worker ignores SIGTERM and sleeps in batch 1
    ds, iterator, pid = _stopped_in_batch_1(str(tmp_path / "stuck"), stuck_at=1)
    iterator.close()
    del ds, iterator
    gc.collect()  # the dataset is gone: its workers are stopped, by force if need be
    assert _gone_within([pid], 1) == []
    assert multiprocessing.active_children() == []


PARENT_SCRIPT = """
import json, os, signal, sys, time
import numpy as np
from jkutils.data.py_dataset import PyDataset

if sys.argv[1:] == ["preemptible"]:  # top level: every spawned worker installs it too
    signal.signal(signal.SIGTERM, lambda signum, frame: print("checkpointing", flush=True))

class Slow(PyDataset):
    def __len__(self):
        return 100
    def __getitem__(self, index):
        if index >= 4:
            time.sleep(600)  # the workers are busy when the parent dies
        return np.array([index, os.getpid()])

if __name__ == "__main__":
    iterator = iter(Slow(workers=2, use_multiprocessing=True, max_queue_size=4))
    pids = sorted({int(next(iterator)[1]) for _ in range(4)})
    print(json.dumps(pids), flush=True)
    if sys.argv[1:] == ["preemptible"]:
        iterator.close()  # the workers keep loading batches 4 and 5, which take 600 s
        sys.exit(0)
    next(iterator)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_workers_exit_when_their_parent_is_killed(tmp_path, signum):
    with _script(tmp_path, PARENT_SCRIPT, stdout=subprocess.PIPE) as parent:
        pids = json.loads(parent.stdout.readline())
        try:
            assert len(pids) == 2 and all(_running(pid) for pid in pids)
            parent.send_signal(signum)
            assert parent.wait(timeout=30) == -signum
            assert _gone_within(pids, 10) == []
        finally:
            _kill_survivors(pids)


CTRL_C_SCRIPT = """
import multiprocessing, os, sys, threading, time
from jkutils.data.py_dataset import PyDataset

PROCESSES = sys.argv[1] == "processes"

class Slow(PyDataset):
    def __len__(self):
        return 1000
    def __getitem__(self, index):
        if index == 1 and not PROCESSES:
            threading.Event().wait()  # a thread worker that never returns
        time.sleep(0.2)
        return os.getpid()

if __name__ == "__main__":
    pids = set()
    try:
        for pid in Slow(workers=2, use_multiprocessing=PROCESSES):
            pids.add(pid)
            print("running", flush=True)
    except KeyboardInterrupt:
        workers = [pid for pid in pids if pid != os.getpid()]
        alive = []
        for pid in workers:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        print("interrupted", len(workers), multiprocessing.active_children(), alive, flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_one_ctrl_c_stops_the_epoch_and_its_workers(tmp_path, mode):
    # threads: batch 1 never returns, and one Ctrl-C must still end the script
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with _script(tmp_path, CTRL_C_SCRIPT, mode, **pipes) as proc:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.3)  # the main thread now waits for a batch
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # one Ctrl-C is enough
    assert proc.returncode == 0, err
    words = out.split()
    assert words[-3:] == ["2" if mode == "processes" else "0", "[]", "[]"], out + err
    assert "interrupted" in words


BATCHES_SCRIPT = """
import sys
import numpy as np
from jkutils.data.py_dataset import PyDataset

class Batches(PyDataset):
    def __len__(self):
        return 4
    def __getitem__(self, index):
        return np.full(2, index)

"""
UNGUARDED_SCRIPT = (
    BATCHES_SCRIPT
    + """
for batch in Batches(workers=2, use_multiprocessing=True):
    print(batch)
"""
)
GUARDED_SCRIPT = (
    BATCHES_SCRIPT
    + """
try:
    if len(sys.argv) > 0 and __name__ == "__main__":  # a guard need not stand alone
        print(sum(int(b[0]) for b in Batches(workers=2, use_multiprocessing=True)))
except KeyboardInterrupt:
    pass
"""
)


@pytest.mark.timeout(120)
def test_a_script_without_a_main_guard_gets_one_clear_message(tmp_path):
    lines = textwrap.dedent(UNGUARDED_SCRIPT).splitlines()
    loop_line = lines.index("for batch in Batches(workers=2, use_multiprocessing=True):") + 1
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with _script(tmp_path, UNGUARDED_SCRIPT, **pipes) as proc:
        out, err = proc.communicate(timeout=100)
    assert proc.returncode == 1 and out == ""
    assert err.count("Traceback (most recent call last)") == 1, err
    message = err.strip().splitlines()[-1]
    assert message.startswith("RuntimeError:") and 'if __name__ == "__main__":' in message
    assert f"line {loop_line} of {tmp_path / 'script.py'}" in message


@pytest.mark.timeout(120)
def test_a_guard_inside_try_and_a_condition_is_recognised(tmp_path):
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with _script(tmp_path, GUARDED_SCRIPT, **pipes) as proc:
        out, err = proc.communicate(timeout=100)
    assert (proc.returncode, out.strip()) == (0, "6"), err


@pytest.mark.timeout(120)
def test_a_script_with_a_sigterm_handler_exits_while_its_workers_are_busy(tmp_path):
    with _script(tmp_path, PARENT_SCRIPT, "preemptible", stdout=subprocess.PIPE) as parent:
        pids = json.loads(parent.stdout.readline())
        try:
            assert parent.wait(timeout=30) == 0
            assert _gone_within(pids, 5) == []
        finally:
            _kill_survivors(pids)


class Raises(PyDataset):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        raise ValueError(f"line {sys._getframe().f_lineno}")


def test_worker_traceback_shows_the_users_file_and_line():
    # a class defined in a function travels by value (cloudpickle), as classes of a script do
    class Local(PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            raise ValueError(f"line {sys._getframe().f_lineno}")

    for cls in (Local, Raises):
        with pytest.raises(ValueError, match="line") as info:
            list(cls(workers=1, use_multiprocessing=True))
        line = str(info.value).split()[1]
        assert f'File "{__file__}", line {line}, in __getitem__' in str(info.value.__cause__)
        del info
    assert multiprocessing.active_children() == []


class Stop(Exception):
    pass


def _resources():
    return (
        len(os.listdir("/proc/self/fd")),
        threading.active_count(),
        len(multiprocessing.active_children()),
    )


def _close_early(ds, how):
    """One epoch of ``ds`` closed early after a batch or two: by break, islice or an exception."""
    if how == 0:
        for batch in ds:
            if batch[0] == 1:
                break
    elif how == 1:
        assert len(list(itertools.islice(ds, 2))) == 2
    else:
        try:
            for _ in ds:
                raise Stop
        except Stop:
            pass


@pytest.mark.timeout(240)
@pytest.mark.parametrize("use_multiprocessing", [False, True], ids=["threads", "processes"])
def test_early_closed_epochs_leave_nothing_behind(use_multiprocessing):
    ds = Marked(50, workers=2, use_multiprocessing=use_multiprocessing, max_queue_size=3)
    pids = {int(b[1]) for b in itertools.islice(ds, 4)}  # the workers start (and are kept)
    before = _resources()
    for epoch in range(200):
        _close_early(ds, epoch % 3)
    assert _resources() == before  # fds, threads, child processes
    assert {int(b[1]) for b in ds} == pids  # the same workers served every epoch
    del ds
    gc.collect()
    assert multiprocessing.active_children() == []


class H5Batches(PyDataset):
    def __init__(self, matrix, **kwargs):
        super().__init__(**kwargs)
        self.matrix = matrix

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return self.matrix[index * 5 : (index + 1) * 5]


@pytest.mark.timeout(90)
def test_a_worker_refuses_an_hdf5_file_replaced_between_epochs(tmp_path):
    import h5py

    from jkutils.data.sources import HDF5Matrix

    path = str(tmp_path / "rows.h5")
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(10.0)
    ds = H5Batches(HDF5Matrix(path, "x"), workers=1, use_multiprocessing=True)
    np.testing.assert_array_equal(np.concatenate(list(ds)), np.arange(10.0))
    with h5py.File(path + ".new", "w") as f:
        f["x"] = np.arange(7.0) + 100
    os.replace(path + ".new", path)
    with pytest.raises(RuntimeError, match="replaced or modified") as info:
        list(ds)
    assert any("batch 0" in note and "worker process" in note for note in info.value.__notes__)
