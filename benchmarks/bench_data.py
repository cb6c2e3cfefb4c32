"""Data layer: split_dataset, HDF5Matrix batch reads, PyDataset workers, timeseries windows.

Each row puts our time beside Keras (where Keras runs without TensorFlow) and beside the
physical limit measured in the same run:

- split: a keyed, shuffled 80/20 split of 1M rows (8 float32 + an int label) against a bare
  NumPy permutation plus takes of the same arrays (target: at most 2x). Keras 3's
  ``split_dataset`` needs TensorFlow; we time only its first step, turning the arrays into a
  Python list of rows, which is already far slower than the whole split.
- HDF5: 20 random batches of 256 rows from a chunked 200k x 64 float32 dataset, unsorted, against
  h5py's own sorted fancy read of the same rows (target: at most 1.5x) and Keras 2's per-row
  reads; and 20 batches of consecutive rows asked for as index lists (what batching an index
  range gives) against h5py slice reads and the fancy read Keras 2 would do.
- PyDataset: an epoch of CPU-bound batches with 2 worker processes (steady state, processes
  reused) against Keras 3's PyDataset with 2 processes and against a perfect 2x speed-up of the
  serial epoch; an epoch of I/O-bound (sleeping) batches with 8 threads against Keras 3's
  threads and the sleep time divided by 8; and an epoch closed after 2 batches (what a
  ``break`` costs) against Keras 3 and the 2 batches loaded in this thread.
- timeseries: every batch of windows over 20k steps against Keras 3 (``format="grain"``) and one
  NumPy gather of all windows.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import h5py  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._harness import Row, best_of, print_table  # noqa: E402
from jkutils.data.py_dataset import PyDataset  # noqa: E402
from jkutils.data.sources import HDF5Matrix  # noqa: E402
from jkutils.data.split import split_dataset  # noqa: E402
from jkutils.data.timeseries import timeseries_dataset_from_array  # noqa: E402

AREA = "data"


def _best_interleaved(*fns, repeat: int = 7) -> list[float]:
    """Best time of each function, timing them in turn on every round so that load from other
    processes hits all of them alike (the ratios, not the absolute times, are the point)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for slot, fn in enumerate(fns):
            best[slot] = min(best[slot], best_of(fn, repeat=1))
    return best


# -- split ------------------------------------------------------------------------------------


def _split_rows(quick: bool) -> list[Row]:
    from keras.src.utils.dataset_utils import _convert_dataset_to_list

    n = 200_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8), dtype=np.float32)
    y = rng.integers(0, 10, n)
    key = jax.random.key(0)
    left = int(0.8 * n)

    def numpy_limit():
        order = np.random.default_rng(1).permutation(n)
        head, tail = order[:left], order[left:]
        return (np.take(x, head, 0), np.take(y, head)), (np.take(x, tail, 0), np.take(y, tail))

    split_dataset((x, y), 0.8, shuffle=True, key=key)  # compile the key-to-bits step once
    ours, limit = _best_interleaved(
        lambda: split_dataset((x, y), 0.8, shuffle=True, key=key), numpy_limit
    )
    keras_list = best_of(lambda: _convert_dataset_to_list((x, y), tuple, False), repeat=1)
    stratified = best_of(
        lambda: split_dataset((x, y), 0.8, shuffle=True, key=key, stratify=y), repeat=3
    )
    label = f"shuffled split, {n // 1000}k rows"
    return [
        Row(AREA, label, ours, "Keras 3 (list step only; needs TF)", keras_list,
            "NumPy permutation + takes", limit, target="<= 2x limit"),
        Row(AREA, label + ", stratified", stratified, "", None,
            "NumPy permutation + takes", limit),
    ]  # fmt: skip


# -- HDF5 -------------------------------------------------------------------------------------


def _hdf5_rows(quick: bool, folder: str) -> list[Row]:
    n, width, batch, batches = (50_000 if quick else 200_000), 64, 256, 20
    path = os.path.join(folder, "bench.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "x", data=np.random.default_rng(0).random((n, width), np.float32), chunks=(256, width)
        )
    rng = np.random.default_rng(1)
    keys = [rng.choice(n, batch, replace=False) for _ in range(batches)]
    sorted_keys = [np.sort(k) for k in keys]
    with h5py.File(path, "r") as f, HDF5Matrix(path, "x") as matrix:
        data = f["x"]

        def ours():
            return [matrix[k] for k in keys]

        def h5py_sorted():
            return [data[k] for k in sorted_keys]

        def keras2_per_row():
            return [np.stack([data[int(i)] for i in k]) for k in keys]

        for got, k in zip(ours(), keys):
            np.testing.assert_array_equal(got, data[np.sort(k)][np.argsort(np.argsort(k))])
        t_ours, t_limit = _best_interleaved(ours, h5py_sorted)
        starts = rng.integers(0, n - batch, batches)
        runs = [np.arange(first, first + batch) for first in starts]
        t_runs, t_runs_fancy, t_runs_slice = _best_interleaved(
            lambda: [matrix[r] for r in runs],
            lambda: [data[r] for r in runs],
            lambda: [data[first : first + batch] for first in starts],
        )
        t_keras = best_of(keras2_per_row, repeat=1 if not quick else 2)
    label = f"20 random batches x {batch} rows, {n // 1000}k x {width} chunked"
    return [
        Row(AREA, label, t_ours, "Keras 2 per-row reads", t_keras, "h5py sorted fancy read",
            t_limit, target="<= 1.5x limit"),
        Row(AREA, f"20 batches of {batch} consecutive rows, as index lists", t_runs,
            "Keras 2 (h5py fancy read)", t_runs_fancy, "h5py slice read", t_runs_slice),
    ]  # fmt: skip


