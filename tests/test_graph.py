"""Tests for jkutils.visualize.model_to_dot and plot_model."""

from __future__ import annotations

import os
import shutil
import sys
import types

import jax
import jax.numpy as jnp
import pydot
import pytest

from jkutils.visualize import model_to_dot, plot_model

needs_graphviz = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz `dot` not installed"
)


def mlp(params, x):
    with jax.named_scope("dense1"):
        x = x @ params["dense1"]["w"] + params["dense1"]["b"]
    x = jax.nn.relu(x)
    with jax.named_scope("dense2"):
        return x @ params["dense2"]["w"] + params["dense2"]["b"]


PARAMS = {
    "dense1": {"w": jnp.ones((4, 8)), "b": jnp.zeros(8)},
    "dense2": {"w": jnp.ones((8, 3)), "b": jnp.zeros(3)},
}
X = jnp.ones((2, 4))


def all_nodes(graph: pydot.Graph) -> list[pydot.Node]:
    nodes = [n for n in graph.get_nodes() if n.get_name() not in ("node", "edge", "graph")]
    for sub in graph.get_subgraphs():
        nodes += all_nodes(sub)
    return nodes


def labels(graph: pydot.Graph) -> dict[str, str]:
    """Node name -> label text with DOT quoting and escaped newlines undone."""
    return {n.get_name(): n.get_label().strip('"').replace("\\n", "\n") for n in all_nodes(graph)}


def edges(graph: pydot.Graph) -> dict[tuple[str, str], str | None]:
    """(source label's first line, destination label's first line) -> edge label."""
    names = {name: label.split("\n")[0] for name, label in labels(graph).items()}
    found = {}
    for e in graph.get_edges():
        label = e.get_label()
        found[(names[e.get_source()], names[e.get_destination()])] = (
            label.strip('"').replace("\\n", "\n") if label else None
        )
    return found


def clusters(graph: pydot.Graph, depth: int = 0) -> list[tuple[int, str, list[str]]]:
    """(nesting depth, label, labels of the nodes directly inside) for every cluster."""
    found = []
    for sub in graph.get_subgraphs():
        inside = [n.get_label().strip('"') for n in sub.get_nodes()]
        found.append((depth, sub.get("label").strip('"'), inside))
        found += clusters(sub, depth + 1)
    return found


# ---------------------------------------------------------------- model_to_dot


def test_layer_view_has_inputs_scopes_calls_and_outputs():
    dot = model_to_dot(PARAMS, mlp, inputs=(X,))
    assert sorted(label.split("\n")[0] for label in labels(dot).values()) == sorted(
        [
            "params (input)",
            "x (input)",
            "dense1 (named_scope)",
            "relu (custom_jvp_call)",
            "dense2 (named_scope)",
            "output (output)",
        ]
    )
    assert set(edges(dot)) == {
        ("x (input)", "dense1 (named_scope)"),
        ("params (input)", "dense1 (named_scope)"),
        ("dense1 (named_scope)", "relu (custom_jvp_call)"),
        ("relu (custom_jvp_call)", "dense2 (named_scope)"),
        ("params (input)", "dense2 (named_scope)"),
        ("dense2 (named_scope)", "output (output)"),
    }
    assert all(label is None for label in edges(dot).values())
    assert clusters(dot) == []


def test_graph_attributes_follow_keras_options():
    dot = model_to_dot(PARAMS, mlp, inputs=(X,), rankdir="LR", dpi=150)
    assert isinstance(dot, pydot.Dot)
    assert dot.get("rankdir") == "LR"
    assert float(dot.get("dpi")) == 150
    assert dot.get("concentrate") in (True, "true")


def test_edges_carry_shapes_and_dtypes_when_asked():
    shapes = edges(model_to_dot(PARAMS, mlp, inputs=(X,), show_shapes=True))
    assert shapes[("dense1 (named_scope)", "relu (custom_jvp_call)")] == "(2, 8)"
    assert sorted(shapes[("params (input)", "dense2 (named_scope)")].split("\n")) == [
        "(3,)",
        "(8, 3)",
    ]
    assert shapes[("dense2 (named_scope)", "output (output)")] == "(2, 3)"
    dtypes = edges(model_to_dot(PARAMS, mlp, inputs=(X,), show_dtype=True))
    assert dtypes[("x (input)", "dense1 (named_scope)")] == "float32"
    both = edges(
        model_to_dot(
            PARAMS, mlp, inputs=(X.astype(jnp.bfloat16),), show_shapes=True, show_dtype=True
        )
    )
    assert both[("x (input)", "dense1 (named_scope)")] == "(2, 4) bfloat16"


