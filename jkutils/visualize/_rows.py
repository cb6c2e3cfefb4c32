"""The rows of a summary: one per layer, with its arrays and, once traced, shapes and FLOPs.

Rows are exclusive: a layer's arrays and FLOPs are its own, not its sublayers' (``depth`` folds
deeper rows into their ancestor), so every column adds up to the totals. The model's own
operations between its layers (an activation, a reshape) make the ``(root)`` row.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from jkutils.visualize import _flops, _jaxpr
from jkutils.visualize._layers import Leaf, ModelInfo, TracedModel, layer_types, param_layer
from jkutils.visualize._text import array_text

__all__ = ["Row", "traced_rows", "tree_rows"]

_UNTRACED = float("inf")


@dataclasses.dataclass
class Row:
    """One row of the summary.

    ``leaves`` are ``(name inside the layer, array, trainable)``; ``flops`` is None when some
    operation of the layer could not be costed, and ``inputs``/``output`` are ``?`` for a layer
    the call never entered.
    """

    path: tuple[str, ...]
    type_name: str = "-"
    leaves: list[tuple[str, Any, bool]] = dataclasses.field(default_factory=list)
    statics: list[str] = dataclasses.field(default_factory=list)
    inputs: str = "?"
    output: str = "?"
    flops: float | None = 0.0

    @property
    def name(self) -> str:
        return "/".join(self.path) or "(root)"


def _cut(path: tuple[str, ...], depth: int | None) -> tuple[str, ...]:
    return path if depth is None else path[:depth]


def _owner(path: tuple[str, ...], layers: set[tuple[str, ...]]) -> tuple[str, ...]:
    """The deepest layer strictly above an array's path (the root when none is)."""
    for end in range(len(path) - 1, 0, -1):
        if path[:end] in layers:
            return path[:end]
    return ()


def _leaf_entry(leaf: Leaf, owner: tuple[str, ...]) -> tuple[str, Any, bool]:
    rest = "/".join(leaf.path[len(owner) :])
    if leaf.collection:
        rest = f"{leaf.collection}/{rest}" if rest else leaf.collection
    return rest, leaf.array, leaf.trainable


def _rows_with_leaves(
    info: ModelInfo,
    owner_of: Callable[[Leaf], tuple[str, ...]],
    depth: int | None,
    rows: dict[tuple[str, ...], Row] | None = None,
) -> dict[tuple[str, ...], Row]:
    """Rows (new ones in tree order) holding each array in the row of its owner, cut at depth."""
    rows = {} if rows is None else rows
    for leaf in info.leaves:
        owner = _cut(owner_of(leaf), depth)
        row = rows.setdefault(owner, Row(owner))
        row.leaves.append(_leaf_entry(leaf, owner))
    return rows


def _module_owner(info: ModelInfo, layers: set[tuple[str, ...]]) -> Callable[[Leaf], tuple]:
    """Which row holds an array: its deepest layer; for a pytree (or Linen variables without a
    call, whose variables are the only structure there is) its parent node."""
    if not info.is_module or not layers:
        return lambda leaf: param_layer(leaf.path)
    return lambda leaf: _owner(leaf.path, layers)


def _typed(rows: dict[tuple[str, ...], Row], info: ModelInfo, types: dict) -> None:
    for path, row in rows.items():
        row.type_name = types.get(path, row.type_name)
        row.statics = list(info.statics.get(path, []))


def tree_rows(info: ModelInfo, depth: int | None) -> list[Row]:
    """Rows without tracing: the module tree's layers, or the innermost nodes holding arrays."""
    layers = set(info.modules) - {()}
    rows: dict[tuple[str, ...], Row] = {}
    if info.is_module:
        for path in sorted({_cut(p, depth) for p in info.modules}):
            rows[path] = Row(path)
    rows = _rows_with_leaves(info, _module_owner(info, layers), depth, rows)
    _typed(rows, info, info.modules)
    if () in rows and not rows[()].leaves and len(rows) > 1:
        del rows[()]
    return list(rows.values())


