"""Models as users hold them: one view over Flax NNX, Flax Linen, Equinox and plain pytrees.

Every model-facing function (the summary, the graph, the data-parallel step) starts here. A
:class:`ModelView` splits a model into what a training step differentiates (``trainable``), the
arrays a model carries but does not train (``state``: Linen collections other than ``params``,
NNX ``BatchStat`` and RNG variables, Equinox integer arrays) and everything else (``static``:
NNX graph definitions, Linen module objects, Equinox static fields), with a pure ``apply`` over
the two array trees and a ``rebuild`` that gives back an object of the user's own kind.

flax and equinox are never imported here unless the object passed was made by them: a class
defined by ``flax.nnx`` can only exist once ``flax.nnx`` is in ``sys.modules``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax

from jkutils._pytree import path_names

__all__ = [
    "ModelView",
    "framework_of",
    "is_module",
    "view_of",
    "tree_paths",
    "NNX",
    "LINEN",
    "EQUINOX",
    "PYTREE",
]

NNX = "nnx"
LINEN = "linen"
EQUINOX = "equinox"
PYTREE = "pytree"


def _loaded(module_name: str) -> Any | None:
    """The module if the program has imported it already, else ``None`` (never imports)."""
    return sys.modules.get(module_name)


def _is_nnx_module(obj: Any) -> bool:
    nnx = _loaded("flax.nnx")
    return nnx is not None and isinstance(obj, nnx.Module)


def _is_linen_module(obj: Any) -> bool:
    linen = _loaded("flax.linen")
    return linen is not None and isinstance(obj, linen.Module)


def _is_equinox_module(obj: Any) -> bool:
    eqx = _loaded("equinox")
    return eqx is not None and isinstance(obj, eqx.Module)


def framework_of(obj: Any) -> str | None:
    """``"nnx"``, ``"linen"`` or ``"equinox"`` for a module of that framework, else ``None``.

    A bound Linen method (``module.apply``) counts as Linen.

    Example:
        >>> framework_of({"w": 1.0}) is None
        True
    """
    if _is_nnx_module(obj):
        return NNX
    if _is_linen_module(obj) or _is_linen_module(getattr(obj, "__self__", None)):
        return LINEN
    if _is_equinox_module(obj):
        return EQUINOX
    return None


@dataclasses.dataclass(frozen=True)
class ModelView:
    """A model split into trained arrays, carried state and static structure.

    Attributes:
      framework: one of ``"nnx"``, ``"linen"``, ``"equinox"``, ``"pytree"``.
      trainable: pytree of the arrays a step differentiates (framework meaning of trainable).
      state: pytree of arrays the model carries but does not train (may be empty).
      apply: ``apply(trainable, state, *args, **kwargs) -> (output, new_state)``, pure.
      rebuild: ``rebuild(trainable, state)`` -> the model in the user's own form (an NNX
        module, a Linen variables dict, an Equinox module, the pytree).
      module: the framework's module object (Linen: the unbound module; NNX/Equinox: the module
        as given), or ``None`` for a plain pytree.
      type_name: the class name of the model (``"CNN"``), or ``None`` for a plain pytree.
    """

    framework: str
    trainable: Any
    state: Any
    apply: Callable[..., tuple[Any, Any]]
    rebuild: Callable[[Any, Any], Any]
    module: Any = None
    type_name: str | None = None


# ----------------------------------------------------------------------------- NNX


def _nnx_view(module: Any) -> ModelView:
    """NNX: ``nnx.Param`` trainable; every other variable (``BatchStat``, RNG state) state."""
    from flax import nnx

    graphdef, trainable, state = nnx.split(module, nnx.Param, ...)

    def apply(trainable, state, *args, **kwargs):
        model = nnx.merge(graphdef, trainable, state, copy=True)
        out = model(*args, **kwargs)
        return out, nnx.state(model, nnx.Not(nnx.Param))

    def rebuild(trainable, state):
        return nnx.merge(graphdef, trainable, state, copy=True)

    return ModelView(NNX, trainable, state, apply, rebuild, module, type(module).__name__)


# ----------------------------------------------------------------------------- Linen


def _checked_linen_variables(variables: Any) -> Mapping:
    if not isinstance(variables, Mapping) or "params" not in variables:
        keys = list(variables) if isinstance(variables, Mapping) else type(variables).__name__
        raise TypeError(
            "A Linen model needs its variables, the dict `module.init(...)` returns, with a "
            f"'params' collection. Received: {keys!r}"
        )
    return variables


def _linen_view(module: Any, variables: Any) -> ModelView:
    """Linen: the ``params`` collection trainable; every other collection state."""
    variables = _checked_linen_variables(variables)
    trainable = variables["params"]
    state = {name: value for name, value in variables.items() if name != "params"}
    mutable = tuple(state)

    def apply(trainable, state, *args, **kwargs):
        if not mutable:
            return module.apply({"params": trainable}, *args, **kwargs), state
        out, updates = module.apply(
            {"params": trainable, **state}, *args, mutable=list(mutable), **kwargs
        )
        return out, {**state, **updates}

    def rebuild(trainable, state):
        return {"params": trainable, **state}

    return ModelView(LINEN, trainable, state, apply, rebuild, module, type(module).__name__)


def _unbound_linen(module: Any) -> tuple[Any, Any]:
    """A bound Linen module (``module.bind(variables)``) as (unbound module, variables)."""
    if module.scope is None:
        raise TypeError(
            f"A Linen module needs its variables: pass `module.bind(variables)`, or "
            f"`(variables, module.apply)`. Received the unbound module {type(module).__name__}."
        )
    return module.unbind()


# ----------------------------------------------------------------------------- Equinox


def _equinox_view(module: Any) -> ModelView:
    """Equinox: inexact (float, complex) arrays trainable, other arrays state, the rest static."""
    import equinox as eqx

    arrays, static = eqx.partition(module, eqx.is_array)
    trainable, state = eqx.partition(arrays, eqx.is_inexact_array)

    def rebuild(trainable, state):
        return eqx.combine(trainable, state, static)

    def apply(trainable, state, *args, **kwargs):
        return rebuild(trainable, state)(*args, **kwargs), state

    return ModelView(EQUINOX, trainable, state, apply, rebuild, module, type(module).__name__)


# ----------------------------------------------------------------------------- pytrees


def _pytree_view(params: Any, apply_fn: Callable | None) -> ModelView:
    """A pytree of arrays and a function ``apply_fn(params, *args)``: all of it trainable."""

    def apply(trainable, state, *args, **kwargs):
        if apply_fn is None:
            raise TypeError("This model has no function to call; pass `apply_fn`.")
        return apply_fn(trainable, *args, **kwargs), state

    def rebuild(trainable, state):
        return trainable

    return ModelView(PYTREE, params, {}, apply, rebuild)


def view_of(model: Any, apply_fn: Callable | None = None) -> ModelView:
    """The :class:`ModelView` of any model a user holds.

    Args:
      model: an ``nnx.Module``; an ``eqx.Module``; a bound Linen module
        (``module.bind(variables)``); Linen variables when ``apply_fn`` is ``module.apply``; or
        any pytree of arrays with ``apply_fn(params, *args)``.
      apply_fn: the function that applies a pytree ``model``; ``module.apply`` for Linen.

    Returns:
      The model's view.

    Raises:
      TypeError: for a module passed together with an ``apply_fn``, an unbound Linen module
        without variables, or Linen variables without a ``'params'`` collection.

    Example:
        >>> view = view_of({"w": 1.0}, lambda p, x: p["w"] * x)
        >>> view.apply(view.trainable, view.state, 3.0)[0]
        3.0
    """
    kind = framework_of(model)
    if kind is not None and apply_fn is not None:
        raise TypeError(
            f"{type(model).__name__} is a {kind} module and is called directly; pass it "
            f"without `apply_fn`. Received apply_fn={apply_fn!r}"
        )
    if kind == NNX:
        return _nnx_view(model)
    if kind == EQUINOX:
        return _equinox_view(model)
    if kind == LINEN:
        return _linen_view(*_unbound_linen(model))
    if framework_of(apply_fn) == LINEN:
        return _linen_view(apply_fn.__self__, model)
    return _pytree_view(model, apply_fn)


def is_module(obj: Any) -> bool:
    """Whether ``obj`` is a module of a framework we understand (NNX, Linen, Equinox)."""
    return framework_of(obj) is not None


def tree_paths(tree: Any) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, leaf)`` for every leaf, the path as strings with NNX's ``.value`` level removed.

    Example:
        >>> tree_paths({"a": {"b": 1}})
        [(('a', 'b'), 1)]
    """
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        names = path_names(path)
        if names and names[-1] == "value" and isinstance(path[-1], jax.tree_util.GetAttrKey):
            names = names[:-1]
        out.append((names, leaf))
    return out
