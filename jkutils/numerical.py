"""One-hot encoding and norm scaling that work on NumPy arrays, JAX arrays and inside ``jax.jit``.

Each function picks its implementation from the input kind: NumPy (and lists, scalars) stay on
the host and return NumPy arrays; concrete ``jax.Array`` inputs return ``jax.Array``; traced
inputs (inside ``jit``/``vmap``) use only ``jax.numpy`` and never read values.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jkutils._sizes import check_fits_in_memory

__all__ = ["to_categorical", "normalize"]


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _is_jax(x: Any) -> bool:
    return isinstance(x, jax.Array)


# --------------------------------------------------------------------------------------------
# to_categorical
# --------------------------------------------------------------------------------------------


def _checked_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(
            f"`num_classes` must be a positive int or None. Received: num_classes={num_classes!r} "
            f"(of type {type(num_classes).__name__})"
        )
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1. Received: num_classes={num_classes}")
    return int(num_classes)


def _one_hot_shape(label_shape: tuple[int, ...], num_classes: int) -> tuple[int, ...]:
    """Keras's output shape: scalar -> (C,); one trailing size-1 axis dropped when ndim > 1."""
    if len(label_shape) > 1 and label_shape[-1] == 1:
        label_shape = label_shape[:-1]
    return (*label_shape, num_classes)


def _host_labels(x: Any) -> np.ndarray:
    """Concrete labels as an integer NumPy array; non-integral floats are rejected."""
    labels = np.asarray(x)
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64, copy=False)
    if labels.dtype.kind == "f":
        bad = labels != np.trunc(labels)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"to_categorical: labels must be whole numbers; found x{list(where)}="
                f"{labels[where]!r}"
            )
        return labels.astype(np.int64)
    raise TypeError(
        f"to_categorical: `x` must hold integer class labels. Received dtype {labels.dtype}"
    )


def _checked_class_count(labels: np.ndarray, num_classes: int | None) -> int:
    """Validate label range and return the class count (inferred as max + 1 when None)."""
    if labels.size == 0:
        if num_classes is None:
            raise ValueError("to_categorical: cannot infer `num_classes` from an empty `x`")
        return num_classes
    low, high = int(labels.min()), int(labels.max())
    limit = high + 1 if num_classes is None else num_classes
    for bad_value in (low, high):
        if bad_value < 0 or bad_value >= limit:
            where = tuple(int(i) for i in np.argwhere(labels == bad_value)[0])
            raise ValueError(
                f"to_categorical: label {bad_value} at x{list(where)} is outside "
                f"[0, num_classes={limit})"
            )
    return limit


def _check_output_size(
    label_shape: tuple[int, ...], num_classes: int, dtype: Any, inferred: str
) -> None:
    """Refuse, before allocating, a one-hot output larger than this machine's memory."""
    check_fits_in_memory(
        _one_hot_shape(label_shape, num_classes),
        dtype,
        f"to_categorical: num_classes={num_classes}{inferred}",
    )


def _numpy_one_hot(labels: np.ndarray, num_classes: int, dtype: Any) -> np.ndarray:
    """Zero-filled output plus one flat scatter: the cost of the raw write, nothing more."""
    flat = labels.reshape(-1)
    out = np.zeros(flat.size * num_classes, dtype=dtype)
    out[np.arange(flat.size, dtype=np.int64) * num_classes + flat] = 1
    return out.reshape(_one_hot_shape(labels.shape, num_classes))


def _traced_one_hot(labels: jax.Array, num_classes: int, dtype: Any) -> jax.Array:
    """A zero buffer plus one scatter (on CPU no slower than comparing every cell with ``arange``).

    Labels outside [0, num_classes) are sent to a column past the end and dropped, so their rows
    stay all zero. Two index arrays, not one flat index, so sizes past 2**31 cannot overflow.
    """
    out_shape = _one_hot_shape(labels.shape, num_classes)
    flat = labels.reshape(-1)
    rows = jnp.arange(flat.size, dtype=jnp.int32)
    in_range = (flat >= 0) & (flat < num_classes)  # checked before the int32 cast can wrap
    columns = jnp.where(in_range, flat, num_classes).astype(jnp.int32)
    out = jnp.zeros((flat.size, num_classes), dtype)
    out = out.at[rows, columns].set(1, unique_indices=True, mode="drop")
    return out.reshape(out_shape)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _jitted_one_hot(labels: jax.Array, num_classes: int, dtype: Any) -> jax.Array:
    return _traced_one_hot(labels, num_classes, dtype)


