"""to_categorical and normalize: jkutils vs Keras vs the raw NumPy write, from one run.

Run: ``python benchmarks/bench_numerical.py [--quick]``
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
from jkutils.numerical import normalize, to_categorical  # noqa: E402


def _keras_utils():
    try:
        import keras

        return keras.utils
    except Exception:  # Keras is optional for the benchmark
        return None


def _raw_one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The physical limit: allocate zeros and scatter the ones, nothing else."""
    out = np.zeros((labels.size, num_classes), np.float32)
    out[np.arange(labels.size), labels] = 1
    return out


def _one_hot_rows(n: int, num_classes: int, repeat: int) -> list[Row]:
    labels = np.random.default_rng(0).integers(0, num_classes, n)
    measure = f"to_categorical numpy {n // 1000}k x {num_classes}"
    ours = best_of(lambda: to_categorical(labels, num_classes), repeat)
    limit = best_of(lambda: _raw_one_hot(labels, num_classes), repeat)
    k = _keras_utils()
    ref = best_of(lambda: k.to_categorical(labels, num_classes), repeat) if k else None
    rows = [Row("numerical", measure, ours, "keras", ref, "zeros+scatter", limit,
                target="<= 1.30x limit")]
    jlabels = jnp.asarray(labels)
    one_hot = jax.jit(lambda y: jax.nn.one_hot(y, num_classes))
    ours_jax = best_of(lambda: to_categorical(jlabels, num_classes).block_until_ready(), repeat)
    peer = best_of(lambda: one_hot(jlabels).block_until_ready(), repeat)
    rows.append(Row("numerical", f"to_categorical jax.Array {n // 1000}k x {num_classes}",
                    ours_jax, "jit(jax.nn.one_hot)", peer, "zeros+scatter", limit))
    return rows


def _raw_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]


def _normalize_rows(n: int, dim: int, repeat: int) -> list[Row]:
    x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    measure = f"normalize numpy {n // 1000}k x {dim} f32"
    ours = best_of(lambda: normalize(x), repeat)
    limit = best_of(lambda: _raw_normalize(x), repeat)
    k = _keras_utils()
    ref = best_of(lambda: k.normalize(x), repeat) if k else None
    rows = [Row("numerical", measure, ours, "keras", ref, "einsum norm + divide", limit)]
    xj = jnp.asarray(x)
    fn = jax.jit(normalize)
    fn(xj).block_until_ready()
    ours_jit = best_of(lambda: fn(xj).block_until_ready(), repeat)
    ref_jax = best_of(lambda: k.normalize(xj).block_until_ready(), repeat) if k else None
    rows.append(Row("numerical", f"normalize jit jax.Array {n // 1000}k x {dim}", ours_jit,
                    "keras (jax tensor)", ref_jax, "einsum norm + divide", limit))
    return rows


def rows(quick: bool = False) -> list[Row]:
    """Rows for the numerical helpers; ``quick`` shrinks the inputs for a smoke run."""
    repeat = 2 if quick else 5
    one_hot = (50_000, 1000) if quick else (500_000, 1000)
    norm = (100_000, 64) if quick else (1_000_000, 64)
    return _one_hot_rows(*one_hot, repeat) + _normalize_rows(*norm, repeat)


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
