"""``model_to_dot`` and ``plot_model``: a model's traced call as a Graphviz graph.

The model (an NNX, Linen or Equinox module, or a pytree with its function) is traced once
(abstractly, nothing runs) with its layers marked (see :mod:`jkutils.visualize._layers`). Nodes
are the call's inputs, its output leaves and its operations; an edge is a value flowing from
where it is made to where it is used. In the default *layer view* every call of a top-level
layer is one node (``conv1 (Conv)``), and so is every top-level ``jax.named_scope`` and every
top-level call of a jitted, checkpointed or custom-derivative function (``jax.nn.relu`` is one
``relu`` node). A layer's calls are contiguous in the trace, so for a feed-forward model the
graph is acyclic. ``expand_nested=True`` draws every primitive operation instead, with layers,
scopes and calls as nested clusters.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import secrets
import shutil
from collections.abc import Callable, Hashable
from typing import Any

import pydot

from jkutils.visualize import _jaxpr, _layers

__all__ = ["model_to_dot", "plot_model"]

_RANKDIRS = ("TB", "BT", "LR", "RL")
_TEXT_FORMATS = ("dot", "gv")
_IMAGE_DISPLAY = {"png": "Image", "jpg": "Image", "jpeg": "Image", "gif": "Image", "svg": "SVG"}
_NO_LAYERS_NOTE = (
    "No layers found: no jax.named_scope, and no operation reads a parameter. Wrap each "
    "layer's code in jax.named_scope(name), or pass an NNX, Linen or Equinox module."
)
_GRAPHVIZ_HINT = (
    "Graphviz's `dot` program is needed to write {fmt!r} files and was not found on PATH. "
    "Install Graphviz (`apt-get install graphviz`, `brew install graphviz`, "
    "`conda install graphviz`, or see https://graphviz.org/download/); the pip package "
    "`graphviz` alone does not provide it. A `.dot` file needs no Graphviz."
)


_GRAPH_LAYOUT = {"nodesep": "0.25", "ranksep": "0.35"}
_NODE_STYLE = {"shape": "box", "style": "rounded", "fontsize": "11", "height": "0.3"}
_EDGE_STYLE = {"fontsize": "9"}


@dataclasses.dataclass(frozen=True)
class _Style:
    """What labels show, and the prefix that keeps node names unique inside a larger graph.

    ``layer_labels`` maps a layer frame to its label text (name, type, which call).
    """

    show_shapes: bool
    show_dtype: bool
    show_layer_names: bool
    prefix: str = ""
    layer_labels: dict = dataclasses.field(default_factory=dict)

    def value_text(self, aval: Any) -> str:
        """Keras-style ``(2, 4)`` and/or ``float32`` for an edge or input/output label."""
        shape = [str(tuple(aval.shape))] if self.show_shapes else []
        return " ".join(shape + ([str(aval.dtype)] if self.show_dtype else []))


def _checked_options(rankdir: Any, dpi: Any) -> None:
    if rankdir not in _RANKDIRS:
        raise ValueError(f"`rankdir` must be one of {_RANKDIRS}. Received: rankdir={rankdir!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not dpi > 0:
        raise ValueError(f"`dpi` must be a positive number. Received: dpi={dpi!r}")


def _frame_label(frame: _jaxpr.Frame, style: _Style) -> str:
    if frame.is_layer:
        name, kind = style.layer_labels[frame]
    else:
        name, kind = frame.name, "named_scope" if frame.is_scope else frame.kind
    return f"{name} ({kind})" if style.show_layer_names else kind


def _layer_labels(
    program: _jaxpr.Program, types: dict[tuple[str, ...], str]
) -> dict[_jaxpr.Frame, tuple[str, str]]:
    """Each layer frame -> (name, kind): ``("conv1", "Conv")``, ``("lin", "Linear, call 2")``.

    A layer found from the parameters it reads has the kind ``params``.
    """
    labels: dict[_jaxpr.Frame, tuple[str, str]] = {}
    calls: dict[str, int] = {}
    for op in program.ops:
        for frame in op.frames:
            if not frame.is_layer or frame in labels:
                continue
            calls[frame.name] = calls.get(frame.name, 0) + 1
            kind = types.get(tuple(frame.name.split("/")), "params")
            if calls[frame.name] > 1:
                kind = f"{kind}, call {calls[frame.name]}"
            labels[frame] = (frame.name, kind)
    return labels


def _node_key(expand_nested: bool) -> Callable[[int, _jaxpr.Op], Hashable]:
    """Which node an operation is drawn in: its own, or its outermost frame's."""
    if expand_nested:
        return lambda i, op: ("op", i)
    return lambda i, op: op.frames[:1] or ("op", i)


