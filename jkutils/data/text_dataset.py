"""``text_dataset_from_directory``: Keras 3's text folder loader as a grain dataset whose
batches are NumPy object arrays of Python strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jkutils.data import _rows
from jkutils.data._file_loaders import TextLoader
from jkutils.data.directory import DirectoryDataset, check_format, from_directory

__all__ = ["text_dataset_from_directory"]


def text_dataset_from_directory(
    directory: Any,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    batch_size: int | None = 32,
    max_length: int | None = None,
    shuffle: bool = True,
    key: jax.Array | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    follow_links: bool = False,
    verbose: bool = True,
    *,
    seed: int | None = None,
    format: str = "grain",
) -> DirectoryDataset | tuple[DirectoryDataset, DirectoryDataset]:
    """A grain dataset of text batches from a folder of class sub-folders of ``.txt`` files.

    The arguments and the listing, labels and split are those of
    :func:`~jkutils.data.image_dataset.image_dataset_from_directory`; files are read as UTF-8.

    Args:
        directory: the folder.
        labels: ``"inferred"``, ``None`` or one int per file (sorted file paths).
        label_mode: ``"int"``, ``"categorical"``, ``"binary"`` or ``None``.
        class_names: with inferred labels, the sub-folders to use, in label order.
        batch_size: texts per batch, or ``None`` for single texts.
        max_length: keep at most this many characters of each file (Keras's grain path counts
            characters; its TensorFlow path counts bytes).
        shuffle: order the files at random.
        key: a JAX key for the order and the validation files.
        validation_split: fraction of files for validation.
        subset: ``"training"``, ``"validation"`` or ``"both"``.
        follow_links: also walk sub-folders that are symlinks.
        verbose: print how many files and classes were found.
        seed: Keras's integer seed instead of ``key`` (Keras's order and split).
        format: only ``"grain"``.

    Returns:
        A :class:`~jkutils.data.directory.DirectoryDataset` yielding ``(texts, labels)`` or
        ``texts``, where ``texts`` is a 1-D object array of ``str`` (a ``str`` when unbatched).

    Example:
        >>> train = text_dataset_from_directory(  # doctest: +SKIP
        ...     "aclImdb/train", batch_size=32, key=jax.random.key(0))
        >>> texts, labels = train[0]  # doctest: +SKIP
    """
    check_format(format)
    if max_length is not None and _rows.checked_int(max_length, "max_length") < 0:
        raise ValueError(f"`max_length` must be >= 0 or None. Received: max_length={max_length}")
    return from_directory(
        directory,
        kind="text",
        formats=(".txt",),
        loader=TextLoader(max_length),
        labels=labels,
        label_mode=label_mode,
        class_names=class_names,
        batch_size=batch_size,
        shuffle=shuffle,
        key=key,
        seed=seed,
        validation_split=validation_split,
        subset=subset,
        follow_links=follow_links,
        verbose=verbose,
    )
