"""``DirectoryDataset.with_workers``: one epoch read by real worker processes that import neither
JAX, grain nor the main script; the same elements as reading in this process; errors, killed
workers, early stops, resumed states and pools kept between iterators. Every test has a
timeout, so a hang fails instead of blocking the run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import grain
import jax
import numpy as np
import pytest
from _probe_loader import ProbeLoader
from _processes import gone_within, running
from PIL import Image
from test_directory import _assert_same_batches

from jkutils.data import image_dataset_from_directory, text_dataset_from_directory
from jkutils.data.directory import DirectoryDataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")

pytestmark = pytest.mark.timeout(120)


def _probe(count, batch_size=2, **loader_kwargs):
    """A dataset of ``count`` probe files named ``0.x``, ``1.x``, ... (they need not exist)."""
    paths = [f"{i}.x" for i in range(count)]
    return DirectoryDataset(paths, None, ProbeLoader(**loader_kwargs), batch_size, None, None)


def _wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three classes of PNG and JPEG images of different sizes and modes."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for label, mode in enumerate(["RGB", "L", "RGBA"]):
        folder = root / f"class_{label}"
        folder.mkdir()
        for i in range(7):
            shape = (20 + i, 30 - i) + (() if mode == "L" else (len(mode),))
            image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            image.save(folder / f"{i}.png") if i % 2 else image.convert("RGB").save(
                folder / f"{i}.jpg", quality=90
            )
    return root


def _assert_same_elements(ours, expected):
    _assert_same_batches(ours, expected, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 4},
        {"batch_size": None, "label_mode": "categorical"},
        {"batch_size": 5, "label_mode": None, "color_mode": "grayscale", "dtype": "float32"},
    ],
)
def test_images_equal_the_in_process_elements_in_order(photos, kwargs):
    ds = image_dataset_from_directory(
        photos, key=jax.random.key(2), image_size=(9, 11), verbose=False, **kwargs
    )
    _assert_same_elements(list(ds.with_workers(2)), list(ds))


def test_each_epoch_and_the_split_read_in_workers_as_in_process(photos):
    train, val = image_dataset_from_directory(
        photos, key=jax.random.key(5), validation_split=0.3, subset="both",
        image_size=(8, 8), batch_size=3, verbose=False,
    )  # fmt: skip
    for epoch in range(2):
        in_workers = list(train.for_epoch(epoch).with_workers(2))
        _assert_same_elements(in_workers, list(train.for_epoch(epoch)))
    _assert_same_elements(list(val.with_workers(3)), list(val))


def test_text_elements_equal_the_in_process_ones(tmp_path):
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        for i in range(5):
            (tmp_path / label / f"{i}.txt").write_text(f"{label} review {i} " * (i + 1))
    ds = text_dataset_from_directory(tmp_path, batch_size=3, key=jax.random.key(0), verbose=False)
    ours = list(ds.with_workers(2))
    expected = list(ds)
    assert [texts.tolist() for texts, _ in ours] == [texts.tolist() for texts, _ in expected]
    assert [labels.tolist() for _, labels in ours] == [labels.tolist() for _, labels in expected]


_SCRIPT = """
import json, os, sys
import jax  # a worker that ran this script would import JAX (and start workers of its own)
sys.path.insert(0, {tests!r})
from _probe_loader import ProbeLoader
from _processes import gone_within, running
from jkutils.data.directory import DirectoryDataset

