"""Tracing a function to a jaxpr and walking it once, for both the summary and the graph.

The walk flattens nested calls (``jit``, ``closed_call``, ``custom_jvp_call``,
``custom_vjp_call``, ``checkpoint``) into one list of primitive operations. Each operation keeps
the *frames* it ran in, outermost first: the ``jax.named_scope``/``jax.named_call`` scopes of its
name stack and the calls it sits inside. Inside a nested call JAX records name stacks relative to
the call, so frames are composed across levels here. Every array value gets an integer id, and a
call's inputs and outputs are bound to the ids of its caller, so data flow crosses call boundaries
without any extra bookkeeping by the callers of this module.

Control flow (``scan``, ``while``, ``cond``) and ``shard_map`` stay single operations: their
bodies run many times or on other shapes, so they are not one-to-one with the caller's values.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
from jax.extend import core as jex_core

from jkutils._pytree import path_names, path_string

# Primitives whose body runs exactly once on exactly the caller's values.
_INLINED_CALLS = frozenset(
    {
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "call",
        "custom_jvp_call",
        "custom_vjp_call",
        "checkpoint",
        "remat",
        "remat2",
    }
)
_BODY_PARAMS = ("jaxpr", "call_jaxpr")
_JITS = ("jit", "pjit")
# How a call is shown: JAX's internal primitive names for the same thing under one public name.
_CALL_KINDS = {"pjit": "jit", "remat": "checkpoint", "remat2": "checkpoint"}
# The frame kind of a layer found by jkutils.visualize._layers; its name is the layer's path.
LAYER = "layer"


@dataclasses.dataclass(frozen=True)
class Frame:
    """A scope or a call an operation ran in.

    ``kind`` is ``"scope"`` for a ``jax.named_scope`` (or ``jax.named_call``) and the primitive
    name (``"jit"``, ``"custom_jvp_call"``, ...) for a call. ``call_id`` tells two calls of one
    function apart; it is 0 for scopes, so re-entering a scope of the same name under the same
    parent (a shared layer) lands in the same frame.
    """

    kind: str
    name: str
    call_id: int = 0

    @property
    def is_scope(self) -> bool:
        return self.kind == "scope"

    @property
    def is_layer(self) -> bool:
        return self.kind == LAYER


@dataclasses.dataclass(frozen=True)
class Op:
    """One primitive operation: what it is, where it ran, and the value ids it reads/writes.

    ``inputs`` leaves out literals and captured constants, which have no producer to draw.
    ``eqn`` is the JAX equation itself, for costing it.
    """

    primitive: str
    frames: tuple[Frame, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    eqn: Any = dataclasses.field(default=None, compare=False, repr=False)

    def scope_path(self) -> tuple[str, ...]:
        """Names of the enclosing named scopes, outermost first (calls skipped)."""
        return tuple(f.name for f in self.frames if f.is_scope)

    def layer_path(self) -> tuple[str, ...]:
        """The innermost layer's path, then the named scopes inside it (calls skipped)."""
        path: tuple[str, ...] = ()
        for frame in self.frames:
            if frame.is_layer:
                path = tuple(frame.name.split("/")) if frame.name else ()
            elif frame.is_scope:
                path += (frame.name,)
        return path


@dataclasses.dataclass(frozen=True)
class Program:
    """A traced function as a flat list of operations over integer value ids.

    ``avals[v]`` is value ``v``'s abstract value (``shape``, ``dtype``). ``inputs`` are the ids of
    the flattened array arguments and ``input_args[k]`` the positional argument ``inputs[k]``
    came from, named ``arg_names[input_args[k]]``, at ``input_paths[k]`` inside it;
    ``outputs`` are the ids of the flattened results, named by ``output_names``.
    """

    ops: tuple[Op, ...]
    avals: tuple[Any, ...]
    inputs: tuple[int, ...]
    input_args: tuple[int, ...]
    arg_names: tuple[str, ...]
    outputs: tuple[int, ...]
    output_names: tuple[str, ...]
    input_paths: tuple[tuple[str, ...], ...] = ()


@dataclasses.dataclass
class Group:
    """Operations that share a key, with the values crossing the group's boundary."""

    ops: list[int] = dataclasses.field(default_factory=list)
    inputs: list[int] = dataclasses.field(default_factory=list)
    outputs: list[int] = dataclasses.field(default_factory=list)


