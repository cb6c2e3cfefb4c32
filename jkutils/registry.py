"""Custom objects: scopes, registration, name resolution and JSON-safe configs.

Code refers to objects by name (``"relu"``, ``"adam"``, ``"my_pkg>MyLayer"``); this module turns
names back into objects and objects into JSON-safe configs. A name is looked up, in order, in

1. the active :class:`CustomObjectScope` stack (nested scopes merge, the inner one wins),
2. the global custom objects (:func:`get_custom_objects`, filled by :func:`register_serializable`),
3. the ``custom_objects`` mapping passed to the call, if any,
4. the JAX and optax namespaces: activations (``jax.nn``), initializers
   (``jax.nn.initializers``), optimizers (optax's optimizer aliases) and losses (``optax.losses``).

Scopes live in a :class:`contextvars.ContextVar`, so a scope entered in one thread or asyncio task
is never seen by another. The namespace tables are built once, on first use.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import inspect
import math
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CustomObjectScope",
    "custom_object_scope",
    "get_custom_objects",
    "register_serializable",
    "register_keras_serializable",
    "get_registered_name",
    "get_registered_object",
    "get",
    "serialize",
    "deserialize",
    "serialize_keras_object",
    "deserialize_keras_object",
]

_T = TypeVar("_T")
_MISSING = object()

# Global registry: name -> object, and id(object) -> (object, name). Keying the reverse map by
# identity works for unhashable objects and never calls a user-defined ``__eq__``.
_GLOBAL_CUSTOM_OBJECTS: dict[str, Any] = {}
_GLOBAL_CUSTOM_NAMES: dict[int, tuple[Any, str]] = {}
_REGISTRY_LOCK = threading.Lock()

# ----------------------------------------------------------------------------------------------
# Scopes
# ----------------------------------------------------------------------------------------------


# A scope frame is a tuple (objects, parent_frame, owner_scope): the merged objects visible inside
# the scope, the frame it replaced and the scope that entered it. Frames are never mutated.
_NO_OBJECTS: Mapping[str, Any] = types.MappingProxyType({})
_ROOT_FRAME: tuple = (_NO_OBJECTS, None, None)
_SCOPE: contextvars.ContextVar[tuple] = contextvars.ContextVar(
    "jkutils_custom_object_scope", default=_ROOT_FRAME
)


def _checked_mapping(value: Any, argname: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping (None gives an empty one), else a TypeError naming it."""
    if value is None:
        return _NO_OBJECTS
    if type(value) is dict or isinstance(value, Mapping):
        return value
    raise TypeError(
        f"`{argname}` must be a dict mapping names (str) to objects, or None. "
        f"Received: {argname}={value!r} (of type {type(value).__name__})"
    )


def _checked_scope_objects(value: Any, argname: str) -> Mapping[str, Any]:
    """``value``, the scope argument ``argname``, if it maps str names to objects; else raise."""
    if type(value) is dict:  # the common case, checked without the generic machinery below
        for key in value:
            if type(key) is not str:
                break
        else:
            return value
    value = _checked_mapping(value, argname)
    for key in value:
        if not isinstance(key, str):
            raise TypeError(
                f"`{argname}` must map str names to objects. Received non-str key {key!r} "
                f"(of type {type(key).__name__})"
            )
    return value


def _scope_objects() -> Mapping[str, Any]:
    """The custom objects visible in the current thread / asyncio task's scopes."""
    return _SCOPE.get()[0]