ds = DirectoryDataset([f"{{i}}.x" for i in range(8)], None, ProbeLoader(), 2, None, None)
rows = [row.tolist() for batch in ds.with_workers(2) for row in batch]
print(json.dumps({{"me": os.getpid(), "rows": rows}}))
"""


def test_workers_import_neither_jax_grain_nor_an_unguarded_script(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(tests=TESTS)))
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = np.array(result["rows"])
    assert rows[:, 4].tolist() == list(range(8))  # every file once, in order
    pids = set(rows[:, 0].tolist())
    assert len(pids) == 2 and result["me"] not in pids
    assert not rows[:, 1:4].any(), "a worker imported jax, grain or the script"


def test_workers_are_kept_for_the_next_iterator_and_not_shared_by_two_at_once():
    ds = _probe(8)
    first = np.concatenate(list(ds.with_workers(2)))
    again = np.concatenate(list(ds.with_workers(2)))
    assert set(first[:, 0]) == set(again[:, 0])  # the same processes read the next epoch
    a, b = iter(ds.with_workers(2)), iter(ds.with_workers(2))
    rows_a, rows_b = [next(a)], [next(b)]  # two live iterators, interleaved
    rows_a += list(a)
    rows_b += list(b)
    rows_a, rows_b = np.concatenate(rows_a), np.concatenate(rows_b)
    assert rows_a[:, 4].tolist() == rows_b[:, 4].tolist() == list(range(8))
    assert not set(rows_a[:, 0]) & set(rows_b[:, 0])


def test_an_epoch_left_early_does_not_leak_into_the_next():
    ds = _probe(40, batch_size=1)
    iterator = iter(ds.with_workers(2, per_worker_buffer_size=4))
    assert int(next(iterator)[0, 4]) == 0
    del iterator  # left with eight elements asked for
    numbers = [int(batch[0, 4]) for batch in ds.with_workers(2)]
    assert numbers == list(range(40))


def test_state_resumes_at_the_next_element_and_bad_states_are_refused():
    ds = _probe(10, batch_size=1)
    iterator = iter(ds.with_workers(2))
    for _ in range(3):
        next(iterator)
    state = iterator.get_state()
    assert state == {"next_index": 3}
    rest = [int(batch[0, 4]) for batch in iterator]
    resumed = iter(ds.with_workers(2))
    resumed.set_state(state)
    assert [int(batch[0, 4]) for batch in resumed] == rest == list(range(3, 10))
    with pytest.raises(ValueError, match="next_index"):
        resumed.set_state({"next_index": 11})


def test_an_unreadable_file_raises_at_its_place_naming_it():
    ds = _probe(6, fail_on={"3.x"})
    iterator = iter(ds.with_workers(2))
    assert [int(row[4]) for row in next(iterator)] == [0, 1]
    with pytest.raises(ValueError, match=r"'3\.x'") as info:
        next(iterator)
    assert "batch 1 of DirectoryDataset in a worker process" in "".join(info.value.__notes__)
    with pytest.raises(StopIteration):
        next(iterator)  # the epoch ended with the error
    assert len(list(_probe(6).with_workers(2))) == 3  # the workers are still usable


def test_a_killed_worker_raises_naming_it_and_the_next_epoch_works(tmp_path):
    marker = str(tmp_path / "stalled")
    ds = _probe(6, stall_on={"2.x"}, marker=marker)
    iterator = iter(ds.with_workers(2))
    next(iterator)  # batch 0 is worker 0's; batch 1 (files 2 and 3) stalls worker 1
    _wait_for(marker)
    with open(marker) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    with pytest.raises(RuntimeError, match="killed by signal SIGKILL") as info:
        next(iterator)
    assert "while loading batch 1" in str(info.value)
    numbers = [int(row[4]) for batch in _probe(6).with_workers(2) for row in batch]
    assert numbers == list(range(6))


def test_results_go_through_grain_transformations(photos):
    ds = image_dataset_from_directory(photos, image_size=(6, 6), batch_size=4, verbose=False,
                                      shuffle=False)  # fmt: skip
    means = list(ds.with_workers(2).map(lambda batch: batch[0].mean(axis=(1, 2, 3))))
    expected = [images.mean(axis=(1, 2, 3)) for images, _ in ds]
    _assert_same_elements(means, expected)
    assert isinstance(ds.with_workers(2), grain.IterDataset)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_workers": 0}, "num_workers"),
        ({"num_workers": 1.5}, "num_workers"),
        ({"per_worker_buffer_size": 0}, "per_worker_buffer_size"),
    ],
)
def test_bad_settings_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _probe(4).with_workers(**kwargs)


_PARENT_KILLED = """
import sys, time
sys.path.insert(0, {tests!r})
from _probe_loader import ProbeLoader
from _processes import gone_within, running
from jkutils.data.directory import DirectoryDataset

ds = DirectoryDataset([f"{{i}}.x" for i in range(8)], None, ProbeLoader(), 2, None, None)
iterator = iter(ds.with_workers(2))
print(" ".join(str(int(row[0])) for row in next(iterator)) + " " + str(int(next(iterator)[0, 0])),
      flush=True)
