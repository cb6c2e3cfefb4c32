"""Which files make element ``i`` of a directory dataset, and reading them.

:func:`read_element` is the one place that turns paths and labels into a batch (or a single
element); :class:`FileBatches` is one epoch of a directory dataset as plain data (paths in the
epoch's order, their labels, the loader), which is what worker processes receive. Like the
loaders, this module imports neither JAX nor grain.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from jkutils.data._cpu_slots import cpu_slots
from jkutils.data._file_loaders import FileLoader

__all__ = ["FileBatches", "read_element"]


def read_element(
    paths: np.ndarray, labels: np.ndarray | None, loader: FileLoader, batched: bool
) -> Any:
    """The batch of the files at ``paths`` (or, unbatched, the element of ``paths[0]``), paired
    with ``labels`` when there are labels. CPU-bound loaders hold a CPU slot while reading.

    Example:
        >>> from jkutils.data._file_loaders import TextLoader
        >>> read_element(np.array(["a.txt"]), None, TextLoader(None), True)  # doctest: +SKIP
        array(['hello'], dtype=object)
    """
    with cpu_slots() if loader.cpu_bound else contextlib.nullcontext():
        data = loader.load_batch(paths) if batched else loader.load(paths[0])
    if labels is None:
        return data
    return data, (labels if batched else labels[0])


class FileBatches:
    """One epoch of a directory dataset as plain, picklable data: ``batches[i]`` is element
    ``i`` (a batch of ``batch_size`` files, the last one possibly shorter, or a single file
    when ``batch_size`` is None).

    Args:
        paths: the files in the epoch's order.
        labels: their encoded labels, in the same order, or None.
        loader: what reads them.
        batch_size: files per element, or None for single files.

    Example:
        >>> from jkutils.data._file_loaders import TextLoader
        >>> batches = FileBatches(np.array(["a.txt", "b.txt", "c.txt"]), None, TextLoader(None), 2)
        >>> len(batches)
        2
    """

    def __init__(
        self,
        paths: np.ndarray,
        labels: np.ndarray | None,
        loader: FileLoader,
        batch_size: int | None,
    ):
        self.paths = paths
        self.labels = labels
        self.loader = loader
        self.batch_size = batch_size

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.paths)
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"element {index} of an epoch of {len(self)} elements")
        size = 1 if self.batch_size is None else self.batch_size
        rows = slice(index * size, (index + 1) * size)
        labels = None if self.labels is None else self.labels[rows]
        return read_element(self.paths[rows], labels, self.loader, self.batch_size is not None)
