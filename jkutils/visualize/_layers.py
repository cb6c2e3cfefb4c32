"""Finding a model's layers, for both the summary and the graph.

A *layer* is found from the framework's own structure where there is one, and from the data flow
where there is not:

- **Flax NNX and Equinox**: every submodule instance, at its attribute path (``block/lin``,
  ``layers/0``). While the model is traced, each module class's ``__call__`` is wrapped so that
  a call of an instance runs under a marker scope and records its input and output shapes.
  Identity is the instance: two ``Linear`` instances are two layers, one instance called twice
  is one layer. Equinox's own per-class scopes (``eqx.nn.Linear``) are dropped.
- **Flax Linen**: every module call, at its scope path (``Conv_0``), found with
  ``flax.linen.intercept_methods``; Linen's own named scopes (which nest everything under the
  top module's name) are switched off during the trace.
- **Any other pytree with a function**: hand-written ``jax.named_scope``s, as before; operations
  outside every scope belong to the parameter node they read (the operations that read
  ``conv1/kernel`` and ``conv1/bias``, and what they compute from them alone, are layer
  ``conv1``).

The result is the traced :class:`~jkutils.visualize._jaxpr.Program` with ``"layer"`` frames on
the operations, plus what each layer is: its type, its arrays (with the framework's meaning of
trainable) and its calls. flax and equinox are imported only for an object they made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax

from jkutils._model import EQUINOX, LINEN, NNX, PYTREE, ModelView, framework_of, tree_paths
from jkutils._model import view_of as _view_of
from jkutils._pytree import path_names
from jkutils.visualize import _jaxpr

__all__ = [
    "Call",
    "Leaf",
    "ModelInfo",
    "TracedModel",
    "checked_call_spelling",
    "describe",
    "input_args",
    "layer_types",
    "param_layer",
    "trace_model",
]

_EQUINOX_SCOPE_PREFIX = "eqx.nn."
_GRAPH_EXTENSIONS = ("png", "svg", "pdf", "dot", "gv", "jpg", "jpeg", "gif")
_STATIC_TEXT_WIDTH = 40
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One array of the model: its path (Linen state: without the collection), its trainability.

    ``collection`` is the Linen collection of a non-trainable array (``batch_stats``), else None.
    """

    path: tuple[str, ...]
    array: Any
    trainable: bool
    collection: str | None = None


