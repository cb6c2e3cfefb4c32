"""print_summary, model_to_dot and plot_model on real Flax NNX, Flax Linen and Equinox models.

Expected names, types, shapes, counts and FLOPs come from the frameworks' own tools
(``nnx.iter_modules``, ``nnx.state``, Linen's ``Module.tabulate``, ``eqx.filter``), from
``jax.eval_shape`` on the submodules, or from XLA's cost analysis of the submodule called alone.
"""

from __future__ import annotations

import graphlib
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _summary_table import number, summary_lines, table_columns, total_line

from jkutils.visualize import model_to_dot, plot_model, print_summary

nnx = pytest.importorskip("flax.nnx")
nn = pytest.importorskip("flax.linen")
eqx = pytest.importorskip("equinox")

needs_graphviz = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz `dot` not installed"
)
X = jnp.ones((2, 8, 8, 1))


def f32(shape) -> str:
    return f"f32[{','.join(str(d) for d in shape)}]"


def size(tree) -> int:
    return sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(tree))


def xla_flops(fn, *args) -> int:
    """FLOPs XLA's cost analysis gives ``fn(*args)`` lowered on its own."""
    return int(jax.jit(fn).lower(*args).cost_analysis().get("flops", 0))


# ---------------------------------------------------------------- models


class NNXBlock(nnx.Module):
    """One Linear used twice: shared weights."""

    def __init__(self, rngs):
        self.lin = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        return self.lin(nnx.relu(self.lin(x)))


class NNXCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc = nnx.Linear(4 * 8 * 8, 4, rngs=rngs)
        self.block = NNXBlock(rngs)

    def __call__(self, x):
        x = self.drop(nnx.relu(self.bn(self.conv(x))))
        return self.block(self.fc(x.reshape(x.shape[0], -1)))


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


class LinenShared(nn.Module):
    """A nested module whose Dense is called twice."""

    def setup(self):
        self.inner = nn.Dense(4)

    def __call__(self, x):
        return self.inner(nn.relu(self.inner(x)))


class LinenNested(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(LinenShared(name="shared")(nn.Dense(4)(x)))


class EqxTwice(eqx.Module):
    """One eqx.nn.Linear instance called twice, then another one."""

    shared: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.shared = eqx.nn.Linear(4, 4, key=k1)
        self.head = eqx.nn.Linear(4, 2, key=k2)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.shared(jax.nn.relu(self.shared(x)))))


@pytest.fixture(scope="module")
def nnx_cnn():
    return NNXCNN(nnx.Rngs(0))


@pytest.fixture(scope="module")
def linen_cnn():
    model = LinenCNN()
    return model, model.init(jax.random.key(0), X)


def linen_table(model, *args, rngs=None, **kwargs) -> dict[str, list[str]]:
    """Linen's own tabulate(compute_flops=True): path -> [module, inputs, outputs, flops]."""
    text = model.tabulate(
        rngs or jax.random.key(0),
        *args,
        compute_flops=True,
        console_kwargs={"width": 400},
        **kwargs,
    )
    rows = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) > 4 and cells[1]:
            rows[cells[0]] = cells[1:5]
    return rows


def linen_shape(text: str) -> str:
    return text.replace("float32", "f32")


# ---------------------------------------------------------------- NNX


def test_nnx_rows_follow_the_module_tree_in_call_order(nnx_cnn):
    rows = table_columns(summary_lines(nnx_cnn, inputs=(X,)))
    modules = {"/".join(map(str, p)): type(m).__name__ for p, m in nnx.iter_modules(nnx_cnn)}
    assert list(rows) == ["(root)", "conv", "bn", "drop", "fc", "block", "block/lin"]
    assert {name: row["Type"] for name, row in rows.items()} == {
        name or "(root)": kind for name, kind in modules.items()
    }


