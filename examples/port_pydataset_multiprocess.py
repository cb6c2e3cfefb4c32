"""A Keras ``PyDataset`` with process workers, ported: the same class, iterated in your loop.

Keras: ``class Augmented(keras.utils.PyDataset)`` with ``workers=4, use_multiprocessing=True``
and ``model.fit(Augmented(...))``. The subclass is unchanged on ``jkutils.PyDataset``; the loop
iterates it, one epoch per ``for``. Workers are spawned processes (forking a process that runs
JAX can deadlock), so the script keeps its work under ``if __name__ == "__main__":``.

Run: ``python examples/port_pydataset_multiprocess.py``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import jkutils  # noqa: E402


class Augmented(jkutils.PyDataset):
    """Batches cut and augmented in ``__getitem__``, as in the Keras code."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        noise = np.random.default_rng(index).normal(0, 0.01, self.x[rows].shape)
        return self.x[rows] + noise.astype(np.float32), self.y[rows]


def main() -> int:
    x = np.arange(1000 * 4, dtype=np.float32).reshape(1000, 4)
    y = np.arange(1000)
    ds = Augmented(x, y, batch_size=64, workers=2, use_multiprocessing=True)
    for epoch in range(2):
        seen = []
        for _xb, yb in jkutils.track(ds, verbose=0):  # batches 0, 1, 2, ... in order
            seen.extend(yb.tolist())
        assert seen == list(range(1000)), "every row once, in order"
        print(f"epoch {epoch}: {len(seen)} rows in {len(ds)} batches from 2 worker processes")
    return len(seen)


if __name__ == "__main__":  # required: the workers are spawned and import this file
    main()