def test_input_and_output_nodes_show_shapes():
    found = labels(model_to_dot(PARAMS, mlp, inputs=(X,), show_shapes=True))
    assert found["input_1"] == "x (input)\n(2, 4)"
    assert found["input_0"] == "params (input)\n4 arrays"
    assert found["output_0"] == "output (output)\n(2, 3)"


def test_without_layer_names_nodes_show_kinds_only():
    found = set(labels(model_to_dot(PARAMS, mlp, inputs=(X,), show_layer_names=False)).values())
    assert found == {"input", "named_scope", "custom_jvp_call", "output"}


def test_expand_nested_draws_every_operation_in_clusters():
    dot = model_to_dot(PARAMS, mlp, inputs=(X,), expand_nested=True)
    found = clusters(dot)
    assert (0, "dense1 (named_scope)", ["dot_general", "broadcast_in_dim", "add"]) in found
    assert (0, "relu (custom_jvp_call)", []) in found
    assert (1, "relu (jit)", ["max"]) in found
    flow = edges(dot)
    assert ("dot_general", "add") in flow
    assert ("x (input)", "dot_general") in flow
    assert ("max", "dot_general") in flow


def test_jitted_function_is_unwrapped_not_one_box():
    plain = sorted(labels(model_to_dot(PARAMS, mlp, inputs=(X,))).values())
    jitted = sorted(labels(model_to_dot(PARAMS, jax.jit(mlp), inputs=(X,))).values())
    assert jitted == plain


def test_nested_jit_is_one_node_unless_expanded():
    @jax.jit
    def block(x):
        with jax.named_scope("inner"):
            return jnp.tanh(x) * 2

    def fn(p, x):
        return block(x) + 1

    assert set(edges(model_to_dot({}, fn, inputs=(X,)))) == {
        ("x (input)", "block (jit)"),
        ("block (jit)", "add"),
        ("add", "output (output)"),
    }
    found = clusters(model_to_dot({}, fn, inputs=(X,), expand_nested=True))
    assert found == [(0, "block (jit)", []), (1, "inner (named_scope)", ["tanh", "mul"])]


def test_custom_vjp_and_checkpoint_calls_are_nodes_or_clusters():
    @jax.custom_vjp
    def clipped_sin(x):
        return jnp.sin(x)

    clipped_sin.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (jnp.clip(g * jnp.cos(x), -1, 1),))

    def block(x):
        return jnp.cos(x) * 2

    def fn(p, x):
        return clipped_sin(jax.checkpoint(block)(x))

    assert set(edges(model_to_dot({}, fn, inputs=(X,)))) == {
        ("x (input)", "block (checkpoint)"),
        ("block (checkpoint)", "clipped_sin (custom_vjp_call)"),
        ("clipped_sin (custom_vjp_call)", "output (output)"),
    }
    assert clusters(model_to_dot({}, fn, inputs=(X,), expand_nested=True)) == [
        (0, "block (checkpoint)", ["cos", "mul"]),
        (0, "clipped_sin (custom_vjp_call)", ["sin"]),
    ]


def test_a_scope_entered_again_later_keeps_all_its_edges():
    def fn(p, x):
        with jax.named_scope("a"):
            y = jnp.sin(x)
        with jax.named_scope("b"):
            z = jnp.cos(y)
        with jax.named_scope("a"):
            return z * 2

    assert set(edges(model_to_dot({}, fn, inputs=(X,)))) == {
        ("x (input)", "a (named_scope)"),
        ("a (named_scope)", "b (named_scope)"),
        ("b (named_scope)", "a (named_scope)"),
        ("a (named_scope)", "output (output)"),
    }


def test_pytree_outputs_and_pass_through_values():
    def fn(p, x, scale):
        return {"same": x, "scaled": x * scale}

    flow = edges(model_to_dot({}, fn, inputs=(X, jnp.float32(3.0))))
    assert ("x (input)", "output/same (output)") in flow
    assert ("mul", "output/scaled (output)") in flow
    assert ("scale (input)", "mul") in flow
    # A Python number is a static value, not an input.
    assert ("scale (input)", "mul") not in edges(model_to_dot({}, fn, inputs=(X, 3.0)))


def test_static_arguments_are_not_inputs():
    def fn(p, x, train):
        return jnp.tanh(x) if train else x

    found = set(labels(model_to_dot({}, fn, inputs=(X, True))).values())
    assert found == {"x (input)", "tanh", "output (output)"}


