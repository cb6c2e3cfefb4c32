"""Row arithmetic shared by the data modules: pytrees of equal-length arrays, index checks with
NumPy semantics, row selection that keeps the array library, and key-driven row orders.

Everything here works on whole index arrays at once; nothing loops over rows in Python.
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jkutils._pytree import leaf_label
from jkutils.random import checked_key


def array_leaves(tree: Any, argname: str) -> list[tuple[str, Any]]:
    """Return ``(path, leaf)`` pairs of ``tree``, checking every leaf is an array with a row axis.

    Raises:
        TypeError: a leaf is not a NumPy or JAX array, or ``tree`` has no leaves.
        ValueError: a leaf is a 0-d array (it has no rows).
    """
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise TypeError(
            f"`{argname}` must be an array or a pytree (tuple, list, dict) of arrays; it has no "
            f"arrays. Received: {argname}={tree!r}"
        )
    for path, leaf in leaves:
        if not isinstance(leaf, np.ndarray | jax.Array):
            raise TypeError(
                f"`{argname}` must hold NumPy or JAX arrays; the leaf at {leaf_label(path)} is "
                f"{type(leaf).__name__} ({leaf!r:.60}). Convert it with np.asarray first."
            )
        if leaf.ndim == 0:
            raise ValueError(
                f"`{argname}` leaves need a leading row axis; the leaf at {leaf_label(path)} "
                f"is a 0-d array ({leaf!r:.60})"
            )
    return [(leaf_label(path), leaf) for path, leaf in leaves]


def is_array_tree(tree: Any) -> bool:
    """True when ``tree`` is a non-empty pytree whose leaves are all NumPy or JAX arrays."""
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(leaves) and all(isinstance(leaf, np.ndarray | jax.Array) for leaf in leaves)


def common_length(tree: Any, argname: str) -> int:
    """The shared leading dimension of every array in ``tree``.

    Raises:
        TypeError, ValueError: as :func:`array_leaves`, or when two leaves differ in length
            (the message names both paths and lengths).
    """
    leaves = array_leaves(tree, argname)
    first_path, first = leaves[0]
    for path, leaf in leaves[1:]:
        if leaf.shape[0] != first.shape[0]:
            raise ValueError(
                f"every array in `{argname}` must have the same number of rows: "
                f"{first_path} has {first.shape[0]} but {path} has {leaf.shape[0]}"
            )
    return int(first.shape[0])


def _take(leaf: Any, rows: np.ndarray | slice) -> Any:
    if isinstance(rows, slice):
        return leaf[rows]
    if isinstance(leaf, np.ndarray):
        return np.take(leaf, rows, axis=0)
    return jnp.take(leaf, jnp.asarray(rows), axis=0)


def take_rows(tree: Any, rows: np.ndarray | slice) -> Any:
    """Select ``rows`` (an index array or a slice) from every leaf, keeping each leaf's library.

    A slice gives views of NumPy leaves; an index array gives copies.
    """
    return jax.tree.map(lambda leaf: _take(leaf, rows), tree)


def to_numpy_tree(tree: Any) -> Any:
    """The same pytree with every leaf as a NumPy array (JAX arrays are copied to the host)."""
    return jax.tree.map(np.asarray, tree)


def key_kind(key: Any, owner: str) -> str:
    """How a row key indexes: ``"slice"``, ``"row"`` (one integer) or ``"rows"`` (an array-like).

    Raises:
        TypeError: ``key`` is a tuple (only the row axis can be indexed).
    """
    if isinstance(key, slice):
        return "slice"
    if isinstance(key, tuple):
        raise TypeError(
            f"{owner} indexes rows only; index the other axes on the result "
            f"(x[rows][:, cols]). Received key={key!r}"
        )
    return "row" if np.ndim(key) == 0 and not isinstance(key, list) else "rows"


def checked_int(value: Any, argname: str) -> int:
    """``value`` as a Python int; a Python or NumPy integer, not a bool.

    Raises:
        TypeError: ``value`` is not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{argname}` must be an int. Received: {argname}={value!r}")
    return int(value)


def checked_row(index: Any, length: int) -> int:
    """``index`` as a row number in [0, length), with negative values counting from the end.

    Raises:
        TypeError: ``index`` is not an integer.
        IndexError: ``index`` is outside ``[-length, length)``.
    """
    if isinstance(index, bool | np.bool_):
        raise TypeError(f"row index must be an integer, not a bool. Received: {index!r}")
    try:
        row = operator.index(index)
    except TypeError:
        raise TypeError(
            f"row index must be an integer. Received: {index!r} (of type {type(index).__name__})"
        ) from None
    if not -length <= row < length:
        raise IndexError(f"row index {row} is out of range for {length} rows")
    return row + length if row < 0 else row


def checked_rows(indices: Any, length: int) -> np.ndarray:
    """``indices`` (ints in any order, repeats allowed, or a boolean mask) as an int64 array of
    rows in [0, length); negative values count from the end.

    Raises:
        TypeError: the indices are not integers or booleans.
        IndexError: an index is out of range, or a mask has the wrong length.
    """
    rows = np.asarray(indices)
    if rows.dtype == np.bool_:
        if rows.shape != (length,):
            raise IndexError(
                f"boolean row mask must have shape ({length},); received shape {rows.shape}"
            )
        return np.flatnonzero(rows)
    if rows.size == 0:
        return np.zeros(rows.shape, np.int64)
    if not np.issubdtype(rows.dtype, np.integer):
        raise TypeError(
            f"row indices must be integers or a boolean mask. Received dtype {rows.dtype} "
            f"({indices!r:.60})"
        )
    rows = rows.astype(np.int64, copy=False)
    low, high = int(rows.min()), int(rows.max())
    if low < -length or high >= length:
        bad = low if low < -length else high
        raise IndexError(f"row index {bad} is out of range for {length} rows")
    return np.where(rows < 0, rows + length, rows) if low < 0 else rows


def key_bits(key: Any, argname: str = "key") -> np.ndarray:
    """128 bits drawn from a JAX key, as four uint32 words (a NumPy seed that needs no JAX).

    Raises:
        TypeError: ``key`` is not a JAX PRNG key.
    """
    return np.asarray(jax.random.bits(checked_key(key, argname), (4,), jnp.uint32))


def key_rng(key: Any, argname: str = "key") -> np.random.Generator:
    """A NumPy generator seeded from 128 bits drawn from a JAX key (same key, same stream).

    Raises:
        TypeError: ``key`` is not a JAX PRNG key.
    """
    return np.random.default_rng(key_bits(key, argname))


def random_order(key: Any, length: int, argname: str = "key") -> np.ndarray:
    """A permutation of ``range(length)`` determined by ``key`` alone."""
    return key_rng(key, argname).permutation(length)