def is_array_like(leaf: Any) -> bool:
    """Whether ``leaf`` describes an array: it has both ``shape`` and ``dtype``."""
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def function_name(fn: Callable) -> str:
    """``fn.__name__``, or the type's name for callables without one (``functools.partial``)."""
    return getattr(fn, "__name__", type(fn).__name__)


def abstract(leaf: Any) -> jax.ShapeDtypeStruct:
    """A shape/dtype stand-in for an array-like leaf, so tracing never touches its data."""
    return jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype)


def argument_names(fn: Callable, count: int) -> list[str]:
    """Names of the first ``count`` positional parameters of ``fn`` (``arg{i}`` when unknown)."""
    names = [f"arg{i}" for i in range(count)]
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return names
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for i, param in enumerate(params[:count]):
        if param.kind not in positional:
            break
        names[i] = param.name
    return names


def _joined(prefix: str, path: tuple) -> str:
    rest = path_string(path)
    return f"{prefix}/{rest}" if rest and prefix else (rest or prefix)


def trace(
    fn: Callable,
    args: Sequence[Any],
    argname: str = "fn",
    kwargs: dict | None = None,
    names: Sequence[str] | None = None,
) -> tuple[Program, Any]:
    """Trace ``fn(*args, **kwargs)`` abstractly and walk it.

    Array-like leaves of ``args`` become abstract inputs (shape and dtype only); any other leaf
    (a Python flag, an activation function) is passed through unchanged, as a static value, and
    so is everything in ``kwargs``. ``names`` names the arguments (default: ``fn``'s own).

    Returns:
        ``(program, traced)`` where ``traced`` is the ``jax.stages.Traced`` of the call, ready
        for ``.lower()`` when compiler statistics are wanted.
    """
    if not callable(fn):
        raise TypeError(
            f"`{argname}` must be a callable. Received: {argname}={fn!r} "
            f"(of type {type(fn).__name__})"
        )
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    dynamic = [i for i, (_, leaf) in enumerate(path_leaves) if is_array_like(leaf)]
    out_paths: list[tuple] = []

    def flat_fn(*arrays):
        leaves = [leaf for _, leaf in path_leaves]
        for i, array in zip(dynamic, arrays, strict=True):
            leaves[i] = array
        out = fn(*jax.tree_util.tree_unflatten(treedef, leaves), **(kwargs or {}))
        out_leaves = jax.tree_util.tree_flatten_with_path(out)[0]
        out_paths[:] = [path for path, _ in out_leaves]
        return [leaf for _, leaf in out_leaves]

    traced = jax.jit(flat_fn).trace(*(abstract(path_leaves[i][1]) for i in dynamic))
    names = list(names) if names is not None else argument_names(fn, len(args))
    output_names = tuple(_joined("output", path) for path in out_paths)
    program = walk(traced.jaxpr)
    return dataclasses.replace(
        program,
        input_args=tuple(path_leaves[i][0][0].idx for i in dynamic),
        input_paths=tuple(path_names(path_leaves[i][0][1:]) for i in dynamic),
        arg_names=tuple(names),
        output_names=output_names,
    ), traced


def walk(closed: Any) -> Program:
    """Flatten a ``ClosedJaxpr`` into a :class:`Program` (see the module docstring).

    Names are left generic (``in{i}``/``out{i}``, one argument per input); :func:`trace` fills
    in the real ones.
    """
    walker = _Walker()
    jaxpr = closed.jaxpr
    env = {var: walker.new_value(var.aval) for var in jaxpr.invars}
    walker.walk(jaxpr, env, (), top=True)
    outputs = tuple(walker.read_or_new(env, var) for var in jaxpr.outvars)
    return Program(
        ops=tuple(walker.ops),
        avals=tuple(walker.avals),
        inputs=tuple(env[var] for var in jaxpr.invars),
        input_args=tuple(range(len(jaxpr.invars))),
        arg_names=tuple(f"in{i}" for i in range(len(jaxpr.invars))),
        outputs=outputs,
        output_names=tuple(f"out{i}" for i in range(len(outputs))),
    )


def _scope_frames(eqn: Any) -> tuple[Frame, ...]:
    """The named scopes on an equation's name stack (transforms such as ``vmap`` dropped)."""
    stack = getattr(eqn.source_info.name_stack, "stack", ())
    return tuple(Frame("scope", item.name) for item in stack if type(item).__name__ == "Scope")