def to_categorical(x: Any, num_classes: int | None = None, dtype: Any = "float32") -> Any:
    """One-hot encode integer class labels.

    Args:
        x: class labels: a scalar, list, NumPy array or ``jax.Array`` of integers (whole-number
            floats are accepted). A trailing axis of size 1 is dropped when ``x.ndim > 1``.
        num_classes: number of classes. ``None`` infers ``max(x) + 1`` (concrete inputs only).
            Inside ``jax.jit`` it must be given, as a static Python int.
        dtype: output dtype (default ``"float32"``).

    Returns:
        An array of shape ``x.shape + (num_classes,)`` (with the trailing 1 dropped): NumPy for
        NumPy/list/scalar input, ``jax.Array`` for JAX input.

    Raises:
        ValueError: a concrete label is negative or ``>= num_classes`` (the message names it),
            a float label is not a whole number, ``num_classes`` is < 1, or the output would
            not fit in this machine's memory (refused before allocating).
        TypeError: ``num_classes`` is not an int, or is None for a traced ``x``.

    Under ``jit`` labels cannot be inspected: out-of-range labels then give all-zero rows.

    Example:
        >>> to_categorical([0, 2, 1], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]], dtype=float32)
        >>> jax.jit(lambda y: to_categorical(y, 3))(jnp.array([1, 0])).shape
        (2, 3)
    """
    num_classes = _checked_num_classes(num_classes)
    if _is_traced(x):
        if num_classes is None:
            raise TypeError(
                "to_categorical: `num_classes` must be given (a static int) when `x` is traced "
                "inside jax.jit/vmap"
            )
        _check_output_size(x.shape, num_classes, dtype, "")
        return _traced_one_hot(x, num_classes, dtype)
    labels = _host_labels(x)
    inferred = "" if num_classes is not None else " (inferred from the largest label)"
    num_classes = _checked_class_count(labels, num_classes)
    _check_output_size(labels.shape, num_classes, dtype, inferred)
    if _is_jax(x):
        return _jitted_one_hot(x, num_classes, jnp.dtype(dtype))
    return _numpy_one_hot(labels, num_classes, dtype)


# --------------------------------------------------------------------------------------------
# normalize
# --------------------------------------------------------------------------------------------


def _checked_order(order: Any) -> float:
    if isinstance(order, bool) or not isinstance(order, numbers.Real) or not order >= 1:
        raise ValueError(
            f"`order` must be a number >= 1 (np.inf allowed). Received: order={order!r}"
        )
    return order