def test_nnx_shapes_come_from_the_submodules(nnx_cnn):
    rows = table_columns(summary_lines(nnx_cnn, inputs=(X,)))
    conv = jax.eval_shape(nnx_cnn.conv, X)
    fc_in = jax.ShapeDtypeStruct((2, 4 * 8 * 8), jnp.float32)
    fc = jax.eval_shape(nnx_cnn.fc, fc_in)
    assert (rows["conv"]["Input Shape"], rows["conv"]["Output Shape"]) == (
        f32(X.shape),
        f32(conv.shape),
    )
    assert rows["fc"]["Input Shape"] == f32(fc_in.shape)
    assert rows["fc"]["Output Shape"] == f32(fc.shape)
    assert rows["block/lin"]["Output Shape"] == f32(jax.eval_shape(nnx_cnn.block.lin, fc).shape)
    root = nnx.eval_shape(lambda model, x: model(x), nnx_cnn, X)
    assert rows["(root)"]["Output Shape"] == f32(root.shape)


def test_nnx_counts_and_totals_use_variable_types(nnx_cnn):
    lines = summary_lines(nnx_cnn, inputs=(X,))
    rows = table_columns(lines)
    for name in ("conv", "fc", "block/lin"):
        module = nnx_cnn
        for part in name.split("/"):
            module = getattr(module, part)
        assert number(rows[name]["Param #"]) == size(nnx.state(module))
    # BatchNorm: scale and bias are Params, mean and var BatchStats; Dropout holds RNG state.
    assert number(rows["bn"]["Param #"]) == size(nnx.state(nnx_cnn.bn))
    assert rows["bn"]["Trainable"] == "mixed" and rows["drop"]["Trainable"] == "N"
    trainable = size(nnx.state(nnx_cnn, nnx.Param))
    frozen = size(nnx.state(nnx_cnn, nnx.Not(nnx.Param)))
    assert total_line(lines, "Trainable params").startswith(f"Trainable params: {trainable:,} (")
    assert total_line(lines, "Non-trainable params").startswith(
        f"Non-trainable params: {frozen:,} ("
    )


def test_nnx_flops_of_a_layer_are_its_own_call(nnx_cnn):
    rows = table_columns(summary_lines(nnx_cnn, inputs=(X,), memory=False))
    graphdef, state = nnx.split(nnx_cnn.conv)
    conv = xla_flops(lambda s, x: nnx.merge(graphdef, s)(x), state, X)
    assert number(rows["conv"]["FLOPs"]) == conv
    graphdef, state = nnx.split(nnx_cnn.block.lin)
    h = jnp.ones((2, 4))
    lin = xla_flops(lambda s, x: nnx.merge(graphdef, s)(x), state, h)
    # One Linear called twice is one row with both calls' FLOPs.
    assert number(rows["block/lin"]["FLOPs"]) == 2 * lin
    assert [name for name in rows if name.startswith("block/")] == ["block/lin"]


def test_nnx_total_flops_match_xla_on_the_whole_call(nnx_cnn):
    lines = summary_lines(nnx_cnn, inputs=(X,), memory=False)
    rows = table_columns(lines)
    graphdef, params, rest = nnx.split(nnx_cnn, nnx.Param, ...)

    def call(params, rest, x):
        model = nnx.merge(graphdef, params, rest, copy=True)
        return model(x), nnx.state(model, nnx.Not(nnx.Param))

    expected = xla_flops(call, params, rest, X)
    total = number(total_line(lines, "FLOPs per call").split()[3])
    assert total == expected
    assert sum(number(row["FLOPs"]) for row in rows.values()) == pytest.approx(total, rel=0.01)


def test_nnx_summary_without_inputs_lists_every_module(nnx_cnn):
    rows = table_columns(summary_lines(nnx_cnn))
    assert set(rows) == {"/".join(map(str, p)) for p, _ in nnx.iter_modules(nnx_cnn)} - {""}
    assert "Output Shape" not in rows["conv"]


