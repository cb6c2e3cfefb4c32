"""Keras's optimizer arguments for optax's optimizer factories.

``get("adam")`` and Keras optimizer configs (``{"class_name": "Adam", "config": {...}}``)
resolve to the optax factory wrapped so that it also takes Keras's argument names: ``lr`` (Keras
2) and ``learning_rate``, ``beta_1``/``beta_2``/``epsilon`` (optax's ``b1``/``b2``/``eps``),
``rho`` for RMSprop (optax's ``decay``). Keras bookkeeping that changes nothing (``name``, and
``clipnorm=None``, ``use_ema=False``... as in every Keras config) is dropped; a Keras-only
setting that would change the updates raises a ValueError naming the optax spelling, so nothing
is silently ignored. optax's own argument names pass through unchanged, and its defaults apply
to what is not given (optax's ``eps=1e-8`` where Keras's default ``epsilon`` is ``1e-7``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

# Keras optimizers that optax has under the same (lower-case) name.
KERAS_OPTIMIZERS = (
    "adadelta", "adagrad", "adam", "adamax", "adamw", "lamb", "lion", "nadam", "rmsprop", "sgd",
)

_RENAMES = {"lr": "learning_rate", "beta_1": "b1", "beta_2": "b2", "epsilon": "eps"}
_RENAMES_FOR = {"rmsprop": {"rho": "decay"}}

# Keras arguments that change nothing at these values (None: any value, e.g. a name).
_NO_OP_VALUES: dict[str, tuple[Any, ...] | None] = {
    "name": None,
    "jit_compile": None,
    "is_legacy_optimizer": None,
    "clipnorm": (None,),
    "global_clipnorm": (None,),
    "clipvalue": (None,),
    "weight_decay": (None, 0, 0.0),
    "use_ema": (False,),
    "ema_overwrite_frequency": (None,),
    "loss_scale_factor": (None, 1, 1.0),
    "gradient_accumulation_steps": (None, 1),
    "amsgrad": (False,),
    "decay": (0, 0.0),
}

# What to write instead of a Keras-only setting that changes the updates.
_OPTAX_SPELLING = {
    "clipnorm": "optax.chain(optax.clip_by_global_norm(v), opt) (the norm of all gradients "
    "together; Keras's clipnorm clips each array's)",
    "global_clipnorm": "optax.chain(optax.clip_by_global_norm(v), opt)",
    "clipvalue": "optax.chain(optax.clip(v), opt)",
    "weight_decay": "optax.adamw(..., weight_decay=v) or optax.chain(opt, "
    "optax.add_decayed_weights(v))",
    "use_ema": "optax.ema (on the parameters) or an EMA of params in your loop",
    "loss_scale_factor": "scale the loss in your loss function",
    "gradient_accumulation_steps": "optax.MultiSteps(opt, every_k_schedule=k)",
    "amsgrad": "optax.amsgrad(...)",
    "decay": "a schedule, e.g. optax.inverse_time_decay / optax.exponential_decay, as "
    "learning_rate",
}


def _is_no_op(value: Any, no_op_values: tuple[Any, ...] | None) -> bool:
    """Whether a Keras-only setting has a value that changes nothing (None: every value)."""
    return no_op_values is None or any(value is v or value == v for v in no_op_values)


def _optax_kwargs(factory: Callable, name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with Keras's names turned into ``factory``'s and no-op Keras settings dropped."""
    accepted = inspect.signature(factory).parameters
    renames = _RENAMES | _RENAMES_FOR.get(name, {})
    use_ema = bool(kwargs.get("use_ema", False))
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in accepted:
            target = key
        elif key in renames and renames[key] in accepted:
            target = renames[key]
        elif key == "ema_momentum" and not use_ema:
            continue
        elif key in _NO_OP_VALUES and _is_no_op(value, _NO_OP_VALUES[key]):
            continue
        else:
            hint = _OPTAX_SPELLING.get(key)
            instead = f" In optax write {hint}." if hint else ""
            raise ValueError(
                f"optax.{name} has no argument for Keras's `{key}`={value!r}.{instead} "
                f"optax.{name} takes: {', '.join(accepted)}."
            )
        if target in out:
            raise ValueError(
                f"`{key}` and `{target}` name the same argument of optax.{name}; give one. "
                f"Received: {dict(kwargs)!r}"
            )
        out[target] = value
    return out


def with_keras_arguments(factory: Callable, name: str) -> Callable:
    """``factory`` (the optax optimizer ``optax.<name>``) taking Keras's argument names too.

    Example:
        >>> import optax
        >>> adam = with_keras_arguments(optax.adam, "adam")
        >>> adam.__wrapped__ is optax.adam
        True
        >>> state = adam(lr=1e-3, beta_1=0.8, name="adam").init({"w": 0.0})
    """

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        return factory(*args, **_optax_kwargs(factory, name, kwargs))

    make.__name__ = make.__qualname__ = name
    make.__module__ = "optax"

    make.__doc__ = (
        f"optax.{name}, also taking Keras's argument names (lr, beta_1, beta_2, epsilon...).\n\n"
        + (factory.__doc__ or "")
    )
    return make


def keras_optimizer_factories(optax_module: Any) -> dict[int, Callable]:
    """``{id(optax factory): the factory with Keras's arguments}`` for Keras's optimizers."""
    return {
        id(getattr(optax_module, name)): with_keras_arguments(getattr(optax_module, name), name)
        for name in KERAS_OPTIMIZERS
        if hasattr(optax_module, name)
    }
