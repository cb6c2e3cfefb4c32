"""Pytree helpers shared by several modules."""

from __future__ import annotations

import jax


def path_names(path: tuple) -> tuple[str, ...]:
    """The entries of a pytree key path as strings: dict keys, attribute names, indices.

    Example:
        >>> import jax
        >>> path_names(jax.tree_util.tree_flatten_with_path({"a": [1]})[0][0][0])
        ('a', '0')
    """
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
        else:
            names.append(str(entry))
    return tuple(names)


def path_string(path: tuple) -> str:
    """``/``-joined readable form of a pytree key path, e.g. ``params/dense/0``.

    Example:
        >>> import jax
        >>> [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": [1]})[0]]
        ['a/0']
    """
    return "/".join(path_names(path))


def leaf_label(path: tuple) -> str:
    """``jax.tree_util.keystr`` of a leaf path (``['x']``, ``[0]``), or ``<root>`` for a bare leaf.

    Used in error messages that name the offending leaf of a pytree argument.

    Example:
        >>> leaf_label(()), leaf_label(jax.tree_util.tree_flatten_with_path({"x": 1})[0][0][0])
        ('<root>', "['x']")
    """
    return jax.tree_util.keystr(path) or "<root>"
