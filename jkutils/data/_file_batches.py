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

__all__ = ["FileBatches", "element_count", "element_rows", "read_element"]


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


def element_rows(position: int, batch_size: int | None) -> slice:
    """The rows (positions in an epoch's file order) of element ``position`` of the epoch."""
    size = 1 if batch_size is None else batch_size
    return slice(position * size, (position + 1) * size)


def element_count(files: int, batch_size: int | None) -> int:
    """Elements in an epoch of ``files`` files: batches (the last one possibly short) or files."""
    return files if batch_size is None else -(-files // batch_size)


class FileBatches:
    """One epoch of a directory dataset as plain, picklable data: ``batches[i]`` is element
    ``elements[i]`` of the epoch (a batch of ``batch_size`` files, the last one possibly
    shorter, or a single file when ``batch_size`` is None).

    Args:
        paths: the files in the epoch's order.
        labels: their encoded labels, in the same order, or None.
        loader: what reads them.
        batch_size: files per element, or None for single files.
        elements: the epoch's elements to give, in order (default: all of them).

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
        elements: range | None = None,
    ):
        self.paths = paths
        self.labels = labels
        self.loader = loader
        self.batch_size = batch_size
        self.elements = (
            range(element_count(len(paths), batch_size)) if elements is None else elements
        )

    def __len__(self) -> int:
        return len(self.elements)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"element {index} of an epoch of {len(self)} elements")
        rows = element_rows(self.elements[index], self.batch_size)
        labels = None if self.labels is None else self.labels[rows]
        return read_element(self.paths[rows], labels, self.loader, self.batch_size is not None)