class CustomObjectScope:
    """Makes custom objects resolvable by name inside a ``with`` block.

    Several dicts may be given; later ones win over earlier ones. Nested scopes merge: inside an
    inner scope the outer scope's names stay visible unless the inner scope redefines them. On
    exit (also when the body raises) the previous scope is restored. Scopes are held in a
    ``contextvars.ContextVar``: each thread starts with no scope, and an asyncio task sees the
    scopes that were active when it was created plus the ones it enters itself, never those of
    other tasks.

    Args:
        *args: dicts of ``{name: object}`` (``None`` entries are ignored).
        custom_objects: one more dict, after ``args``: Keras 3's spelling
            ``CustomObjectScope(custom_objects={...})`` works too.

    Example:
        >>> def swish2(x):
        ...     return 2 * x
        >>> with CustomObjectScope({"swish2": swish2}):
        ...     get("swish2") is swish2
        True
    """

    def __init__(
        self, *args: Mapping[str, Any] | None, custom_objects: Mapping[str, Any] | None = None
    ) -> None:
        named = [(f"custom_objects[{i}]", objects) for i, objects in enumerate(args)]
        named.append(("custom_objects", custom_objects))
        merged: dict[str, Any] = {}
        for argname, objects in named:
            if objects is not None:
                merged.update(_checked_scope_objects(objects, argname))
        self._objects = merged  # never mutated: frames may share it

    @property
    def custom_objects(self) -> dict[str, Any]:
        """A copy of the objects this scope adds (its dicts merged, later ones winning)."""
        return dict(self._objects)

    def __enter__(self) -> CustomObjectScope:
        outer = _SCOPE.get()
        objects = {**outer[0], **self._objects} if outer[0] else self._objects
        _SCOPE.set((objects, outer, self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _, parent, owner = _SCOPE.get()
        if owner is not self:
            raise RuntimeError(
                "CustomObjectScope exited out of order: the innermost active scope in this "
                "thread / task is not the one being exited"
            )
        _SCOPE.set(parent)


custom_object_scope = CustomObjectScope


def get_custom_objects() -> dict[str, Any]:
    """Return the live global dict of custom objects (scoped objects are not in it).

    Returns:
        The dict itself; changes to it are seen by every later lookup, in every thread.

    Example:
        >>> def my_loss(y, p):
        ...     return (y - p) ** 2
        >>> get_custom_objects()["my_loss"] = my_loss
        >>> get("my_loss") is my_loss
        True
        >>> del get_custom_objects()["my_loss"]
    """
    return _GLOBAL_CUSTOM_OBJECTS


# ----------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------


def _checked_name_part(value: Any, argname: str) -> str:
    """Return ``value`` if it is a usable part of a ``package>name`` key, else raise."""
    if not isinstance(value, str):
        hint = ""
        if argname == "package" and callable(value):
            hint = " (write `@register_serializable()` with parentheses, not without)"
        raise TypeError(
            f"`{argname}` must be a string{hint}. "
            f"Received: {argname}={value!r} (of type {type(value).__name__})"
        )
    if not value or ">" in value:
        raise ValueError(
            f"`{argname}` must be a non-empty string without '>' (it becomes part of the "
            f"'package>name' key). Received: {argname}={value!r}"
        )
    return value


def _object_name(obj: Any, problem: str = "has no registered name and no `__name__`") -> str:
    """``obj.__name__``, or a TypeError saying what is missing when it has none."""
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"`obj` {problem}. Received: obj={obj!r} (of type {type(obj).__name__})")
    return name


def _is_redefinition(old: Any, new: Any) -> bool:
    """Whether ``new`` is the same definition as ``old`` run again (module reload, notebook)."""
    where = ("__module__", "__qualname__")
    old_where = tuple(getattr(old, attr, None) for attr in where)
    return None not in old_where and old_where == tuple(getattr(new, attr, None) for attr in where)


def _register(key: str, obj: Any) -> None:
    """Store ``obj`` under ``key``; a different object already there is an error."""
    with _REGISTRY_LOCK:
        existing = _GLOBAL_CUSTOM_OBJECTS.get(key, _MISSING)
        if existing is not _MISSING and existing is not obj:
            if not _is_redefinition(existing, obj):
                raise ValueError(
                    f"Cannot register {obj!r} under the name {key!r}: that name is already "
                    f"taken by {existing!r}. Pass another `package` or `name` to "
                    "register_serializable."
                )
            _GLOBAL_CUSTOM_NAMES.pop(id(existing), None)
        _GLOBAL_CUSTOM_OBJECTS[key] = obj
        _GLOBAL_CUSTOM_NAMES[id(obj)] = (obj, key)


def register_serializable(
    package: str = "Custom", name: str | None = None
) -> Callable[[_T], _T]:
    """Decorator registering a class or function under the name ``"package>name"``.

    Registered objects are found by :func:`get`, :func:`get_registered_object` and
    :func:`deserialize` without a scope, and :func:`serialize` writes their registered name.
    Classes must define ``get_config()``. Registering a different object under a name that is
    taken raises ValueError; running the same definition again (a module reload, a re-run
    notebook cell: same module and qualified name) replaces the old one.

    Args:
        package: first part of the key.
        name: second part of the key; defaults to the object's ``__name__``.

    Returns:
        A decorator that registers its argument and returns it unchanged.

    Example:
        >>> @register_serializable("docs")
        ... def halve(x):
        ...     return x / 2
        >>> get_registered_name(halve)
        'docs>halve'
    """
    package = _checked_name_part(package, "package")
    if name is not None:
        name = _checked_name_part(name, "name")

    def decorator(obj: _T) -> _T:
        if name is None:
            key = f"{package}>{_object_name(obj, 'has no `__name__`: pass `name=`')}"
        else:
            key = f"{package}>{name}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(
                "Cannot register a class that does not have a get_config() method. "
                f"Received: {obj!r}"
            )
        _register(key, obj)
        return obj

    return decorator


