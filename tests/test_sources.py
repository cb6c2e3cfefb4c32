"""ArraySource and HDF5Matrix against NumPy references on real HDF5 files, in grain pipelines
and in grain.DataLoader worker processes."""

import os
import pickle
import threading

import grain
import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from jkutils.data.sources import ArraySource, HDF5Matrix

ROWS = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)


@pytest.fixture
def h5_path(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=ROWS, chunks=(4, 3))
        f["group/labels"] = np.arange(40, dtype=np.int32)
        f["scalar"] = 3.0
    return str(path)


# -- ArraySource --------------------------------------------------------------------------------


def test_array_source_rows_and_batches():
    tree = {"x": ROWS, "y": (np.arange(40), jnp.arange(40) * 2)}
    src = ArraySource(tree)
    assert len(src) == 40
    row = src[5]
    np.testing.assert_array_equal(row["x"], ROWS[5])
    assert int(row["y"][0]) == 5 and int(row["y"][1]) == 10
    assert isinstance(row["y"][1], np.generic | np.ndarray)  # JAX leaves served as NumPy
    np.testing.assert_array_equal(src[-1]["x"], ROWS[-1])
    batch = src._getitems([7, 2, 7])
    np.testing.assert_array_equal(batch["x"], ROWS[[7, 2, 7]])
    np.testing.assert_array_equal(batch["y"][1], [14, 4, 14])
    np.testing.assert_array_equal(src[np.array([1, 0])]["y"][0], [1, 0])
    np.testing.assert_array_equal(src[10:4:-2]["x"], ROWS[10:4:-2])
    assert "ArraySource(len=40" in repr(src)


def test_array_source_errors():
    src = ArraySource(ROWS)
    with pytest.raises(IndexError, match="40"):
        src[40]  # noqa: B018
    with pytest.raises(IndexError):
        src._getitems([0, -41])
    with pytest.raises(TypeError, match="integer"):
        src[1.5]  # noqa: B018
    with pytest.raises(TypeError, match="integers"):
        src._getitems([0.5])
    with pytest.raises(TypeError, match="rows only"):
        src[1, 2]  # noqa: B018
    with pytest.raises(ValueError, match=r"same number of rows.*\['a'\] has 3.*\['b'\] has 2"):
        ArraySource({"a": np.zeros(3), "b": np.zeros(2)})
    with pytest.raises(TypeError, match="leaf at"):
        ArraySource({"a": [1, 2]})


def test_array_source_in_a_grain_pipeline():
    src = ArraySource({"x": ROWS, "y": np.arange(40)})
    ds = grain.MapDataset.source(src).shuffle(seed=1).batch(8)
    seen = np.concatenate([batch["y"] for batch in ds])
    assert sorted(seen.tolist()) == list(range(40))
    for batch in ds:
        np.testing.assert_array_equal(batch["x"], ROWS[batch["y"]])
    batched = grain.MapDataset.range(len(src)).batch(16).map(src.__getitem__)
    np.testing.assert_array_equal(batched[2]["x"], ROWS[32:40])


def test_array_source_pickles_and_feeds_a_dataloader():
    src = pickle.loads(pickle.dumps(ArraySource({"x": ROWS, "y": np.arange(40)})))
    sampler = grain.samplers.IndexSampler(40, shuffle=True, seed=3, num_epochs=1)
    loader = grain.DataLoader(
        data_source=src, sampler=sampler, operations=[grain.transforms.Batch(10)], worker_count=0
    )
    batches = list(loader)
    seen = np.concatenate([b["y"] for b in batches])
    assert sorted(seen.tolist()) == list(range(40))
    for batch in batches:
        np.testing.assert_array_equal(batch["x"], ROWS[batch["y"]])


# -- HDF5Matrix: indexing against NumPy on the window ------------------------------------------


def _window(start, end):
    return ROWS[start:end]


