"""Porting a Keras-style PyDataset with workers into a grain pipeline.

1. A Keras-style ``PyDataset`` (batches built in ``__getitem__``, workers on the dataset) runs
   unchanged on ``jkutils.data.PyDataset``: iterate it, one epoch per ``for`` loop.
2. ``to_grain`` turns it into a ``grain.MapDataset`` of batches, so grain owns the order
   (a keyed shuffle of batches) and the parallelism (worker processes).
3. The grain-native form: the arrays behind an ``ArraySource``, split with ``split_dataset``,
   batched by index and read with one vectorised take per batch.

Run: ``python examples/pydataset_to_grain.py`` (takes a few seconds).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import grain  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jkutils.data.py_dataset import PyDataset, to_grain  # noqa: E402
from jkutils.data.sources import ArraySource  # noqa: E402
from jkutils.data.split import split_dataset  # noqa: E402
from jkutils.random import seed_from_key  # noqa: E402

BATCH = 64


def make_data(n: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x @ np.arange(1, 9, dtype=np.float32) > 0).astype(np.float32)
    return x, y


def jitter(x: np.ndarray, seed: int) -> np.ndarray:
    """The per-batch augmentation: a little deterministic noise."""
    return x + np.random.default_rng(seed).normal(0, 0.01, x.shape).astype(np.float32)


class Blobs(PyDataset):
    """What the Keras code looked like: batches cut and augmented in ``__getitem__``."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return jitter(self.x[rows], index), self.y[rows]


@jax.jit
def train_step(w, x, y):
    def loss(w):
        logits = x @ w
        return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits)

    value, grad = jax.value_and_grad(loss)(w)
    return w - 0.5 * grad, value


def train(batches, w):
    for xb, yb in batches:
        w, loss = train_step(w, xb, yb)
    return w, float(loss)


def main() -> None:
    key = jax.random.key(0)
    x, y = make_data()
    w = jnp.zeros(8)

    # 1. The Keras-style dataset, as is: two worker threads, batches in index order.
    ds = Blobs(x, y, BATCH, workers=2)
    w, loss = train(ds, w)
    print(f"1. PyDataset, 2 threads:        {len(ds)} batches, loss {loss:.4f}")

    # 2. The same dataset as a grain pipeline: keyed batch shuffle, 2 worker processes.
    pipeline = (
        to_grain(ds)
        .shuffle(seed=seed_from_key(key))
        .to_iter_dataset()
        .mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
    )
    iterator = iter(pipeline)
    batches = list(iterator)
    iterator.close()
    w, loss = train(batches, w)
    labels_seen = sorted(np.concatenate([yb for _, yb in batches]).tolist())
    assert labels_seen == sorted(y.tolist()), "every example exactly once"
    print(f"2. to_grain + mp_prefetch(2):   {len(batches)} batches, loss {loss:.4f}")

    # 3. grain-native: split the arrays, serve them from an ArraySource, batch by index.
    (x_train, y_train), (x_val, y_val) = split_dataset(
        (x, y), left_size=0.8, shuffle=True, key=key, stratify=y
    )
    source = ArraySource((x_train, y_train))
    native = (
        grain.MapDataset.range(len(source))
        .shuffle(seed=seed_from_key(jax.random.fold_in(key, 1)))
        .batch(BATCH)
        .map(source.__getitem__)  # one vectorised take per batch
        .map_with_index(lambda i, batch: (jitter(batch[0], i), batch[1]))
    )
    w, loss = train(native, w)
    accuracy = float(jnp.mean((x_val @ w > 0) == (y_val > 0.5)))
    print(f"3. ArraySource, split 80/20:    {len(native)} batches, loss {loss:.4f}, "
          f"validation accuracy {accuracy:.3f} (class share kept: "
          f"{y_train.mean():.3f} vs {y_val.mean():.3f})")  # fmt: skip


if __name__ == "__main__":  # required: grain and PyDataset worker processes use spawn
    main()