def _group_label(key: Hashable, program: _jaxpr.Program, style: _Style) -> str:
    if key[0] == "op":
        return program.ops[key[1]].primitive
    return _frame_label(key[0], style)


def _argument_text(avals: list[Any], style: _Style) -> str:
    """Shape/dtype text of an argument: its array's, or how many arrays a pytree holds."""
    if len(avals) == 1:
        return style.value_text(avals[0])
    return f"{len(avals)} arrays" if style.show_shapes or style.show_dtype else ""


def _endpoint_label(name: str, kind: str, detail: str, show_layer_names: bool) -> str:
    label = f"{name} ({kind})" if show_layer_names else kind
    return f"{label}\\n{detail}" if detail else label


def _container_for(
    root: pydot.Graph,
    clusters: dict[tuple, pydot.Cluster],
    frames: tuple[_jaxpr.Frame, ...],
    style: _Style,
) -> pydot.Graph:
    """The (possibly new) nested cluster for ``frames``; the graph itself for no frames."""
    if not frames:
        return root
    if frames not in clusters:
        parent = _container_for(root, clusters, frames[:-1], style)
        label = _frame_label(frames[-1], style)
        cluster = pydot.Cluster(f"{style.prefix}c{len(clusters)}", label=label, style="dashed")
        parent.add_subgraph(cluster)
        clusters[frames] = cluster
    return clusters[frames]


def _plain_label(text: str) -> str:
    """``text`` as a label shown as written: DOT reads ``<lambda>`` as an HTML label."""
    return f'"{text}"' if text.startswith("<") and text.endswith(">") else text


def _new_graph(name: str, rankdir: str, dpi: float, subgraph: bool) -> pydot.Graph:
    if subgraph:
        graph = pydot.Cluster(name, label=_plain_label(name), style="dashed")
    else:
        graph = pydot.Dot(
            graph_type="digraph", rankdir=rankdir, concentrate=True, dpi=dpi, **_GRAPH_LAYOUT
        )
    graph.set_node_defaults(**_NODE_STYLE)
    graph.set_edge_defaults(**_EDGE_STYLE)
    return graph


def _traced_for_graph(
    func: str, model: Any, apply_fn: Any, misplaced: tuple, inputs: Any, call_kwargs: Any
) -> tuple[_layers.ModelInfo, _layers.TracedModel]:
    _layers.checked_call_spelling(func, model, apply_fn, misplaced)
    info = _layers.describe(model, apply_fn)
    if not info.is_module and apply_fn is None:
        raise TypeError(
            f"{func} draws a call: pass a module, or a pytree of parameters with its function: "
            f"{func}(params, apply_fn, inputs=(x,)). Received a {type(model).__name__} "
            "without `apply_fn`"
        )
    if inputs is None and call_kwargs is None:
        raise ValueError(
            f"{func} draws the model's call and needs its example inputs: "
            f"{func}(..., inputs=(x,)); pass inputs=() for a call that takes none."
        )
    args = _layers.input_args(inputs)
    return info, _layers.trace_model(info, args, call_kwargs, mark_pass_through=True)


