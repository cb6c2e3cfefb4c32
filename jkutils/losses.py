"""Keras's loss functions with Keras's semantics, for ``get("mse")`` and Keras loss configs.

Each takes ``(y_true, y_pred)`` in that order (optax's losses take predictions first) and
returns one loss per example, reduced over the last axis as Keras's functions do (average it
yourself over the batch). The cross-entropies take **probabilities** by default, as Keras's do
(``from_logits=False``: the predictions are clipped to ``[1e-7, 1 - 1e-7]`` before the log);
pass ``from_logits=True`` for raw scores, which is what optax's ``softmax_cross_entropy`` and
``sigmoid_binary_cross_entropy`` take and is the numerically better choice.

Example:
    >>> import jax.numpy as jnp
    >>> float(mean_squared_error(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
    2.0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "mean_squared_error",
    "mean_absolute_error",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
]

# Keras's loss-object reductions of the per-example losses.
_REDUCTIONS: dict[Any, Callable[[jax.Array], jax.Array]] = {
    "sum_over_batch_size": jnp.mean,
    "mean": jnp.mean,
    "sum": jnp.sum,
    "none": lambda losses: losses,
    None: lambda losses: losses,
}
# Keras loss-object settings that change nothing at these values.
_NO_OP_SETTINGS = {"name": None, "dtype": None, "ignore_class": (None,)}

# Keras's backend epsilon: probabilities are clipped to [_EPSILON, 1 - _EPSILON] before the log.
_EPSILON = 1e-7


def _clipped(probabilities: jax.Array) -> jax.Array:
    return jnp.clip(probabilities, _EPSILON, 1.0 - _EPSILON)


def _log_probabilities(y_pred: Any, from_logits: bool, axis: int) -> jax.Array:
    """Log-probabilities over ``axis`` from logits, or from renormalized, clipped probabilities."""
    y_pred = jnp.asarray(y_pred)
    if from_logits:
        return jax.nn.log_softmax(y_pred, axis=axis)
    return jnp.log(_clipped(y_pred / jnp.sum(y_pred, axis=axis, keepdims=True)))


def mean_squared_error(y_true: Any, y_pred: Any) -> jax.Array:
    """Mean of ``(y_true - y_pred) ** 2`` over the last axis (Keras's ``"mse"``).

    Example:
        >>> float(mean_squared_error([0.0, 0.0], [1.0, 3.0]))
        5.0
    """
    return jnp.mean(jnp.square(jnp.asarray(y_pred) - jnp.asarray(y_true)), axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> jax.Array:
    """Mean of ``|y_true - y_pred|`` over the last axis (Keras's ``"mae"``).

    Example:
        >>> float(mean_absolute_error([0.0, 0.0], [1.0, -3.0]))
        2.0
    """
    return jnp.mean(jnp.abs(jnp.asarray(y_pred) - jnp.asarray(y_true)), axis=-1)


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """Cross-entropy between one-hot (or soft) labels and predicted class probabilities.

    Args:
        y_true: One-hot or soft labels, shape ``(..., classes)``.
        y_pred: Probabilities (default) or, with ``from_logits=True``, raw scores.
        from_logits: Whether ``y_pred`` are logits (optax's ``softmax_cross_entropy`` input).
        label_smoothing: Mixes ``y_true`` with the uniform distribution by this amount.
        axis: The class axis.

    Example:
        >>> round(float(categorical_crossentropy([0.0, 1.0], [0.5, 0.5])), 4)
        0.6931
    """
    y_true = jnp.asarray(y_true, dtype=jnp.result_type(float))
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]
    return -jnp.sum(y_true * _log_probabilities(y_pred, from_logits, axis), axis=axis)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, axis: int = -1
) -> jax.Array:
    """Cross-entropy between integer labels and predicted class probabilities.

    Args:
        y_true: Integer class indices, shape ``y_pred.shape`` without the class axis.
        y_pred: Probabilities (default) or, with ``from_logits=True``, raw scores.
        from_logits: Whether ``y_pred`` are logits (optax's
            ``softmax_cross_entropy_with_integer_labels`` input).
        axis: The class axis.

    Example:
        >>> round(float(sparse_categorical_crossentropy(1, [0.5, 0.5])), 4)
        0.6931
    """
    log_probabilities = _log_probabilities(y_pred, from_logits, axis)
    labels = jnp.expand_dims(jnp.asarray(y_true, dtype=jnp.int32), axis)
    return -jnp.squeeze(jnp.take_along_axis(log_probabilities, labels, axis=axis), axis)


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """Binary cross-entropy, averaged over ``axis`` (Keras's ``"binary_crossentropy"``).

    Args:
        y_true: Labels in ``[0, 1]``.
        y_pred: Probabilities (default) or, with ``from_logits=True``, raw scores (optax's
            ``sigmoid_binary_cross_entropy`` input).
        from_logits: Whether ``y_pred`` are logits.
        label_smoothing: Pulls the labels towards 0.5 by this amount.
        axis: The axis averaged over.

    Example:
        >>> round(float(binary_crossentropy([1.0], [0.5])), 4)
        0.6931
    """
    y_true = jnp.asarray(y_true, dtype=jnp.result_type(float))
    y_pred = jnp.asarray(y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        log_p, log_not_p = jax.nn.log_sigmoid(y_pred), jax.nn.log_sigmoid(-y_pred)
    else:
        log_p, log_not_p = jnp.log(_clipped(y_pred)), jnp.log(_clipped(1.0 - y_pred))
    return -jnp.mean(y_true * log_p + (1.0 - y_true) * log_not_p, axis=axis)


def from_keras_config(loss: Callable, config: Mapping[str, Any]) -> Callable:
    """A Keras loss object's config as ``fn(y_true, y_pred)`` returning the reduced loss.

    ``reduction`` is Keras's: ``"sum_over_batch_size"`` (the default) averages the per-example
    losses, ``"sum"`` adds them, ``"none"`` or ``None`` keeps them; ``name`` and ``dtype`` are
    dropped; the other settings (``from_logits``, ``label_smoothing``, ``axis``) are passed to
    ``loss``. A setting ``loss`` does not take raises ``ValueError``.

    Example:
        >>> ce = from_keras_config(categorical_crossentropy, {"from_logits": True})
        >>> round(float(ce([[0.0, 1.0]], [[0.0, 0.0]])), 4)
        0.6931
    """
    options = dict(config)
    reduction = options.pop("reduction", "sum_over_batch_size")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"`reduction` must be one of {sorted(map(str, _REDUCTIONS))}. "
            f"Received: reduction={reduction!r}"
        )
    for key, no_op in _NO_OP_SETTINGS.items():
        if key in options and (no_op is None or options[key] in no_op):
            del options[key]
    accepted = list(inspect.signature(loss).parameters)[2:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"jkutils.losses.{loss.__name__} has no setting {unknown[0]!r} "
            f"(={options[unknown[0]]!r}); it takes: {', '.join(accepted) or 'none'}"
        )
    reduce = _REDUCTIONS[reduction]

    def reduced_loss(y_true: Any, y_pred: Any) -> jax.Array:
        return reduce(loss(y_true, y_pred, **options))

    reduced_loss.__name__ = reduced_loss.__qualname__ = loss.__name__
    return reduced_loss