def _checked_axis(axis: Any, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an int. Received: axis={axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"`axis` {axis} is out of range for an input with {ndim} dimension(s)")
    return int(axis)


def _norm(x: Any, order: float, axis: int, xp: Any) -> Any:
    """The ``order``-norm of ``x`` along ``axis``, kept as a size-1 axis for broadcasting.

    The Euclidean norm of real input takes one pass over ``x`` (a sum of squares); only the
    vectors whose sum of squares overflowed, underflowed or is zero are recomputed by
    :func:`_scaled_norm` (on NumPy those vectors alone, under JAX the whole array). Other
    orders than 1 and 2 are computed by :func:`_scaled_norm` directly.
    """
    if order == 1:  # a sum of magnitudes neither underflows nor has a kink at zero
        return xp.sum(xp.abs(x), axis=axis, keepdims=True)
    if order != 2 or xp.iscomplexobj(x):
        return _scaled_norm(x, order, axis, xp)
    squares = (
        xp.sum(x * x, axis=axis, keepdims=True) if xp is jnp else _numpy_sum_of_squares(x, axis)
    )
    in_range = xp.isfinite(squares) & (squares >= xp.finfo(squares.dtype).tiny)
    if xp is np:
        return _numpy_repaired_norm(x, axis, np.sqrt(squares), ~in_range)
    return jax.lax.cond(
        jnp.all(in_range),
        # the guard keeps the gradient finite when vmap turns the cond into a select
        lambda x, squares: jnp.sqrt(jnp.where(in_range, squares, jnp.ones_like(squares))),
        lambda x, squares: _scaled_norm(x, 2, axis, jnp),
        x,
        squares,
    )


def _numpy_repaired_norm(x: np.ndarray, axis: int, norm: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``norm`` with the vectors flagged in ``bad`` recomputed by :func:`_scaled_norm`."""
    if bad.any():
        flagged = np.moveaxis(bad, axis, -1)[..., 0]
        vectors = np.moveaxis(x, axis, -1)[flagged]
        np.moveaxis(norm, axis, -1)[..., 0][flagged] = _scaled_norm(vectors, 2, -1, np)[..., 0]
    return norm


def _scaled_norm(x: Any, order: float, axis: int, xp: Any) -> Any:
    """The norm computed on ``|x| / max|x|`` (values in [0, 1]) and scaled back.

    Scaling keeps huge vectors from overflowing and tiny ones from underflowing to a zero norm,
    and the guarded root keeps the gradient of a zero vector finite.
    """
    magnitude = xp.abs(x)
    peak = xp.max(magnitude, axis=axis, keepdims=True)
    if order == np.inf:
        return peak
    scaled = magnitude / xp.where(peak == 0, xp.ones_like(peak), peak)
    if order == 2:
        total = xp.sum(scaled * scaled, axis=axis, keepdims=True)
    elif order == 1:
        total = xp.sum(scaled, axis=axis, keepdims=True)
    else:
        total = xp.sum(scaled**order, axis=axis, keepdims=True)
    safe_total = xp.where(total == 0, xp.ones_like(total), total)  # >= 1 unless x is all zero
    root = xp.sqrt(safe_total) if order == 2 else safe_total ** (1.0 / order)
    return xp.where(total == 0, xp.zeros_like(peak), peak * root)


def _numpy_sum_of_squares(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum of squares along ``axis`` via einsum: one pass, no temporary the size of ``x``."""
    letters = "abcdefghijklmnopqrstuvwxyz"[: x.ndim]
    kept = letters.replace(letters[axis], "")
    return np.expand_dims(np.einsum(f"{letters},{letters}->{kept}", x, x), axis)


def normalize(x: Any, axis: int = -1, order: float = 2) -> Any:
    """Scale ``x`` to unit ``order``-norm along ``axis``.

    Args:
        x: an array (NumPy, ``jax.Array``, traced, or a nested list) with at least one dimension.
        axis: the axis along which each vector is normalised (any axis, negative allowed).
        order: the norm order, any number >= 1 or ``np.inf`` (2 = Euclidean).

    Returns:
        An array of the same shape as ``x`` (1-D stays 1-D); NumPy in, NumPy out; JAX in, JAX
        out. Integer input is promoted to floating point. Zero vectors stay zero (no NaN).

    Raises:
        ValueError: ``order`` < 1, ``axis`` out of range, or a 0-d ``x``.
        TypeError: ``axis`` is not an int.

    Example:
        >>> normalize(np.array([3.0, 4.0]))
        array([0.6, 0.8])
        >>> normalize(jnp.array([[3.0, 0.0], [4.0, 0.0]]), axis=0)
        Array([[0.6, 0. ],
               [0.8, 0. ]], dtype=float32)
    """
    order = _checked_order(order)
    xp = jnp if _is_jax(x) else np
    x = xp.asarray(x)
    if x.ndim == 0:
        raise ValueError("normalize: `x` must have at least one dimension; got a scalar")
    axis = _checked_axis(axis, x.ndim)
    if not xp.issubdtype(x.dtype, xp.inexact):
        x = x.astype(xp.float64 if xp is np else jnp.result_type(float))
    norm = _norm(x, order, axis, xp)
    return x / xp.where(norm == 0, xp.ones_like(norm), norm)
