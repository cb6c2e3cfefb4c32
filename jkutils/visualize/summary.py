"""``print_summary``: a table of a model's layers, like ``nnx.tabulate`` or torchinfo, as text.

The model is what the user holds: a Flax NNX module, an Equinox module, a bound Linen module (or
Linen variables with ``module.apply``), or any pytree of parameters with its function. Layers
come from the framework's own structure, or from ``jax.named_scope``s and the parameters each
operation reads (see :mod:`jkutils.visualize._layers`). Without example inputs the table lists
each layer's arrays; with them the call is traced abstractly (shapes only, nothing runs) and
each row gets its input and output shapes and its share of the FLOPs, which XLA's cost analysis
gives per operation and which add up to the whole call's.
"""

from __future__ import annotations

import itertools
import numbers
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jkutils._model import framework_of
from jkutils.visualize import _flops, _layers, _rows
from jkutils.visualize._text import array_text, leaf_size, readable_size

__all__ = ["print_summary", "readable_size"]

_MIN_COLUMN_WIDTH = 4
_MAX_NATURAL_WIDTH = 40
_RIGHT_ALIGNED = frozenset({"Param #", "Size", "FLOPs"})
_NO_LAYERS_NOTE = (
    " No layers found: the call has no `jax.named_scope` and no operation reads a parameter. "
    "Wrap each layer's code in `with jax.named_scope(name):`, named like its parameters "
    "(`params[name]`), or pass an NNX, Linen or Equinox module."
)


def _trainable_flags(trainable: Any, params: Any) -> list[bool] | None:
    """One flag per leaf of ``params`` from a boolean pytree of the same structure or a prefix."""
    if trainable is None:
        return None
    try:
        flags = jax.tree_util.tree_leaves(jax.tree.broadcast(trainable, params))
    except (ValueError, TypeError) as err:
        raise ValueError(
            "`trainable` must be a pytree of booleans with the structure of `model` (or a "
            f"prefix of it). Received: trainable={trainable!r}; {err}"
        ) from None
    bad = [f for f in flags if not isinstance(f, bool | jnp.bool_)]
    if bad:
        raise TypeError(
            f"`trainable` must hold booleans only. Received a leaf {bad[0]!r} "
            f"(of type {type(bad[0]).__name__})"
        )
    return [bool(f) for f in flags]


def _leaf_lines(row: _rows.Row) -> list[str]:
    texts = [(name, array_text(leaf.shape, leaf.dtype)) for name, leaf, _ in row.leaves]
    lines = [f"{name}: {text}" if name else text for name, text in texts]
    return lines + row.statics or ["-"]


def _trainable_text(row: _rows.Row) -> str:
    flags = {flag for _, _, flag in row.leaves}
    return {frozenset(): "-", frozenset({True}): "Y", frozenset({False}): "N"}.get(
        frozenset(flags), "mixed"
    )


def _flops_text(flops: float | None) -> str:
    return "?" if flops is None else f"{int(flops):,}"


def _cell(row: _rows.Row, header: str) -> str:
    if header == "Layer":
        return row.name
    if header == "Type":
        return row.type_name
    if header == "Input Shape":
        return row.inputs
    if header == "Output Shape":
        return row.output
    if header == "Parameters":
        return "\n".join(_leaf_lines(row))
    if header == "FLOPs":
        return _flops_text(row.flops)
    if header == "Trainable":
        return _trainable_text(row)
    sizes = [leaf_size(leaf) for _, leaf, _ in row.leaves]
    if header == "Param #":
        return f"{sum(c for c, _ in sizes):,}"
    return readable_size(sum(b for _, b in sizes))


def _headers(typed: bool, traced: bool, show_trainable: bool) -> list[str]:
    headers = ["Layer"] + (["Type"] if typed else [])
    headers += ["Input Shape", "Output Shape"] if traced else []
    headers += ["Parameters", "Param #", "Size"] + (["FLOPs"] if traced else [])
    return headers + (["Trainable"] if show_trainable else [])


def _totals(rows: list[_rows.Row]) -> dict[bool, tuple[int, float]]:
    """Count and bytes per trainable flag, counting an array seen at several paths once."""
    seen: set[int] = set()
    totals = {True: (0, 0.0), False: (0, 0.0)}
    for row in rows:
        for _, leaf, flag in row.leaves:
            if id(leaf) in seen:
                continue
            seen.add(id(leaf))
            count, size = leaf_size(leaf)
            totals[flag] = (totals[flag][0] + count, totals[flag][1] + size)
    return totals


def _total_lines(rows: list[_rows.Row]) -> list[str]:
    totals = _totals(rows)
    count = totals[True][0] + totals[False][0]
    size = totals[True][1] + totals[False][1]
    return [
        f" Total params: {count:,} ({readable_size(size)})",
        f" Trainable params: {totals[True][0]:,} ({readable_size(totals[True][1])})",
        f" Non-trainable params: {totals[False][0]:,} ({readable_size(totals[False][1])})",
    ]


def _flops_line(traced: Any) -> str:
    """The whole call's FLOPs from XLA's cost analysis of the lowered program."""
    flops = _flops.call_flops(traced)
    if flops is None:
        return " FLOPs per call: unavailable (this backend's cost analysis reported none)"
    return f" FLOPs per call: {int(flops):,} (XLA cost analysis)"


def _memory_line(traced: Any) -> str:
    """Memory of the whole call from XLA's memory analysis of the compiled program."""
    memory = traced.lower().compile().memory_analysis()
    if memory is None:
        return " Memory per call: unavailable (this backend's memory analysis reported none)"
    parts = [
        (label, getattr(memory, attr, None))
        for label, attr in (
            ("arguments", "argument_size_in_bytes"),
            ("outputs", "output_size_in_bytes"),
            ("temporaries", "temp_size_in_bytes"),
        )
    ]
    text = ", ".join(f"{label} {readable_size(v)}" for label, v in parts if v is not None)
    return f" Memory per call: {text} (XLA memory analysis)"


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