KEYS = [
    0,
    5,
    -1,
    -9,
    np.int64(3),
    slice(None),
    slice(2, 7),
    slice(None, None, 3),
    slice(7, 1, -2),
    slice(None, None, -1),
    slice(-3, None),
    slice(5, 5),
    slice(100, 200),
    [8, 0, 3, 3, -1],
    np.array([4, 4, 4]),
    np.array([], dtype=np.int64),
    np.arange(9)[::-1],
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_indexing_matches_numpy_on_the_window(h5_path, key):
    with HDF5Matrix(h5_path, "x", start=10, end=19) as m:
        np.testing.assert_array_equal(m[key], _window(10, 19)[key])
        assert m[key].dtype == np.float32


class _RecordingDataset:
    """Wraps an h5py dataset and records every key it is read with."""

    def __init__(self, data):
        self.data, self.keys = data, []

    def __getitem__(self, key):
        self.keys.append(key)
        return self.data[key]


def test_a_batch_is_one_sorted_deduplicated_read(h5_path):
    m = HDF5Matrix(h5_path, "x", start=10, end=30)
    m._data = recorder = _RecordingDataset(m.data)
    batch = m[[12, 3, 12, 7, -1]]
    np.testing.assert_array_equal(batch, ROWS[10:30][[12, 3, 12, 7, -1]])
    assert len(recorder.keys) == 1
    np.testing.assert_array_equal(recorder.keys[0], [13, 17, 22, 29])
    consecutive = m[[4, 2, 3, 2]]  # rows 2..4 of the window: read as one slice
    np.testing.assert_array_equal(consecutive, ROWS[10:30][[4, 2, 3, 2]])
    assert recorder.keys[1] == slice(12, 15)


def test_boolean_mask(h5_path):
    m = HDF5Matrix(h5_path, "x", start=2, end=6)
    mask = np.array([True, False, True, True])
    np.testing.assert_array_equal(m[mask], _window(2, 6)[mask])
    with pytest.raises(IndexError, match=r"\(4,\)"):
        m[np.array([True, False])]  # noqa: B018


@pytest.mark.parametrize("key", [9, -10, [0, 9], np.array([-10]), [100]], ids=repr)
def test_outside_the_window_raises_index_error(h5_path, key):
    m = HDF5Matrix(h5_path, "x", start=10, end=19)
    with pytest.raises(IndexError, match="out of range for 9 rows"):
        m[key]  # noqa: B018


@pytest.mark.parametrize("key", [1.5, "a", (1, 2), [0.5]], ids=repr)
def test_bad_key_types(h5_path, key):
    m = HDF5Matrix(h5_path, "x")
    with pytest.raises(TypeError):
        m[key]  # noqa: B018


def test_array_like_attributes(h5_path):
    m = HDF5Matrix(h5_path, "x", start=5)
    assert len(m) == 35 and m.shape == (35, 3) and m.ndim == 2 and m.size == 105
    assert m.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(m), ROWS[5:])
    np.testing.assert_array_equal(np.stack(list(m)), ROWS[5:])
    assert m.data.shape == (40, 3)
    assert "start=5, end=40" in repr(m)
    labels = HDF5Matrix(h5_path, "group/labels", 0, 0)  # empty window
    assert len(labels) == 0 and labels.shape == (0,) and labels[:].shape == (0,)


def test_normalizer_sees_batches_and_sets_shape_and_dtype(h5_path):
    seen = []

    def first_column_halved(batch):
        seen.append(batch.shape)
        return batch[:, :1].astype(np.float64) / 2

    m = HDF5Matrix(h5_path, "x", start=1, end=5, normalizer=first_column_halved)
    assert m.shape == (4, 1) and m.ndim == 2 and m.dtype == np.float64
    np.testing.assert_array_equal(m[0], ROWS[1, :1] / 2)  # an int key still gets a batch
    np.testing.assert_array_equal(m[[3, 0]], ROWS[[4, 1], :1] / 2)
    np.testing.assert_array_equal(m[::2], ROWS[1:5:2, :1] / 2)
    assert all(len(shape) == 2 for shape in seen)


# -- HDF5Matrix: files, pickling, workers -------------------------------------------------------


def test_close_and_context_manager_close_the_file(h5_path):
    m = HDF5Matrix(h5_path, "x")
    handle = m.data.file
    assert handle.id.valid
    m.close()
    assert not handle.id.valid
    m.close()  # twice is fine
    np.testing.assert_array_equal(m[0], ROWS[0])  # reopens on demand
    with HDF5Matrix(h5_path, "x") as inner:
        handle = inner.data.file
    assert not handle.id.valid


def test_pickle_drops_the_handle_and_reopens(h5_path):
    m = HDF5Matrix(h5_path, "x", start=3, end=9, normalizer=np.negative)
    m[0]
    clone = pickle.loads(pickle.dumps(m))
    assert clone._file is None
    np.testing.assert_array_equal(clone[[5, 0]], -ROWS[[8, 3]])
    clone.close()
    m.close()


