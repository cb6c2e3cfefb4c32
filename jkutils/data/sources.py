"""Random-access data sources for grain: in-memory array pytrees and windows of HDF5 datasets.

Both classes follow grain's ``RandomAccessDataSource`` protocol (``__len__``, thread-safe
``__getitem__``), pickle cleanly for ``grain.DataLoader(worker_count>0)``, and also read whole
batches of rows at once (an index array, a slice or ``_getitems``). grain itself reads one row per
``__getitem__`` call; to read a batch in one go, batch the *indices* and map the source over them:

    grain.MapDataset.range(len(src)).shuffle(seed=0).batch(256).map(src.__getitem__)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jkutils.data import _rows
from jkutils.data._grain import prepare_for_grain

if TYPE_CHECKING:
    import h5py

__all__ = ["ArraySource", "HDF5Matrix"]


class ArraySource:
    """A grain random-access source over a pytree of equal-length arrays.

    Rows come back as NumPy (JAX leaves are copied to the host once, at construction), so the
    source pickles to grain worker processes and never touches a device. Creating one readies a
    plain script for grain's worker processes: absl flags are marked parsed if nobody has parsed
    them, and grain's shared memory is freed at exit (no resource_tracker warnings).

    Args:
        tree: an array, or a tuple / list / dict (nested as you like) of NumPy or JAX arrays that
            share their first dimension.

    Raises:
        TypeError: a leaf is not an array.
        ValueError: the arrays have different numbers of rows, or a leaf is 0-d.

    Example:
        >>> src = ArraySource({"x": np.zeros((100, 8)), "y": np.arange(100)})
        >>> len(src), src[3]["y"], src[[5, 1]]["x"].shape
        (100, np.int64(3), (2, 8))
        >>> ds = grain.MapDataset.source(src).shuffle(seed=0).batch(32)
    """

    def __init__(self, tree: Any):
        prepare_for_grain()
        self._length = _rows.common_length(tree, "tree")
        self._tree = _rows.to_numpy_tree(tree)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        """One row (int index) as a pytree of rows, or a batch (slice, int array or boolean mask)
        as a pytree of arrays with a leading batch axis; NumPy semantics, negatives from the end."""
        kind = _rows.key_kind(index, "ArraySource")
        if kind == "slice":
            return _rows.take_rows(self._tree, index)
        if kind == "row":
            row = _rows.checked_row(index, self._length)
            return jax.tree.map(lambda leaf: leaf[row], self._tree)
        return self._getitems(index)

    def _getitems(self, indices: Sequence[int]) -> Any:
        """The rows at ``indices`` as one batched pytree (one vectorised take per leaf)."""
        return _rows.take_rows(self._tree, _rows.checked_rows(indices, self._length))

    def __repr__(self) -> str:
        leaves = jax.tree_util.tree_flatten_with_path(self._tree)[0]
        shapes = ", ".join(
            f"{jax.tree_util.keystr(path) or 'array'}: {leaf.dtype}{list(leaf.shape[1:])}"
            for path, leaf in leaves
        )
        return f"ArraySource(len={self._length}, rows={{{shapes}}})"


class HDF5Matrix:
    """Rows ``[start, end)`` of an HDF5 dataset, as an array-like and a grain random-access source.

    Indexing follows NumPy relative to the window: ints (negative counts from ``end``), slices
    (steps honoured, negative too), lists / arrays of ints in any order with repeats, and boolean
    masks; anything outside the window raises ``IndexError``. A batch of rows is read with one
    sorted, de-duplicated h5py read and put back in the order asked for. Like ``ArraySource``,
    creating one readies a plain script for grain's worker processes.

    ``normalizer`` always receives a batch (rows on the leading axis), also when one row is read,
    so one function serves both. It must return one row per row it is given, with the same row
    shape on every read; ``shape`` and ``dtype`` describe what it returns.

    The file is opened lazily, once per process: pickling drops the handle, so the object works in
    ``grain.DataLoader(worker_count>0)`` and in process workers. ``close()`` (or leaving a
    ``with`` block) closes the file; a later read opens it again. Every opening checks that the
    file is still the one first opened (device, inode, size, modification time) and that the
    dataset keeps its shape and dtype, so a file replaced at the same path is never read through
    an old window.

    Args:
        datapath: path of the HDF5 file (opened read-only).
        dataset: name of the dataset inside the file, e.g. ``"x"`` or ``"group/x"``.
        start: first row of the window.
        end: one past the last row of the window; ``None`` means the dataset's length.
        normalizer: optional function applied to every batch of rows read.

    Raises:
        FileNotFoundError: ``datapath`` does not exist.
        ValueError: the file is not HDF5, ``dataset`` is missing or not an array dataset, the
            window is not ``0 <= start <= end <= len(dataset)``, or ``normalizer`` does not
            return one row per row it is given.
        TypeError: ``start``/``end`` are not ints, ``normalizer`` is not callable, or it
            returns None.
        RuntimeError: on a read, the file was replaced or modified since it was first opened.

    Example:
        >>> with HDF5Matrix("train.h5", "x", start=0, end=50_000) as x:
        ...     batch = x[[17, 3, 17, 40_000]]     # any order, repeats allowed
        ...     first, last = x[0], x[-1]
    """

    def __init__(
        self,
        datapath: str | os.PathLike,
        dataset: str,
        start: int = 0,
        end: int | None = None,
        normalizer: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        if not isinstance(datapath, str | os.PathLike):
            raise TypeError(f"`datapath` must be a path. Received: datapath={datapath!r}")
        if not isinstance(dataset, str):
            raise TypeError(f"`dataset` must be a string. Received: dataset={dataset!r}")
        if normalizer is not None and not callable(normalizer):
            raise TypeError(f"`normalizer` must be callable. Received: normalizer={normalizer!r}")
        prepare_for_grain()
        self.datapath = os.fspath(datapath)
        self.dataset = dataset
        self.normalizer = normalizer
        self._lock = threading.Lock()
        self._file: h5py.File | None = None
        self._data: h5py.Dataset | None = None
        try:
            self._describe(start, end)
        except BaseException:
            self.close()  # a rejected window or a failing normalizer must not keep the file open
            raise

    def _describe(self, start: Any, end: Any) -> None:
        """Check the window and probe the normalizer on its first row for ``shape``/``dtype``."""
        data = self._open()
        self.start, self.end = _checked_window(start, end, data.shape[0], self.dataset)
        probe = self._normalized(data[self.start : min(self.start + 1, self.end)])
        self._row_shape = tuple(probe.shape[1:])
        self._dtype = probe.dtype

    # -- file handling -------------------------------------------------------------------------

    def _open(self) -> h5py.Dataset:
        """The h5py dataset, opening the file first if this process has not yet."""
        data = self._data
        if data is not None:
            return data
        with self._lock:
            if self._data is None:
                file = _open_file(self.datapath)
                try:
                    data = _dataset_in(file, self.dataset, self.datapath)
                    self._identity = self._checked_identity(_identity(file, data))
                except BaseException:
                    file.close()
                    raise
                self._file, self._data = file, data
            return self._data

    def _checked_identity(self, found: dict[str, Any]) -> dict[str, Any]:
        """``found``, the identity of the file just opened, if it matches the one recorded when
        this object was made (in this process or before pickling)."""
        recorded = self.__dict__.get("_identity")
        if recorded is None or found == recorded:
            return found
        changes = ", ".join(
            f"{name} {recorded[name]!r} -> {found[name]!r}"
            for name in recorded
            if recorded[name] != found[name]
        )
        raise RuntimeError(
            f"HDF5Matrix: the file at datapath={self.datapath!r} is not the one this HDF5Matrix "
            f"was made from ({changes}): it was replaced or modified since, so the window "
            f"[{self.start}, {self.end}) of dataset {self.dataset!r} may no longer hold the same "
            "rows. Make a new HDF5Matrix to read the new file."
        )

    def close(self) -> None:
        """Close the file. Safe to call twice; a later read reopens it."""
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self._data = None, None

    def __enter__(self) -> HDF5Matrix:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_lock", "_file", "_data"):
            del state[name]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._file, self._data = None, None

    # -- array-like ----------------------------------------------------------------------------

    @property
    def data(self) -> h5py.Dataset:
        """The underlying h5py dataset (whole, not windowed)."""
        return self._open()

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),) + self._row_shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __iter__(self):
        for row in range(len(self)):
            yield self[row]

    def __repr__(self) -> str:
        return (
            f"HDF5Matrix(datapath={self.datapath!r}, dataset={self.dataset!r}, "
            f"start={self.start}, end={self.end}, shape={self.shape}, dtype={self.dtype})"
        )

    # -- reads ---------------------------------------------------------------------------------

    def _normalized(self, rows: np.ndarray) -> np.ndarray:
        if self.normalizer is None:
            return rows
        return _checked_rows_out(self.normalizer(rows), rows, self.__dict__.get("_row_shape"))

    def __getitem__(self, key: Any) -> np.ndarray:
        """Rows of the window; see the class docstring for the accepted keys."""
        kind = _rows.key_kind(key, "HDF5Matrix")
        if kind == "slice":
            return self._normalized(self._read_slice(key))
        if kind == "row":
            row = self.start + _rows.checked_row(key, len(self))
            return self._normalized(self._open()[row : row + 1])[0]
        return self._getitems(key)

    def _getitems(self, indices: Sequence[int]) -> np.ndarray:
        """The rows at ``indices`` (window-relative) as one array, in the order asked for.

        One h5py read of the sorted unique rows (a slice when they are consecutive), then a take
        that restores the order and the repeats.
        """
        rows = _rows.checked_rows(indices, len(self))
        if rows.ndim != 1:
            raise IndexError(f"row indices must be 1-D; received shape {rows.shape}")
        if rows.size == 0 or bool(np.all(np.diff(rows) > 0)):  # already sorted and distinct
            return self._normalized(self._read_sorted(rows))
        unique, inverse = np.unique(rows, return_inverse=True)
        return self._normalized(np.take(self._read_sorted(unique), inverse, axis=0))

    def _read_sorted(self, unique: np.ndarray) -> np.ndarray:
        """Rows ``unique`` (sorted, distinct, window-relative): one slice read when they are
        consecutive (much faster than h5py's point selection), else one fancy read."""
        data = self._open()
        if unique.size == 0:
            return data[self.start : self.start]
        first, last = int(unique[0]), int(unique[-1])
        if last - first + 1 == unique.size:
            return data[self.start + first : self.start + last + 1]
        return data[unique + self.start]

    def _read_slice(self, key: slice) -> np.ndarray:
        first, stop, step = key.indices(len(self))
        span = range(first, stop, step)
        data = self._open()
        if len(span) == 0:
            return data[self.start : self.start]
        if step > 0:
            return data[self.start + first : self.start + span[-1] + 1 : step]
        forward = data[self.start + span[-1] : self.start + span[0] + 1 : -step]
        return forward[::-1]


def _checked_rows_out(out: Any, rows: np.ndarray, row_shape: tuple[int, ...] | None) -> np.ndarray:
    """The normalizer's output for ``rows`` as an array, checked to hold one row per input row,
    each of ``row_shape`` (the shape probed at construction; None while probing).

    Raises:
        TypeError: the normalizer returned None.
        ValueError: the output lost the row axis, has another number of rows, or rows of
            another shape.
    """
    if out is None:
        raise TypeError(
            f"HDF5Matrix: `normalizer` must return an array of rows; it returned None for a "
            f"batch of shape {rows.shape}"
        )
    out = np.asarray(out)
    if out.ndim == 0 or out.shape[0] != rows.shape[0]:
        raise ValueError(
            f"HDF5Matrix: `normalizer` must return one row per row it is given; for a batch of "
            f"shape {rows.shape} it returned shape {out.shape}"
        )
    if row_shape is not None and out.shape[1:] != row_shape:
        raise ValueError(
            f"HDF5Matrix: `normalizer` must return rows of the same shape on every read, "
            f"{row_shape} as on the first row; for a batch of shape {rows.shape} it returned "
            f"shape {out.shape}"
        )
    return out


def _identity(file: h5py.File, data: h5py.Dataset) -> dict[str, Any]:
    """What identifies an opened file and dataset: the file's device, inode, size and
    modification time, and the dataset's shape and dtype."""
    try:
        stat = os.fstat(file.id.get_vfd_handle())
    except (TypeError, ValueError, OSError):  # a driver without a file descriptor
        stat = os.stat(file.filename)
    return {
        "device": stat.st_dev,
        "inode": stat.st_ino,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "shape": tuple(data.shape),
        "dtype": data.dtype.str,
    }


def _open_file(datapath: str) -> h5py.File:
    import h5py

    if not os.path.exists(datapath):
        raise FileNotFoundError(f"HDF5Matrix: no such file: datapath={datapath!r}")
    try:
        return h5py.File(datapath, "r")
    except OSError as err:
        raise ValueError(
            f"HDF5Matrix: `datapath`={datapath!r} is not a readable HDF5 file ({err})"
        ) from err


def _dataset_names(file: h5py.File) -> list[str]:
    import h5py

    names: list[str] = []
    file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _dataset_in(file: h5py.File, name: str, datapath: str) -> h5py.Dataset:
    import h5py

    obj = file.get(name)
    if not isinstance(obj, h5py.Dataset):
        found = "is a group" if obj is not None else "does not exist"
        available = _dataset_names(file)
        file.close()
        raise ValueError(
            f"HDF5Matrix: `dataset`={name!r} {found} in {datapath!r}; datasets in the file: "
            f"{available[:20] or 'none'}"
        )
    if obj.ndim == 0:
        file.close()
        raise ValueError(
            f"HDF5Matrix: `dataset`={name!r} in {datapath!r} is a scalar; it needs a row axis"
        )
    return obj


def _checked_window(start: Any, end: Any, length: int, dataset: str) -> tuple[int, int]:
    start = _rows.checked_int(start, "start")
    end = length if end is None else _rows.checked_int(end, "end")
    if not 0 <= start <= end <= length:
        raise ValueError(
            f"HDF5Matrix: the window must satisfy 0 <= start <= end <= {length} (the length of "
            f"dataset {dataset!r}). Received: start={start}, end={end}"
        )
    return start, end
