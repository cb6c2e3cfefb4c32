"""print_summary and model_to_dot: jkutils beside Flax's tabulate and Keras's summary, one run.

Rows:
- the summary (layer rows, shapes, per-layer FLOPs; ``memory=False``, so no compile) of a
  ResNet-50 written in Flax Linen, beside Linen's ``Module.tabulate(compute_flops=True)`` of the
  same model and the same input; the limit is ``jax.make_jaxpr`` of the call (one trace is
  what any summary of a traced call must do);
- the same for a 12-layer transformer encoder written in Flax NNX, beside
  ``nnx.tabulate(compute_flops=True)``;
- the layer-view graph of both models; the limit is ``jax.make_jaxpr``;
- a parameter-tree summary (no tracing) of a 1000-layer MLP, beside Keras's ``summary()`` of the
  same Sequential model; the limit is flattening the tree with its paths.

Flax and Equinox are optional here: rows whose framework is missing are left out.

Run: ``python benchmarks/bench_visualize.py [--quick]``
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._harness import Row, best_of, print_table  # noqa: E402
from jkutils.visualize import _flops, model_to_dot, print_summary  # noqa: E402

_RESNET50_STAGES = (3, 4, 6, 3)


def _quiet(*args, **kwargs) -> None:
    return None


# ----------------------------------------------------------------------------- models


def _linen_resnet50():
    """(bound Linen ResNet-50, example images), or None without Flax."""
    try:
        import flax.linen as nn
    except ImportError:
        return None

    class Bottleneck(nn.Module):
        features: int
        strides: int

        @nn.compact
        def __call__(self, x):
            y = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (1, 1))(x)))
            y = nn.Conv(self.features, (3, 3), strides=self.strides)(y)
            y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
            y = nn.BatchNorm(use_running_average=True)(nn.Conv(4 * self.features, (1, 1))(y))
            if x.shape != y.shape:
                x = nn.Conv(4 * self.features, (1, 1), strides=self.strides)(x)
                x = nn.BatchNorm(use_running_average=True)(x)
            return nn.relu(x + y)

    class ResNet50(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(64, (7, 7), strides=2)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            for stage, blocks in enumerate(_RESNET50_STAGES):
                for block in range(blocks):
                    strides = 2 if stage and not block else 1
                    x = Bottleneck(64 * 2**stage, strides)(x)
            return nn.Dense(1000)(x.mean(axis=(1, 2)))

    model = ResNet50()
    images = jnp.zeros((1, 64, 64, 3))
    variables = jax.jit(model.init)(jax.random.key(0), images)
    return model, variables, images


def _nnx_transformer(layers: int = 12, width: int = 256, heads: int = 8, length: int = 128):
    """(NNX transformer encoder, example tokens), or None without Flax."""
    try:
        from flax import nnx
    except ImportError:
        return None

    class EncoderBlock(nnx.Module):
        def __init__(self, rngs):
            self.norm1 = nnx.LayerNorm(width, rngs=rngs)
            self.attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
            self.norm2 = nnx.LayerNorm(width, rngs=rngs)
            self.up = nnx.Linear(width, 4 * width, rngs=rngs)
            self.down = nnx.Linear(4 * width, width, rngs=rngs)

        def __call__(self, x):
            x = x + self.attention(self.norm1(x))
            return x + self.down(nnx.gelu(self.up(self.norm2(x))))

    class Encoder(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(1000, width, rngs=rngs)
            self.blocks = nnx.List([EncoderBlock(rngs) for _ in range(layers)])
            self.head = nnx.Linear(width, 1000, rngs=rngs)

        def __call__(self, tokens):
            x = self.embed(tokens)
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    return Encoder(nnx.Rngs(0)), jnp.zeros((1, length), jnp.int32)


# ----------------------------------------------------------------------------- rows


def _framework_rows(repeat: int) -> list[Row]:
    rows = []
    resnet = _linen_resnet50()
    if resnet is not None:
        model, variables, images = resnet
        bound = model.bind(variables)

        def linen_tabulate():
            model.tabulate(jax.random.key(0), images, compute_flops=True)

        rows += _model_rows(
            "ResNet-50 (Linen)",
            bound,
            images,
            "Linen tabulate(flops)",
            linen_tabulate,
            lambda: jax.make_jaxpr(lambda v, x: model.apply(v, x))(variables, images),
            repeat,
        )
    transformer = _nnx_transformer()
    if transformer is not None:
        from flax import nnx

        encoder, tokens = transformer
        graphdef, state = nnx.split(encoder)

        def nnx_tabulate():
            nnx.tabulate(encoder, tokens, compute_flops=True)

        rows += _model_rows(
            "transformer 12 layers (NNX)",
            encoder,
            tokens,
            "nnx.tabulate(flops)",
            nnx_tabulate,
            lambda: jax.make_jaxpr(lambda s, t: nnx.merge(graphdef, s)(t))(state, tokens),
            repeat,
        )
    return rows


def _model_rows(name, model, inputs, ref_name, ref, make_jaxpr, repeat) -> list[Row]:
    """Summary and graph rows of one framework model, with the peer and the trace limit."""

    def summary():
        _flops.clear_cache()  # time a first summary: every operation is costed afresh
        print_summary(model, inputs=(inputs,), print_fn=_quiet, memory=False)

    def graph():
        model_to_dot(model, inputs=(inputs,), show_shapes=True)

    limit = best_of(make_jaxpr, repeat)
    return [
        Row(
            "visualize",
            f"print_summary {name}",
            best_of(summary, repeat),
            ref_name,
            best_of(ref, 1),
            "make_jaxpr",
            limit,
        ),
        Row(
            "visualize",
            f"model_to_dot {name}",
            best_of(graph, repeat),
            "",
            None,
            "make_jaxpr",
            limit,
        ),
    ]


def _mlp_params(layers: int, width: int = 8) -> dict:
    return {
        f"dense_{i}": {
            "kernel": np.ones((width, width), np.float32),
            "bias": np.zeros(width, np.float32),
        }
        for i in range(layers)
    }


def _keras_summary(layers: int):
    """A callable printing Keras's summary of the same model, or None without Keras."""
    try:
        import keras
    except Exception:  # Keras is optional for the benchmark
        return None
    # Keras walks a Sequential graph recursively: 1000 layers exceed the default limit.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * layers))
    model = keras.Sequential(
        [keras.Input((8,))] + [keras.layers.Dense(8, name=f"dense_{i}") for i in range(layers)]
    )
    return lambda: model.summary(print_fn=_quiet)


def _tree_summary_row(layers: int, repeat: int) -> Row:
    params = _mlp_params(layers)
    ours = best_of(lambda: print_summary(params, print_fn=_quiet), repeat)
    limit = best_of(lambda: jax.tree_util.tree_flatten_with_path(params), repeat)
    keras_summary = _keras_summary(layers)
    ref = best_of(keras_summary, max(1, repeat // 2)) if keras_summary else None
    return Row(
        "visualize",
        f"print_summary params {layers} layers",
        ours,
        "keras summary()",
        ref,
        "tree_flatten_with_path",
        limit,
        target="< 1 s",
    )


def rows(quick: bool = False) -> list[Row]:
    repeat = 1 if quick else 3
    return [
        *_framework_rows(repeat),
        _tree_summary_row(200 if quick else 1000, 3 if quick else 5),
    ]


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