def test_nnx_hand_written_scopes_inside_a_module_are_rows():
    class Attention(nnx.Module):
        def __init__(self, rngs):
            self.qkv = nnx.Linear(4, 12, rngs=rngs)

        def __call__(self, x):
            q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
            with jax.named_scope("scores"):
                weights = jax.nn.softmax(q @ k.T)
            return weights @ v

    rows = table_columns(summary_lines(Attention(nnx.Rngs(0)), inputs=(jnp.ones((5, 4)),)))
    assert list(rows) == ["(root)", "qkv", "scores"]
    assert rows["scores"]["Output Shape"] == "f32[5,5]"


# ---------------------------------------------------------------- Linen


def test_linen_rows_shapes_and_flops_match_linen_tabulate(linen_cnn):
    model, variables = linen_cnn
    expected = linen_table(model, X)
    lines = summary_lines(model.bind(variables), inputs=(X,))
    rows = table_columns(lines)
    assert list(rows) == ["(root)", "Conv_0", "BatchNorm_0", "Dropout_0", "Dense_0"]
    for path, (kind, inputs, outputs, flops) in expected.items():
        row = rows[path or "(root)"]
        assert row["Type"] == kind
        assert row["Input Shape"] == linen_shape(inputs)
        assert row["Output Shape"] == linen_shape(outputs)
        if path:  # leaf modules: their FLOPs are their own
            assert number(row["FLOPs"]) == number(flops)
    total = number(total_line(lines, "FLOPs per call").split()[3])
    assert total == pytest.approx(number(expected[""][3]), rel=0.01)
    compiled = jax.jit(model.apply).lower(variables, X).compile().cost_analysis()["flops"]
    assert total == pytest.approx(compiled, rel=0.01)  # XLA's count after its optimisations
    assert sum(number(row["FLOPs"]) for row in rows.values()) == pytest.approx(total, rel=0.01)


def test_linen_collections_split_trainable_from_state(linen_cnn):
    model, variables = linen_cnn
    lines = summary_lines(variables, model.apply, inputs=(X,), memory=False)
    rows = table_columns(lines)
    assert rows["BatchNorm_0"]["Trainable"] == "mixed"
    assert number(rows["BatchNorm_0"]["Param #"]) == size(variables["params"]["BatchNorm_0"]) + (
        size(variables["batch_stats"]["BatchNorm_0"])
    )
    trainable, frozen = size(variables["params"]), size(variables["batch_stats"])
    assert total_line(lines, "Trainable params").startswith(f"Trainable params: {trainable:,} (")
    assert total_line(lines, "Non-trainable params").startswith(
        f"Non-trainable params: {frozen:,} ("
    )
    text = "\n".join(lines)
    assert "batch_stats/mean: f32[8]" in text


def test_linen_train_mode_with_call_kwargs(linen_cnn):
    model, variables = linen_cnn
    rngs = {"dropout": jax.random.key(1)}
    lines = summary_lines(
        model.bind(variables), inputs=(X,), call_kwargs={"train": True, "rngs": rngs}
    )
    expected = linen_table(model, X, train=True, rngs={"params": jax.random.key(0), **rngs})
    rows = table_columns(lines)
    # XLA counts a fold_in followed by random bits 2 FLOPs higher together than apart.
    dropout = number(expected["Dropout_0"][3])
    assert dropout > 0
    assert number(rows["Dropout_0"]["FLOPs"]) == pytest.approx(dropout, rel=1e-3)


def test_linen_shared_and_nested_modules():
    model = LinenNested()
    x = jnp.ones((3, 5))
    variables = model.init(jax.random.key(0), x)
    expected = linen_table(model, x)
    rows = table_columns(summary_lines(model.bind(variables), inputs=(x,)))
    # Linen names Dense_0 when it is built (first, in the compact call) and calls it last.
    assert list(rows) == [path or "(root)" for path in expected]
    assert list(rows) == ["(root)", "Dense_1", "shared", "shared/inner", "Dense_0"]
    assert [rows[p]["Type"] for p in expected if p] == [expected[p][0] for p in expected if p]
    inner = xla_flops(
        lambda p, h: nn.Dense(4).apply({"params": p}, h),
        variables["params"]["shared"]["inner"],
        jnp.ones((3, 4)),
    )
    assert number(rows["shared/inner"]["FLOPs"]) == 2 * inner
    assert number(rows["shared/inner"]["Param #"]) == size(variables["params"]["shared"]["inner"])