# ----------------------------------------------------------------------------- traced


def _value_text(program: _jaxpr.Program, value: int) -> str:
    aval = program.avals[value]
    return array_text(aval.shape, aval.dtype)


def _avals_text(avals: Sequence[Any]) -> str:
    return ", ".join(array_text(a.shape, a.dtype) for a in avals) or "-"


def _summed_flops(program: _jaxpr.Program, ops: list[int]) -> float | None:
    total = 0.0
    for i in ops:
        flops = _flops.operation_flops(program.ops[i].eqn)
        if flops is None:
            return None
        total += flops
    return total


def _param_values(program: _jaxpr.Program, param_args: frozenset[int]) -> set[int]:
    return {
        v for v, arg in zip(program.inputs, program.input_args, strict=True) if arg in param_args
    }


def _group_texts(program: _jaxpr.Program, group: _jaxpr.Group, params: set[int]) -> tuple[str, str]:
    inputs = [_value_text(program, v) for v in group.inputs if v not in params]
    outputs = [_value_text(program, v) for v in group.outputs]
    return ", ".join(dict.fromkeys(inputs)) or "-", ", ".join(outputs) or "?"


def _root_texts(program: _jaxpr.Program, params: set[int]) -> tuple[str, str]:
    inputs = [_value_text(program, v) for v in program.inputs if v not in params]
    outputs = [_value_text(program, v) for v in program.outputs]
    return ", ".join(inputs) or "-", ", ".join(outputs) or "-"


