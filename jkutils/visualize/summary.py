"""``print_summary``: a Keras-style table of a parameter pytree, traced through a function or not.

In JAX a model is a pytree of parameters plus a function. A *layer* is the innermost node of the
tree that holds arrays (``params["dense1"]`` holding ``w`` and ``b``), or the node at ``depth`` when
a depth is given; arrays sitting directly in the root are layers of their own. Given the function
and example inputs, the call is traced abstractly (shapes only, nothing runs) and each layer's
output shape is read from the ``jax.named_scope`` of the same name; the whole call's FLOPs and
memory come from XLA's cost and memory analysis of the compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
import textwrap
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jkutils._pytree import path_string
from jkutils.visualize import _jaxpr

__all__ = ["print_summary"]

_SIZE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")
_MIN_COLUMN_WIDTH = 4
_MAX_NATURAL_WIDTH = 40
_RIGHT_ALIGNED = frozenset({"Param #", "Size"})


@dataclasses.dataclass
class _Layer:
    """One row: a node of the parameter tree (or a parameter-free named scope)."""

    path: tuple[str, ...]
    leaves: list[tuple[str, Any, bool]] = dataclasses.field(default_factory=list)
    output: str = "?"

    @property
    def name(self) -> str:
        return "/".join(self.path)


def readable_size(num_bytes: float) -> str:
    """``num_bytes`` in binary units with two decimals, as Keras prints them.

    Example:
        >>> readable_size(1536)
        '1.50 KB'
    """
    value = float(num_bytes)
    for unit in _SIZE_UNITS[:-1]:
        if value < 1024:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} {_SIZE_UNITS[-1]}"


@functools.lru_cache(maxsize=256)
def short_dtype(dtype: Any) -> str:
    """JAX's compact dtype spelling: ``float32`` -> ``f32``, ``uint8`` -> ``u8``."""
    name = str(jnp.dtype(dtype)) if not _is_key_dtype(dtype) else str(dtype)
    for long, short in (
        ("bfloat", "bf"),
        ("complex", "c"),
        ("float", "f"),
        ("uint", "u"),
        ("int", "i"),
    ):
        if name.startswith(long):
            return short + name[len(long) :]
    return name


def array_text(shape: Sequence[int], dtype: Any) -> str:
    """``f32[2,8]``-style text for an array's dtype and shape."""
    return f"{short_dtype(dtype)}[{','.join(str(d) for d in shape)}]"


def _is_key_dtype(dtype: Any) -> bool:
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


@functools.lru_cache(maxsize=256)
def _dtype_bits(dtype: Any) -> int:
    """Bits per element (4 for int4, 64 for a threefry key)."""
    if _is_key_dtype(dtype):
        return 8 * dtype.itemsize
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.iinfo(dtype).bits
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.finfo(dtype).bits
    return 8 * dtype.itemsize


def _leaf_size(leaf: Any) -> tuple[int, float]:
    """``(element count, bytes)`` of one array-like leaf."""
    count = math.prod(leaf.shape)
    return count, count * _dtype_bits(leaf.dtype) / 8


def _entry_name(entry: Any) -> str:
    return path_string((entry,))


def _trainable_flags(trainable: Any, params: Any) -> list[bool]:
    """One flag per leaf of ``params`` from a boolean pytree of the same structure or a prefix."""
    leaves_count = len(jax.tree_util.tree_leaves(params))
    if trainable is None:
        return [True] * leaves_count
    try:
        flags = jax.tree_util.tree_leaves(jax.tree.broadcast(trainable, params))
    except (ValueError, TypeError) as err:
        raise ValueError(
            "`trainable` must be a pytree of booleans with the structure of `params` (or a "
            f"prefix of it). Received: trainable={trainable!r}; {err}"
        ) from None
    bad = [f for f in flags if not isinstance(f, bool | jnp.bool_)]
    if bad:
        raise TypeError(
            f"`trainable` must hold booleans only. Received a leaf {bad[0]!r} "
            f"(of type {type(bad[0]).__name__})"
        )
    return [bool(f) for f in flags]