def test_conv_net_graph():
    def conv_net(p, x):
        with jax.named_scope("conv"):
            x = jax.lax.conv_general_dilated(
                x, p["conv"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        with jax.named_scope("pool"):
            x = x.mean(axis=(1, 2))
        with jax.named_scope("head"):
            return x @ p["head"]

    p = {"conv": jnp.ones((3, 3, 1, 4)), "head": jnp.ones((4, 2))}
    flow = edges(model_to_dot(p, conv_net, inputs=jnp.ones((2, 8, 8, 1)), show_shapes=True))
    assert flow[("conv (named_scope)", "pool (named_scope)")] == "(2, 8, 8, 4)"
    assert flow[("pool (named_scope)", "head (named_scope)")] == "(2, 4)"
    expanded = clusters(
        model_to_dot(p, conv_net, inputs=jnp.ones((2, 8, 8, 1)), expand_nested=True)
    )
    assert (0, "conv (named_scope)", ["conv_general_dilated"]) in expanded


def test_subgraph_returns_a_dashed_cluster_named_after_the_function():
    cluster = model_to_dot(PARAMS, mlp, inputs=(X,), subgraph=True)
    assert isinstance(cluster, pydot.Cluster)
    assert cluster.get_name() == "cluster_mlp"
    assert cluster.get("style") == "dashed"
    assert cluster.get("label") == "mlp"
    outer = pydot.Dot(graph_type="digraph")
    outer.add_subgraph(cluster)

    def relu_net(p, x):
        return jax.nn.relu(x)

    outer.add_subgraph(model_to_dot(PARAMS, relu_net, inputs=(X,), subgraph=True))
    names = [n.get_name() for n in all_nodes(outer)]
    assert len(names) == 6 + 4 and len(set(names)) == len(names)  # relu_net: p, x, relu, output
    assert outer.to_string().count("->") == 6 + 2


def test_shape_structs_are_enough():
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), PARAMS)
    assert labels(
        model_to_dot(abstract, mlp, inputs=jax.ShapeDtypeStruct((2, 4), jnp.float32))
    ) == (labels(model_to_dot(PARAMS, mlp, inputs=(X,))))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rankdir": "XY"}, ValueError, "`rankdir`"),
        ({"dpi": 0}, ValueError, "`dpi`"),
        ({"dpi": "96"}, ValueError, "`dpi`"),
    ],
)
def test_bad_options_fail_early(kwargs, error, match):
    with pytest.raises(error, match=match):
        model_to_dot(PARAMS, mlp, inputs=(X,), **kwargs)


def test_non_callable_is_rejected():
    with pytest.raises(TypeError, match="`apply_fn` must be a callable"):
        model_to_dot(PARAMS, X)


# ---------------------------------------------------------------- plot_model


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyparsing, inside pydot's parser
def test_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "model.dot"
    assert plot_model(PARAMS, mlp, inputs=(X,), to_file=out, show_shapes=True) is None
    text = out.read_text()
    assert text == model_to_dot(PARAMS, mlp, inputs=(X,), show_shapes=True).to_string()
    (parsed,) = pydot.graph_from_dot_data(text)
    assert len(parsed.get_edges()) == 6
    assert os.listdir(tmp_path) == ["model.dot"]


def test_missing_graphviz_raises_import_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImportError, match="Install Graphviz.*apt-get install graphviz"):
        plot_model(PARAMS, mlp, inputs=(X,), to_file=tmp_path / "model.png")
    assert os.listdir(tmp_path) == []


@needs_graphviz
def test_png_is_rendered(tmp_path):
    out = tmp_path / "model.png"
    plot_model(PARAMS, mlp, inputs=(X,), to_file=str(out), show_shapes=True, dpi=72)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)
    assert sorted(os.listdir(tmp_path)) == ["model.png"]


