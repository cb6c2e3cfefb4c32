"""What the directory loaders share: listing files and labels as Keras does, the validation
split, key-driven (or Keras-seed-driven) orders, and the grain dataset of batches.

The listing follows ``keras.utils``' ``index_directory``: class folders are the non-hidden
sub-folders in sorted order (or ``class_names`` in the order given), each walked with
``os.walk`` (symlinked sub-folders only with ``follow_links``), roots and file names sorted,
extensions matched case-insensitively. Files are then ordered (or not), the last
``int(validation_split * n)`` are the validation files, and each part becomes a
:class:`DirectoryDataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import grain
import jax
import numpy as np

from jkutils.data import _rows
from jkutils.data._file_batches import FileBatches, element_count, element_rows, read_element
from jkutils.data._file_loaders import FileLoader
from jkutils.data._grain import prepare_for_grain
from jkutils.data.worker_dataset import WorkerDataset

__all__ = ["DirectoryDataset", "FileLoader", "FileOrder", "from_directory"]

_LABEL_MODES = ("int", "categorical", "binary", None)
_SUBSETS = ("training", "validation", "both", None)


# -- listing ----------------------------------------------------------------------------------


def class_folders(directory: str, class_names: Sequence[str] | None) -> list[str]:
    """The class sub-folders of ``directory``: non-hidden, sorted, or ``class_names`` as given.

    Raises:
        ValueError: ``class_names`` names a folder that is not there.
    """
    found = [
        name
        for name in sorted(os.listdir(directory))
        if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")
    ]
    if class_names is None:
        return found
    if not set(class_names).issubset(found):
        raise ValueError(
            "The `class_names` passed did not match the names of the subdirectories of the "
            f"target directory. Expected: {found} (or a subset of it), but received: "
            f"class_names={list(class_names)}"
        )
    return list(class_names)


def files_in(folder: str, formats: tuple[str, ...], follow_links: bool) -> list[str]:
    """Files under ``folder`` whose names end with one of ``formats`` (any case), as paths
    relative to ``folder``, in Keras's order (walk roots sorted, then names sorted)."""
    walk = sorted(os.walk(folder, followlinks=follow_links), key=lambda entry: entry[0])
    return [
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in walk
        for name in sorted(names)
        if name.lower().endswith(formats)
    ]


def checked_labels(labels: Any, class_names: Any) -> Any:
    """``labels`` checked as Keras checks it: ``"inferred"``, ``None`` or a sequence of ints."""
    if isinstance(labels, str) and labels == "inferred" or labels is None:
        if labels is None and class_names is not None:
            raise ValueError(
                "When `labels=None` (no labels), argument `class_names` cannot be specified."
            )
        return labels
    if not isinstance(labels, list | tuple | np.ndarray):
        raise ValueError(
            "`labels` argument should be a list/tuple of integer labels, of the same size as "
            "the number of files in the target directory. If you wish to infer the labels "
            'from the subdirectory names in the target directory, pass `labels="inferred"`. '
            "If you wish to get a dataset that only contains the files (no labels), pass "
            f"`labels=None`. Received: labels={labels!r}"
        )
    if class_names:
        raise ValueError(
            'You can only pass `class_names` if `labels="inferred"`. Received: '
            f"labels={labels!r}, and class_names={class_names!r}"
        )
    values = np.asarray(labels)
    if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
        raise ValueError(
            f"`labels` must be a flat list of integers, one per file. Received: labels={labels!r}"
        )
    return values.astype(np.int32)