def test_linen_under_a_custom_function_is_matched_by_its_scopes(linen_cnn):
    # A lambda around apply is a plain pytree call; Linen's scopes sit under "LinenCNN/...".
    model, variables = linen_cnn
    expected = linen_table(model, X)
    rows = table_columns(summary_lines(variables, lambda v, x: model.apply(v, x), inputs=(X,)))
    for path in ("Conv_0", "Dense_0"):
        assert rows[f"params/{path}"]["Output Shape"] == linen_shape(expected[path][2])


# ---------------------------------------------------------------- Equinox


def test_equinox_mlp_has_one_row_per_linear():
    mlp = eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(0))
    x = jnp.ones(4)
    rows = table_columns(summary_lines(mlp, inputs=(x,)))
    assert list(rows) == ["(root)", "layers/0", "layers/1", "layers/2"]
    h = x
    for i, layer in enumerate(mlp.layers):
        row = rows[f"layers/{i}"]
        out = jax.eval_shape(layer, h)
        assert (row["Type"], row["Input Shape"], row["Output Shape"]) == (
            "Linear",
            f32(h.shape),
            f32(out.shape),
        )
        assert number(row["Param #"]) == size(eqx.filter(layer, eqx.is_array))
        assert number(row["FLOPs"]) == xla_flops(lambda m, v: m(v), layer, h)
        h = out


def test_equinox_static_fields_are_shown_not_counted():
    mlp = eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(0))
    lines = summary_lines(mlp, inputs=(jnp.ones(4),))
    text = "\n".join(lines)
    assert "in_features=4" in text and "activation=relu" in text
    total = size(eqx.filter(mlp, eqx.is_inexact_array))
    assert total_line(lines, "Total params").startswith(f"Total params: {total:,} (")


def test_equinox_shared_instance_is_one_row_two_instances_two():
    model = EqxTwice(jax.random.key(0))
    x = jnp.ones(4)
    rows = table_columns(summary_lines(model, inputs=(x,)))
    assert list(rows) == ["(root)", "shared", "head"]
    assert number(rows["shared"]["FLOPs"]) == 2 * xla_flops(lambda m, v: m(v), model.shared, x)


# ---------------------------------------------------------------- graphs


def graph_nodes(dot) -> dict[str, str]:
    out = {}
    for graph in [dot, *dot.get_subgraph_list()]:
        for node in graph.get_nodes():
            if node.get_name() not in ("node", "edge", "graph"):
                out[node.get_name()] = node.get_label().strip('"').split("\\n")[0]
    return out


def assert_acyclic(dot) -> None:
    order = graphlib.TopologicalSorter()
    for edge in dot.get_edges():
        order.add(edge.get_destination(), edge.get_source())
    list(order.static_order())  # raises graphlib.CycleError on a cycle


def test_equinox_graph_is_a_dag_with_one_node_per_call():
    model = EqxTwice(jax.random.key(0))
    dot = model_to_dot(model, inputs=(jnp.ones(4),))
    assert_acyclic(dot)
    layers = [label for label in graph_nodes(dot).values() if "Linear" in label]
    assert layers == ["shared (Linear)", "shared (Linear, call 2)", "head (Linear)"]
    mlp = eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(0))
    mlp_dot = model_to_dot(mlp, inputs=(jnp.ones(4),))
    assert_acyclic(mlp_dot)
    assert [v for v in graph_nodes(mlp_dot).values() if "Linear" in v] == [
        f"layers/{i} (Linear)" for i in range(3)
    ]


