"""Sliding windows over a timeseries as a ``grain.MapDataset`` of batches (Keras's
``timeseries_dataset_from_array`` windows and targets, gathered with one vectorised index per
batch)."""

from __future__ import annotations

import zlib
from typing import Any

import grain
import jax
import numpy as np

from jkutils.data import _rows
from jkutils.data._seed import key_or_seed

__all__ = ["timeseries_dataset_from_array"]


class _Windows:
    """Random-access source: element ``b`` is batch ``b`` of windows (and their targets)."""

    def __init__(
        self,
        data: np.ndarray,
        targets: np.ndarray | None,
        starts: np.ndarray,
        offsets: np.ndarray,
        batch_size: int | None,
    ):
        self._data = data
        self._targets = targets
        self._starts = starts
        self._offsets = offsets
        self._batch_size = batch_size

    def __len__(self) -> int:
        if self._batch_size is None:
            return int(self._starts.size)
        return -(-int(self._starts.size) // self._batch_size)

    def __getitem__(self, index: int) -> Any:
        index = _rows.checked_row(index, len(self))
        if self._batch_size is None:
            starts = self._starts[index]
        else:
            starts = self._starts[index * self._batch_size : (index + 1) * self._batch_size]
        windows = np.take(self._data, starts[..., None] + self._offsets, axis=0)
        if self._targets is None:
            return windows
        return windows, np.take(self._targets, starts, axis=0)

    def __repr__(self) -> str:
        return (
            f"_Windows(data={self._data.dtype}{list(self._data.shape)}, "
            f"windows={self._starts.size}, length={self._offsets.size}, "
            f"batch_size={self._batch_size}, crc32={zlib.crc32(self._starts.tobytes())})"
        )


def _positive_int(value: Any, argname: str, upper: int | None = None) -> int:
    value = _rows.checked_int(value, argname)
    if value <= 0 or (upper is not None and value >= upper):
        bound = f" and lower than the length of the data ({upper})" if upper is not None else ""
        raise ValueError(f"`{argname}` must be higher than 0{bound}. Received: {argname}={value}")
    return value


def _window_bounds(start_index: Any, end_index: Any, length: int) -> tuple[int, int]:
    """``[start, end)`` of the data the windows may use, with Keras's checks."""
    start = 0 if start_index is None else start_index
    end = length if end_index is None else end_index
    for name, value in (("start_index", start), ("end_index", end)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"`{name}` must be an int or None. Received: {name}={value!r}")
    if not 0 <= start < length:
        raise ValueError(
            f"`start_index` must be in [0, {length}) (the length of the data). "
            f"Received: start_index={start}"
        )
    if end_index is not None and not start < end < length:
        raise ValueError(
            f"`end_index` must be higher than `start_index` ({start}) and lower than the "
            f"length of the data ({length}). Received: end_index={end}"
        )
    return int(start), int(end)


def timeseries_dataset_from_array(
    data: Any,
    targets: Any,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: int | None = 128,
    shuffle: bool = False,
    key: jax.Array | None = None,
    start_index: int | None = None,
    end_index: int | None = None,
    *,
    seed: int | None = None,
) -> grain.MapDataset:
    """Sliding windows over ``data`` (time on axis 0) as a ``grain.MapDataset`` of batches.

    Window ``i`` starts at ``p_i = start_index + i * sequence_stride`` and holds
    ``data[p_i], data[p_i + sampling_rate], ..., data[p_i + (sequence_length - 1) *
    sampling_rate]``; every window lies inside ``[start_index, end_index)``. Its target is
    ``targets[p_i]``, the target at the window's *start* (to predict the step after a window,
    pass ``targets=data[sequence_length:]``). Windows whose target index is past the end of
    ``targets`` are not produced.

    Args:
        data: array of timesteps (NumPy or JAX; elements come back as NumPy).
        targets: array of targets aligned with ``data``, or None for windows only.
        sequence_length: timesteps per window.
        sequence_stride: timesteps between the starts of consecutive windows.
        sampling_rate: timesteps between the elements of a window.
        batch_size: windows per element (the last batch may be smaller); ``None`` makes each
            element a single window.
        shuffle: put the windows in an order drawn from ``key`` (so batches mix windows from
            across the series); otherwise chronological.
        key: a JAX PRNG key, required when ``shuffle=True``.
        start_index: first timestep that windows may use (default 0).
        end_index: one past the last timestep that windows may use (default ``len(data)``).
        seed: Keras's spelling: an int from which the key is derived as
            ``jax.random.key(seed)`` (give ``key`` or ``seed``, not both).

    Returns:
        A ``grain.MapDataset`` whose elements are ``(windows, targets)`` pairs, or windows alone
        when ``targets`` is None; batched windows have shape
        ``(batch, sequence_length) + data.shape[1:]``.

    Raises:
        TypeError: a non-int size or index, a non-bool ``shuffle``, or a bad ``key``.
        ValueError: sizes or indices out of range (as in Keras), or ``shuffle`` without ``key``.

    Example:
        >>> ds = timeseries_dataset_from_array(np.arange(10), np.arange(10) * 10, 3, batch_size=4)
        >>> windows, targets = ds[0]
        >>> windows.tolist(), targets.tolist()
        ([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]], [0, 10, 20, 30])
    """
    key = key_or_seed(key, seed)
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError("`data` must have a time axis; received a 0-d array")
    length = data.shape[0]
    sequence_length = _positive_int(sequence_length, "sequence_length")
    sampling_rate = _positive_int(sampling_rate, "sampling_rate", upper=length)
    sequence_stride = _positive_int(sequence_stride, "sequence_stride", upper=length)
    if batch_size is not None:
        batch_size = _positive_int(batch_size, "batch_size")
    start, end = _window_bounds(start_index, end_index, length)
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError("`targets` must be an array with one target per timestep or None")
        count = min(count, targets.shape[0] - start)
    starts = start + np.arange(0, max(count, 0), sequence_stride)
    if not isinstance(shuffle, bool | np.bool_):
        raise TypeError(f"`shuffle` must be a bool. Received: shuffle={shuffle!r}")
    if shuffle:
        if key is None:
            raise ValueError(
                "`shuffle=True` needs `key`, a JAX key such as jax.random.key(0) "
                "(or Keras's `seed=0`)"
            )
        starts = starts[_rows.random_order(key, starts.size)]
    offsets = np.arange(sequence_length) * sampling_rate
    return grain.MapDataset.source(_Windows(data, targets, starts, offsets, batch_size))