register_keras_serializable = register_serializable


def _registered_name_or_none(obj: Any) -> str | None:
    """The name ``obj`` itself (by identity) was registered under, or None."""
    entry = _GLOBAL_CUSTOM_NAMES.get(id(obj))
    return entry[1] if entry is not None and entry[0] is obj else None


def get_registered_name(obj: Any) -> str:
    """Return the name ``obj`` was registered under, else its ``__name__``.

    Args:
        obj: a class or function.

    Returns:
        ``"package>name"`` for registered objects, ``obj.__name__`` otherwise.

    Raises:
        TypeError: ``obj`` is not registered and has no ``__name__``.

    Example:
        >>> import jax
        >>> get_registered_name(jax.nn.relu)
        'relu'
    """
    registered = _registered_name_or_none(obj)
    return registered if registered is not None else _object_name(obj)


def _custom_lookup(
    name: str,
    custom_objects: Mapping[str, Any] | None = None,
    module_objects: Mapping[str, Any] | None = None,
) -> Any:
    """The custom object called ``name`` (scope, global, arguments in that order) or _MISSING."""
    found = _SCOPE.get()[0].get(name, _MISSING)
    if found is _MISSING:
        found = _GLOBAL_CUSTOM_OBJECTS.get(name, _MISSING)
    if found is _MISSING and custom_objects:
        found = custom_objects.get(name, _MISSING)
    if found is _MISSING and module_objects:
        found = module_objects.get(name, _MISSING)
    return found


def _checked_name(name: Any, argname: str = "name") -> str:
    """``name`` if it is a string, else a TypeError naming the argument."""
    if not isinstance(name, str):
        raise TypeError(
            f"`{argname}` must be a string. "
            f"Received: {argname}={name!r} (of type {type(name).__name__})"
        )
    return name


def get_registered_object(
    name: str,
    custom_objects: Mapping[str, Any] | None = None,
    module_objects: Mapping[str, Any] | None = None,
) -> Any:
    """Return the custom object called ``name``, or None.

    Looks in the active scopes, then the global custom objects, then ``custom_objects``, then
    ``module_objects`` (Keras's order). The JAX/optax namespaces are not searched; use
    :func:`get` for that.

    Args:
        name: the name to look up, e.g. ``"my_pkg>MyLayer"``.
        custom_objects: extra ``{name: object}`` to search.
        module_objects: a last ``{name: object}`` to search (e.g. a module's ``vars()``).

    Returns:
        The object, or None when no mapping has ``name``.

    Example:
        >>> get_registered_object("nowhere>nothing") is None
        True
    """
    name = _checked_name(name)
    custom_objects = _checked_mapping(custom_objects, "custom_objects")
    module_objects = _checked_mapping(module_objects, "module_objects")
    found = _custom_lookup(name, custom_objects, module_objects)
    return None if found is _MISSING else found


# ----------------------------------------------------------------------------------------------
# Built-in names: jax.nn, jax.nn.initializers, optax, optax.losses
# ----------------------------------------------------------------------------------------------

_KINDS = ("activation", "initializer", "optimizer", "loss")
_KIND_SPELLINGS = {kind: kind for kind in _KINDS} | {
    "activations": "activation",
    "initializers": "initializer",
    "optimizers": "optimizer",
    "losses": "loss",
}
_KIND_NAMESPACES = {
    "activation": "jax.nn",
    "initializer": "jax.nn.initializers",
    "optimizer": "optax",
    "loss": "optax.losses",
}
# Modules that name a kind inside a config's "module" field (ours, and Keras's for its configs).
_MODULE_KINDS = {module: kind for kind, module in _KIND_NAMESPACES.items()} | {
    "keras.activations": "activation",
    "keras.initializers": "initializer",
    "keras.optimizers": "optimizer",
    "keras.losses": "loss",
}
# optax optimizers listed by name: those defined as functools.partial (no __module__ to test)
# and the common ones, in case optax moves its aliases to another module.
_KNOWN_OPTIMIZERS = (
    "adagrad", "adam", "adamax", "adamw", "lamb", "lion", "nadam", "nadamw", "rmsprop", "sgd",
)


def _public_functions(module: types.ModuleType) -> dict[str, Callable]:
    """Public callables of ``module`` that are neither classes nor modules."""
    table = {}
    for attr in dir(module):
        value = getattr(module, attr)
        if attr.startswith("_") or not callable(value) or inspect.isclass(value):
            continue
        table[attr] = value
    return table


def _activation_table() -> dict[str, Callable]:
    """``jax.nn``'s functions, plus Keras's names ``linear`` and ``exponential`` (same math)."""
    table = _public_functions(jax.nn)
    table["linear"] = jax.nn.identity
    table["exponential"] = jnp.exp
    return table