# -- PyDataset workers ------------------------------------------------------------------------


def _cpu_work(index: int, size: int) -> np.ndarray:
    """A CPU-bound batch: a pure-Python loop of ``size`` steps."""
    total = 0
    for i in range(size):
        total += (i * index) % 7
    return np.array([index, total])


def _io_work(index: int, delay: float) -> np.ndarray:
    """An I/O-bound batch: waiting ``delay`` seconds."""
    time.sleep(delay)
    return np.array([index])


class _WorkBody:
    """``n`` batches, batch ``i`` being ``load(i, amount)``; mixed into both PyDataset classes."""

    def __init__(self, n: int, load, amount, **kwargs):
        super().__init__(**kwargs)
        self.n, self.load, self.amount = n, load, amount

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> np.ndarray:
        return self.load(index, self.amount)


class Work(_WorkBody, PyDataset):
    pass


def _keras_work_class():
    """The same dataset on Keras 3's PyDataset."""
    import keras

    return type("KerasWork", (_WorkBody, keras.utils.PyDataset), {})


def _keras_epoch(ds) -> int:
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(ds, shuffle=False)
    adapter.on_epoch_begin()
    count = sum(1 for _ in adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    return count


def _epoch(ds) -> int:
    return sum(1 for _ in ds)


def _head(ds, count: int) -> int:
    """An epoch of ``ds`` closed early, after ``count`` batches."""
    return sum(1 for _ in itertools.islice(ds, count))


def _keras_head(ds, count: int) -> int:
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(ds, shuffle=False)
    adapter.on_epoch_begin()
    taken = sum(1 for _ in itertools.islice(adapter.get_numpy_iterator(), count))
    adapter.on_epoch_end()
    return taken


def _early_close_row(keras_work) -> Row:
    """Epochs closed after 2 of 64 small CPU-bound batches, 2 processes: what each epoch costs
    beyond its batches (our workers are kept; Keras starts a pool per epoch)."""
    n, size, taken = 64, 20_000, 2
    procs = Work(n, _cpu_work, size, workers=2, use_multiprocessing=True, max_queue_size=4)
    _head(procs, taken)  # start the processes once
    keras_procs = keras_work(n, _cpu_work, size, workers=2, use_multiprocessing=True)
    ours, keras, limit = _best_interleaved(
        lambda: _head(procs, taken),
        lambda: _keras_head(keras_procs, taken),
        lambda: _head(Work(n, _cpu_work, size, workers=0), taken),
        repeat=5,
    )
    return Row(AREA, f"epoch closed after {taken} of {n} batches, 2 processes", ours,
               "Keras 3 PyDataset, 2 processes", keras, f"{taken} batches in this thread",
               limit)  # fmt: skip


def _worker_rows(quick: bool) -> list[Row]:
    keras_work = _keras_work_class()
    n, size = (8, 300_000) if quick else (16, 600_000)
    procs = Work(n, _cpu_work, size, workers=2, use_multiprocessing=True)
    _epoch(procs)  # start the processes once; later epochs reuse them (steady state)
    keras_procs = keras_work(n, _cpu_work, size, workers=2, use_multiprocessing=True)
    serial, ours, keras = _best_interleaved(
        lambda: _epoch(Work(n, _cpu_work, size, workers=0)),
        lambda: _epoch(procs),
        lambda: _keras_epoch(keras_procs),
        repeat=3,
    )
    count, delay = 16, 0.02
    threads, keras_threads = _best_interleaved(
        lambda: _epoch(Work(count, _io_work, delay, workers=8)),
        lambda: _keras_epoch(keras_work(count, _io_work, delay, workers=8)),
        repeat=3,
    )
    return [
        Row(AREA, f"CPU-bound epoch, {n} batches, 2 processes (serial {serial:.2f} s)", ours,
            "Keras 3 PyDataset, 2 processes", keras, "serial / 2", serial / 2,
            target=f"speed-up {serial / ours:.2f}x of 2"),
        Row(AREA, f"sleeping epoch, {count} x {delay * 1000:.0f} ms, 8 threads", threads,
            "Keras 3 PyDataset, 8 threads", keras_threads, "total sleep / 8",
            count * delay / 8),
        _early_close_row(keras_work),
    ]  # fmt: skip


# -- timeseries -------------------------------------------------------------------------------


def _timeseries_rows(quick: bool) -> list[Row]:
    import keras

    steps, features, length, batch = (5_000 if quick else 20_000), 8, 64, 256
    data = np.random.default_rng(0).random((steps, features), np.float32)
    targets = np.arange(steps)

    def ours():
        return [b for b in timeseries_dataset_from_array(data, targets, length, batch_size=batch)]

    def theirs():
        ds = keras.utils.timeseries_dataset_from_array(
            data, targets, length, batch_size=batch, format="grain"
        )
        return list(ds)

    def limit():
        starts = np.arange(steps - length + 1)
        return data[starts[:, None] + np.arange(length)], targets[starts]

    t_ours, t_limit = _best_interleaved(ours, limit, repeat=5)
    return [
        Row(AREA, f"all windows, {steps // 1000}k steps, length {length}, batch {batch}",
            t_ours, "Keras 3 format='grain'", best_of(theirs, repeat=1),
            "one NumPy gather", t_limit),
    ]  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    """Benchmark rows for the data layer (``quick`` shrinks every size)."""
    with tempfile.TemporaryDirectory() as folder:
        hdf5 = _hdf5_rows(quick, folder)
    return _split_rows(quick) + hdf5 + _worker_rows(quick) + _timeseries_rows(quick)


if __name__ == "__main__":
    start = time.perf_counter()
    print_table(rows(quick="--quick" in sys.argv))
    print(f"(ran in {time.perf_counter() - start:.1f} s)")
