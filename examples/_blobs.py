"""The toy data the training examples share: Gaussian blobs, one per class."""

from __future__ import annotations

import jax
import numpy as np

FEATURES, CLASSES, BATCH = 16, 4, 64


def blobs(key: jax.Array, rows: int = 4000) -> dict:
    """``{"x": features, "y": labels}``: ``rows`` points around one random centre per class."""
    k_means, k_labels, k_noise = jax.random.split(key, 3)
    means = 2.0 * jax.random.normal(k_means, (CLASSES, FEATURES))
    labels = jax.random.randint(k_labels, (rows,), 0, CLASSES)
    x = means[labels] + jax.random.normal(k_noise, (rows, FEATURES))
    return {"x": np.asarray(x, np.float32), "y": np.asarray(labels, np.int32)}