def _initializer_table() -> dict[str, Callable]:
    """``jax.nn.initializers``'s functions (factories such as ``glorot_uniform``, and ``zeros``)."""
    return _public_functions(jax.nn.initializers)


# optax modules whose public functions are optimizers, transforms (``chain``,
# ``clip_by_global_norm``) or schedules (``cosine_decay_schedule``).
_OPTAX_OPTIMIZER_MODULES = ("optax._src.", "optax.transforms.", "optax.schedules.")


def _optimizer_table() -> dict[str, Callable]:
    """optax's optimizers (``adam``, ``sgd``...), gradient transforms and schedules.

    Names that another kind's table also has (``identity``) are left to that kind.
    """
    import optax

    others = {*_activation_table(), *_initializer_table(), *_loss_table()}
    table = {
        attr: fn
        for attr, fn in _public_functions(optax).items()
        if getattr(fn, "__module__", "").startswith(_OPTAX_OPTIMIZER_MODULES) and attr not in others
    }
    table.update({attr: getattr(optax, attr) for attr in _KNOWN_OPTIMIZERS if hasattr(optax, attr)})
    return table


def _loss_table() -> dict[str, Callable]:
    """``optax.losses``'s functions, and Keras's losses with Keras's semantics (``"mse"``...)."""
    import optax

    from jkutils import losses

    table = _public_functions(optax.losses)
    table.update({name: getattr(losses, name) for name in losses.__all__})
    table.update(mse=losses.mean_squared_error, mae=losses.mean_absolute_error)
    return table


def _is_keras_loss(obj: Any) -> bool:
    """Whether ``obj`` is one of jkutils's Keras-semantics loss functions."""
    return getattr(obj, "__module__", None) == "jkutils.losses" and callable(obj)


@functools.cache
def _keras_optimizers() -> Mapping[int, Callable]:
    """id(optax optimizer factory) -> the factory taking Keras's argument names too."""
    import optax

    from jkutils._keras_args import keras_optimizer_factories

    return types.MappingProxyType(keras_optimizer_factories(optax))


def _with_keras_arguments(obj: Any) -> Any:
    """``obj``, or if it is an optax optimizer that Keras also has, it taking Keras's arguments."""
    return _keras_optimizers().get(id(obj), obj)


def _without_keras_arguments(obj: Any) -> Any:
    """The optax factory behind :func:`_with_keras_arguments`'s wrapper (else ``obj``)."""
    wrapped = getattr(obj, "__wrapped__", None)
    return wrapped if wrapped is not None and _with_keras_arguments(wrapped) is obj else obj


_TABLE_BUILDERS = {
    "activation": _activation_table,
    "initializer": _initializer_table,
    "optimizer": _optimizer_table,
    "loss": _loss_table,
}


@functools.cache
def _namespace_table(kind: str) -> Mapping[str, Callable]:
    """``{name: object}`` for one kind, built on first use."""
    return types.MappingProxyType(dict(sorted(_TABLE_BUILDERS[kind]().items())))


def _normalized(name: str) -> str:
    """Spelling-insensitive form of a name: ``"GlorotUniform"`` ~ ``"glorot_uniform"``."""
    return name.lower().replace("_", "")


class _Match(NamedTuple):
    """A built-in object and the kind and name it was found under."""

    kind: str
    name: str
    obj: Any


class _NameIndex(NamedTuple):
    """Lookup tables over the namespace tables of some kinds."""

    unique: dict[str, Any]  # exact names that denote one object: the fast path
    exact: dict[str, tuple[_Match, ...]]
    normalized: dict[str, tuple[_Match, ...]]


def _distinct(matches: Iterable[_Match]) -> tuple[_Match, ...]:
    """Matches with one entry per distinct object (an object under two names is no conflict)."""
    seen: dict[int, _Match] = {}
    for match in matches:
        seen.setdefault(id(match.obj), match)
    return tuple(seen.values())


@functools.cache
def _name_index(kinds: tuple[str, ...]) -> _NameIndex:
    """Exact and spelling-insensitive indexes over the namespace tables of ``kinds``."""
    exact: dict[str, list[_Match]] = {}
    normalized: dict[str, list[_Match]] = {}
    for kind in kinds:
        for name, obj in _namespace_table(kind).items():
            match = _Match(kind, name, obj)
            exact.setdefault(name, []).append(match)
            normalized.setdefault(_normalized(name), []).append(match)
    exact_distinct = {name: _distinct(found) for name, found in exact.items()}
    unique = {name: found[0].obj for name, found in exact_distinct.items() if len(found) == 1}
    normalized_distinct = {name: _distinct(found) for name, found in normalized.items()}
    return _NameIndex(unique, exact_distinct, normalized_distinct)