def test_nnx_graph_has_one_node_per_layer_and_no_weight_inputs(nnx_cnn):
    dot = model_to_dot(nnx_cnn, inputs=(X,))
    assert_acyclic(dot)
    top = [(p[0], type(m).__name__) for p, m in nnx.iter_modules(nnx_cnn) if len(p) == 1]
    labels = list(graph_nodes(dot).values())
    assert sorted(label for label in labels if "(" in label and "input" not in label) == sorted(
        [f"{name} ({kind})" for name, kind in top] + ["relu (custom_jvp_call)", "output (output)"]
    )
    assert "x (input)" in labels and not any("params" in label for label in labels)


def test_expand_nested_draws_nested_modules_as_clusters(nnx_cnn):
    dot = model_to_dot(nnx_cnn, inputs=(X,), expand_nested=True)
    clusters = {g.get("label").strip('"'): g for g in dot.get_subgraph_list()}
    block = clusters[f"block ({type(nnx_cnn.block).__name__})"]
    inner = [g.get("label").strip('"') for g in block.get_subgraph_list()]
    assert inner[0] == "block/lin (Linear)" and "block/lin (Linear, call 2)" in inner


def test_linen_graph_edges_carry_the_shapes_linen_reports(linen_cnn):
    model, variables = linen_cnn
    expected = linen_table(model, X)
    dot = model_to_dot(model.bind(variables), inputs=(X,), show_shapes=True)
    names = graph_nodes(dot)
    flow = {
        (names[e.get_source()], names[e.get_destination()]): e.get_label().strip('"')
        for e in dot.get_edges()
    }
    conv_out = tuple(int(d) for d in expected["Conv_0"][2].split("[")[1][:-1].split(","))
    assert flow[("Conv_0 (Conv)", "BatchNorm_0 (BatchNorm)")] == str(conv_out)


class NNXDeepCNN(nnx.Module):
    """20 layers: ten Conv + BatchNorm pairs."""

    def __init__(self, rngs):
        self.convs = nnx.List([nnx.Conv(8 if i else 1, 8, (3, 3), rngs=rngs) for i in range(10)])
        self.norms = nnx.List([nnx.BatchNorm(8, rngs=rngs) for _ in range(10)])

    def __call__(self, x):
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = nnx.relu(norm(conv(x)))
        return x.mean(axis=(1, 2))


@needs_graphviz
def test_a_twenty_layer_cnn_makes_a_readable_picture(tmp_path):
    from PIL import Image

    out = tmp_path / "deep.png"
    plot_model(NNXDeepCNN(nnx.Rngs(0)), inputs=(X,), to_file=out, show_shapes=True)
    with Image.open(out) as image:
        width, height = image.size
    # One column of 20 layer nodes + 10 activations: tall and narrow, text still legible.
    assert 150 < width < 800 and 1000 < height < 6000
    assert out.stat().st_size < 200_000


# ---------------------------------------------------------------- calling convention


def test_mixups_show_the_right_call(nnx_cnn):
    with pytest.raises(
        TypeError,
        match=r"pass its example inputs as `inputs=`.*print_summary\(model, inputs=\(x,\)\)",
    ):
        print_summary(nnx_cnn, X)
    with pytest.raises(TypeError, match=r"print_summary\(model, inputs=\(x,\)\)"):
        print_summary(nnx_cnn, None, X)
    with pytest.raises(TypeError, match="pass it without `apply_fn`"):
        print_summary(nnx_cnn, lambda p, x: x, inputs=(X,))
    with pytest.raises(ValueError, match="`trainable` is for a pytree"):
        print_summary(nnx_cnn, trainable=True)


def test_unbound_linen_module_names_the_fix():
    with pytest.raises(TypeError, match=r"module\.bind\(variables\)"):
        print_summary(LinenCNN(), inputs=(X,))


def test_no_flax_or_equinox_import_for_pytrees():
    code = """
import sys, jax.numpy as jnp
from jkutils.visualize import print_summary, model_to_dot
p = {"d": {"w": jnp.ones((2, 2))}}
fn = lambda p, x: x @ p["d"]["w"]
print_summary(p, fn, inputs=(jnp.ones((1, 2)),), print_fn=lambda _: None)
model_to_dot(p, fn, inputs=(jnp.ones((1, 2)),))
assert not {"flax", "equinox"} & set(sys.modules), sorted(sys.modules)
"""
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_totals_count_numpy_the_same_way(nnx_cnn):
    lines = summary_lines(nnx_cnn)
    arrays = jax.tree_util.tree_leaves(nnx.state(nnx_cnn))
    count = sum(np.size(a) for a in arrays)
    assert total_line(lines, "Total params").startswith(f"Total params: {count:,} (")