def model_to_dot(
    model: Any,
    apply_fn: Callable | None = None,
    *misplaced: Any,
    inputs: Any = None,
    call_kwargs: dict | None = None,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: float = 96,
    subgraph: bool = False,
) -> pydot.Dot:
    """Trace the model's call on ``inputs`` and return its graph as a ``pydot.Dot``.

    Args:
        model: An ``nnx.Module``, an ``eqx.Module`` or a bound Linen module (called directly), or
            Linen variables with ``apply_fn=module.apply``, or any pytree of parameters with its
            ``apply_fn``. Array leaves may be ``jax.ShapeDtypeStruct``s.
        apply_fn: For a pytree: the function, called as ``apply_fn(params, *inputs)``.
        *misplaced: Not accepted: example inputs go in ``inputs=``. Given, a ``TypeError``
            shows the right call.
        inputs: The example positional arguments: a tuple or list, or one array. Only shapes
            and dtypes are used; non-array leaves are passed as they are (static).
        call_kwargs: Keyword arguments of the call (``{"train": False}``), passed as they are.
        show_shapes: Label edges and input/output nodes with shapes.
        show_dtype: Label edges and input/output nodes with dtypes.
        show_layer_names: Show layer, scope, call and argument names (else only their kinds).
        rankdir: Graphviz direction: ``"TB"``, ``"BT"``, ``"LR"`` or ``"RL"``.
        expand_nested: Draw every primitive operation, with layers, named scopes and nested
            ``jit``/custom-derivative calls as nested clusters.
        dpi: Image resolution.
        subgraph: Return a ``pydot.Cluster`` (named after the model) to embed in another graph.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> def mlp(p, x):
        ...     with jax.named_scope("dense"):
        ...         return x @ p["w"] + p["b"]
        >>> params = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
        >>> dot = model_to_dot(params, mlp, inputs=jnp.ones((1, 4)))
        >>> [n.get_label() for n in dot.get_nodes()][1:]  # the first is the node defaults
        ['p (input)', 'x (input)', 'dense (named_scope)', 'output (output)']
    """
    _checked_options(rankdir, dpi)
    info, traced = _traced_for_graph(
        "model_to_dot", model, apply_fn, misplaced, inputs, call_kwargs
    )
    program = traced.program
    labels = _layer_labels(program, _layers.layer_types(info, traced.calls))
    prefix = f"{info.name}_" if subgraph else ""
    style = _Style(show_shapes, show_dtype, show_layer_names, prefix, labels)
    grouped = _jaxpr.groups(program, _node_key(expand_nested))
    dot = _new_graph(info.name, rankdir, dpi, subgraph)
    hidden = traced.param_args if info.is_module else frozenset()
    node_of = _add_inputs(dot, program, style, hidden)
    _add_groups(dot, program, grouped, node_of, style)
    _add_outputs(dot, program, node_of, style)
    if not traced.found_layers:
        dot.set("label", _plain_label(_NO_LAYERS_NOTE))
    return dot


def _add_inputs(
    dot: pydot.Graph, program: _jaxpr.Program, style: _Style, hidden: frozenset[int]
) -> dict[int, str]:
    """One node per positional argument (a pytree argument is one node); value id -> node.

    Arguments in ``hidden`` (a module's own arrays) get no node: a layer's weights are part of
    the layer, as in a drawing of the model.
    """
    node_of = {}
    avals: dict[int, list[Any]] = {}
    for value, arg in zip(program.inputs, program.input_args, strict=True):
        if arg in hidden:
            continue
        node_of[value] = f"{style.prefix}input_{arg}"
        avals.setdefault(arg, []).append(program.avals[value])
    for arg, arg_avals in avals.items():
        detail = _argument_text(arg_avals, style)
        label = _endpoint_label(program.arg_names[arg], "input", detail, style.show_layer_names)
        dot.add_node(pydot.Node(f"{style.prefix}input_{arg}", label=label, shape="ellipse"))
    return node_of


def _add_groups(
    dot: pydot.Graph,
    program: _jaxpr.Program,
    grouped: dict[Hashable, _jaxpr.Group],
    node_of: dict[int, str],
    style: _Style,
) -> None:
    """One node per group, inside its clusters, and the edges into it (deduplicated)."""
    names = {key: f"{style.prefix}node_{n}" for n, key in enumerate(grouped)}
    for key, group in grouped.items():
        node_of.update((value, names[key]) for value in group.outputs)
    clusters: dict[tuple, pydot.Cluster] = {}
    edges: dict[tuple[str, str], list[int]] = {}
    for key, group in grouped.items():
        frames = program.ops[key[1]].frames if key[0] == "op" else ()
        container = _container_for(dot, clusters, frames, style)
        label = _group_label(key, program, style)
        container.add_node(pydot.Node(names[key], label=label))
        for value in group.inputs:
            if value in node_of:
                edges.setdefault((node_of[value], names[key]), []).append(value)
    _add_edges(dot, program, edges, style)


def _add_outputs(
    dot: pydot.Graph, program: _jaxpr.Program, node_of: dict[int, str], style: _Style
) -> None:
    """One node per output leaf, with the edge from where its value is made."""
    edges: dict[tuple[str, str], list[int]] = {}
    for k, (value, name) in enumerate(zip(program.outputs, program.output_names, strict=True)):
        node = f"{style.prefix}output_{k}"
        detail = style.value_text(program.avals[value])
        label = _endpoint_label(name, "output", detail, style.show_layer_names)
        dot.add_node(pydot.Node(node, label=label, shape="ellipse"))
        if value in node_of:
            edges.setdefault((node_of[value], node), []).append(value)
    _add_edges(dot, program, edges, style)