@functools.cache
def _builtin_names() -> Mapping[int, _Match]:
    """id(object) -> its canonical built-in name (the one equal to ``__name__`` when possible)."""
    names: dict[int, _Match] = {}
    for kind in _KINDS:
        for name, obj in _namespace_table(kind).items():
            if id(obj) not in names or name == getattr(obj, "__name__", None):
                names[id(obj)] = _Match(kind, name, obj)
    return types.MappingProxyType(names)


def _checked_kinds(kind: str | None) -> tuple[str, ...]:
    """The kinds to search: all of them for None, else the one named (plural accepted)."""
    if kind is None:
        return _KINDS
    if not isinstance(kind, str) or kind not in _KIND_SPELLINGS:
        raise ValueError(
            f"`kind` must be None or one of {', '.join(map(repr, _KINDS))}. Received: kind={kind!r}"
        )
    return (_KIND_SPELLINGS[kind],)


def _builtin_lookup(name: str, kinds: tuple[str, ...]) -> Any:
    """The built-in object called ``name`` among ``kinds`` or _MISSING; ambiguity is an error.

    Only reached when ``name`` is not an exact name of exactly one object (the fast path in
    :func:`_resolve_name`): an exact name shared by several objects, or another spelling.
    """
    index = _name_index(kinds)
    matches = index.exact.get(name) or index.normalized.get(_normalized(name), ())
    if len(matches) > 1:
        found = ", ".join(f"{m.kind} ({_KIND_NAMESPACES[m.kind]}.{m.name})" for m in matches)
        raise ValueError(
            f"The name {name!r} is ambiguous: it matches {found}. Pass `kind=` to choose one."
        )
    return matches[0].obj if matches else _MISSING


def _unknown_name_error(
    name: str, kinds: tuple[str, ...], custom_objects: Mapping[str, Any] | None
) -> ValueError:
    """A ValueError for an unresolvable name, listing the closest known names."""
    candidates = [*_scope_objects(), *_GLOBAL_CUSTOM_OBJECTS, *(custom_objects or ())]
    candidates += list(_name_index(kinds).exact)
    close = difflib.get_close_matches(name, dict.fromkeys(candidates), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(map(repr, close))}?" if close else ""
    what = kinds[0] if len(kinds) == 1 else "object"
    places = "".join(f", then {_KIND_NAMESPACES[kind]}" for kind in kinds)
    return ValueError(
        f"Unknown {what} name {name!r}.{hint} Names are looked up in the active "
        "CustomObjectScope, the objects registered with register_serializable (or put in "
        f"get_custom_objects()), `custom_objects`{places}."
    )


def _resolve_name(
    name: str,
    kinds: tuple[str, ...],
    custom_objects: Mapping[str, Any] | None = None,
    *,
    builtins: bool = True,
) -> Any:
    """The object called ``name``: custom objects first, then (if allowed) the namespaces."""
    found = _custom_lookup(name, custom_objects)
    if found is _MISSING and builtins:
        found = _name_index(kinds).unique.get(name, _MISSING)
        if found is _MISSING:
            found = _builtin_lookup(name, kinds)
    if found is _MISSING:
        raise _unknown_name_error(name, kinds if builtins else (), custom_objects)
    return found


def get(identifier: Any, kind: str | None = None) -> Any:
    """Resolve a name, a config dict or a callable to an object.

    A string is looked up in the active scopes, the registry, then the JAX/optax namespaces
    (``"relu"`` -> ``jax.nn.relu``, ``"adam"`` -> ``optax.adam``, ``"glorot_uniform"`` ->
    ``jax.nn.initializers.glorot_uniform``, ``"l2_loss"`` -> ``optax.losses.l2_loss``); an exact
    name wins, otherwise the spelling may differ in case and underscores (``"Adam"``,
    ``"GlorotUniform"``). A dict is a config and is passed to :func:`deserialize`. A callable is
    returned unchanged.

    Args:
        identifier: a name, a config dict, or a callable.
        kind: ``"activation"``, ``"initializer"``, ``"optimizer"`` or ``"loss"`` (plurals
            accepted) to search only that namespace; needed when a name exists in several.

    Returns:
        The resolved object.

    Raises:
        ValueError: unknown or ambiguous name (the message lists close matches), unknown kind.
        TypeError: ``identifier`` is neither a string, a dict nor a callable.

    Example:
        >>> import jax, optax
        >>> get("relu") is jax.nn.relu, get("Adam", kind="optimizer") is optax.adam
        (True, True)
    """
    kinds = _KINDS if kind is None else _checked_kinds(kind)
    if isinstance(identifier, str):
        return _with_keras_arguments(_resolve_name(identifier, kinds))
    if isinstance(identifier, Mapping):
        if "class_name" not in identifier:
            raise ValueError(
                "A dict `identifier` must be a config with a 'class_name' key. "
                f"Received: identifier={identifier!r}"
            )
        return _decode_config(identifier, None, kinds if kind is not None else None)
    if callable(identifier):
        return identifier
    raise TypeError(
        "`identifier` must be a name (str), a config dict or a callable. "
        f"Received: identifier={identifier!r} (of type {type(identifier).__name__})"
    )