def index_directory(
    directory: str,
    labels: Any,
    formats: tuple[str, ...],
    class_names: Sequence[str] | None,
    follow_links: bool,
) -> tuple[list[str], np.ndarray | None, list[str] | None]:
    """``(file_paths, labels, class_names)`` in Keras's unshuffled order.

    Raises:
        ValueError: ``class_names`` not matching the sub-folders, or ``labels`` not matching
            the number of files.
    """
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` must be an existing folder. Received: {directory!r}")
    inferred = isinstance(labels, str)
    folders = class_folders(directory, class_names) if inferred else [""]
    paths: list[str] = []
    label_parts = []
    for index, folder in enumerate(folders):
        names = files_in(os.path.join(directory, folder), formats, follow_links)
        paths += [os.path.join(directory, folder, name) for name in names]
        label_parts.append(np.full(len(names), index, np.int32))
    if inferred:
        return paths, np.concatenate(label_parts or [np.zeros(0, np.int32)]), folders
    if labels is None:
        return paths, None, None
    if len(labels) != len(paths):
        raise ValueError(
            "Expected the lengths of `labels` to match the number of files in the target "
            f"directory. len(labels) is {len(labels)} while we found {len(paths)} files in "
            f"directory {directory}."
        )
    return paths, labels, [str(label) for label in sorted(set(labels.tolist()))]


# -- labels -----------------------------------------------------------------------------------


def checked_label_mode(label_mode: Any) -> Any:
    if label_mode not in _LABEL_MODES:
        raise ValueError(
            '`label_mode` argument must be one of "int", "categorical", "binary", or None. '
            f"Received: label_mode={label_mode!r}"
        )
    return label_mode


def check_label_values(labels: np.ndarray, label_mode: str, class_names: list[str]) -> None:
    """Raise when a label cannot be encoded in ``label_mode`` (Keras would silently give an
    all-zero one-hot row or a binary label of 2.0)."""
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(
            'When passing `label_mode="binary"`, there must be exactly 2 class_names. '
            f"Received: class_names={class_names}"
        )
    limit = {"binary": 2, "categorical": len(class_names)}.get(label_mode)
    if limit is not None and labels.size and (labels.min() < 0 or labels.max() >= limit):
        bad = int(labels.min() if labels.min() < 0 else labels.max())
        raise ValueError(
            f'With label_mode="{label_mode}" every label must be in [0, {limit}); '
            f"received the label {bad}"
        )


def encoded_labels(labels: np.ndarray, label_mode: str, num_classes: int) -> np.ndarray:
    """Labels as Keras encodes them: int32; one-hot float32; or float32 of shape ``(n, 1)``."""
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    if label_mode == "binary":
        return labels.astype(np.float32)[..., None]
    return labels.astype(np.int32)


def check_format(format: Any) -> None:
    """Accept Keras's ``format="grain"``; the results are always grain datasets."""
    if format != "grain":
        raise ValueError(
            f'`format` can only be "grain" (the result is a grain dataset). Received: {format!r}'
        )


# -- split and order --------------------------------------------------------------------------


def check_split(validation_split: Any, subset: Any) -> None:
    """Keras's checks of ``validation_split`` and ``subset``."""
    if validation_split is not None and (
        isinstance(validation_split, bool) or not isinstance(validation_split, float | int)
    ):
        raise ValueError(
            f"`validation_split` must be a float between 0 and 1. "
            f"Received: validation_split={validation_split!r}"
        )
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(
            f"`validation_split` must be between 0 and 1, received: {validation_split}"
        )
    if subset not in _SUBSETS:
        raise ValueError(
            f'`subset` must be either "training", "validation" or "both", received: {subset!r}'
        )
    if bool(validation_split) != bool(subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")


def validation_count(validation_split: float, length: int) -> int:
    """Files kept for validation: ``int(validation_split * length)``, as in Keras.

    Raises:
        ValueError: that leaves one side empty (Keras 3.15 then fails with a misleading
            "No training images found").
    """
    count = int(validation_split * length)
    if count == 0:
        raise ValueError(
            f"validation_split={validation_split} of {length} files gives no validation files "
            f"(int({validation_split} * {length}) == 0); use a larger split or more files"
        )
    return count


class FileOrder:
    """The file orders of one loader call, from a JAX key or from a Keras integer seed.

    ``listing(n)`` orders all files before the split (so the key decides which files are
    validation files); ``epoch(n, e)`` orders the training files in epoch ``e``. With a key
    both are NumPy permutations seeded from 128 bits of the key; with a Keras ``seed`` they are
    Keras's: ``np.random.RandomState(seed)`` for the listing and grain's ``shuffle(seed)`` for
    the epochs. Instances hold plain NumPy data, so worker processes need no JAX.
    """

    def __init__(self, bits: np.ndarray | None = None, keras_seed: int | None = None):
        self._words: list[int] = [] if bits is None else [int(word) for word in bits]
        self._keras_seed = keras_seed

    @classmethod
    def from_key(cls, key: jax.Array) -> FileOrder:
        return cls(bits=_rows.key_bits(key))

    @classmethod
    def fresh(cls) -> FileOrder:
        """An order from fresh operating-system entropy (no key given, as Keras's random seed)."""
        return cls(bits=np.random.SeedSequence().generate_state(4))

    def listing(self, length: int) -> np.ndarray:
        if self._keras_seed is not None:
            return np.random.RandomState(self._keras_seed).permutation(length)
        return np.random.default_rng([*self._words, 0]).permutation(length)

    def epoch(self, length: int, epoch: int) -> np.ndarray:
        if self._keras_seed is not None:
            shuffled = grain.MapDataset.range(length).shuffle(seed=self._keras_seed)
            return np.fromiter((shuffled[epoch * length + i] for i in range(length)), np.int64)
        return np.random.default_rng([*self._words, 1, epoch]).permutation(length)


def file_order(shuffle: Any, key: Any, seed: Any, validation_split: Any) -> FileOrder | None:
    """The :class:`FileOrder` for the arguments, or None without shuffling.

    Raises:
        TypeError: ``shuffle`` is not a bool, ``seed`` not an int, or ``key`` not a PRNG key.
        ValueError: both ``key`` and ``seed``, or a shuffled split with neither.
    """
    if not isinstance(shuffle, bool | np.bool_):
        raise TypeError(f"`shuffle` must be a bool. Received: shuffle={shuffle!r}")
    if key is not None and seed is not None:
        raise ValueError("Pass either `key` (a JAX key) or Keras's `seed`, not both")
    if seed is not None:
        seed = _rows.checked_int(seed, "seed")
        if not 0 <= seed < 2**32:
            raise ValueError(f"`seed` must be in [0, 2**32). Received: seed={seed}")
    if not shuffle:
        return None
    if key is not None:
        return FileOrder.from_key(key)
    if seed is not None:
        return FileOrder(keras_seed=seed)
    if validation_split:
        raise ValueError(
            "If using `validation_split` and shuffling the data, you must provide a `key` "
            "argument (a JAX key such as jax.random.key(1337)), to make sure that there is no "
            "overlap between the training and validation subset."
        )
    return FileOrder.fresh()


# -- the dataset ------------------------------------------------------------------------------


class DirectoryDataset(grain.MapDataset):
    """A ``grain.MapDataset`` of batches (or single elements) read from files.

    Element ``i`` of epoch 0 is batch ``i``; indices past the end belong to later epochs, so
    ``ds.repeat(n)`` gives a fresh order every epoch when the dataset shuffles, and
    ``ds.for_epoch(e)`` is epoch ``e`` on its own. ``class_names`` and ``file_paths`` (the
    files in the order this dataset yields them) are attached as in Keras.
    ``ds.with_workers(n)`` reads an epoch in ``n`` worker processes that are kept for the next.
    """

    def __init__(
        self,
        paths: list[str],
        labels: np.ndarray | None,
        loader: FileLoader,
        batch_size: int | None,
        order: FileOrder | None,
        class_names: list[str] | None,
        epoch_offset: int = 0,
        elements: range | None = None,
    ):
        super().__init__()
        prepare_for_grain()
        self._paths = np.asarray(paths, dtype=object)
        self._labels = labels
        self._loader = loader
        self._batch_size = batch_size
        self._order = order
        self._epoch_offset = epoch_offset
        whole = range(element_count(len(self._paths), batch_size))
        self._elements = whole if elements is None else elements  # of each epoch, in order
        self._cached: tuple[int, np.ndarray] | None = None
        self.class_names = class_names

    def __len__(self) -> int:
        return len(self._elements)

    def __str__(self) -> str:
        return (
            f"DirectoryDataset(files={len(self._paths)}, batch_size={self._batch_size}, "
            f"elements={len(self)}, shuffled={self._order is not None})"
        )

    def _rows_of_epoch(self, epoch: int) -> np.ndarray:
        if self._order is None:
            return np.arange(len(self._paths))
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self._order.epoch(len(self._paths), epoch))
        return self._cached[1]

    def _rows_of_elements(self, rows: np.ndarray) -> np.ndarray:
        """The rows of this dataset's elements, in order, from an epoch's ``rows``."""
        if self._elements.step == 1:  # one run of elements: one run of rows
            start = element_rows(self._elements.start, self._batch_size).start
            stop = element_rows(self._elements.stop, self._batch_size).start
            return rows[start:stop]
        return np.concatenate(
            [rows[:0]] + [rows[element_rows(e, self._batch_size)] for e in self._elements]
        )

    @property
    def file_paths(self) -> list[str]:
        """The files in the order this dataset yields them (its first epoch)."""
        rows = self._rows_of_elements(self._rows_of_epoch(self._epoch_offset))
        return self._paths[rows].tolist()

    def _with(self, epoch_offset: int, elements: range) -> DirectoryDataset:
        return DirectoryDataset(
            self._paths.tolist(),
            self._labels,
            self._loader,
            self._batch_size,
            self._order,
            self.class_names,
            epoch_offset,
            elements,
        )

    def slice(self, sl: slice) -> DirectoryDataset:
        """Elements ``sl`` of every epoch (grain's slice: element ``i`` of epoch ``e`` is
        element ``sl.start + i * sl.step`` of this dataset's epoch ``e``), still a
        ``DirectoryDataset``, so ``process_shard`` and ``ds[a:b]`` keep ``with_workers``,
        ``for_epoch`` and ``file_paths``.

        Example:
            >>> shard = train.slice(slice(0, 10))  # doctest: +SKIP
        """
        if not isinstance(sl, slice):
            raise ValueError(f"`sl` must be a slice. Received: sl={sl!r}")
        return self._with(self._epoch_offset, self._elements[sl])

    def for_epoch(self, epoch: int) -> DirectoryDataset:
        """The same files in the order of epoch ``epoch`` (epoch 0 is this dataset's order).

        Example:
            >>> for epoch in range(3):  # doctest: +SKIP
            ...     for images, labels in train.for_epoch(epoch):
            ...         ...
        """
        epoch = _rows.checked_int(epoch, "epoch")
        if epoch < 0:
            raise ValueError(f"`epoch` must be >= 0. Received: epoch={epoch}")
        return self._with(self._epoch_offset + epoch, self._elements)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        index = _rows.checked_int(index, "index")
        if index < 0:
            raise IndexError(f"index {index} is negative; indices past the end are later epochs")
        if not self._elements:
            raise IndexError(f"index {index} of an empty dataset")
        epoch, position = divmod(index, len(self))
        rows = self._rows_of_epoch(self._epoch_offset + epoch)
        chosen = rows[element_rows(self._elements[position], self._batch_size)]
        return self._element(chosen, batched=self._batch_size is not None)

    def _element(self, rows: np.ndarray, batched: bool) -> Any:
        labels = None if self._labels is None else self._labels[rows]
        return read_element(self._paths[rows], labels, self._loader, batched)

    def with_workers(
        self, num_workers: int | None = None, per_worker_buffer_size: int = 2
    ) -> WorkerDataset:
        """This dataset's first epoch as a ``grain.IterDataset`` read by ``num_workers`` worker
        processes that import neither JAX nor grain, nor your script (see
        :class:`~jkutils.data.worker_dataset.WorkerDataset`): the same elements in the same
        order as iterating this dataset, without grain's start-up of about a second per
        epoch. The processes are kept between iterators, so a loop over epochs starts them
        once.

        Args:
            num_workers: worker processes (default: the usable CPUs, at most 16).
            per_worker_buffer_size: elements asked of each worker ahead of the consumer.

        Example:
            >>> for epoch in range(3):  # doctest: +SKIP
            ...     for images, labels in train.for_epoch(epoch).with_workers(4):
            ...         ...
        """
        rows, elements = self._rows_of_epoch(self._epoch_offset), self._elements
        if elements.step > 0:  # only the chosen files travel (a shard's, not the epoch's)
            rows, elements = self._rows_of_elements(rows), None
        labels = None if self._labels is None else self._labels[rows]
        batches = FileBatches(self._paths[rows], labels, self._loader, self._batch_size, elements)
        return WorkerDataset(batches, num_workers, per_worker_buffer_size)


def _labels_for(
    labels: np.ndarray | None, label_mode: str | None, class_names: list[str] | None
) -> np.ndarray | None:
    if label_mode is None or labels is None or class_names is None:
        return None
    return encoded_labels(labels, label_mode, len(class_names))


def from_directory(
    directory: Any,
    *,
    kind: str,
    formats: tuple[str, ...],
    loader: FileLoader,
    labels: Any,
    label_mode: Any,
    class_names: Any,
    batch_size: Any,
    shuffle: Any,
    key: Any,
    seed: Any,
    validation_split: Any,
    subset: Any,
    follow_links: bool,
    verbose: bool,
    print_fn: Callable[[str], None] = print,
) -> Any:
    """The dataset (or ``(training, validation)`` for ``subset="both"``) of files in
    ``directory``; the shared body of the three ``*_dataset_from_directory`` functions."""
    labels = checked_labels(labels, class_names)
    label_mode = checked_label_mode(label_mode)
    if labels is None or label_mode is None:
        labels, label_mode = checked_labels(None, class_names), None
    check_split(validation_split, subset)
    if batch_size is not None and (_rows.checked_int(batch_size, "batch_size") < 1):
        raise ValueError(f"`batch_size` must be a positive int or None. Received: {batch_size}")
    order = file_order(shuffle, key, seed, validation_split)
    directory = os.fspath(directory)
    paths, label_ids, class_names = index_directory(
        directory, labels, formats, class_names, follow_links
    )
    if label_mode is not None and label_ids is not None and class_names is not None:
        check_label_values(label_ids, label_mode, class_names)
    if verbose:
        found = f"Found {len(paths)} files"
        print_fn(
            f"{found}." if labels is None else f"{found} belonging to {len(class_names)} classes."
        )
    if order is not None:
        listing = order.listing(len(paths))
        paths = [paths[i] for i in listing]
        label_ids = None if label_ids is None else label_ids[listing]
    encoded = _labels_for(label_ids, label_mode, class_names)
    allowed = f"Allowed formats: {formats}"

    def part(rows: slice, name: str, shuffled: bool) -> DirectoryDataset:
        chosen = paths[rows]
        if not chosen:
            raise ValueError(f"No {name}{kind} files found in directory {directory}. {allowed}")
        if verbose and name:
            print_fn(f"Using {len(chosen)} files for {name.strip()}.")
        return DirectoryDataset(
            chosen,
            None if encoded is None else encoded[rows],
            loader,
            batch_size,
            order if shuffled else None,
            class_names,
        )

    if not validation_split:
        return part(slice(None), "", True)
    n_val = validation_count(validation_split, len(paths)) if paths else 0
    train_rows, val_rows = slice(0, len(paths) - n_val), slice(len(paths) - n_val, None)
    if subset == "both":
        return part(train_rows, "training ", True), part(val_rows, "validation ", False)
    if subset == "training":
        return part(train_rows, "training ", True)
    return part(val_rows, "validation ", True)
