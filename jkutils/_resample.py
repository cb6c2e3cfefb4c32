"""Separable resampling with the kernels of ``jax.image.resize`` (``antialias=False``), in
NumPy on the host.

Each axis is resampled as a weighted sum of a few input positions per output position (the
kernel's taps), computed in buffers kept per thread (:mod:`jkutils._scratch`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from jkutils._scratch import scratch_array

__all__ = ["resampled"]

_F32 = np.float32
# trailing values per tap from which gathering whole blocks beats gathering single values
_BLOCK_GATHER = 64


# -- resampling kernels (the formulas of jax.image.resize, in float32) ------------------------


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(_F32(0), _F32(1) - np.abs(x))


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    out = ((_F32(1.5) * x - _F32(2.5)) * x) * x + _F32(1)
    out = np.where(x >= 1, ((_F32(-0.5) * x + _F32(2.5)) * x - _F32(4)) * x + _F32(2), out)
    return np.where(x >= 2, _F32(0), out)


def _lanczos(radius: float, x: np.ndarray) -> np.ndarray:
    r = _F32(radius)
    y = r * np.sin(_F32(np.pi) * x) * np.sin(_F32(np.pi) * x / r)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x > _F32(1e-3), y / np.where(x != 0, _F32(np.pi**2) * x * x, _F32(1)), 1)
    return np.where(x > r, _F32(0), out).astype(_F32)


_KERNELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bilinear": _triangle,
    "bicubic": _keys_cubic,
    "lanczos3": functools.partial(_lanczos, 3.0),
    "lanczos5": functools.partial(_lanczos, 5.0),
}


def _area_weights(in_size: int, out_size: int) -> np.ndarray:
    inv_scale = _F32(in_size / out_size)
    left = np.arange(out_size, dtype=_F32) * inv_scale
    right = left + inv_scale
    pixel_left = np.arange(in_size, dtype=_F32)
    overlap = np.minimum(right[None, :], pixel_left[:, None] + 1) - np.maximum(
        left[None, :], pixel_left[:, None]
    )
    return np.maximum(_F32(0), overlap)


def _dense_weights(in_size: int, out_size: int, interpolation: str) -> np.ndarray:
    """The ``(in_size, out_size)`` weight matrix ``jax.image.resize`` builds without antialias."""
    inv_scale = _F32(1.0 / (out_size / in_size))
    sample = (np.arange(out_size, dtype=_F32) + _F32(0.5)) * inv_scale - _F32(0.5)
    if interpolation == "area":
        weights = _area_weights(in_size, out_size)
    else:
        distance = np.abs(sample[None, :] - np.arange(in_size, dtype=_F32)[:, None])
        weights = _KERNELS[interpolation](distance).astype(_F32)
    total = weights.sum(axis=0, keepdims=True, dtype=_F32)
    usable = np.abs(total) > 1000 * np.finfo(np.float32).eps
    weights = np.where(usable, weights / np.where(total != 0, total, 1), _F32(0)).astype(_F32)
    if interpolation != "area":
        inside = (sample >= -0.5) & (sample <= in_size - 0.5)
        weights = np.where(inside[None, :], weights, _F32(0))
    return weights


@functools.lru_cache(maxsize=256)
def _taps(in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """For each output position, the input positions its kernel reads and their weights, as
    ``(indices, weights)`` of shape ``(taps, out_size)`` (unused taps carry weight 0)."""
    dense = _dense_weights(in_size, out_size, interpolation)
    nonzero = dense != 0
    taps = max(int(nonzero.sum(axis=0).max(initial=0)), 1)
    # rows of each column's non-zero weights first (stable), padded with zero-weight rows
    order = np.argsort(~nonzero, axis=0, kind="stable")[:taps]
    weights = np.take_along_axis(dense, order, axis=0)
    return order, weights


@functools.lru_cache(maxsize=256)
def _flat_taps(
    in_size: int, out_size: int, interpolation: str, inner: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_taps` for an axis followed by ``inner`` contiguous values (an image row's
    channels): indices into the flattened ``(in_size * inner)`` axis and their weights, each
    of shape ``(taps, out_size * inner)``."""
    indices, weights = _taps(in_size, out_size, interpolation)
    flat = (indices[:, :, None] * inner + np.arange(inner)).reshape(len(indices), -1)
    return flat, np.repeat(weights, inner, axis=1)


def _weighted_sum(
    view: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:
    """``out = sum_t view[:, indices[t]] * weights[t]``, gathering through scratch buffers."""
    shape = (view.shape[0], *indices.shape[1:], *view.shape[2:])
    gathered = scratch_array("gather", shape, view.dtype)
    product = scratch_array("product", out.shape, out.dtype)
    for tap in range(len(indices)):
        np.take(view, indices[tap], axis=1, out=gathered, mode="clip")
        if tap == 0:
            np.multiply(gathered, weights[tap], out=out)
        else:
            np.multiply(gathered, weights[tap], out=product)
            np.add(out, product, out=out)


def resampled(x: np.ndarray, axis: int, out_size: int, interpolation: str, role: str) -> np.ndarray:
    """``x`` resampled along ``axis`` to ``out_size`` with a non-``"nearest"`` kernel, in the
    per-thread buffer ``role`` (valid until this thread resamples into ``role`` again), in
    ``float32`` (``float64`` for ``float64`` input).

    The taps are gathered either as whole trailing blocks (rows), when what follows the axis is
    large, or as single values of the axis flattened with what follows it, when that is small
    (the channels of a pixel): NumPy gathers those several times faster than short blocks.

    Example:
        >>> resampled(np.ones((375, 500, 3), np.uint8), 0, 180, "bilinear", "doc").shape
        (180, 500, 3)
    """
    in_size = x.shape[axis]
    lead, trail = x.shape[:axis], x.shape[axis + 1 :]
    inner = math.prod(trail)
    dtype = np.result_type(x.dtype, _F32)
    view: np.ndarray
    if inner >= _BLOCK_GATHER:
        view = x.reshape(math.prod(lead), in_size, inner)
        indices, weights = _taps(in_size, out_size, interpolation)
        weights = weights[:, :, None]
        out = scratch_array(role, (view.shape[0], out_size, inner), dtype)
    else:
        view = x.reshape(math.prod(lead), in_size * inner)
        indices, weights = _flat_taps(in_size, out_size, interpolation, inner)
        out = scratch_array(role, (view.shape[0], out_size * inner), dtype)
    _weighted_sum(view, indices, weights, out)
    return out.reshape(*lead, out_size, *trail)


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """The input position each output position copies with ``"nearest"``."""
    offsets = (np.arange(out_size, dtype=_F32) + _F32(0.5)) * _F32(in_size) / _F32(out_size)
    return np.floor(offsets.astype(_F32)).astype(np.int64)
