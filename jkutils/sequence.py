"""Padding variable-length sequences to one length, with Keras's exact semantics."""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from jkutils._sizes import check_fits_in_memory

__all__ = ["pad_sequences"]

_SIDES = ("pre", "post")


def _checked_side(name: str, value: Any) -> str:
    if value not in _SIDES:
        raise ValueError(
            f'{name.capitalize()} type "{value}" not understood (expected "pre" or "post")'
        )
    return value


def _lengths_and_sample_shape(sequences: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """Length of every sequence, and the per-step shape of the first non-empty one."""
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    lengths = np.empty(len(sequences), dtype=np.int64)
    sample_shape: tuple[int, ...] | None = None
    for i, seq in enumerate(sequences):
        try:
            lengths[i] = len(seq)
        except TypeError as err:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {seq!r} "
                f"at position {i}"
            ) from err
        if sample_shape is None and lengths[i]:
            sample_shape = np.asarray(seq).shape[1:]
    return lengths, sample_shape or ()


def _checked_maxlen(maxlen: Any, lengths: np.ndarray) -> int:
    if maxlen is None:
        if lengths.size == 0:
            raise ValueError("pad_sequences: `sequences` is empty, so `maxlen` must be given")
        return int(lengths.max())
    if isinstance(maxlen, bool) or not isinstance(maxlen, numbers.Integral) or maxlen < 0:
        raise ValueError(
            f"`maxlen` must be a non-negative int or None. Received: maxlen={maxlen!r}"
        )
    return int(maxlen)


def _check_value_fits_dtype(value: Any, dtype: Any) -> None:
    kind = np.dtype(dtype).kind
    if isinstance(value, str) and kind not in "OUS":
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )
    if kind in "iu" and isinstance(value, numbers.Real):
        _check_integer_value(value, np.dtype(dtype))


def _check_integer_value(value: Any, dtype: np.dtype) -> None:
    """A padding value for an integer dtype must be a whole number that the dtype holds."""
    whole = isinstance(value, numbers.Integral) or (
        math.isfinite(value) and value == math.floor(value)
    )
    if not whole:
        raise ValueError(
            f"`value` must be a whole number to pad with dtype {dtype}; received value={value!r}. "
            "Use a float dtype to pad with NaN, infinity or fractions."
        )
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise ValueError(
            f"`value`={value!r} does not fit dtype {dtype}, which holds [{info.min}, {info.max}]."
        )


def _flat_steps(sequences: Sequence, total: int, dtype: Any) -> np.ndarray | None:
    """All steps of all sequences as one 1-D array, or None when steps are not scalars."""
    if any(isinstance(seq, str | bytes) for seq in sequences):
        return None  # a string is one step in Keras, not its characters
    try:
        flat = np.asarray(list(itertools.chain.from_iterable(sequences)), dtype=dtype)
    except (TypeError, ValueError):
        return None
    return flat if flat.shape == (total,) else None


def _scatter_flat(
    out: np.ndarray,
    flat: np.ndarray,
    lengths: np.ndarray,
    kept: np.ndarray,
    padding: str,
    truncating: str,
) -> None:
    """Place every kept step of ``flat`` into ``out`` with index arithmetic only."""
    maxlen = out.shape[1]
    rows = np.repeat(np.arange(lengths.size), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(flat.size) - starts
    dropped_front = (lengths - kept)[rows] if truncating == "pre" else 0
    kept_position = position - dropped_front
    keep = (kept_position >= 0) & (kept_position < kept[rows])
    shift = (maxlen - kept)[rows] if padding == "pre" else 0
    out[rows[keep], (kept_position + shift)[keep]] = flat[keep]


def _place_each(
    out: np.ndarray,
    sequences: Sequence,
    sample_shape: tuple[int, ...],
    padding: str,
    truncating: str,
) -> None:
    """Per-sequence placement, for steps that are vectors or Python objects."""
    maxlen = out.shape[1]
    for i, seq in enumerate(sequences):
        if not len(seq) or not maxlen:
            continue
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        kept = np.asarray(kept, dtype=out.dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {kept.shape[1:]} of sequence at position {i} is different "
                f"from expected shape {sample_shape}"
            )
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, maxlen - len(kept) :] = kept


def pad_sequences(
    sequences: Sequence,
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pad (or truncate) sequences to one length, as ``keras.utils.pad_sequences`` does.

    Args:
        sequences: a list (or any sized iterable) of sequences; each step may be a scalar or an
            array of one fixed shape.
        maxlen: output length; ``None`` uses the longest sequence.
        dtype: output dtype (default ``"int32"``, which truncates floats like Keras); use
            ``object`` for strings.
        padding: ``"pre"`` pads before each sequence, ``"post"`` after.
        truncating: ``"pre"`` drops steps from the front of long sequences, ``"post"`` from the end.
        value: the padding value.

    Returns:
        A NumPy array of shape ``(len(sequences), maxlen) + step_shape``.

    Raises:
        ValueError: non-iterable ``sequences`` or element, unknown ``padding``/``truncating``,
            a string ``value`` with a non-string ``dtype``, a ``value`` that an integer
            ``dtype`` cannot hold exactly (NaN, infinity, a fraction, out of range), mismatched
            step shapes, a negative ``maxlen``, ``maxlen=None`` with no sequences, or an output
            larger than this machine's memory (refused before allocating).

    Example:
        >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
        array([[0, 0, 1],
               [0, 2, 3],
               [4, 5, 6]], dtype=int32)
        >>> pad_sequences([[1, 2, 3]], maxlen=2, padding="post", truncating="post")
        array([[1, 2]], dtype=int32)
    """
    _checked_side("padding", padding)
    _checked_side("truncating", truncating)
    lengths, sample_shape = _lengths_and_sample_shape(sequences)
    maxlen = _checked_maxlen(maxlen, lengths)
    _check_value_fits_dtype(value, dtype)
    check_fits_in_memory(
        (lengths.size, maxlen, *sample_shape), dtype, f"pad_sequences: maxlen={maxlen}"
    )
    out = np.full((lengths.size, maxlen, *sample_shape), value, dtype=dtype)
    if out.size == 0:
        return out
    flat = None if sample_shape else _flat_steps(sequences, int(lengths.sum()), out.dtype)
    if flat is None:
        _place_each(out, sequences, sample_shape, padding, truncating)
    else:
        _scatter_flat(out, flat, lengths, np.minimum(lengths, maxlen), padding, truncating)
    return out
