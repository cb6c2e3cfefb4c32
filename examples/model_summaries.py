"""Summaries and graphs of the models Flax NNX, Flax Linen and Equinox users write.

No named scopes, no wrapping: each model is passed as its framework made it. Nothing runs; the
call is traced on shapes only. Needs ``flax`` and ``equinox`` (``pip install -e ".[test]"``).

Run: ``python examples/model_summaries.py [OUTPUT_FOLDER]`` (default ``model_summaries_output``).
It writes ``nnx_cnn.txt``, ``linen_cnn.txt``, ``equinox_mlp.txt`` and, when Graphviz's ``dot``
program is installed, ``nnx_cnn.png``, ``linen_cnn.png`` and ``equinox_mlp.png``.
"""

from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import equinox as eqx  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from jkutils.visualize import plot_model, print_summary  # noqa: E402


class NNXCNN(nnx.Module):
    """Two Conv-BatchNorm-ReLU blocks with Dropout, global pooling and a Linear head."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 16, (3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(16, rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.bn2 = nnx.BatchNorm(32, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.head = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x)))
        x = self.dropout(nnx.relu(self.bn2(self.conv2(x))))
        return self.head(x.mean(axis=(1, 2)))


class LinenCNN(nn.Module):
    """The same network written with ``nn.compact`` (Linen names the layers Conv_0, ...)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(16, (3, 3))(x)))
        x = nn.Conv(32, (3, 3), strides=2)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
        x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(10)(x.mean(axis=(1, 2)))


def models() -> dict:
    """name -> (model, example inputs), each as its framework builds it."""
    images = jax.ShapeDtypeStruct((32, 28, 28, 1), jnp.float32)  # shapes only: nothing runs
    linen = LinenCNN()
    variables = linen.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    mlp = eqx.nn.MLP(784, 10, 128, depth=2, key=jax.random.key(0))
    nnx_cnn = NNXCNN(nnx.Rngs(0))
    nnx_cnn.eval()  # BatchNorm on running statistics, no Dropout: as Linen with train=False
    return {
        "nnx_cnn": (nnx_cnn, (images,)),
        "linen_cnn": (linen.bind(variables), (images,)),
        "equinox_mlp": (mlp, (jax.ShapeDtypeStruct((784,), jnp.float32),)),
    }


def main(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    written = []
    for name, (model, inputs) in models().items():
        lines: list[str] = []
        print_summary(model, inputs=inputs, print_fn=lines.append)
        print("\n".join(lines))
        written.append(os.path.join(folder, f"{name}.txt"))
        with open(written[-1], "w") as f:
            f.write("\n".join(lines) + "\n")
        if shutil.which("dot"):
            written.append(os.path.join(folder, f"{name}.png"))
            plot_model(model, inputs=inputs, to_file=written[-1], show_shapes=True)
    if not shutil.which("dot"):
        print("Graphviz's `dot` is not installed: wrote the summaries only.")
    print("wrote:", ", ".join(written))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model_summaries_output")