def test_reads_from_many_threads(h5_path):
    m = HDF5Matrix(h5_path, "x")
    errors, rng = [], np.random.default_rng(0)
    keys = [rng.integers(0, 40, size=16) for _ in range(64)]

    def read(chunk):
        try:
            for key in chunk:
                np.testing.assert_array_equal(m[key], ROWS[key])
        except Exception as err:  # pragma: no cover - only on failure
            errors.append(err)

    threads = [threading.Thread(target=read, args=(keys[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    m.close()


class _Both:
    """One grain source reading the same row from an HDF5Matrix and an ArraySource."""

    def __init__(self, matrix, array_source):
        self.matrix, self.array_source = matrix, array_source

    def __len__(self):
        return len(self.matrix)

    def __getitem__(self, index):
        return {"h5": self.matrix[index], "array": self.array_source[index]}


def test_both_sources_in_dataloader_worker_processes(h5_path):
    m = HDF5Matrix(h5_path, "x", start=4, end=36)
    m[0]  # an open handle must not stop pickling
    both = _Both(m, ArraySource({"x": ROWS[4:36], "id": np.arange(4, 36)}))
    loader = grain.DataLoader(
        data_source=both,
        sampler=grain.samplers.IndexSampler(len(m), shuffle=True, seed=5, num_epochs=1),
        operations=[grain.transforms.Batch(8)],
        worker_count=2,
    )
    batches = list(loader)
    ids = np.concatenate([b["array"]["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(4, 36))
    for batch in batches:
        np.testing.assert_array_equal(batch["h5"], ROWS[batch["array"]["id"]])
        np.testing.assert_array_equal(batch["array"]["x"], ROWS[batch["array"]["id"]])
    batched = grain.MapDataset.range(len(m)).shuffle(seed=2).batch(8).map(m.__getitem__)
    assert batched[0].shape == (8, 3)
    m.close()


# -- HDF5Matrix: errors --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        HDF5Matrix(missing, "x")


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        HDF5Matrix(str(path), "x")


@pytest.mark.parametrize(
    "name, words",
    [("y", r"'y' does not exist.*\['group/labels', 'scalar', 'x'\]"), ("group", "is a group")],
)
def test_missing_or_wrong_dataset(h5_path, name, words):
    with pytest.raises(ValueError, match=words):
        HDF5Matrix(h5_path, name)


def test_scalar_dataset(h5_path):
    with pytest.raises(ValueError, match="scalar"):
        HDF5Matrix(h5_path, "scalar")


@pytest.mark.parametrize(
    "start, end, error",
    [
        (5, 2, ValueError),
        (0, 41, ValueError),
        (-1, None, ValueError),
        (41, None, ValueError),
        (1.0, None, TypeError),
        (0, "9", TypeError),
    ],
)
def test_bad_windows(h5_path, start, end, error):
    with pytest.raises(error, match="start|end"):
        HDF5Matrix(h5_path, "x", start=start, end=end)


def test_bad_arguments(h5_path):
    with pytest.raises(TypeError, match="normalizer"):
        HDF5Matrix(h5_path, "x", normalizer=3)
    with pytest.raises(TypeError, match="datapath"):
        HDF5Matrix(3, "x")
    with pytest.raises(TypeError, match="dataset"):
        HDF5Matrix(h5_path, 0)


def _open_hdf5_files() -> int:
    return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)


def _failing_normalizer(batch):
    raise ZeroDivisionError("normalizer failed")


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"start": 5, "end": 1_000_000}, ValueError),
        ({"normalizer": _failing_normalizer}, ZeroDivisionError),
    ],
)
def test_hdf5_constructor_error_closes_the_file(h5_path, kwargs, err):
    before = _open_hdf5_files()
    with pytest.raises(err) as caught:
        HDF5Matrix(h5_path, "x", **kwargs)
    assert caught.value is not None  # the exception (and its frames) are still alive here
    assert _open_hdf5_files() == before


# -- HDF5Matrix: a replaced file, a bad normalizer -----------------------------------------------


def _replace(path, rows):
    """Write a new HDF5 file and move it over ``path``, as a re-run preprocessing step would."""
    fresh = f"{path}.new"
    with h5py.File(fresh, "w") as f:
        f.create_dataset("x", data=rows)
    os.replace(fresh, path)


def test_a_pickled_copy_refuses_a_file_replaced_at_the_same_path(h5_path):
    m = HDF5Matrix(h5_path, "x", start=0, end=40)
    copy = pickle.dumps(m)  # what a worker process receives
    _replace(h5_path, ROWS[:25] + 1000)
    np.testing.assert_array_equal(m[[0, 39]], ROWS[[0, 39]])  # the open handle keeps the old file
    clone = pickle.loads(copy)
    with pytest.raises(RuntimeError, match="replaced or modified") as info:
        clone[0:3]
    assert h5_path in str(info.value) and "inode" in str(info.value)
    assert clone._file is None  # nothing was left open
    m.close()
    with pytest.raises(RuntimeError, match="replaced"):  # reopening in this process too
        m[0]


def test_a_file_modified_in_place_is_refused(h5_path):
    m = HDF5Matrix(h5_path, "x")
    m.close()
    with h5py.File(h5_path, "a") as f:  # same inode; a different shape
        del f["x"]
        f.create_dataset("x", data=ROWS[:10])
    with pytest.raises(RuntimeError, match="shape"):
        m[0]
    np.testing.assert_array_equal(HDF5Matrix(h5_path, "x")[9], ROWS[9])  # a new one reads it


@pytest.mark.parametrize(
    "normalizer, error, words",
    [
        (lambda b: None, TypeError, "returned None"),
        (lambda b: b.sum(), ValueError, "one row per row"),
        (lambda b: b[0], ValueError, "one row per row"),
    ],
    ids=["none", "scalar", "first-row"],
)
def test_normalizer_that_loses_rows_is_refused(h5_path, normalizer, words, error):
    with pytest.raises(error, match=f"`normalizer`.*{words}"):
        HDF5Matrix(h5_path, "x", start=2, end=10, normalizer=normalizer)


def test_normalizer_that_changes_the_row_shape_between_reads_is_refused(h5_path):
    m = HDF5Matrix(h5_path, "x", normalizer=lambda b: b if len(b) == 1 else b[:, :2])
    assert m.shape == (40, 3)
    np.testing.assert_array_equal(m[5], ROWS[5])
    with pytest.raises(ValueError, match=r"`normalizer`.*same shape.*\(3,\).*\(2, 2\)"):
        m[0:2]
