"""Packing and unpacking ``(x, y, sample_weight)`` tuples, as Keras 3 does.

Pure structure operations: they only look at Python containers, so they run unchanged inside
``jax.jit`` on traced arrays.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pack_x_y_sample_weight", "unpack_x_y_sample_weight"]


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
    """Pack user data into the tuple shape a training loop expects.

    Args:
        x: features.
        y: targets, or None.
        sample_weight: per-sample weights, or None. Keras 3 ignores it when ``y`` is None and
            so do we.

    Returns:
        ``x`` itself when ``y`` is None and ``x`` is not a tuple or list, ``(x,)`` when ``y`` is
        None and ``x`` is one, ``(x, y)`` without weights, else ``(x, y, sample_weight)``.

    Example:
        >>> pack_x_y_sample_weight(1, 2)
        (1, 2)
        >>> pack_x_y_sample_weight([1, 2])
        ([1, 2],)
    """
    if y is None:
        return (x,) if isinstance(x, tuple | list) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Unpack ``data`` into ``(x, y, sample_weight)``, filling absent parts with None.

    Args:
        data: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; lists count as tuples;
            anything that is not a tuple or list is ``x`` alone.

    Returns:
        A 3-tuple ``(x, y, sample_weight)``.

    Raises:
        ValueError: a tuple or list of length 0 or more than 3.

    Example:
        >>> unpack_x_y_sample_weight((1, 2))
        (1, 2, None)
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if 1 <= len(data) <= 3:
        return (*data, *(None,) * (3 - len(data)))
    raise ValueError(
        "Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
        f"found: {data}"
    )