def _checked_print_fn(print_fn: Any) -> Callable[[str], Any]:
    if print_fn is None:
        return print
    if not callable(print_fn):
        raise TypeError(f"`print_fn` must be callable. Received: print_fn={print_fn!r}")
    return print_fn


def _model_info(model: Any, apply_fn: Callable | None, trainable: Any) -> _layers.ModelInfo:
    if trainable is not None and framework_of(model) is not None:
        raise ValueError(
            f"`trainable` is for a pytree of parameters; a {type(model).__name__} module's "
            "trainable arrays are its framework's (NNX `nnx.Param`, Linen `params`, Equinox "
            f"float arrays). Received: trainable={trainable!r}"
        )
    info = _layers.describe(model, apply_fn, _trainable_flags(trainable, model))
    leaves = jax.tree_util.tree_leaves(model)
    if not info.is_module and leaves and not info.leaves:
        kinds = sorted({type(leaf).__name__ for leaf in leaves})
        hint = (
            "; a function goes second, after its parameters: print_summary(params, fn, inputs=(x,))"
            if callable(model)
            else ""
        )
        raise TypeError(
            "`model` must be a module or a pytree holding arrays (objects with `shape` and "
            f"`dtype`). Received a pytree whose leaves are only of type {', '.join(kinds)}{hint}"
        )
    return info


def print_summary(
    model: Any,
    apply_fn: Callable | None = None,
    *misplaced: Any,
    inputs: Any = None,
    call_kwargs: dict | None = None,
    line_length: int | None = None,
    positions: Sequence[float] | None = None,
    print_fn: Callable[[str], Any] | None = None,
    depth: int | None = None,
    trainable: Any = None,
    memory: bool = True,
) -> None:
    """Print a table of a model's layers: type, shapes, arrays, counts, sizes and FLOPs.

    Args:
        model: An ``nnx.Module``; an ``eqx.Module``; a bound Linen module
            (``module.bind(variables)``); Linen variables with ``apply_fn=module.apply``; or any
            pytree of parameters with its ``apply_fn``. Array leaves may be
            ``jax.ShapeDtypeStruct``s; no array data is read.
        apply_fn: For a pytree: the function, called as ``apply_fn(params, *inputs)``; for Linen
            variables: ``module.apply``. A module takes none.
        *misplaced: Not accepted: example inputs go in ``inputs=``. Given, a ``TypeError``
            shows the right call.
        inputs: The example positional arguments of the call: a tuple or list, or a single
            array. With them the call is traced abstractly (never run) and each row gets its
            input and output shapes and FLOPs. Non-array leaves are passed as they are.
        call_kwargs: Keyword arguments of the call (``{"train": False}``), passed as they are.
        line_length: Total width in characters. Default: as wide as the content needs, with
            long cells wrapped at 40 characters.
        positions: Right edge of each column, as fractions of ``line_length`` (last ≤ 1) or as
            character counts.
        print_fn: Called once per line. Default: ``print``.
        depth: Fold layers deeper than this many path entries into their ancestor.
        trainable: For a pytree only: a boolean pytree with the structure of ``model`` or a
            prefix of it, splitting the totals (modules use their framework's meaning).
        memory: With ``inputs``, also compile the call for XLA's memory analysis (the slow part
            of a large model's summary).

    Example:
        >>> params = {"dense": {"w": jnp.ones((4, 8)), "b": jnp.zeros(8)}}
        >>> print_summary(params, lambda p, x: x @ p["dense"]["w"], inputs=jnp.ones((2, 4)))
        ... # doctest: +SKIP
    """
    _layers.checked_call_spelling("print_summary", model, apply_fn, misplaced)
    line_length = _checked_positive_int(line_length, "line_length")
    depth = _checked_positive_int(depth, "depth")
    print_fn = _checked_print_fn(print_fn)
    info = _model_info(model, apply_fn, trainable)
    traced = inputs is not None or call_kwargs is not None
    if traced and not info.is_module and apply_fn is None:
        raise ValueError("`inputs` needs `apply_fn`: pass the function that consumes them.")
    footer: list[str] = []
    if traced:
        traced_model = _layers.trace_model(
            info, _layers.input_args(inputs), call_kwargs, with_state=True
        )
        rows = _rows.traced_rows(info, traced_model, depth)
        footer = [_flops_line(traced_model.traced)]
        footer += [_memory_line(traced_model.traced)] if memory else []
        footer += [] if traced_model.found_layers else [_NO_LAYERS_NOTE]
    else:
        rows = _rows.tree_rows(info, depth)
    show_trainable = trainable is not None or any(not f for r in rows for _, _, f in r.leaves)
    typed = any(row.type_name != "-" for row in rows)
    headers = _headers(typed, traced, show_trainable)
    positions = _checked_positions(positions, len(headers))
    cells = [[_cell(row, header) for header in headers] for row in rows]
    widths = _column_widths(_natural_widths(headers, cells), line_length, positions)
    lines = [
        _title(info),
        *_table_lines(headers, cells, widths),
        *_total_lines(rows),
        *footer,
        "_" * sum(widths),
    ]
    for line in lines:
        print_fn(line)


def _title(info: _layers.ModelInfo) -> str:
    """Keras's ``Model: "name"`` line; a pytree's type for parameters alone."""
    if info.is_module or info.apply_fn is not None:
        return f'Model: "{info.name}"'
    return f"Parameters: {info.name}"