@needs_graphviz
def test_svg_and_pdf_are_rendered(tmp_path):
    plot_model(
        PARAMS,
        mlp,
        inputs=(X,),
        to_file=tmp_path / "model.svg",
        show_shapes=True,
        expand_nested=True,
    )
    svg = (tmp_path / "model.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "dense1 (named_scope)" in svg and "dot_general" in svg and "(2, 8)" in svg
    plot_model(PARAMS, mlp, inputs=(X,), to_file=tmp_path / "model.pdf")
    assert (tmp_path / "model.pdf").read_bytes().startswith(b"%PDF")


@needs_graphviz
def test_no_extension_means_png(tmp_path):
    out = tmp_path / "model"
    plot_model(PARAMS, mlp, inputs=(X,), to_file=out)
    assert out.read_bytes().startswith(b"\x89PNG")


def test_returns_an_ipython_image_when_ipython_is_present(tmp_path, monkeypatch):
    display = types.ModuleType("IPython.display")
    display.Image = lambda filename: ("Image", filename)
    display.SVG = lambda filename: ("SVG", filename)
    ipython = types.ModuleType("IPython")
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    assert plot_model(PARAMS, mlp, inputs=(X,), to_file=tmp_path / "m.dot") is None
    if shutil.which("dot"):
        assert plot_model(PARAMS, mlp, inputs=(X,), to_file=tmp_path / "m.svg") == (
            "SVG",
            str(tmp_path / "m.svg"),
        )
        assert plot_model(PARAMS, mlp, inputs=(X,), to_file=tmp_path / "m.png") == (
            "Image",
            str(tmp_path / "m.png"),
        )


def test_bad_to_file_fails_before_tracing(tmp_path):
    with pytest.raises(ValueError, match="extension Graphviz cannot write: 'docx'"):
        plot_model(PARAMS, mlp, inputs=(X,), to_file=tmp_path / "model.docx")
    with pytest.raises(TypeError, match="`to_file` must be a path"):
        plot_model(PARAMS, mlp, inputs=(X,), to_file=3)
    assert os.listdir(tmp_path) == []


def test_missing_folder_or_folder_as_to_file_fails_before_tracing(tmp_path):
    def never_traced(*args):
        raise AssertionError("traced")

    with pytest.raises(FileNotFoundError, match="folder of `to_file` does not exist"):
        plot_model(PARAMS, never_traced, inputs=(X,), to_file=tmp_path / "missing" / "model.dot")
    with pytest.raises(IsADirectoryError, match="must name a file, not a folder"):
        plot_model(PARAMS, never_traced, inputs=(X,), to_file=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_subgraph_of_a_lambda_keeps_its_name_in_the_label():
    cluster = model_to_dot(PARAMS, lambda p, x: x @ p["dense1"]["w"], inputs=(X,), subgraph=True)
    assert 'label="<lambda>"' in cluster.to_string()


def test_keras_style_positional_file_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"pass it as a keyword.*to_file='m\.dot'"):
        plot_model(PARAMS, mlp, "m.dot")
    with pytest.raises(TypeError, match=r"plot_model\(params, apply_fn, inputs=\(x,\), to_file"):
        plot_model(PARAMS, "m.png")
    assert os.listdir(tmp_path) == []
    plot_model(PARAMS, lambda p, x, mode: mlp(p, x), inputs=(X, "train"), to_file="m.dot")
    assert os.listdir(tmp_path) == ["m.dot"]


@pytest.mark.parametrize("func", [model_to_dot, plot_model])
def test_the_old_spelling_shows_the_right_call(func):
    # Before: model_to_dot(fn, *example_args); now the model (or params) first, inputs=.
    with pytest.raises(TypeError, match=r"inputs go in `inputs=`.*\(params, apply_fn, inputs="):
        func(mlp, PARAMS, X)
    with pytest.raises(TypeError, match=r"parameters first and the function second.*\(params, mlp"):
        func(mlp, PARAMS)


# ---------------------------------------------------------------- layers without scopes


def test_without_scopes_each_layer_is_a_node_named_by_its_parameters():
    def fn(p, x):
        h = jnp.tanh(x @ p["enc"]["w"])
        return h @ p["dec"]["w"]

    params = {"dec": {"w": jnp.ones((8, 4))}, "enc": {"w": jnp.ones((4, 8))}}
    assert set(edges(model_to_dot(params, fn, inputs=(X,)))) == {
        ("x (input)", "enc (params)"),
        ("p (input)", "enc (params)"),
        ("enc (params)", "tanh"),
        ("tanh", "dec (params)"),
        ("p (input)", "dec (params)"),
        ("dec (params)", "output (output)"),
    }


def test_tied_weights_used_twice_make_two_nodes_and_no_cycle():
    def fn(p, x):
        h = jnp.tanh(x @ p["tied"]["w"])
        return jnp.tanh(h @ p["tied"]["w"].T)

    dot = model_to_dot({"tied": {"w": jnp.ones((4, 8))}}, fn, inputs=(X,))
    flow = set(edges(dot))
    assert ("tied (params)", "tanh") in flow and ("tanh", "tied (params, call 2)") in flow
    assert ("tanh", "tied (params)") not in flow


def test_graph_without_layers_says_how_to_mark_them():
    constant = jnp.ones((4, 2))
    dot = model_to_dot({"w": jnp.ones(2)}, lambda p, x: x @ constant, inputs=(X,))
    assert "No layers found" in dot.get("label") and "named_scope" in dot.get("label")


def test_missing_inputs_are_asked_for():
    with pytest.raises(ValueError, match=r"needs its example inputs.*inputs=\(x,\)"):
        model_to_dot(PARAMS, mlp)
    assert "output (output)" in labels(model_to_dot({}, lambda p: jnp.ones(2), inputs=())).values()