# ----------------------------------------------------------------------------------------------
# Serialization
# ----------------------------------------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))
# NumPy dtype kinds whose values ``tolist()`` turns into JSON scalars: bool, int, uint, float, str.
_JSON_DTYPE_KINDS = frozenset("biufU")


def _json_dtype(dtype: np.dtype) -> bool:
    """Whether values of ``dtype`` become JSON scalars (``bfloat16``, ``int4`` ... included)."""
    return dtype.kind in _JSON_DTYPE_KINDS or jnp.issubdtype(dtype, jnp.integer) or (
        jnp.issubdtype(dtype, jnp.floating)
    )


def _array_config(value: Any) -> dict[str, Any]:
    """``__numpy__`` config of a NumPy or JAX array: nested lists, dtype name and shape."""
    try:
        array = np.asarray(value)
    except TypeError as err:
        raise TypeError(f"Cannot serialize array {value!r}: {err}") from err
    if array.dtype == object:
        raise TypeError(f"Cannot serialize an array of Python objects: {value!r}")
    if not _json_dtype(array.dtype):
        raise TypeError(
            f"Cannot serialize an array of dtype {array.dtype}: its values have no JSON form "
            f"(supported: booleans, integers, floats, str). Received: {value!r}"
        )
    config = {"value": array.tolist(), "dtype": str(array.dtype), "shape": list(array.shape)}
    return {"class_name": "__numpy__", "config": config}


def _scalar_config(value: np.generic) -> Any:
    """The Python value of a NumPy scalar, when JSON can hold it."""
    if not _json_dtype(value.dtype):
        raise TypeError(
            f"Cannot serialize a NumPy scalar of dtype {value.dtype}: its value has no JSON "
            f"form (supported: booleans, integers, floats, str). Received: {value!r}"
        )
    return value.item()


def _mapping_config(value: Mapping) -> dict[str, Any]:
    """A dict with str keys, its values serialized."""
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(
                f"Cannot serialize a dict with non-str key {key!r} (of type "
                f"{type(key).__name__}): JSON object keys are strings"
            )
        out[key] = _encode(item)
    return out


def _identity_name(obj: Any, objects: Mapping[str, Any]) -> str | None:
    """The name under which ``obj`` itself (not an equal object) appears in ``objects``."""
    return next((name for name, value in objects.items() if value is obj), None)


def _reference_name(obj: Any) -> tuple[str, str]:
    """``(module, name)`` under which a class or function can be found again."""
    obj = _without_keras_arguments(obj)
    module = getattr(obj, "__module__", None)
    registered = _registered_name_or_none(obj)
    if registered is not None:
        return module, registered
    builtin = _builtin_names().get(id(obj))
    if builtin is not None and builtin.obj is obj:
        return _KIND_NAMESPACES[builtin.kind], builtin.name
    for objects in (_scope_objects(), _GLOBAL_CUSTOM_OBJECTS):
        scoped = _identity_name(obj, objects)
        if scoped is not None:
            return module, scoped
    name = _object_name(obj)
    if "<" in getattr(obj, "__qualname__", name):
        raise ValueError(
            f"Cannot serialize {obj!r}: a lambda or a function defined inside another function "
            "cannot be found again by name. Define it at module level and register it with "
            "@register_serializable, or name it in a CustomObjectScope. For what a factory "
            "returns (optax.adam(1e-3), jax.nn.initializers.glorot_uniform()), store the "
            "factory call instead: {'class_name': 'adam', 'config': {'learning_rate': 1e-3}}."
        )
    return module, name


def _reference_config(obj: Any) -> dict[str, Any]:
    """Config naming a class or function (Keras 3's shape for functions)."""
    module, name = _reference_name(obj)
    class_name = "class" if inspect.isclass(obj) else "function"
    return {
        "module": module,
        "class_name": class_name,
        "config": name,
        "registered_name": class_name,
    }


def _instance_config(obj: Any) -> dict[str, Any]:
    """Config of an object whose class defines ``get_config()``."""
    cls = type(obj)
    config = obj.get_config()
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{cls.__name__}.get_config() must return a dict. Received: {config!r} "
            f"(of type {type(config).__name__})"
        )
    return {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "config": _mapping_config(config),
        "registered_name": get_registered_name(cls),
    }


