"""Cutting datasets by index arithmetic: ``split_dataset`` (Keras's size rules, explicit keys,
optional stratification) and ``process_shard`` (one process's share in multi-process training).

Arrays are cut with one vectorised take per leaf (a view when no shuffle is asked for); grain
datasets and random-access sources are cut by wrapping them in a view over chosen row numbers,
so no element is read while splitting.
"""

from __future__ import annotations

import zlib
from numbers import Real
from typing import Any

import grain
import jax
import numpy as np

from jkutils.data import _rows
from jkutils.data._seed import key_or_seed
from jkutils.data.sources import ArraySource

__all__ = ["split_dataset", "process_shard"]

_DENSE_LABELS = 2**16  # integer labels spanning fewer values are counted, not sorted


# -- sizes ------------------------------------------------------------------------------------


def _checked_size(value: Any, argname: str, length: int) -> int | float | None:
    """``value`` as an int row count, a float fraction or None, checked against Keras's ranges."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(
            f"`{argname}` must be an int (a row count), a float (a fraction) or None. "
            f"Received: {argname}={value!r} (of type {type(value).__name__})"
        )
    if isinstance(value, int | np.integer):
        if not 0 < value < length:
            raise ValueError(
                f"`{argname}` as a row count must be in [1, {length - 1}] for a dataset of "
                f"{length} rows. Received: {argname}={value}"
            )
        return int(value)
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`{argname}` as a fraction must be strictly between 0 and 1. "
            f"Received: {argname}={value}"
        )
    return float(value)


def _rows_for(size: int | float, length: int) -> int:
    """Rows for one side: ints as given, fractions rounded half to even (Python's ``round``)."""
    return round(size * length) if isinstance(size, float) else size


def split_sizes(left_size: Any, right_size: Any, length: int) -> tuple[int, int]:
    """Row counts ``(left, right)`` under Keras's rules.

    Ints are row counts in ``[1, length)``, floats fractions in ``(0, 1)`` (rounded half to
    even), a missing side is the complement, and when both are given and sum to less than
    ``length`` the rows in between belong to neither side.

    Raises:
        TypeError: a size is neither int, float nor None.
        ValueError: both sizes missing or zero, a size out of range, the sizes summing past the
            dataset, or a side that would be empty.
    """
    if left_size is None and right_size is None:
        raise ValueError(
            "At least one of `left_size` or `right_size` must be given. "
            "Received: left_size=None and right_size=None"
        )
    if left_size == 0 and right_size == 0:
        raise ValueError("`left_size` and `right_size` are both zero; at least one must not be")
    left = _checked_size(left_size, "left_size", length)
    right = _checked_size(right_size, "right_size", length)
    if isinstance(left, float) and isinstance(right, float) and left + right > 1:
        raise ValueError(
            f"`left_size` + `right_size` must not exceed 1 when both are fractions. "
            f"Received: left_size={left}, right_size={right}"
        )
    left_rows = length - _rows_for(right, length) if left is None else _rows_for(left, length)
    right_rows = length - left_rows if right is None else _rows_for(right, length)
    if left_rows + right_rows > length:
        raise ValueError(
            f"`left_size` and `right_size` ask for {left_rows} + {right_rows} rows but the "
            f"dataset has only {length}. Received: left_size={left_size}, right_size={right_size}"
        )
    for side, rows in (("left", left_rows), ("right", right_rows)):
        if rows == 0:
            raise ValueError(
                f"the {side} side would be empty: {length} rows split as left={left_rows}, "
                f"right={right_rows} (left_size={left_size}, right_size={right_size})"
            )
    return left_rows, right_rows


# -- row choice -------------------------------------------------------------------------------


def _apportioned(counts: np.ndarray, total: int, capacity: np.ndarray) -> np.ndarray:
    """Split ``total`` rows among classes in proportion to ``counts`` (largest remainders first),
    never giving a class more than its ``capacity``."""
    ideal = counts * (total / counts.sum())
    share = np.minimum(np.floor(ideal).astype(np.int64), capacity)
    remainder = ideal - share
    while (short := total - int(share.sum())) > 0:
        open_classes = np.flatnonzero(share < capacity)
        chosen = open_classes[np.argsort(-remainder[open_classes], kind="stable")[:short]]
        share[chosen] += 1
        remainder[chosen] -= 1
    return share


def _class_ids(stratify: Any, length: int) -> np.ndarray:
    labels = np.asarray(stratify)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (length,):
        raise ValueError(
            f"`stratify` must hold one label per row: shape ({length},) expected, "
            f"received shape {labels.shape}"
        )
    if np.issubdtype(labels.dtype, np.integer) and length:
        low = int(labels.min())
        if int(labels.max()) - low < _DENSE_LABELS:  # few integer labels: count, do not sort
            # modulo 2**64 the difference is exact for every integer dtype, signed or not
            offsets = (labels.astype(np.uint64) - np.uint64(low % 2**64)).astype(np.int64)
            present = np.bincount(offsets) > 0
            return (np.cumsum(present) - 1)[offsets]
    return np.unique(labels, return_inverse=True)[1].reshape(length)


def _stratified_rows(
    classes: np.ndarray, order: np.ndarray, left_rows: int, right_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows for each side such that every class keeps its share (to within one row) on both.

    Within a class the left side takes the first rows of ``order`` and the right side the last.
    """
    ordered_classes = classes[order]
    counts = np.bincount(ordered_classes)
    left_share = _apportioned(counts, left_rows, counts)
    right_share = _apportioned(counts, right_rows, counts - left_share)
    # A stable sort of small ints is a radix sort in NumPy: linear time.
    narrow = ordered_classes.astype(np.uint16) if counts.size <= _DENSE_LABELS else ordered_classes
    by_class = np.argsort(narrow, kind="stable")
    class_starts = np.cumsum(counts) - counts
    rank = np.empty(order.size, np.int64)
    rank[by_class] = np.arange(order.size) - np.repeat(class_starts, counts)
    left_mask = rank < left_share[ordered_classes]
    right_mask = rank >= (counts - right_share)[ordered_classes]
    return order[left_mask], order[right_mask]


def _chosen_rows(
    length: int, left_rows: int, right_rows: int, shuffle: bool, key: Any, stratify: Any
) -> tuple[np.ndarray | slice, np.ndarray | slice]:
    if not isinstance(shuffle, bool | np.bool_):
        raise TypeError(f"`shuffle` must be a bool. Received: shuffle={shuffle!r}")
    if shuffle and key is None:
        raise ValueError(
            "`shuffle=True` needs `key`, a JAX key such as jax.random.key(0) (or Keras's "
            "`seed=0`); split_dataset never draws from global random state"
        )
    if stratify is not None:
        classes = _class_ids(stratify, length)
        order = _rows.random_order(key, length) if shuffle else np.arange(length)
        return _stratified_rows(classes, order, left_rows, right_rows)
    if not shuffle:
        return slice(0, left_rows), slice(length - right_rows, length)
    order = _rows.random_order(key, length)
    return order[:left_rows], order[length - right_rows :]


# -- grain views ------------------------------------------------------------------------------


class _RowView:
    """A random-access source showing the rows ``rows`` of ``parent`` (a grain source)."""

    def __init__(self, parent: Any, rows: np.ndarray):
        self._parent = parent
        self._rows = np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return int(self._rows.size)

    def __getitem__(self, index: int) -> Any:
        return self._parent[int(self._rows[_rows.checked_row(index, self._rows.size)])]

    def __repr__(self) -> str:
        fingerprint = zlib.crc32(self._rows.tobytes())
        return f"_RowView(parent={self._parent!r}, rows={self._rows.size}, crc32={fingerprint})"


def _as_map_dataset(dataset: Any, argname: str = "dataset") -> grain.MapDataset:
    """``dataset`` as a ``grain.MapDataset``: kept as is, wrapped as a source, or (for a pytree
    of arrays) served through :class:`ArraySource`."""
    if isinstance(dataset, grain.MapDataset):
        return dataset
    if _rows.is_array_tree(dataset):
        return grain.MapDataset.source(ArraySource(dataset))
    if isinstance(dataset, list | tuple | dict) or not (
        hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
    ):
        _rows.array_leaves(dataset, argname)  # raises, naming the leaf that is not an array
        raise TypeError(
            f"`{argname}` must be a pytree of arrays, a grain.MapDataset or a random-access "
            f"source (with __len__ and __getitem__). Received: {type(dataset).__name__}"
        )
    return grain.MapDataset.source(dataset)


def _select(dataset: grain.MapDataset, rows: np.ndarray | slice) -> grain.MapDataset:
    if isinstance(rows, slice):
        return dataset.slice(rows)
    return grain.MapDataset.source(_RowView(dataset, rows))


# -- public -----------------------------------------------------------------------------------


def split_dataset(
    dataset: Any,
    left_size: int | float | None = None,
    right_size: int | float | None = None,
    shuffle: bool = False,
    key: jax.Array | None = None,
    *,
    stratify: Any = None,
    seed: int | None = None,
) -> tuple[Any, Any]:
    """Split a dataset in two by row numbers, with Keras's size rules.

    Args:
        dataset: an array or a pytree (tuple, list, dict, nested) of NumPy or JAX arrays with the
            same number of rows; or a ``grain.MapDataset``; or any random-access source.
        left_size: rows for the left side: an int count in ``[1, n)`` or a float fraction in
            ``(0, 1)`` (rounded half to even). ``None`` means "the rest".
        right_size: the same for the right side. When both are given and leave rows over, the
            left side takes the first rows and the right side the last; the middle is dropped.
        shuffle: draw the rows of each side at random (needs ``key``).
        key: a JAX PRNG key; the split depends on the key alone (no global random state).
        seed: Keras's spelling: an int from which the key is derived as
            ``jax.random.key(seed)`` (give ``key`` or ``seed``, not both).
        stratify: optional labels, one per row; each class then keeps its share of each side to
            within one row.

    Returns:
        ``(left, right)``: for arrays, two pytrees of the same structure and array library
        (unshuffled NumPy splits are views, the others copies); otherwise two
        ``grain.MapDataset``s.

    Raises:
        TypeError: unsupported ``dataset``, size or ``shuffle`` types, or a bad ``key``.
        ValueError: mismatched row counts, an empty dataset, sizes out of range, ``shuffle``
            without ``key``, or ``stratify`` of the wrong length.

    Example:
        >>> x, y = np.random.rand(1000, 8), np.arange(1000) % 3
        >>> (x_tr, y_tr), (x_va, y_va) = split_dataset(
        ...     (x, y), left_size=0.8, shuffle=True, key=jax.random.key(0), stratify=y)
        >>> x_tr.shape, x_va.shape
        ((800, 8), (200, 8))
    """
    key = key_or_seed(key, seed)
    arrays = _rows.is_array_tree(dataset)
    if arrays:
        length = _rows.common_length(dataset, "dataset")
    else:
        dataset = _as_map_dataset(dataset)
        length = len(dataset)
    if length == 0:
        raise ValueError("`dataset` is empty; there are no rows to split")
    left_rows, right_rows = split_sizes(left_size, right_size, length)
    left, right = _chosen_rows(length, left_rows, right_rows, shuffle, key, stratify)
    if arrays:
        return _rows.take_rows(dataset, left), _rows.take_rows(dataset, right)
    return _select(dataset, left), _select(dataset, right)


def shard_bounds(length: int, process_index: int, process_count: int) -> tuple[int, int]:
    """``[start, stop)`` of one process's contiguous shard: the first ``length % process_count``
    processes get one row more than the others."""
    base, extra = divmod(length, process_count)
    start = process_index * base + min(process_index, extra)
    return start, start + base + (process_index < extra)


def process_shard(
    dataset: Any, process_index: int | None = None, process_count: int | None = None
) -> grain.MapDataset:
    """This process's share of a dataset, for multi-process (multi-host) training.

    Process ``i`` of ``p`` gets one contiguous block of rows. With ``n`` rows, the first
    ``n % p`` processes get ``n // p + 1`` rows and the rest ``n // p``, so every row lands in
    exactly one shard and shard sizes differ by at most one (give every process the same number
    of steps, e.g. with ``drop_remainder`` batching or ``repeat``, if your loop needs it).

    Args:
        dataset: a ``grain.MapDataset``, a random-access source or a pytree of arrays.
        process_index: this process; defaults to ``jax.process_index()``.
        process_count: number of processes; defaults to ``jax.process_count()``.

    Returns:
        A ``grain.MapDataset`` over this process's rows (shuffle it after sharding, with the same
        seed everywhere or not, as you prefer: the shards never overlap).

    Raises:
        TypeError: non-int process numbers or an unsupported ``dataset``.
        ValueError: ``process_count < 1`` or ``process_index`` outside ``[0, process_count)``.

    Example:
        >>> shard = process_shard(grain.MapDataset.range(10), process_index=1, process_count=3)
        >>> list(shard)
        [4, 5, 6]
    """
    count = jax.process_count() if process_count is None else process_count
    index = jax.process_index() if process_index is None else process_index
    count = _rows.checked_int(count, "process_count")
    index = _rows.checked_int(index, "process_index")
    if count < 1:
        raise ValueError(f"`process_count` must be at least 1. Received: process_count={count}")
    if not 0 <= index < count:
        raise ValueError(
            f"`process_index` must be in [0, {count}). Received: process_index={index}"
        )
    source = _as_map_dataset(dataset)
    start, stop = shard_bounds(len(source), index, count)
    return source.slice(slice(start, stop))