def _suffix_scopes(scopes: set[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each unambiguous trailing part of a scope path -> that scope (``CNN/Conv_0`` by
    ``Conv_0``), so a parameter path with another root (``params/Conv_0``) finds it."""
    found: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for scope in scopes:
        for start in range(len(scope)):
            found.setdefault(scope[start:], set()).add(scope)
    return {tail: owners.pop() for tail, owners in found.items() if len(owners) == 1}


def _matched_scope(path: tuple[str, ...], tails: dict) -> tuple[str, ...] | None:
    """The scope whose path ends like ``path`` on the most entries (``params/dense`` matches a
    scope ``dense``, ``params/Conv_0`` a scope ``CNN/Conv_0``)."""
    for start in range(len(path)):
        if path[start:] in tails:
            return tails[path[start:]]
    return None


def _row_key(scope: tuple[str, ...], matched: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The summary row an operation in ``scope`` belongs to.

    The deepest matched layer scope around it owns it. Otherwise the outermost scope around it
    that neither is nor encloses a matched scope becomes a parameter-free row of its own; ops
    directly inside scopes that only enclose layers (or in no scope) belong to the root.
    """
    for end in range(len(scope), 0, -1):
        if scope[:end] in matched:
            return scope[:end]
    enclosing = {m[:end] for m in matched for end in range(1, len(m) + 1)}
    for end in range(1, len(scope) + 1):
        if scope[:end] not in enclosing:
            return scope[:end]
    return None


def _pytree_rows(info: ModelInfo, traced: TracedModel, depth: int | None) -> list[Row]:
    """Layers in call order with shapes and FLOPs, parameter-free scopes as rows, the root's
    own operations as a first ``(root)`` row; layers the call never entered come last."""
    program = traced.program
    layers = list(_rows_with_leaves(info, lambda leaf: param_layer(leaf.path), depth).values())
    scope_of = [_cut(op.layer_path(), depth) for op in program.ops]
    tails = _suffix_scopes({s[:end] for s in scope_of for end in range(1, len(s) + 1)})
    match = {layer.path: _matched_scope(layer.path, tails) for layer in layers}
    matched = {m for m in match.values() if m is not None}
    row_of = {scope: _row_key(scope, matched) for scope in set(scope_of)}
    grouped = _jaxpr.groups(program, lambda i, op: row_of[scope_of[i]] or ())
    by_scope: dict[Hashable, list[Row]] = {}
    for layer in layers:
        by_scope.setdefault(match[layer.path], []).append(layer)
    params = _param_values(program, traced.param_args)
    ordered: list[Row] = []
    for scope, group in grouped.items():
        flops = _summed_flops(program, group.ops)
        if scope == ():
            inputs, output = _root_texts(program, params)
            ordered.insert(0, Row((), inputs=inputs, output=output, flops=flops))
            continue
        inputs, output = _group_texts(program, group, params)
        for layer in by_scope.pop(scope, None) or [Row(typing.cast(tuple, scope))]:
            layer.inputs, layer.output, layer.flops = inputs, output, flops
            ordered.append(layer)
    rest = [layer for pending in by_scope.values() for layer in pending]
    for layer in rest:
        layer.flops = 0.0
    return ordered + rest


def _calls_text(calls: list[Any], attr: str) -> str:
    """The shapes of each distinct call signature, one line each."""
    return "\n".join(dict.fromkeys(_avals_text(getattr(call, attr)) for call in calls)) or "?"


def _module_order(
    traced: TracedModel, keys: list[tuple[str, ...]], types: dict, depth: int | None
) -> dict[tuple[str, ...], tuple]:
    """Sort keys: module rows in call order; a scope row after the call it started in (the
    latest call begun before its first operation); modules the call never entered last."""
    order: dict[tuple[str, ...], tuple] = {}
    for i, call in enumerate(traced.calls):
        order.setdefault(_cut(call.path, depth), (i, 0, 0))
    latest = 0
    for i, (key, op) in enumerate(zip(keys, traced.program.ops, strict=True)):
        latest = max([latest] + [f.call_id - 1 for f in op.frames if f.is_layer])
        order.setdefault(key, (latest, 1, i))
    for i, path in enumerate(sorted(types)):
        order.setdefault(_cut(path, depth), (_UNTRACED, 0, i))
    return order


def _module_rows(info: ModelInfo, traced: TracedModel, depth: int | None) -> list[Row]:
    """One row per module path (and per hand-written scope inside one), in call order."""
    program = traced.program
    types = layer_types(info, traced.calls)
    keys = [_cut(op.layer_path(), depth) for op in program.ops]
    grouped = _jaxpr.groups(program, lambda i, op: keys[i])
    order = _module_order(traced, keys, types, depth)
    rows = {key: Row(key, flops=0.0) for key in sorted(order, key=order.__getitem__)}
    params = _param_values(program, traced.param_args)
    for key, row in rows.items():
        calls = [call for call in traced.calls if call.path == key]
        if key in grouped:
            row.flops = _summed_flops(program, grouped[key].ops)
        if calls:
            row.inputs, row.output = _calls_text(calls, "inputs"), _calls_text(calls, "outputs")
        elif key in grouped:
            row.inputs, row.output = _group_texts(program, grouped[key], params)
    _rows_with_leaves(info, _module_owner(info, set(types) - {()}), depth, rows)
    _typed(rows, info, types)
    entered = set(keys) | {_cut(call.path, depth) for call in traced.calls}
    return [row for row in rows.values() if not _idle_container(row, entered, rows)]


def _idle_container(row: Row, entered: set[tuple[str, ...]], rows: dict) -> bool:
    """A module the call never entered that only holds other layers (an ``nnx.List``): its
    sublayers have rows of their own, so it would be an empty row."""
    if row.path in entered or row.leaves:
        return False
    return any(len(path) > len(row.path) and path[: len(row.path)] == row.path for path in rows)


def traced_rows(info: ModelInfo, traced: TracedModel, depth: int | None) -> list[Row]:
    """The rows of a traced model (see the module docstring)."""
    if info.is_module:
        return _module_rows(info, traced, depth)
    return _pytree_rows(info, traced, depth)