def _inlined_body(eqn: Any) -> Any | None:
    """The body ``Jaxpr`` of a call that runs once on the caller's values, else None."""
    if eqn.primitive.name not in _INLINED_CALLS:
        return None
    for key in _BODY_PARAMS:
        body = getattr(eqn.params.get(key), "jaxpr", eqn.params.get(key))
        if (
            isinstance(body, jex_core.Jaxpr)
            and len(body.invars) == len(eqn.invars)
            and len(body.outvars) == len(eqn.outvars)
        ):
            return body
    return None


def _call_name(eqn: Any, body: Any) -> str:
    """The called function's name: the ``name`` param, else its debug info, else the primitive."""
    name = eqn.params.get("name")
    if name:
        return str(name)
    func_name = getattr(getattr(body, "debug_info", None), "func_name", None)
    return func_name or eqn.primitive.name


class _Walker:
    """Accumulates operations and value avals while descending through calls."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.avals: list[Any] = []
        self._call_ids = itertools.count(1)

    def new_value(self, aval: Any) -> int:
        self.avals.append(aval)
        return len(self.avals) - 1

    def read_or_new(self, env: dict, atom: Any) -> int:
        """The id of ``atom``; a literal or constant gets a fresh id with no producer."""
        found = None if isinstance(atom, jex_core.Literal) else env.get(atom)
        return self.new_value(atom.aval) if found is None else found

    def walk(self, jaxpr: Any, env: dict, frames: tuple[Frame, ...], top: bool) -> None:
        """Record ``jaxpr``'s operations, descending into inlined calls."""
        for eqn in jaxpr.eqns:
            here = frames + _scope_frames(eqn)
            ins = [None if isinstance(v, jex_core.Literal) else env.get(v) for v in eqn.invars]
            body = _inlined_body(eqn)
            if body is None:
                self._record(eqn, here, ins, env)
                continue
            # A function that is itself one jit call is unwrapped rather than drawn as one box.
            unwrap = top and not here and len(jaxpr.eqns) == 1 and eqn.primitive.name in _JITS
            call = () if unwrap else (self._call_frame(eqn, body),)
            sub_env = {v: i for v, i in zip(body.invars, ins, strict=True) if i is not None}
            self.walk(body, sub_env, here + call, top=unwrap)
            env.update(
                (outer, self.read_or_new(sub_env, inner))
                for outer, inner in zip(eqn.outvars, body.outvars, strict=True)
            )

    def _record(self, eqn: Any, frames: tuple[Frame, ...], ins: list, env: dict) -> None:
        outs = tuple(self.new_value(v.aval) for v in eqn.outvars)
        env.update(zip(eqn.outvars, outs, strict=True))
        known = tuple(i for i in ins if i is not None)
        self.ops.append(Op(eqn.primitive.name, frames, known, outs, eqn))

    def _call_frame(self, eqn: Any, body: Any) -> Frame:
        kind = _CALL_KINDS.get(eqn.primitive.name, eqn.primitive.name)
        return Frame(kind, _call_name(eqn, body), next(self._call_ids))


def groups(program: Program, key_of: Callable[[int, Op], Hashable | None]) -> dict[Hashable, Group]:
    """Group operations by ``key_of(index, op)`` (None: ungrouped) and find boundary values.

    A group's ``inputs`` are the values its operations read that it did not produce; its
    ``outputs`` are the values it produced that something outside it reads, or that the program
    returns. Both keep first-seen order; groups keep the order of their first operation.
    """
    keys = [key_of(i, op) for i, op in enumerate(program.ops)]
    producer = {v: keys[i] for i, op in enumerate(program.ops) for v in op.outputs}
    escaping = set(program.outputs)
    escaping.update(
        v
        for key, op in zip(keys, program.ops, strict=True)
        for v in op.inputs
        if v in producer and producer[v] != key
    )
    result: dict[Hashable, Group] = {}
    for i, (key, op) in enumerate(zip(keys, program.ops, strict=True)):
        if key is None:
            continue
        group = result.setdefault(key, Group())
        group.ops.append(i)
        group.inputs.extend(v for v in op.inputs if v not in producer or producer[v] != key)
        group.outputs.extend(v for v in op.outputs if v in escaping)
    for group in result.values():
        group.inputs = list(dict.fromkeys(group.inputs))
    return result
