"""print_summary and model_to_dot: jkutils vs Keras's Model.summary, from one run.

Rows:
- a parameter-tree summary of a 1000-layer MLP (Dense 8->8) against Keras's ``summary()`` of the
  same Sequential model; the limit is flattening the tree with its paths (what any summary must do);
- a traced summary (output shapes, FLOPs, memory) of a 50-layer MLP; the limit is tracing,
  lowering and compiling the function once (what XLA's cost analysis needs);
- the layer-view graph of the same 50-layer MLP; the limit is ``jax.make_jaxpr``.

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
from jkutils.visualize import model_to_dot, print_summary  # noqa: E402


def _mlp_params(layers: int, width: int = 8) -> dict:
    return {
        f"dense_{i}": {
            "kernel": np.ones((width, width), np.float32),
            "bias": np.zeros(width, np.float32),
        }
        for i in range(layers)
    }


def _mlp(params: dict, x: jax.Array) -> jax.Array:
    for name in params:
        with jax.named_scope(name):
            x = jnp.tanh(x @ params[name]["kernel"] + params[name]["bias"])
    return x


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
    return lambda: model.summary(print_fn=lambda *a, **k: None)


def _tree_summary_row(layers: int, repeat: int) -> Row:
    params = _mlp_params(layers)
    ours = best_of(lambda: print_summary(params, print_fn=lambda _: None), repeat)
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


def _traced_summary_row(layers: int, repeat: int) -> Row:
    params = _mlp_params(layers)
    x = jax.ShapeDtypeStruct((32, 8), jnp.float32)

    def ours():
        print_summary(params, _mlp, inputs=(x,), print_fn=lambda _: None)

    def compile_once():
        # A fresh function each time, so that JAX's trace cache cannot answer (nor does it ours).
        jax.jit(lambda p, x: _mlp(p, x)).trace(params, x).lower().compile().cost_analysis()

    return Row(
        "visualize",
        f"print_summary traced {layers} layers",
        best_of(ours, repeat),
        "",
        None,
        "trace+lower+compile",
        best_of(compile_once, repeat),
    )


def _graph_row(layers: int, repeat: int) -> Row:
    params = _mlp_params(layers)
    x = jax.ShapeDtypeStruct((32, 8), jnp.float32)
    ours = best_of(lambda: model_to_dot(_mlp, params, x, show_shapes=True), repeat)
    limit = best_of(lambda: jax.make_jaxpr(lambda p, x: _mlp(p, x))(params, x), repeat)
    return Row(
        "visualize",
        f"model_to_dot {layers} layers",
        ours,
        "",
        None,
        "make_jaxpr",
        limit,
    )


def rows(quick: bool = False) -> list[Row]:
    repeat = 3 if quick else 5
    return [
        _tree_summary_row(200 if quick else 1000, repeat),
        _traced_summary_row(10 if quick else 50, repeat),
        _graph_row(10 if quick else 50, repeat),
    ]


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