def test_depth_folds_sublayers_into_their_ancestor(nnx_cnn):
    deep = table_columns(summary_lines(nnx_cnn, inputs=(X,), memory=False))
    rows = table_columns(summary_lines(nnx_cnn, inputs=(X,), depth=1, memory=False))
    assert list(rows) == ["(root)", "conv", "bn", "drop", "fc", "block"]
    assert number(rows["block"]["Param #"]) == size(nnx.state(nnx_cnn.block))
    assert number(rows["block"]["FLOPs"]) == number(deep["block"]["FLOPs"]) + number(
        deep["block/lin"]["FLOPs"]
    )


def nnx_table(model, *args) -> dict[str, list[str]]:
    """nnx.tabulate(compute_flops=True): path -> [type, inputs, outputs, flops]."""
    text = nnx.tabulate(model, *args, compute_flops=True, console_kwargs={"width": 400})
    rows = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) > 4 and cells[1]:
            rows[cells[0]] = cells[1:5]
    return rows


def test_nnx_rows_match_nnx_tabulate_in_inference_mode():
    model = NNXCNN(nnx.Rngs(0))
    model.eval()
    expected = nnx_table(model, X)
    rows = table_columns(summary_lines(model, inputs=(X,), memory=False))
    assert [p or "(root)" for p in expected] == list(rows)
    for path, (kind, _, outputs, flops) in expected.items():
        row = rows[path or "(root)"]
        assert (row["Type"], row["Output Shape"]) == (kind, linen_shape(outputs))
        if path in ("conv", "bn", "drop", "fc"):  # leaf modules called once: the same FLOPs
            assert number(row["FLOPs"]) == number(flops)
    # nnx.tabulate shows one of two identical calls; the row holds both.
    assert number(rows["block/lin"]["FLOPs"]) == 2 * number(expected["block/lin"][3])
    total = number(total_line(summary_lines(model, inputs=(X,), memory=False), "FLOPs").split()[3])
    # nnx.tabulate's top row is its own lowering of the whole call: 2 FLOPs apart here.
    assert total == pytest.approx(number(expected[""][3]), rel=1e-3)


def test_sequential_containers_list_their_layers_not_themselves():
    keys = jax.random.split(jax.random.key(0), 2)
    eqx_seq = eqx.nn.Sequential(
        [
            eqx.nn.Linear(4, 8, key=keys[0]),
            eqx.nn.Lambda(jax.nn.relu),
            eqx.nn.Linear(8, 2, key=keys[1]),
        ]
    )
    rows = table_columns(summary_lines(eqx_seq, inputs=(jnp.ones(4),), memory=False))
    assert [(name, row["Type"]) for name, row in rows.items()] == [
        ("(root)", "Sequential"),
        ("layers/0", "Linear"),
        ("layers/1", "Lambda"),
        ("layers/2", "Linear"),
    ]
    nnx_seq = nnx.Sequential(
        nnx.Linear(4, 8, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(8, 2, rngs=nnx.Rngs(1))
    )
    rows = table_columns(summary_lines(nnx_seq, inputs=(jnp.ones((3, 4)),), memory=False))
    modules = [p for p, m in nnx.iter_modules(nnx_seq) if isinstance(m, nnx.Linear)]
    assert list(rows) == ["(root)", *("/".join(map(str, p)) for p in modules)]


def test_linen_module_with_its_variables_in_second_place_names_bind(linen_cnn):
    model, variables = linen_cnn
    with pytest.raises(TypeError, match=r"print_summary\(module\.bind\(variables\), inputs"):
        print_summary(model, variables, inputs=(X,))