def _layers_of(params: Any, depth: int | None, trainable: Any) -> list[_Layer]:
    """Group the array leaves of ``params`` into layers, in tree order."""
    path_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    flags = _trainable_flags(trainable, params)
    layers: dict[tuple[str, ...], _Layer] = {}
    for (path, leaf), flag in zip(path_leaves, flags, strict=True):
        if not _jaxpr.is_array_like(leaf):
            continue
        names = tuple(_entry_name(entry) for entry in path)
        cut = len(names) - 1 if len(names) > 1 else len(names)
        if depth is not None:
            cut = min(cut, depth)
        layer = layers.setdefault(names[:cut], _Layer(names[:cut]))
        layer.leaves.append(("/".join(names[cut:]), leaf, flag))
    if path_leaves and not layers:
        kinds = sorted({type(leaf).__name__ for _, leaf in path_leaves})
        raise TypeError(
            "`params` must be a pytree holding arrays (objects with `shape` and `dtype`). "
            f"Received a pytree whose leaves are only of type {', '.join(kinds)}"
        )
    return list(layers.values())


def _matched_scope(path: tuple[str, ...], scopes: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The longest scope path that ``path`` ends with (``params/dense`` matches ``dense``)."""
    for start in range(len(path)):
        if path[start:] in scopes:
            return path[start:]
    return None


def _row_key(scope: tuple[str, ...], matched: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The summary row an operation in ``scope`` belongs to.

    The deepest matched layer scope around it owns it. Otherwise the outermost scope around it
    that neither is nor encloses a matched scope becomes a parameter-free row of its own; ops
    directly inside scopes that only enclose layers (or in no scope) belong to no row.
    """
    for end in range(len(scope), 0, -1):
        if scope[:end] in matched:
            return scope[:end]
    enclosing = {m[:end] for m in matched for end in range(1, len(m) + 1)}
    for end in range(1, len(scope) + 1):
        if scope[:end] not in enclosing:
            return scope[:end]
    return None


def _traced_layers(
    layers: list[_Layer], program: _jaxpr.Program, depth: int | None
) -> list[_Layer]:
    """Layers in call order with output shapes, plus parameter-free named scopes as rows."""
    scope_of = [op.scope_path()[:depth] for op in program.ops]
    all_scopes = {s[:end] for s in scope_of for end in range(1, len(s) + 1)}
    match = {layer.path: _matched_scope(layer.path, all_scopes) for layer in layers}
    matched = {m for m in match.values() if m is not None}
    row_of = {scope: _row_key(scope, matched) for scope in set(scope_of)}
    grouped = _jaxpr.groups(program, lambda i, op: row_of[scope_of[i]])
    by_scope: dict[Hashable, list[_Layer]] = {}
    for layer in layers:
        by_scope.setdefault(match[layer.path], []).append(layer)
    ordered: list[_Layer] = []
    for scope, group in grouped.items():
        output = ", ".join(_value_text(program, v) for v in group.outputs) or "?"
        for layer in by_scope.pop(scope, None) or [_Layer(scope)]:
            layer.output = output
            ordered.append(layer)
    return ordered + [layer for rest in by_scope.values() for layer in rest]


def _value_text(program: _jaxpr.Program, value: int) -> str:
    aval = program.avals[value]
    return array_text(aval.shape, aval.dtype)


def _leaf_lines(layer: _Layer) -> list[str]:
    texts = [(name, array_text(leaf.shape, leaf.dtype)) for name, leaf, _ in layer.leaves]
    return [f"{name}: {text}" if name else text for name, text in texts] or ["-"]


def _trainable_text(layer: _Layer) -> str:
    flags = {flag for _, _, flag in layer.leaves}
    return {frozenset(): "-", frozenset({True}): "Y", frozenset({False}): "N"}.get(
        frozenset(flags), "mixed"
    )


def _row_cells(layer: _Layer, traced: bool, masked: bool) -> list[str]:
    sizes = [_leaf_size(leaf) for _, leaf, _ in layer.leaves]
    count = sum(c for c, _ in sizes)
    size = sum(b for _, b in sizes)
    cells = [layer.name or "(root)"]
    if traced:
        cells.append(layer.output)
    cells += ["\n".join(_leaf_lines(layer)), f"{count:,}", readable_size(size)]
    if masked:
        cells.append(_trainable_text(layer))
    return cells


def _headers(traced: bool, masked: bool) -> list[str]:
    headers = ["Layer"] + (["Output Shape"] if traced else []) + ["Parameters", "Param #", "Size"]
    return headers + (["Trainable"] if masked else [])


def _totals(layers: list[_Layer]) -> dict[bool, tuple[int, float]]:
    """Count and bytes per trainable flag, counting an array seen at several paths once."""
    seen: set[int] = set()
    totals = {True: (0, 0.0), False: (0, 0.0)}
    for layer in layers:
        for _, leaf, flag in layer.leaves:
            if id(leaf) in seen:
                continue
            seen.add(id(leaf))
            count, size = _leaf_size(leaf)
            totals[flag] = (totals[flag][0] + count, totals[flag][1] + size)
    return totals


def _total_lines(layers: list[_Layer]) -> list[str]:
    totals = _totals(layers)
    count = totals[True][0] + totals[False][0]
    size = totals[True][1] + totals[False][1]
    return [
        f" Total params: {count:,} ({readable_size(size)})",
        f" Trainable params: {totals[True][0]:,} ({readable_size(totals[True][1])})",
        f" Non-trainable params: {totals[False][0]:,} ({readable_size(totals[False][1])})",
    ]


def _compiler_lines(traced: Any) -> list[str]:
    """FLOPs and memory of the whole call from XLA's analyses of the compiled program."""
    compiled = traced.lower().compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    flops = cost.get("flops") if cost else None
    lines = [
        f" FLOPs per call: {int(flops):,} (XLA cost analysis)"
        if flops is not None
        else " FLOPs per call: unavailable (this backend's cost analysis reported none)"
    ]
    memory = compiled.memory_analysis()
    if memory is None:
        return [
            *lines,
            " Memory per call: unavailable (this backend's memory analysis reported none)",
        ]
    parts = [
        (label, getattr(memory, attr, None))
        for label, attr in (
            ("arguments", "argument_size_in_bytes"),
            ("outputs", "output_size_in_bytes"),
            ("temporaries", "temp_size_in_bytes"),
        )
    ]
    text = ", ".join(f"{label} {readable_size(v)}" for label, v in parts if v is not None)
    return lines + [f" Memory per call: {text} (XLA memory analysis)"]


def _natural_widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    """Each column's width: its longest line (capped, longer text wraps) plus two spaces."""
    widths = []
    for col, header in enumerate(headers):
        longest = max((len(line) for row in rows for line in row[col].split("\n")), default=0)
        widths.append(max(len(header), min(longest, _MAX_NATURAL_WIDTH)) + 2)
    return widths


def _column_widths(
    natural: list[int], line_length: int | None, positions: Sequence[float] | None
) -> list[int]:
    """Column widths from Keras-style ``line_length`` and ``positions`` (right edges)."""
    total = sum(natural) if line_length is None else line_length
    if positions is None:
        edges = list(itertools.accumulate(natural))
        edges = [e * total / edges[-1] for e in edges]
    else:
        edges = [p * total if positions[-1] <= 1 else p for p in positions]
    widths = [int(b) - int(a) for a, b in zip([0.0] + edges[:-1], edges, strict=True)]
    if min(widths) < _MIN_COLUMN_WIDTH:
        raise ValueError(
            f"`line_length`/`positions` leave a column narrower than {_MIN_COLUMN_WIDTH} "
            f"characters (widths {widths}). Received: line_length={line_length}, "
            f"positions={positions}; pass a larger line_length"
        )
    return widths


def _wrapped(text: str, width: int) -> list[str]:
    """``text`` broken into lines of at most ``width`` characters, nothing dropped."""
    lines = []
    for part in text.split("\n"):
        if len(part) <= width:
            lines.append(part)
            continue
        lines += textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _table_lines(headers: list[str], rows: list[list[str]], widths: list[int]) -> list[str]:
    def render(cells: list[str]) -> list[str]:
        wrapped = [_wrapped(cell, w - 2) for cell, w in zip(cells, widths, strict=True)]
        height = max(len(w) for w in wrapped)
        out = []
        for i in range(height):
            parts = []
            for header, lines, w in zip(headers, wrapped, widths, strict=True):
                text = lines[i] if i < len(lines) else ""
                parts.append(text.rjust(w - 2) if header in _RIGHT_ALIGNED else text.ljust(w - 2))
            out.append((" " + "  ".join(parts)).rstrip())
        return out

    rendered = [render(row) for row in rows]
    spaced = any(len(r) > 1 for r in rendered)
    body: list[str] = []
    for i, lines in enumerate(rendered):
        body += ([""] if spaced and i else []) + lines
    rule = sum(widths)
    return ["_" * rule, *render(headers), "=" * rule, *body, "=" * rule]


def _checked_positive_int(value: Any, argname: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"`{argname}` must be a positive integer or None. Received: {argname}={value!r}"
        )
    return int(value)


def _checked_positions(positions: Any, columns: int) -> list[float] | None:
    if positions is None:
        return None
    ok = (
        isinstance(positions, Sequence)
        and len(positions) == columns
        and all(isinstance(p, numbers.Real) and not isinstance(p, bool) for p in positions)
        and all(a < b for a, b in zip([0, *positions[:-1]], positions, strict=True))
    )
    if not ok:
        raise ValueError(
            f"`positions` must be {columns} increasing positive numbers (the right edge of each "
            "column: fractions of line_length, or character counts). "
            f"Received: positions={positions!r}"
        )
    return [float(p) for p in positions]


def print_summary(
    params: Any,
    apply_fn: Callable | None = None,
    *,
    inputs: Any = None,
    line_length: int | None = None,
    positions: Sequence[float] | None = None,
    print_fn: Callable[[str], Any] | None = None,
    depth: int | None = None,
    trainable: Any = None,
) -> None:
    """Print a table of a parameter pytree's layers, shapes, counts and sizes.

    Args:
        params: Any pytree whose array leaves are the parameters (nested dicts, lists, tuples,
            NamedTuples, dataclass pytrees, equinox-style modules). Leaves without ``shape`` and
            ``dtype`` (functions, Python numbers) are not parameters and are skipped. Arrays may be
            ``jax.ShapeDtypeStruct``s; no array data is read.
        apply_fn: Optional model function, called as ``apply_fn(params, *inputs)``. It is traced
            abstractly and compiled, never executed. Adds each layer's output shape (for layers
            whose code runs under a ``jax.named_scope`` with the layer's name) and the call's FLOPs
            and memory.
        inputs: The positional arguments after ``params``: a tuple or list, or a single array.
            Array leaves may be ``jax.ShapeDtypeStruct``s; other leaves are passed as they are.
        line_length: Total width in characters. Default: as wide as the content needs, with long
            cells wrapped at 40 characters.
        positions: Right edge of each column, as fractions of ``line_length`` (last ≤ 1) or as
            character counts.
        print_fn: Called once per line. Default: ``print``.
        depth: Cut the tree at this many levels: deeper nodes are summed into their ancestor.
        trainable: Optional boolean pytree with the structure of ``params`` or a prefix of it;
            splits the totals into trainable and non-trainable and adds a ``Trainable`` column.

    Example:
        >>> params = {"dense": {"w": jnp.ones((4, 8)), "b": jnp.zeros(8)}}
        >>> print_summary(params)  # doctest: +SKIP
    """
    line_length = _checked_positive_int(line_length, "line_length")
    depth = _checked_positive_int(depth, "depth")
    if print_fn is None:
        print_fn = print
    elif not callable(print_fn):
        raise TypeError(f"`print_fn` must be callable. Received: print_fn={print_fn!r}")
    if inputs is not None and apply_fn is None:
        raise ValueError("`inputs` needs `apply_fn`: pass the function that consumes them.")
    layers = _layers_of(params, depth, trainable)
    traced = apply_fn is not None
    headers = _headers(traced, trainable is not None)
    positions = _checked_positions(positions, len(headers))
    footer: list[str] = []
    if traced:
        program, traced_call = _jaxpr.trace(apply_fn, (params, *_input_args(inputs)), "apply_fn")
        layers = _traced_layers(layers, program, depth)
        footer = _compiler_lines(traced_call)
    rows = [_row_cells(layer, traced, trainable is not None) for layer in layers]
    widths = _column_widths(_natural_widths(headers, rows), line_length, positions)
    lines = [
        _title(params, apply_fn),
        *_table_lines(headers, rows, widths),
        *_total_lines(layers),
        *footer,
        "_" * sum(widths),
    ]
    for line in lines:
        print_fn(line)


def _title(params: Any, apply_fn: Callable | None) -> str:
    """Keras's ``Model: "name"`` line for a function; the pytree's type for parameters alone."""
    if apply_fn is None:
        return f"Parameters: {type(params).__name__}"
    return f'Model: "{_jaxpr.function_name(apply_fn)}"'


def _input_args(inputs: Any) -> tuple:
    """``inputs`` as positional arguments: a tuple/list as is, a lone array wrapped."""
    if inputs is None:
        return ()
    if isinstance(inputs, tuple | list):
        return tuple(inputs)
    if _jaxpr.is_array_like(inputs):
        return (inputs,)
    raise TypeError(
        "`inputs` must be a tuple or list of positional arguments for `apply_fn`, or one array. "
        f"Received: inputs={inputs!r} (of type {type(inputs).__name__})"
    )