def _encode(obj: Any) -> Any:
    """JSON-safe config of ``obj`` (recursive)."""
    if isinstance(obj, _JSON_SCALARS):
        return obj
    if isinstance(obj, np.generic):
        return _scalar_config(obj)
    if type(obj) is list:
        return [_encode(item) for item in obj]
    if type(obj) is tuple:
        return {"class_name": "__tuple__", "config": {"value": [_encode(item) for item in obj]}}
    if isinstance(obj, Mapping):
        return _mapping_config(obj)
    if isinstance(obj, np.ndarray | jax.Array):
        return _array_config(obj)
    if inspect.isclass(obj):
        return _reference_config(obj)
    if hasattr(obj, "get_config"):
        return _instance_config(obj)
    if callable(obj):
        return _reference_config(obj)
    raise TypeError(
        f"Cannot serialize {obj!r} (of type {type(obj).__name__}): give its class a "
        "get_config() method and register it with @register_serializable"
    )


def serialize(obj: Any) -> Any:
    """Return a JSON-safe config of ``obj`` that :func:`deserialize` turns back into it.

    * JSON scalars and lists stay as they are, dicts (str keys) are serialized value by value,
      tuples become ``{"class_name": "__tuple__", ...}``, NumPy/JAX arrays of booleans,
      numbers or str ``{"class_name": "__numpy__", ...}`` (values, dtype and shape) and NumPy
      scalars Python numbers.
    * Objects whose class has ``get_config()``:
      ``{"module", "class_name", "config", "registered_name"}``, the config serialized in turn.
    * Functions and classes: ``{"module", "class_name": "function" | "class", "config": name,
      "registered_name": ...}``, where the name is the registered one, else its JAX/optax name
      (``"module"`` is then its namespace, e.g. ``"jax.nn"``), else its name in the active
      scopes or the global custom objects, else its ``__name__``.

    Args:
        obj: the object to serialize.

    Returns:
        Nested dicts, lists, strings, numbers, booleans and None.

    Raises:
        TypeError: an object that has no config and no name, a dict with non-str keys, or an
            array or NumPy scalar whose values JSON cannot hold (complex, bytes, datetime).
        ValueError: a lambda or nested function that is neither registered nor scoped.

    Example:
        >>> import jax
        >>> serialize(jax.nn.relu)["config"]
        'relu'
    """
    return _encode(obj)


serialize_keras_object = serialize