def _add_edges(
    dot: pydot.Graph,
    program: _jaxpr.Program,
    edges: dict[tuple[str, str], list[int]],
    style: _Style,
) -> None:
    """One edge per (source, destination), labelled with the distinct values it carries."""
    for (src, dst), values in edges.items():
        texts = [style.value_text(program.avals[v]) for v in values]
        label = "\\n".join(dict.fromkeys(t for t in texts if t))
        dot.add_edge(pydot.Edge(src, dst, **({"label": label} if label else {})))


def _known_formats() -> set[str]:
    """Extensions ``plot_model`` can write: DOT text, or any format Graphviz renders."""
    return set(_TEXT_FORMATS) | set(pydot.Dot().formats)


def _output_format(to_file: Any) -> str:
    if not isinstance(to_file, str | os.PathLike):
        raise TypeError(
            f"`to_file` must be a path (str or os.PathLike). Received: to_file={to_file!r}"
        )
    ext = os.path.splitext(os.fspath(to_file))[1][1:].lower() or "png"
    if ext not in _known_formats():
        raise ValueError(
            f"`to_file` has an extension Graphviz cannot write: {ext!r}. Use .dot, .png, .svg, "
            f".pdf or another Graphviz format. Received: to_file={to_file!r}"
        )
    return ext


def _checked_destination(to_file: str | os.PathLike) -> str:
    """``to_file`` as a str path, if a file can be written there; else an error naming it."""
    path = os.fspath(to_file)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The folder of `to_file` does not exist: {folder!r}. Create it first. "
            f"Received: to_file={to_file!r}"
        )
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"`to_file` must name a file, not a folder. Received: to_file={to_file!r}"
        )
    return path


def _rendered(dot: pydot.Graph, fmt: str) -> bytes:
    """The graph in ``fmt``: DOT text directly, anything else through Graphviz's ``dot``."""
    if fmt in _TEXT_FORMATS:
        return dot.to_string().encode("utf-8")
    if shutil.which("dot") is None:
        raise ImportError(_GRAPHVIZ_HINT.format(fmt=fmt))
    return dot.create(prog="dot", format=fmt)


def _write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either complete or absent."""
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _display_object(path: str, fmt: str) -> Any:
    """An IPython display object for the written file when IPython is installed, else None."""
    kind = _IMAGE_DISPLAY.get(fmt)
    if kind is None:
        return None
    try:
        from IPython import display
    except ImportError:
        return None
    return getattr(display, kind)(filename=path)


def plot_model(
    model: Any,
    apply_fn: Callable | None = None,
    *misplaced: Any,
    inputs: Any = None,
    call_kwargs: dict | None = None,
    to_file: str | os.PathLike = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: float = 96,
) -> Any:
    """Draw the model's call (see :func:`model_to_dot`) into ``to_file``.

    The format follows the extension (``png`` when there is none): ``.dot``/``.gv`` are written
    as DOT text without Graphviz; ``.png``, ``.svg``, ``.pdf`` and Graphviz's other formats are
    rendered by Graphviz's ``dot`` program, and an ``ImportError`` saying how to install Graphviz
    is raised when it is missing. The file appears complete or not at all. ``to_file`` is a
    keyword: Keras's ``plot_model(model, "model.png")`` raises a ``TypeError`` showing the call.

    Returns:
        An ``IPython.display.Image`` (``SVG`` for ``.svg``) of the file when IPython is
        installed and the format is an image, else None.

    Example:
        >>> plot_model(params, mlp, inputs=(x,), to_file="mlp.svg", show_shapes=True)
        ... # doctest: +SKIP
    """
    _layers.checked_call_spelling("plot_model", model, apply_fn, misplaced)
    fmt = _output_format(to_file)
    path = _checked_destination(to_file)
    dot = model_to_dot(
        model,
        apply_fn,
        inputs=inputs,
        call_kwargs=call_kwargs,
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        rankdir=rankdir,
        expand_nested=expand_nested,
        dpi=dpi,
    )
    _write_atomically(path, _rendered(dot, fmt))
    return _display_object(path, fmt)