@dataclasses.dataclass
class Call:
    """One call of a layer: its path, its type and the shapes that went in and came out."""

    path: tuple[str, ...]
    type_name: str
    inputs: list[Any]
    outputs: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model is before any tracing.

    Attributes:
      view: the model's :class:`~jkutils._model.ModelView`.
      name: the model's class name, or the function's name for a pytree.
      modules: for NNX and Equinox, module path -> class name, in the module tree (root ``()``);
        empty for Linen (found while tracing) and pytrees.
      statics: module path -> ``name=value`` texts of an Equinox module's non-array fields.
      leaves: every array, in tree order.
      apply_fn: the function of a pytree model (None for a module).
    """

    view: ModelView
    name: str
    modules: dict[tuple[str, ...], str]
    statics: dict[tuple[str, ...], list[str]]
    leaves: list[Leaf]
    apply_fn: Callable | None = None

    @property
    def framework(self) -> str:
        return self.view.framework

    @property
    def is_module(self) -> bool:
        return self.view.framework != PYTREE


@dataclasses.dataclass(frozen=True)
class TracedModel:
    """A traced call with its layers marked.

    Attributes:
      program: the walked call; each operation inside a layer has a ``"layer"`` frame.
      traced: the ``jax.stages.Traced`` of the call (for cost and memory analysis).
      calls: module calls in the order they started (the model's own call first); empty for
        pytrees.
      param_args: which positional arguments of the traced call are the model's arrays (the
        rest are the user's inputs).
      found_layers: whether any operation was placed in a layer.
    """

    program: _jaxpr.Program
    traced: Any
    calls: list[Call]
    param_args: frozenset[int]
    found_layers: bool


# ----------------------------------------------------------------------------- arguments


def _is_graph_file(value: Any) -> bool:
    if not isinstance(value, str | os.PathLike):
        return False
    return os.path.splitext(os.fspath(value))[1][1:].lower() in _GRAPH_EXTENSIONS


def checked_call_spelling(func: str, model: Any, apply_fn: Any, extra: tuple) -> None:
    """Refuse the usual mix-ups of the calling convention with an error showing the right call.

    ``func(model, apply_fn=None, *, inputs=...)``: a pytree takes its function second, a module
    none; example inputs are always ``inputs=``.
    """
    module = framework_of(model) in (NNX, LINEN, EQUINOX)
    right = f"{func}(model, inputs=(x,))" if module else f"{func}(params, apply_fn, inputs=(x,))"
    if func == "plot_model":
        for arg in (apply_fn, *extra):
            if _is_graph_file(arg):
                raise TypeError(
                    f"plot_model got the file name {os.fspath(arg)!r} as a positional argument; "
                    f"pass it as a keyword: {right[:-1]}, to_file={os.fspath(arg)!r})"
                )
    if extra:
        raise TypeError(
            f"{func} takes the model and, for a pytree of parameters, its function; example "
            f"inputs go in `inputs=`. Received {2 + len(extra)} positional arguments. "
            f"Call it as {right}"
        )
    if apply_fn is None or callable(apply_fn):
        return
    if callable(model) and not module:
        raise TypeError(
            f"{func} takes the parameters first and the function second: "
            f"{func}(params, {getattr(model, '__name__', 'apply_fn')}, inputs=(x,)). "
            f"Received a function, then a {type(apply_fn).__name__}"
        )
    if framework_of(model) == LINEN and getattr(model, "scope", None) is None:
        raise TypeError(
            f"A Linen module needs its variables: {func}(module.bind(variables), inputs=(x,)) "
            f"or {func}(variables, module.apply, inputs=(x,)). Received the unbound module "
            f"{type(model).__name__} and a {type(apply_fn).__name__}"
        )
    if module:
        raise TypeError(
            f"{type(model).__name__} is called directly, so it takes no `apply_fn`; pass its "
            f"example inputs as `inputs=`: {right}. Received apply_fn of type "
            f"{type(apply_fn).__name__}"
        )
    raise TypeError(
        f"`apply_fn` must be a callable. Received: apply_fn={apply_fn!r} "
        f"(of type {type(apply_fn).__name__}); call it as {right}"
    )


def input_args(inputs: Any) -> tuple:
    """``inputs`` as positional arguments: a tuple/list as is, a lone array wrapped."""
    if inputs is None:
        return ()
    if isinstance(inputs, tuple | list):
        return tuple(inputs)
    if _jaxpr.is_array_like(inputs):
        return (inputs,)
    raise TypeError(
        "`inputs` must be a tuple or list of positional arguments for the model, or one array. "
        f"Received: inputs={inputs!r} (of type {type(inputs).__name__})"
    )


# ----------------------------------------------------------------------------- the model


def _str_path(path: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(part) for part in path)


def _nnx_modules(module: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    from flax import nnx

    for path, sub in nnx.iter_modules(module):
        yield _str_path(path), sub


def _equinox_modules(module: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, Any]]:
    """Every Equinox module inside ``module`` with its attribute path, outermost first."""
    import equinox as eqx

    yield path, module
    for field in dataclasses.fields(module):
        value = getattr(module, field.name, None)
        found = jax.tree_util.tree_flatten_with_path(
            value, is_leaf=lambda x: isinstance(x, eqx.Module)
        )[0]
        for sub_path, leaf in found:
            if isinstance(leaf, eqx.Module):
                yield from _equinox_modules(leaf, (*path, field.name, *path_names(sub_path)))


def _modules_with_paths(view: ModelView, module: Any) -> Iterator[tuple[tuple, Any]]:
    if view.framework == NNX:
        return _nnx_modules(module)
    if view.framework == EQUINOX:
        return _equinox_modules(module)
    return iter(())


def _static_text(name: str, value: Any) -> str:
    text = getattr(value, "__name__", None) if callable(value) else None
    text = text or repr(value)
    if len(text) > _STATIC_TEXT_WIDTH:
        text = text[: _STATIC_TEXT_WIDTH - 3] + "..."
    return f"{name}={text}"


def _equinox_statics(module: Any) -> list[str]:
    """``name=value`` for each field of an Equinox module that holds no array and no module."""
    import equinox as eqx

    texts = []
    for field in dataclasses.fields(module):
        value = getattr(module, field.name, None)
        leaves = jax.tree_util.tree_leaves(value, is_leaf=lambda x: isinstance(x, eqx.Module))
        if any(isinstance(x, eqx.Module) or _jaxpr.is_array_like(x) for x in leaves):
            continue
        texts.append(_static_text(field.name, value))
    return texts


def _model_leaves(view: ModelView, mask_flags: list[bool] | None) -> list[Leaf]:
    """Every array of the model with the framework's meaning of trainable."""
    if view.framework == PYTREE:
        pairs = tree_paths(view.trainable)
        flags = mask_flags if mask_flags is not None else [True] * len(pairs)
        return [
            Leaf(path, leaf, flag)
            for (path, leaf), flag in zip(pairs, flags, strict=True)
            if _jaxpr.is_array_like(leaf)
        ]
    leaves = [Leaf(p, a, True) for p, a in tree_paths(view.trainable) if _jaxpr.is_array_like(a)]
    for path, array in tree_paths(view.state):
        if not _jaxpr.is_array_like(array):
            continue
        if view.framework == LINEN:
            leaves.append(Leaf(path[1:], array, False, collection=path[0]))
        else:
            leaves.append(Leaf(path, array, False))
    return leaves


def describe(
    model: Any, apply_fn: Callable | None, mask_flags: list[bool] | None = None
) -> ModelInfo:
    """The :class:`ModelInfo` of a model as the user holds it (see ``view_of``)."""
    view = _view_of(model, apply_fn)
    modules: dict[tuple[str, ...], str] = {}
    statics: dict[tuple[str, ...], list[str]] = {}
    for path, sub in _modules_with_paths(view, view.module):
        modules.setdefault(path, type(sub).__name__)
        if view.framework == EQUINOX:
            statics.setdefault(path, _equinox_statics(sub))
    name = view.type_name or (_jaxpr.function_name(apply_fn) if apply_fn else type(model).__name__)
    leaves = _model_leaves(view, mask_flags)
    return ModelInfo(view, name, modules, statics, leaves, apply_fn if not view.module else None)


# ----------------------------------------------------------------------------- recording calls


def _avals(tree: Any) -> list[Any]:
    return [
        jax.ShapeDtypeStruct(x.shape, x.dtype)
        for x in jax.tree_util.tree_leaves(tree)
        if _jaxpr.is_array_like(x)
    ]


def _marked_pass_through(out: Any, arguments: Any) -> Any:
    """``out`` with every array that is one of the call's own inputs passed through
    ``jax.lax.optimization_barrier``, so that a layer that computes nothing (Dropout at
    inference, an identity) still has an operation, and a node in the graph. The barrier does
    no arithmetic."""
    passed = {id(x) for x in jax.tree_util.tree_leaves(arguments)}
    return jax.tree.map(lambda x: jax.lax.optimization_barrier(x) if id(x) in passed else x, out)


class _Recorder:
    """Runs layer calls under numbered marker scopes and keeps what went in and out.

    With ``mark_pass_through`` a layer's output that is one of its inputs gets an operation of
    its own (see ``_marked_pass_through``), for drawing.
    """

    def __init__(self, mark_pass_through: bool = False) -> None:
        self.calls: list[Call] = []
        self.token = f"jkutils-layer-{secrets.token_hex(4)}-"
        self.mark_pass_through = mark_pass_through

    def run(self, path: tuple[str, ...], type_name: str, thunk: Callable, arguments: Any) -> Any:
        call = Call(path, type_name, _avals(arguments))
        self.calls.append(call)
        if path:
            with jax.named_scope(f"{self.token}{len(self.calls) - 1}"):
                out = thunk()
                if self.mark_pass_through:
                    out = _marked_pass_through(out, arguments)
        else:
            out = thunk()
        call.outputs = _avals(out)
        return out

    def call_index(self, scope_name: str) -> int | None:
        if not scope_name.startswith(self.token):
            return None
        return int(scope_name[len(self.token) :])


def _recording_call(fn: Callable, paths: dict[int, tuple], recorder: _Recorder) -> Callable:
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        path = paths.get(id(self))
        thunk = functools.partial(fn, self, *args, **kwargs)
        if path is None:
            return thunk()
        return recorder.run(path, type(self).__name__, thunk, (args, kwargs))

    return wrapper


def _callable(cls: type) -> bool:
    """Whether instances of ``cls`` can be called (a ``__call__`` below ``object``)."""
    return any("__call__" in vars(base) for base in cls.__mro__ if base is not object)


@contextlib.contextmanager
def _recorded_classes(module: Any, view: ModelView, recorder: _Recorder) -> Iterator[None]:
    """Wrap ``__call__`` of every module class in ``module`` while the block runs."""
    found = list(_modules_with_paths(view, module))
    paths: dict[int, tuple] = {}
    for path, sub in found:
        paths.setdefault(id(sub), path)
    classes = [cls for cls in dict.fromkeys(type(sub) for _, sub in found) if _callable(cls)]
    own = {cls: cls.__dict__.get("__call__", _MISSING) for cls in classes}
    resolved = {cls: cls.__call__ for cls in classes}
    try:
        for cls in classes:
            type.__setattr__(cls, "__call__", _recording_call(resolved[cls], paths, recorder))
        yield
    finally:
        for cls, fn in own.items():
            if fn is _MISSING:
                type.__delattr__(cls, "__call__")
            else:
                type.__setattr__(cls, "__call__", fn)


def _new_state(view: ModelView, model: Any) -> Any:
    """The state a call left in the model: NNX's mutated variables (Equinox modules are
    immutable; their state, if any, is the call's own input and output)."""
    if view.framework != NNX:
        return None
    from flax import nnx

    return nnx.state(model, nnx.Not(nnx.Param))


def _module_fn(info: ModelInfo, recorder: _Recorder, with_state: bool) -> Callable:
    """``fn(trainable, state, *args, **kwargs) -> output`` with every layer call recorded.

    With ``with_state`` it returns ``(output, new_state)``, so that the state updates a call
    makes (batch statistics, RNG counters) are part of what is traced and costed.
    """
    view = info.view
    if view.framework == LINEN:
        import flax.linen as nn

        def interceptor(next_fun, args, kwargs, context):
            if context.method_name != "__call__":
                return next_fun(*args, **kwargs)
            thunk = functools.partial(next_fun, *args, **kwargs)
            module = context.module
            return recorder.run(_str_path(module.path), type(module).__name__, thunk, args)

        def linen_fn(trainable, state, *args, **kwargs):
            with nn.intercept_methods(interceptor), nn.override_named_call(False):
                out, new_state = view.apply(trainable, state, *args, **kwargs)
            return (out, new_state) if with_state else out

        return linen_fn

    def module_fn(trainable, state, *args, **kwargs):
        model = view.rebuild(trainable, state)
        with _recorded_classes(model, view, recorder):
            out = model(*args, **kwargs)
        return (out, _new_state(view, model)) if with_state else out

    return module_fn


def _call_names(info: ModelInfo, count: int) -> list[str]:
    """Names of the traced call's arguments: the model's arrays, then the call's own inputs."""
    if info.apply_fn is not None:
        return _jaxpr.argument_names(info.apply_fn, count)
    method = info.view.module.__call__
    return ["params", "state", *_jaxpr.argument_names(method, count - 2)]


# ----------------------------------------------------------------------------- layer frames


def _module_frames(program: _jaxpr.Program, recorder: _Recorder, framework: str):
    """Marker scopes replaced by layer frames; Equinox's per-class scopes dropped."""
    ops = []
    for op in program.ops:
        frames = []
        for frame in op.frames:
            index = recorder.call_index(frame.name) if frame.is_scope else None
            if index is not None:
                path = recorder.calls[index].path
                frames.append(_jaxpr.Frame(_jaxpr.LAYER, "/".join(path), index + 1))
            elif not (
                framework == EQUINOX
                and frame.is_scope
                and frame.name.startswith(_EQUINOX_SCOPE_PREFIX)
            ):
                frames.append(frame)
        ops.append(dataclasses.replace(op, frames=tuple(frames)))
    return dataclasses.replace(program, ops=tuple(ops))


def param_layer(path: tuple[str, ...]) -> tuple[str, ...]:
    """The layer an array at ``path`` belongs to: its parent node (a root array is its own)."""
    return path[:-1] if len(path) > 1 else path


def _owners_of_params(program: _jaxpr.Program) -> dict[int, str]:
    """Value id -> layer name for every parameter array (the first argument's leaves); a bare
    array passed as the parameters is no layer of its own."""
    return {
        value: "/".join(param_layer(path))
        for value, arg, path in zip(
            program.inputs, program.input_args, program.input_paths, strict=True
        )
        if arg == 0 and path
    }


def _param_frames(program: _jaxpr.Program) -> _jaxpr.Program:
    """Operations outside every scope placed in the layer whose parameters they read.

    A value computed from one layer's parameters alone (a broadcast bias, a transposed kernel)
    belongs to that layer too. Each contiguous run of one layer's operations is one call, so the
    layer view of a feed-forward function stays acyclic.
    """
    owner = _owners_of_params(program)
    runs = itertools.count(1)
    ops, previous, call_id = [], None, 0
    for op in program.ops:
        if any(f.is_scope or f.is_layer for f in op.frames):
            ops.append(op)
            previous = None
            continue
        found = [owner[v] for v in op.inputs if v in owner]
        if not found:
            ops.append(op)
            previous = None
            continue
        layer = found[0]
        if len(found) == len(op.inputs) and len(set(found)) == 1:
            owner.update((v, layer) for v in op.outputs)
        if layer != previous:
            call_id = next(runs)
        previous = layer
        frame = _jaxpr.Frame(_jaxpr.LAYER, layer, call_id)
        ops.append(dataclasses.replace(op, frames=(frame, *op.frames)))
    return dataclasses.replace(program, ops=tuple(ops))


def trace_model(
    info: ModelInfo,
    inputs: Sequence[Any],
    call_kwargs: dict | None = None,
    with_state: bool = False,
    mark_pass_through: bool = False,
) -> TracedModel:
    """Trace the model on ``inputs`` (shapes only, nothing runs) with its layers marked.

    ``with_state`` makes a module's call return its updated state too (see ``_module_fn``);
    ``mark_pass_through`` gives layers that compute nothing an operation (see ``_Recorder``).
    """
    kwargs = dict(call_kwargs or {})
    view = info.view
    if info.apply_fn is not None:
        args = (view.trainable, *inputs)
        names = _call_names(info, len(args))
        program, traced = _jaxpr.trace(info.apply_fn, args, "apply_fn", kwargs, names)
        program = _param_frames(program)
        found = any(f.is_scope or f.is_layer for op in program.ops for f in op.frames)
        return TracedModel(program, traced, [], frozenset({0}), found)
    recorder = _Recorder(mark_pass_through)
    args = (view.trainable, view.state, *inputs)
    names = _call_names(info, len(args))
    program, traced = _jaxpr.trace(
        _module_fn(info, recorder, with_state), args, "model", kwargs, names
    )
    program = _module_frames(program, recorder, view.framework)
    found = any(f.is_layer for op in program.ops for f in op.frames)
    return TracedModel(program, traced, recorder.calls, frozenset({0, 1}), found)


def layer_types(info: ModelInfo, calls: list[Call]) -> dict[tuple[str, ...], str]:
    """Layer path -> class name: the module tree's, then what the calls found (Linen)."""
    types = dict(info.modules)
    for call in calls:
        types.setdefault(call.path, call.type_name)
    return types
