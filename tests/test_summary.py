"""Tests for jkutils.visualize.print_summary."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from _summary_table import summary_lines, table_columns, table_rows, total_line
from hypothesis import given, settings
from hypothesis import strategies as st

from jkutils.visualize import print_summary
from jkutils.visualize.summary import readable_size


def dense_params(sizes):
    return {
        f"dense{i}": {"w": np.ones((a, b), np.float32), "b": np.zeros(b, np.float32)}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }


def mlp(params, x):
    for i in range(len(params)):
        with jax.named_scope(f"dense{i}"):
            x = x @ params[f"dense{i}"]["w"] + params[f"dense{i}"]["b"]
        if i < len(params) - 1:
            with jax.named_scope(f"act{i}"):
                x = jax.nn.relu(x)
    return x


# ---------------------------------------------------------------- parameter trees only


def test_plain_dict_of_arrays_makes_one_row_per_root_array():
    lines = summary_lines({"w": jnp.ones((3, 4)), "b": jnp.zeros(4)})
    rows = table_rows(lines)
    assert rows["w"][1:] == ["f32[3,4]", "12", "48.00 B"]
    assert rows["b"][1:] == ["f32[4]", "4", "16.00 B"]
    assert total_line(lines, "Total params") == "Total params: 16 (64.00 B)"
    assert total_line(lines, "Trainable params") == "Trainable params: 16 (64.00 B)"
    assert total_line(lines, "Non-trainable params") == "Non-trainable params: 0 (0.00 B)"


def test_nested_dict_groups_arrays_into_their_innermost_node():
    params = dense_params([4, 8, 3])
    lines = summary_lines(params)
    rows = table_rows(lines)
    assert rows["dense0"][1:] == ["b: f32[8]", "40", "160.00 B"]
    assert rows["dense1"][1:] == ["b: f32[3]", "27", "108.00 B"]
    text = "\n".join(lines)
    assert "w: f32[4,8]" in text and "w: f32[8,3]" in text
    assert total_line(lines, "Total params") == "Total params: 67 (268.00 B)"


def test_nested_lists_are_layers_by_index():
    params = [
        [np.ones((2, 3), np.float32), np.ones(3, np.float32)],
        [np.ones((3, 1), np.float32), np.ones(1, np.float32)],
    ]
    rows = table_rows(summary_lines(params))
    assert list(rows) == ["0", "1"]
    assert rows["0"][2] == "9" and rows["1"][2] == "4"
    assert rows["0"][1] == "0: f32[2,3]"


class Dense(NamedTuple):
    w: jax.Array
    b: jax.Array


def test_namedtuples_use_field_names():
    params = {
        "enc": Dense(jnp.ones((5, 2)), jnp.ones(2)),
        "dec": Dense(jnp.ones((2, 5)), jnp.ones(5)),
    }
    lines = summary_lines(params)
    rows = table_rows(lines)
    assert rows["enc"][1:] == ["w: f32[5,2]", "12", "48.00 B"]
    assert rows["dec"][1:] == ["w: f32[2,5]", "15", "60.00 B"]
    assert "b: f32[2]" in "\n".join(lines)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Linear:
    """An equinox-style module: arrays plus non-array fields that are pytree leaves too."""

    weight: jax.Array
    bias: jax.Array
    activation: object
    features: int


def test_module_pytrees_skip_leaves_that_are_not_arrays():
    params = [
        Linear(jnp.ones((3, 2)), jnp.ones(2), jax.nn.relu, 2),
        Linear(jnp.ones((2, 1)), jnp.ones(1), jnp.tanh, 1),
    ]
    lines = summary_lines(params)
    rows = table_rows(lines)
    assert rows["0"][1:] == ["weight: f32[3,2]", "8", "32.00 B"]
    assert rows["1"][2] == "3"
    assert total_line(lines, "Total params") == "Total params: 11 (44.00 B)"


def test_module_pytrees_trace_with_their_non_array_leaves_static():
    params = [Linear(jnp.ones((3, 2)), jnp.ones(2), jax.nn.relu, 2)]

    def apply(layers, x):
        for i, layer in enumerate(layers):
            with jax.named_scope(str(i)):
                x = layer.activation(x @ layer.weight + layer.bias)
        return x

    rows = table_rows(summary_lines(params, apply, inputs=(jnp.ones((4, 3)),)))
    assert rows["0"][1:5] == ["f32[4,3]", "f32[4,2]", "weight: f32[3,2]", "8"]


def test_depth_also_cuts_scopes():
    params = {"enc": dense_params([4, 4, 2])}

    def apply(p, x):
        with jax.named_scope("enc"):
            for name in ("dense0", "dense1"):
                with jax.named_scope(name):
                    x = x @ p["enc"][name]["w"] + p["enc"][name]["b"]
        return x

    rows = table_rows(summary_lines(params, apply, inputs=(jnp.ones((3, 4)),), depth=1))
    assert list(rows) == ["enc"]
    assert rows["enc"][1:3] == ["f32[3,4]", "f32[3,2]"] and rows["enc"][4] == "30"
    rows2 = table_rows(summary_lines(params, apply, inputs=(jnp.ones((3, 4)),)))
    assert [rows2[n][2] for n in ("enc/dense0", "enc/dense1")] == ["f32[3,4]", "f32[3,2]"]


def test_depth_sums_deeper_nodes_into_their_ancestor():
    params = {"enc": dense_params([4, 4, 4]), "head": {"w": jnp.ones((4, 2))}}
    rows = table_rows(summary_lines(params, depth=1))
    assert list(rows) == ["enc", "head"]
    assert rows["enc"][1:3] == ["dense0/b: f32[4]", "40"]
    assert rows["head"][2] == "8"
    rows2 = table_rows(summary_lines(params, depth=2))
    assert set(rows2) == {"enc/dense0", "enc/dense1", "head"}


def test_dtype_sizes_follow_bits_per_element():
    params = {
        "bf16": jnp.ones((4,), jnp.bfloat16),
        "int4": np.ones((8,), ml_dtypes.int4),
        "flag": np.ones((3,), bool),
        "key": jax.random.key(0),
    }
    rows = table_rows(summary_lines(params))
    assert rows["bf16"][1:] == ["bf16[4]", "4", "8.00 B"]
    assert rows["int4"][1:] == ["i4[8]", "8", "4.00 B"]
    assert rows["flag"][1:] == ["bool[3]", "3", "3.00 B"]
    assert rows["key"][2:] == ["1", "8.00 B"]


def test_shapedtypestructs_need_no_data():
    params = {"w": jax.ShapeDtypeStruct((1000, 1000), jnp.float32)}
    lines = summary_lines(params)
    assert total_line(lines, "Total params") == "Total params: 1,000,000 (3.81 MiB)"


def test_an_array_at_two_paths_is_counted_once_in_totals():
    shared = jnp.ones((10, 10))
    lines = summary_lines({"encoder": {"emb": shared}, "decoder": {"emb": shared}})
    rows = table_rows(lines)
    assert rows["encoder"][2] == rows["decoder"][2] == "100"
    assert total_line(lines, "Total params") == "Total params: 100 (400.00 B)"


def test_empty_tree_prints_zero_totals():
    lines = summary_lines({})
    assert total_line(lines, "Total params") == "Total params: 0 (0.00 B)"


def test_thousand_layers_make_a_thousand_rows():
    params = {
        f"layer{i:04d}": {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32)} for i in range(1000)
    }
    rows = table_rows(summary_lines(params))
    assert len(rows) == 1000
    assert rows["layer0999"][2] == "64"


# ---------------------------------------------------------------- trainable mask


def test_trainable_mask_splits_totals_and_marks_rows():
    params = dense_params([4, 8, 3])
    mask = {"dense0": False, "dense1": {"w": True, "b": False}}
    lines = summary_lines(params, trainable=mask)
    rows = table_rows(lines)
    assert rows["dense0"][-1] == "N" and rows["dense1"][-1] == "mixed"
    assert total_line(lines, "Trainable params") == "Trainable params: 24 (96.00 B)"
    assert total_line(lines, "Non-trainable params") == "Non-trainable params: 43 (172.00 B)"


def test_trainable_mask_errors_name_the_argument():
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="`trainable`"):
        print_summary(params, trainable={"a": True}, print_fn=lambda _: None)
    with pytest.raises(TypeError, match="`trainable` must hold booleans"):
        print_summary(params, trainable={"a": 1, "b": True}, print_fn=lambda _: None)


# ---------------------------------------------------------------- traced through apply_fn


def test_mlp_output_shapes_come_from_named_scopes():
    params = dense_params([4, 16, 8, 3])
    lines = summary_lines(params, mlp, inputs=(jnp.ones((5, 4)),))
    rows = table_rows(lines)
    assert list(rows) == ["dense0", "act0", "dense1", "act1", "dense2"]
    assert rows["dense0"][1:5] == ["f32[5,4]", "f32[5,16]", "b: f32[16]", "80"]
    # relu: one max per element
    assert rows["act0"][1:] == ["f32[5,16]", "f32[5,16]", "-", "0", "0.00 B", "80"]
    assert rows["dense2"][2] == "f32[5,3]"
    assert lines[0] == 'Model: "mlp"'


def test_matmul_flops_match_the_analytic_count():
    m, k, n = 64, 128, 32

    def matmul(params, x):
        with jax.named_scope("w"):
            return x @ params["w"]

    lines = summary_lines({"w": jnp.ones((k, n))}, matmul, inputs=jnp.ones((m, k)))
    assert (
        total_line(lines, "FLOPs per call")
        == f"FLOPs per call: {2 * m * k * n:,} (XLA cost analysis)"
    )
    memory = total_line(lines, "Memory per call")
    assert f"arguments {readable_size(4 * (m * k + k * n))}" in memory
    assert f"outputs {readable_size(4 * m * n)}" in memory
    assert table_rows(lines)["w"][2] == "f32[64,32]"
    assert table_rows(lines)["w"][-1] == f"{2 * m * k * n:,}"


def conv(params, x, name, stride):
    with jax.named_scope(name):
        y = jax.lax.conv_general_dilated(
            x,
            params[name]["kernel"],
            window_strides=(stride, stride),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return jax.nn.relu(y + params[name]["bias"])


def conv_net(params, x):
    x = conv(params, x, "conv1", 1)
    x = conv(params, x, "conv2", 2)
    with jax.named_scope("flatten"):
        x = x.reshape(x.shape[0], -1)
    with jax.named_scope("logits"):
        return x @ params["logits"]["kernel"] + params["logits"]["bias"]


def conv_params():
    return {
        "conv1": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.zeros(4)},
        "conv2": {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.zeros(8)},
        "logits": {"kernel": jnp.ones((4 * 4 * 8, 10)), "bias": jnp.zeros(10)},
    }


def test_conv_net_counts_and_shapes():
    lines = summary_lines(conv_params(), conv_net, inputs=(jnp.ones((2, 8, 8, 1)),))
    rows = table_rows(lines)
    assert list(rows) == ["conv1", "conv2", "flatten", "logits"]
    # 3*3*1*4 + 4, 3*3*4*8 + 8, 128*10 + 10
    assert [rows[name][4] for name in ("conv1", "conv2", "logits")] == ["40", "296", "1,290"]
    assert [rows[name][2] for name in rows] == [
        "f32[2,8,8,4]",
        "f32[2,4,4,8]",
        "f32[2,128]",
        "f32[2,10]",
    ]
    assert total_line(lines, "Total params") == "Total params: 1,626 (6.35 KiB)"
    flops = int(total_line(lines, "FLOPs per call").split()[3].replace(",", ""))
    # XLA counts 2 flops per multiply-add over the kernel taps that land inside the image (SAME
    # padding taps are not counted) and 1 flop per element for each elementwise op.
    # conv1 (8x8, stride 1, pad 1|1): valid row taps per output row sum to 3*8 - 2 = 22.
    conv1 = 2 * 2 * 22**2 * 1 * 4
    # conv2 (8x8 -> 4x4, stride 2, pad 0|1): rows 0-2,2-4,4-6 are whole, the last has 2 taps.
    conv2 = 2 * 2 * (3 + 3 + 3 + 2) ** 2 * 4 * 8
    matmul = 2 * 2 * 128 * 10
    elementwise = 2 * (2 * 8 * 8 * 4) + 2 * (2 * 4 * 4 * 8) + 2 * 10  # bias add + relu, bias add
    assert flops == conv1 + conv2 + matmul + elementwise
    # Each row's share: its convolution or matmul plus its elementwise ops.
    assert [int(rows[name][-1].replace(",", "")) for name in rows] == [
        conv1 + 2 * (2 * 8 * 8 * 4),
        conv2 + 2 * (2 * 4 * 4 * 8),
        0,
        matmul + 20,
    ]


def test_layer_path_matches_the_trailing_scope_name():
    params = {"params": {"dense": {"w": jnp.ones((3, 2))}, "unused": {"w": jnp.ones(7)}}}

    def apply(p, x):
        with jax.named_scope("dense"):
            return x @ p["params"]["dense"]["w"]

    rows = table_rows(summary_lines(params, apply, inputs=(jnp.ones((1, 3)),)))
    assert rows["params/dense"][2] == "f32[1,2]"
    assert rows["params/unused"][2] == "?"
    assert list(rows) == ["params/dense", "params/unused"]


def test_nested_jit_and_scopes_compose():
    params = {"block": {"inner": {"w": jnp.ones((4, 4))}}}

    @jax.jit
    def inner(p, x):
        with jax.named_scope("inner"):
            return jnp.tanh(x @ p["w"])

    def apply(p, x):
        with jax.named_scope("block"):
            return inner(p["block"]["inner"], x)

    rows = table_rows(summary_lines(params, apply, inputs=(jnp.ones((3, 4)),)))
    assert rows["block/inner"][2] == "f32[3,4]"


def test_apply_fn_is_traced_never_run():
    calls = []

    def apply(p, x):
        jax.debug.callback(lambda: calls.append(1))
        with jax.named_scope("w"):
            return x @ p["w"]

    params = {"w": jax.ShapeDtypeStruct((3, 2), jnp.float32)}
    rows = table_rows(
        summary_lines(params, apply, inputs=(jax.ShapeDtypeStruct((7, 3), jnp.float32),))
    )
    assert rows["w"][2] == "f32[7,2]"
    assert calls == []


def test_non_array_inputs_are_passed_through_as_static_values():
    def apply(p, x, train):
        with jax.named_scope("w"):
            y = x @ p["w"]
        return y * 0.5 if train else y

    rows = table_rows(
        summary_lines({"w": jnp.ones((3, 2))}, apply, inputs=[jnp.ones((1, 3)), True])
    )
    assert rows["w"][2] == "f32[1,2]"


def test_matches_keras_counts_shapes_and_totals():
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(1, name="d2")]
    )
    keras_text: list[str] = []
    model.summary(print_fn=lambda text, **_: keras_text.append(text), line_length=120)
    params = {
        layer.name: {"kernel": layer.kernel.value, "bias": layer.bias.value}
        for layer in model.layers
    }

    def apply(p, x):
        for name in ("d1", "d2"):
            with jax.named_scope(name):
                x = x @ p[name]["kernel"] + p[name]["bias"]
        return x

    lines = summary_lines(params, apply, inputs=(jnp.ones((5, 4)),))
    rows = table_rows(lines)
    for layer in model.layers:
        assert rows[layer.name][4] == f"{layer.count_params():,}"
        assert rows[layer.name][2] == f"f32[5,{layer.output.shape[-1]}]"
    keras_joined = "".join(keras_text)
    for label in ("Total params", "Trainable params", "Non-trainable params"):
        # Keras prints the same binary sizes with the units spelled KB, MB.
        assert total_line(lines, label).replace("iB", "B") in keras_joined


@pytest.mark.parametrize("num_bytes", [0, 1023, 1024, 1536, 5 * 1024**3, 7 * 1024**5])
def test_readable_size_matches_keras_numbers_in_binary_units(num_bytes):
    summary_utils = pytest.importorskip("keras.src.utils.summary_utils")
    keras_text = summary_utils.readable_memory_size(num_bytes)
    assert readable_size(num_bytes) == keras_text.replace("KB", "KiB").replace("MB", "MiB").replace(
        "GB", "GiB"
    ).replace("TB", "TiB").replace("PB", "PiB")


def test_readable_size_beyond_petabytes_stays_in_petabytes():
    # Keras divides once more than it has units and prints 3 * 1024**6 bytes as "3.00 PB".
    assert readable_size(3 * 1024**6) == "3072.00 PiB"


# ---------------------------------------------------------------- layout


def test_print_fn_gets_one_line_per_call_and_print_is_the_default(capsys):
    lines = summary_lines({"w": jnp.ones(2)})
    assert all("\n" not in line for line in lines)
    print_summary({"w": jnp.ones(2)})
    assert capsys.readouterr().out.splitlines() == lines


def test_long_names_wrap_and_nothing_is_cut():
    name = "a_very_long_layer_name_" * 5
    lines = summary_lines({name: {"w": jnp.ones((2, 2))}}, line_length=50)
    start = next(i for i, line in enumerate(lines) if line.startswith("=")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("="))
    assert all(len(line) <= 50 for line in lines[1 : end + 1])
    assert end - start > 1
    assert "".join(line.split()[0] for line in lines[start:end]) == name


def test_positions_as_fractions_and_as_columns():
    params = {"layer": {"w": jnp.ones((2, 2))}}
    frac = summary_lines(params, line_length=60, positions=[0.3, 0.6, 0.8, 1.0])
    absolute = summary_lines(params, positions=[18, 36, 48, 60])
    assert frac == absolute
    assert len(frac[1]) == 60
    header = frac[2]
    assert header.index("Parameters") == 19 and header.rstrip().endswith("Size")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"line_length": 0}, ValueError, "`line_length`"),
        ({"line_length": 12.5}, ValueError, "`line_length`"),
        ({"depth": 0}, ValueError, "`depth`"),
        ({"positions": [0.5, 1.0]}, ValueError, "`positions` must be 4"),
        ({"positions": [0.5, 0.4, 0.8, 1.0]}, ValueError, "`positions`"),
        ({"line_length": 10}, ValueError, "narrower than 4"),
        ({"print_fn": "stdout"}, TypeError, "`print_fn`"),
        ({"inputs": (jnp.ones(2),)}, ValueError, "`inputs` needs `apply_fn`"),
    ],
)
def test_bad_arguments_fail_early(kwargs, error, match):
    with pytest.raises(error, match=match):
        print_summary({"w": jnp.ones(2)}, **kwargs)


def test_params_without_arrays_and_bad_inputs_are_rejected():
    with pytest.raises(
        TypeError, match="`model` must be a module or a pytree holding arrays.*function"
    ):
        print_summary({"f": lambda x: x}, print_fn=lambda _: None)
    with pytest.raises(TypeError, match="`inputs` must be a tuple or list"):
        print_summary({"w": jnp.ones(2)}, lambda p, x: x, inputs="x", print_fn=lambda _: None)
    with pytest.raises(TypeError, match="`apply_fn` must be a callable"):
        print_summary({"w": jnp.ones(2)}, "apply", inputs=(jnp.ones(2),), print_fn=lambda _: None)


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(
        st.text(alphabet="abcxyz_/.0123456789-", min_size=1, max_size=70),
        min_size=1,
        max_size=4,
        unique=True,
    ),
)
def test_wrapped_cells_keep_every_character_within_the_width(names):
    params = {name: {"w": np.ones((2, 3), np.float32)} for name in names}
    lines = summary_lines(params, positions=[20, 45, 55, 70])
    start = next(i for i, line in enumerate(lines) if line.startswith("=")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("="))
    assert all(len(line) <= 70 for line in lines[: end + 1])
    rows: list[str] = []
    for line in filter(None, lines[start:end]):
        if line[45:55].strip():  # the Param # cell is filled on a row's first line only
            rows.append("")
        rows[-1] += line[1:19].strip()
    assert sorted(rows) == sorted(names)


def test_conv_net_example_writes_its_files(tmp_path):
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "conv_net_summary.py"
    spec = importlib.util.spec_from_file_location("conv_net_summary", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(str(tmp_path / "out"))
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    expected = ["conv_net.dot", "summary.txt"]
    if shutil.which("dot"):
        expected += ["conv_net.png", "conv_net_expanded.svg"]
    assert written == sorted(expected)
    summary = (tmp_path / "out" / "summary.txt").read_text()
    # 3*3*1*16 + 16, 3*3*16*32 + 32, 32*10 + 10
    assert "Total params: 5,130 (20.04 KiB)" in summary


# ---------------------------------------------------------------- layers without scopes


def unscoped_mlp(params, x):
    """Layers used in an order that is not alphabetical, with no named scopes."""
    x = jnp.tanh(x @ params["zeta"]["w"] + params["zeta"]["b"])
    return x @ params["alpha"]["w"] + params["alpha"]["b"]


X4 = jnp.ones((3, 4))
UNSCOPED = {
    "alpha": {"w": jnp.ones((8, 3)), "b": jnp.zeros(3)},
    "zeta": {"w": jnp.ones((4, 8)), "b": jnp.zeros(8)},
}


def test_without_scopes_layers_are_the_parameters_each_operation_reads():
    x = jnp.ones((5, 4))
    lines = summary_lines(UNSCOPED, unscoped_mlp, inputs=(x,))
    rows = table_columns(lines)
    # Call order, then the function's own operations (tanh) as the root row.
    assert list(rows) == ["(root)", "zeta", "alpha"]
    zeta = jax.eval_shape(lambda p, x: x @ p["w"] + p["b"], UNSCOPED["zeta"], x)
    assert (rows["zeta"]["Input Shape"], rows["zeta"]["Output Shape"]) == (
        "f32[5,4]",
        f"f32[{zeta.shape[0]},{zeta.shape[1]}]",
    )
    assert rows["alpha"]["Output Shape"] == "f32[5,3]"
    dense = jax.jit(lambda p, x: x @ p["w"] + p["b"]).lower(UNSCOPED["zeta"], x).cost_analysis()
    assert int(rows["zeta"]["FLOPs"].replace(",", "")) == int(dense["flops"])
    assert "No layers found" not in "\n".join(lines)


def test_when_no_layer_is_found_the_summary_says_how_to_mark_them():
    constant = jnp.ones((4, 2))
    lines = summary_lines({"w": jnp.ones((4, 2))}, lambda p, x: x @ constant, inputs=(X4,))
    note = next(line for line in lines if "No layers found" in line)
    assert "jax.named_scope" in note and "NNX, Linen or Equinox module" in note


def test_old_spellings_get_the_right_call():
    with pytest.raises(TypeError, match=r"parameters first and the function second"):
        print_summary(mlp, dense_params([4, 2]), print_fn=lambda _: None)
    with pytest.raises(TypeError, match=r"inputs go in `inputs=`.*print_summary\(params, apply_fn"):
        print_summary(dense_params([4, 2]), mlp, X4, print_fn=lambda _: None)


def test_model_summaries_example_writes_its_files(tmp_path):
    pytest.importorskip("flax")
    pytest.importorskip("equinox")
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "model_summaries.py"
    spec = importlib.util.spec_from_file_location("model_summaries", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(str(tmp_path / "out"))
    names = ["nnx_cnn", "linen_cnn", "equinox_mlp"]
    expected = [f"{n}.txt" for n in names] + (
        [f"{n}.png" for n in names] if shutil.which("dot") else []
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(expected)
    nnx_text = (tmp_path / "out" / "nnx_cnn.txt").read_text()
    linen_text = (tmp_path / "out" / "linen_cnn.txt").read_text()
    # The same network in inference mode: NNX and Linen agree on every FLOP.
    flops = [line for line in nnx_text.splitlines() if "FLOPs per call" in line]
    assert flops == [line for line in linen_text.splitlines() if "FLOPs per call" in line]


def test_memory_false_skips_the_compiled_memory_line():
    params = dense_params([4, 2])
    lines = summary_lines(params, mlp, inputs=(X4,), memory=False)
    assert not any("Memory per call" in line for line in lines)
    assert any(line.strip().startswith("FLOPs per call: ") for line in lines)