def _config_kinds(config: Mapping, kinds: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Kinds whose namespaces may resolve ``config``'s names; None when only custom objects may.

    Configs naming a JAX/optax (or Keras) namespace, Keras's ``"builtins"`` or no module may
    resolve to built-ins; a config from any other module names a custom object, which must
    never be silently replaced by a built-in of the same name.
    """
    module = config.get("module")
    if module is None or module == "builtins":
        allowed = _KINDS
    elif isinstance(module, str) and module in _MODULE_KINDS:
        allowed = (_MODULE_KINDS[module],)
    else:
        return None
    return allowed if kinds is None else kinds


def _resolve_config_target(
    config: Mapping, custom_objects: Mapping[str, Any] | None, kinds: tuple[str, ...] | None
) -> Any:
    """The class or function a config names: registered name first, then class name."""
    class_name = config["class_name"]
    registered = config.get("registered_name")
    if isinstance(registered, str) and registered != class_name:
        found = _custom_lookup(registered, custom_objects)
        if found is not _MISSING:
            return found
    builtins_allowed = kinds is not None and registered in (None, class_name)
    return _resolve_name(class_name, kinds or _KINDS, custom_objects, builtins=builtins_allowed)


def _instantiate(target: Any, inner: Any, config: Mapping) -> Any:
    """``target.from_config(inner)`` for classes that have it, else ``target(**inner)``."""
    if not isinstance(inner, Mapping):
        raise TypeError(
            f"config['config'] must be a dict for class_name={config['class_name']!r}. "
            f"Received: {inner!r}"
        )
    from_config = getattr(target, "from_config", None) if inspect.isclass(target) else None
    try:
        return from_config(dict(inner)) if from_config is not None else target(**inner)
    except Exception as err:
        err.add_note(f"while deserializing {config['class_name']!r} with config {dict(inner)!r}")
        raise


_SPECIAL_KEYS = {"__numpy__": ("value", "dtype"), "__tuple__": ("value",), "__lambda__": ()}


def _decode_special(class_name: str, inner: Any) -> Any:
    """The value of a ``__numpy__`` or ``__tuple__`` config; ``__lambda__`` is refused."""
    if class_name == "__lambda__":
        raise ValueError(
            "Refusing to deserialize a Python lambda (class_name '__lambda__'): it would run "
            "code stored in the config. Register the function and reference it by name instead."
        )
    keys = _SPECIAL_KEYS[class_name]
    if not isinstance(inner, Mapping) or any(key not in inner for key in keys):
        raise TypeError(
            f"A {class_name!r} config must hold a dict with keys {keys}. Received: config={inner!r}"
        )
    if class_name == "__numpy__":
        return _decoded_array(inner)
    return tuple(inner["value"])


def _decoded_array(inner: Mapping) -> np.ndarray:
    """The array of a ``__numpy__`` config; its ``"shape"``, when written, is restored.

    Nested lists lose the shape of an empty array (``(0, 3)`` is ``[]``), so the shape is stored
    too; configs without it (Keras's) give the shape the lists have.
    """
    array = np.asarray(inner["value"], dtype=jnp.dtype(inner["dtype"]))
    shape = inner.get("shape")
    if shape is None:
        return array
    if not isinstance(shape, list | tuple) or math.prod(shape) != array.size:
        raise TypeError(
            f"A '__numpy__' config's 'shape' must list the dimensions of its {array.size} "
            f"values. Received: shape={shape!r}"
        )
    return array.reshape(shape)


def _decode_config(
    config: Mapping, custom_objects: Mapping[str, Any] | None, kinds: tuple[str, ...] | None
) -> Any:
    """Rebuild the object a ``{"class_name", "config", ...}`` dict describes."""
    class_name = _checked_name(config["class_name"], "config['class_name']")
    inner = config.get("config")
    if class_name in _SPECIAL_KEYS:
        return _decode_special(class_name, _decode(inner, custom_objects, None))
    kinds = _config_kinds(config, kinds)
    try:
        if class_name in ("function", "class"):
            name = _checked_name(inner, "config['config']")
            return _resolve_name(name, kinds or _KINDS, custom_objects, builtins=kinds is not None)
        target = _with_keras_arguments(_resolve_config_target(config, custom_objects, kinds))
    except ValueError as err:
        if kinds is None:
            err.add_note(
                f"The config comes from module {config.get('module')!r}, so only custom objects "
                "are searched: a built-in of the same name would be a different object."
            )
        raise
    inner = _decode(inner if inner is not None else {}, custom_objects)
    if _is_keras_loss(target) and isinstance(inner, Mapping):
        # A Keras loss object's config: the function with its settings and reduction.
        from jkutils.losses import from_keras_config

        return from_keras_config(target, inner)
    return _instantiate(target, inner, config)


def _decode(
    value: Any, custom_objects: Mapping[str, Any] | None, kinds: tuple[str, ...] | None = None
) -> Any:
    """Inverse of :func:`_encode` for one (possibly nested) value; strings stay strings."""
    if isinstance(value, list):
        return [_decode(item, custom_objects) for item in value]
    if isinstance(value, Mapping):
        if "class_name" in value and "config" in value:
            return _decode_config(value, custom_objects, kinds)
        return {key: _decode(item, custom_objects) for key, item in value.items()}
    return value


def deserialize(config: Any, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """Rebuild an object from a config made by :func:`serialize` (or by Keras 3).

    A string is resolved as a name (see :func:`get`). In a dict config, the class or function is
    found by its registered name, then its class name, in the active scopes, the registry and
    ``custom_objects``; names of configs whose ``"module"`` is a JAX/optax namespace (or
    ``"builtins"``, or absent) may also resolve there. A class is rebuilt with
    ``cls.from_config(config)`` when it has one, else ``cls(**config)``; a function named by a
    dict config (``{"class_name": "adam", "config": {"learning_rate": 0.01}}``) is called with
    it. Nested configs are rebuilt first. Nothing is imported and no stored code is run.

    Args:
        config: what :func:`serialize` returned (possibly after a JSON round trip), or a name.
        custom_objects: extra ``{name: object}``, searched after the scopes and the registry.

    Returns:
        The rebuilt object.

    Raises:
        ValueError: a name that cannot be resolved (the message lists close matches), or a
            ``__lambda__`` config.
        TypeError: a malformed config, or ``custom_objects`` that is not a dict of str names.

    Example:
        >>> import json, jax
        >>> deserialize(json.loads(json.dumps(serialize(jax.nn.gelu)))) is jax.nn.gelu
        True
    """
    custom_objects = _checked_mapping(custom_objects, "custom_objects")
    if isinstance(config, str):
        return _resolve_name(config, _KINDS, custom_objects)
    if isinstance(config, Mapping) and "class_name" in config:
        # A top-level dict with a class name is a config, even without a "config" entry.
        return _decode_config(config, custom_objects, None)
    return _decode(config, custom_objects)


deserialize_keras_object = deserialize
