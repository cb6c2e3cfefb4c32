"""Seeding that returns keys: JAX has no global RNG, so seeds become explicit key trees.

The key for a stream is ``fold_in(root, crc32(path))`` where ``path`` is the stream's name (or
its ``/``-joined pytree path). Because each key depends only on the root key and its own path,
adding, removing or reordering streams never changes the others, and every process computes the
same keys (Python's ``hash`` is salted per process; crc32 is not).
"""

from __future__ import annotations

import random as _py_random
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jkutils._pytree import path_string

__all__ = ["set_random_seed", "key_tree", "seed_from_key"]

_SEED_LIMIT = 2**32


def _checked_seed(seed: Any) -> int:
    """Return ``seed`` as a Python int in [0, 2**32), or raise naming what was wrong."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(
            f"`seed` must be an integer (Python int or NumPy integer). "
            f"Received: seed={seed!r} (of type {type(seed).__name__})"
        )
    seed = int(seed)
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"`seed` must be in [0, 2**32). Received: seed={seed}")
    return seed


def checked_key(key: Any, argname: str = "key") -> jax.Array:
    """Return ``key`` as one typed PRNG key; legacy ``uint32[2]`` keys are wrapped.

    Raises:
        TypeError: ``key`` is not a PRNG key.
        ValueError: ``key`` is an array of several keys (from ``jax.random.split``).
    """
    if isinstance(key, jax.Array | np.ndarray):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            return _single(key, argname)
        if key.dtype == np.uint32 and key.shape[-1:] == (2,):
            return _single(jax.random.wrap_key_data(key), argname)
    raise TypeError(
        f"`{argname}` must be a JAX PRNG key from jax.random.key(...) (or a legacy "
        f"jax.random.PRNGKey). Received: {argname}={key!r} (of type {type(key).__name__})"
    )


def _single(key: jax.Array, argname: str) -> jax.Array:
    if key.shape != ():
        raise ValueError(
            f"`{argname}` must be a single PRNG key; received an array of keys of shape "
            f"{key.shape}; pass one of them, e.g. {argname}[0]"
        )
    return key


def _stable_hash(name: str) -> np.uint32:
    """A 32-bit hash of ``name`` that is the same in every process and on every run."""
    return np.uint32(zlib.crc32(name.encode("utf-8")))


def _named_key(root: jax.Array, name: str) -> jax.Array:
    return jax.random.fold_in(root, _stable_hash(name))


def _check_no_collisions(names: list[str]) -> None:
    seen: dict[np.uint32, str] = {}
    for name in names:
        h = _stable_hash(name)
        if h in seen and seen[h] != name:
            raise ValueError(
                f"key_tree: stream names {seen[h]!r} and {name!r} share a 32-bit hash and would "
                "get the same key; rename one of them"
            )
        seen[h] = name


def _check_distinct_paths(paths: list[str], structure: Any) -> None:
    """Raise if two leaves share a ``/``-joined path (``{"a/b": ..., "a": {"b": ...}}``), which
    would give them the same key."""
    if len(set(paths)) != len(paths):
        shared = sorted({p for p in paths if paths.count(p) > 1})
        raise ValueError(
            f"key_tree: several leaves of `structure` have the path(s) {shared} once joined "
            f"with '/' and would get the same key; rename a key. Received: structure={structure!r}"
        )


def _is_name_sequence(structure: Any) -> bool:
    return (
        isinstance(structure, Sequence)
        and not isinstance(structure, str)
        and len(structure) > 0
        and all(isinstance(name, str) for name in structure)
    )


def key_tree(key: jax.Array, structure: Any) -> Any:
    """Derive one independent key per name or per pytree leaf.

    Args:
        key: the root key (typed ``jax.random.key`` or a legacy ``PRNGKey``).
        structure: a sequence of stream names, giving a ``dict`` name -> key; or any pytree,
            giving a pytree of the same structure with a key at every leaf (``None`` counts as
            a leaf, so ``{"params": None, "dropout": None}`` works).

    Returns:
        A dict or pytree of typed keys. The key at a name/path depends only on ``key`` and that
        name/path, so adding a stream never changes the others.

    Raises:
        TypeError: ``key`` is not a PRNG key.
        ValueError: duplicate names, two leaves with the same ``/``-joined path (``"a/b"`` and
            ``"a"`` -> ``"b"``), or two names whose 32-bit hashes collide.

    Example:
        >>> keys = key_tree(jax.random.key(0), ["params", "dropout"])
        >>> sorted(keys)
        ['dropout', 'params']
        >>> tree = key_tree(jax.random.key(0), {"encoder": [None, None], "decoder": None})
    """
    root = checked_key(key)
    if _is_name_sequence(structure):
        names = list(structure)
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"key_tree: duplicate stream names {dupes} in structure={names!r}")
        _check_no_collisions(names)
        return {name: _named_key(root, name) for name in names}
    leaves, treedef = jax.tree_util.tree_flatten_with_path(structure, is_leaf=lambda x: x is None)
    paths = [path_string(path) for path, _ in leaves]
    _check_distinct_paths(paths, structure)
    _check_no_collisions(paths)
    return jax.tree_util.tree_unflatten(treedef, [_named_key(root, p) for p in paths])


def seed_from_key(key: jax.Array) -> int:
    """A deterministic Python int in [0, 2**32) drawn from ``key``, for APIs that take int seeds.

    grain's ``shuffle``/``IndexSampler`` want such ints (NumPy integers are rejected there).
    The key must be concrete (not traced inside ``jit``).

    Example:
        >>> seed = seed_from_key(jax.random.key(0))
        >>> 0 <= seed < 2**32
        True
    """
    root = checked_key(key)
    if isinstance(root, jax.core.Tracer):
        raise TypeError("seed_from_key needs a concrete key; it cannot run inside jax.jit")
    return int(jax.random.bits(root, dtype=jnp.uint32))


def _checked_names(names: Any) -> list[str] | None:
    """``names`` as a list of stream names (a single string is one name), or None."""
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    if isinstance(names, Sequence) and all(isinstance(name, str) for name in names):
        return list(names)
    raise TypeError(
        "`names` must be a stream name or a sequence of stream names (strings); "
        f"received names={names!r}"
    )


def set_random_seed(seed: int, names: str | Sequence[str] | None = None) -> Any:
    """Seed Python's ``random`` and NumPy's global RNG, and return JAX keys for ``seed``.

    Args:
        seed: an int (Python or NumPy) in [0, 2**32).
        names: optional stream names (a single string is one name); when given, a dict
            name -> key (see :func:`key_tree`) is returned instead of the root key.

    Returns:
        ``jax.random.key(seed)``, or ``key_tree(jax.random.key(seed), names)``.

    Raises:
        ValueError: ``seed`` is not an integer (bools included) or is out of range.
        TypeError: ``names`` is neither a string nor a sequence of strings.

    Example:
        >>> keys = set_random_seed(42, names=["params", "dropout", "shuffle"])
        >>> params_key = keys["params"]
    """
    seed = _checked_seed(seed)
    names = _checked_names(names)
    _py_random.seed(seed)
    np.random.seed(seed)
    root = jax.random.key(seed)
    if names is None:
        return root
    return key_tree(root, names) if names else {}