time.sleep(600)
"""


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(_PARENT_KILLED.format(tests=TESTS)))
    env = dict(os.environ, PYTHONPATH=REPO)
    with subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            pids = {int(pid) for pid in proc.stdout.readline().split()}
            assert len(pids) == 2
            proc.kill()
            proc.wait()
            assert not gone_within(pids, 30)
        finally:
            proc.kill()


_INTERRUPTED = """
import sys
sys.path.insert(0, {tests!r})
from _probe_loader import ProbeLoader
from jkutils.data.directory import DirectoryDataset

paths = [f"{{i}}.x" for i in range(6)]
stalling = DirectoryDataset(paths, None, ProbeLoader({{"2.x"}}, marker=sys.argv[1]), 2, None, None)
iterator = iter(stalling.with_workers(2))
print(int(next(iterator)[0, 0]), flush=True)
try:
    next(iterator)  # worker 1 stalls in this batch; Ctrl-C arrives while we wait
except KeyboardInterrupt:
    print("interrupted", flush=True)
fine = DirectoryDataset(paths, None, ProbeLoader(), 2, None, None)
print(sum(len(batch) for batch in fine.with_workers(2)), flush=True)
sys.stdin.readline()  # the test looks at the processes before this script ends
"""


def test_ctrl_c_while_waiting_stops_those_workers_and_the_next_epoch_works(tmp_path):
    script, marker = tmp_path / "interrupted.py", tmp_path / "stalled"
    script.write_text(textwrap.dedent(_INTERRUPTED.format(tests=TESTS)))
    env = dict(os.environ, PYTHONPATH=REPO)
    with subprocess.Popen(
        [sys.executable, str(script), str(marker)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            first = int(proc.stdout.readline())
            _wait_for(str(marker))
            stalled = int(marker.read_text())
            proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline().strip() == "interrupted"
            assert proc.stdout.readline().strip() == "6"
            assert not gone_within([first, stalled], 10)  # stopped while the script runs on
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()


def test_stop_idle_workers_stops_kept_workers_but_not_ones_in_use():
    from jkutils.data import stop_idle_workers

    kept = {int(row[0]) for batch in _probe(4).with_workers(2) for row in batch}
    busy = iter(_probe(6).with_workers(3))
    in_use = {int(row[0]) for row in next(busy)}
    assert stop_idle_workers() >= 2
    assert not gone_within(kept, 10)
    assert all(running(pid) for pid in in_use)
    assert [int(row[4]) for batch in busy for row in batch] == [2, 3, 4, 5]


def _numbers(element):
    return [int(row[4]) for row in np.atleast_2d(element)]


@pytest.mark.parametrize("sl", [slice(2, 5), slice(1, None, 2), slice(None, None, -1), slice(4, 4)])
def test_a_slice_keeps_grains_indexing_over_epochs_and_stays_a_directory_dataset(sl):
    from jkutils.data.directory import FileOrder

    paths = [f"{i}.x" for i in range(13)]
    order = FileOrder.from_key(jax.random.key(4))
    ds = DirectoryDataset(paths, None, ProbeLoader(), 3, order, None)  # 5 batches an epoch
    sliced = ds[sl]
    positions = range(len(ds))[sl]
    assert isinstance(sliced, DirectoryDataset) and len(sliced) == len(positions)
    for i in range(2 * len(positions)):  # grain: element i is parent start + off*step + epoch*len
        epoch, offset = divmod(i, len(positions))
        assert _numbers(sliced[i]) == _numbers(ds[positions[offset] + epoch * len(ds)])
    files = [f"{n}.x" for element in sliced for n in _numbers(element)]
    assert sliced.file_paths == files
    in_workers = [n for element in sliced.for_epoch(1).with_workers(2) for n in _numbers(element)]
    assert in_workers == [n for element in sliced.for_epoch(1) for n in _numbers(element)]


def test_process_shards_read_in_workers_cover_every_batch_once(photos):
    from jkutils.data import process_shard

    ds = image_dataset_from_directory(
        photos, key=jax.random.key(8), image_size=(5, 5), batch_size=4, verbose=False
    )
    shards = [process_shard(ds, process_index=i, process_count=2) for i in range(2)]
    assert all(isinstance(shard, DirectoryDataset) for shard in shards)
    assert sum(len(shard.file_paths) for shard in shards) == len(ds.file_paths)
    assert shards[0].file_paths + shards[1].file_paths == ds.file_paths
    _assert_same_elements([batch for shard in shards for batch in shard.with_workers(2)], list(ds))
