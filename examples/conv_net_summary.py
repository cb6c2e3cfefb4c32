"""Summary and graph of a small convolutional network written with plain JAX.

The network marks its layers with ``jax.named_scope``; the parameter tree uses the same names, so
the summary can show each layer's output shape next to its parameters. Nothing is executed: the
model is traced on shapes only.

Run: ``python examples/conv_net_summary.py [OUTPUT_FOLDER]`` (default ``conv_net_summary_output``).
It writes ``summary.txt``, ``conv_net.dot`` and, when Graphviz's ``dot`` program is installed,
``conv_net.png`` (layer view) and ``conv_net_expanded.svg`` (every operation).
"""

from __future__ import annotations

import math
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jkutils.visualize import plot_model, print_summary  # noqa: E402


def init_params(seed: int = 0) -> dict:
    """He-normal kernels and zero biases for a 28x28x1 input and 10 classes (NumPy arrays)."""
    rng = np.random.default_rng(seed)
    shapes = {"conv1": (3, 3, 1, 16), "conv2": (3, 3, 16, 32), "logits": (32, 10)}
    return {
        name: {
            "kernel": (rng.standard_normal(shape) * (2.0 / math.prod(shape[:-1])) ** 0.5).astype(
                np.float32
            ),
            "bias": np.zeros(shape[-1], np.float32),
        }
        for name, shape in shapes.items()
    }


def conv_block(params: dict, x: jax.Array, name: str) -> jax.Array:
    with jax.named_scope(name):
        y = jax.lax.conv_general_dilated(
            x,
            params[name]["kernel"],
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return jax.nn.relu(y + params[name]["bias"])


def max_pool(x: jax.Array, name: str) -> jax.Array:
    with jax.named_scope(name):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def conv_net(params: dict, images: jax.Array) -> jax.Array:
    """Log-probabilities of 10 classes for a batch of NHWC images."""
    x = conv_block(params, images, "conv1")
    x = max_pool(x, "pool1")
    x = conv_block(params, x, "conv2")
    with jax.named_scope("global_pool"):
        x = x.mean(axis=(1, 2))
    with jax.named_scope("logits"):
        x = x @ params["logits"]["kernel"] + params["logits"]["bias"]
    return jax.nn.log_softmax(x)


def main(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    params = init_params(0)
    images = jax.ShapeDtypeStruct((32, 28, 28, 1), jnp.float32)  # shapes only: nothing runs

    lines: list[str] = []
    print_summary(params, conv_net, inputs=(images,), print_fn=lines.append)
    print("\n".join(lines))
    with open(os.path.join(folder, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    written = [os.path.join(folder, "conv_net.dot")]
    plot_model(params, conv_net, inputs=(images,), to_file=written[0], show_shapes=True)
    if shutil.which("dot"):
        written.append(os.path.join(folder, "conv_net.png"))
        plot_model(params, conv_net, inputs=(images,), to_file=written[-1], show_shapes=True)
        written.append(os.path.join(folder, "conv_net_expanded.svg"))
        plot_model(
            params,
            conv_net,
            inputs=(images,),
            to_file=written[-1],
            show_shapes=True,
            show_dtype=True,
            expand_nested=True,
        )
    else:
        print("Graphviz's `dot` is not installed: wrote the .dot graph only.")
    print("wrote:", ", ".join(written))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "conv_net_summary_output")
