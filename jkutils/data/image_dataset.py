"""``image_dataset_from_directory``: Keras 3's image folder loader, as a grain dataset of
``uint8`` batches (or any dtype you ask for) decoded by Pillow and resized in NumPy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jkutils import image as _image
from jkutils.data._file_loaders import ImageLoader
from jkutils.data.directory import DirectoryDataset, check_format, from_directory

__all__ = ["image_dataset_from_directory", "ALLOWLIST_FORMATS"]

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def _checked_dtype(dtype: Any) -> np.dtype:
    try:
        result = np.dtype(dtype)
    except TypeError:
        result = None
    if result is None or not (
        np.issubdtype(result, np.floating) or np.issubdtype(result, np.integer)
    ):
        raise TypeError(
            f"`dtype` must be a NumPy integer or float dtype such as 'uint8' or 'float32'. "
            f"Received: dtype={dtype!r}"
        )
    return result


def image_dataset_from_directory(
    directory: Any,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: int | Sequence[int] = (256, 256),
    shuffle: bool = True,
    key: jax.Array | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: str | None = None,
    verbose: bool = True,
    *,
    dtype: Any = "uint8",
    jpeg_draft: bool = False,
    seed: int | None = None,
    format: str = "grain",
) -> DirectoryDataset | tuple[DirectoryDataset, DirectoryDataset]:
    """A grain dataset of image batches from a folder of class sub-folders, as in Keras 3.

    ``main/class_a/*.jpg`` and ``main/class_b/*.jpg`` give labels 0 and 1. Files ending in
    ``.bmp``, ``.gif`` (first frame), ``.jpeg``, ``.jpg`` or ``.png`` (any case) are read.

    Args:
        directory: the folder.
        labels: ``"inferred"`` (from sub-folder names), ``None``, or one int per file in the
            order of the sorted file paths.
        label_mode: ``"int"`` (int32), ``"categorical"`` (one-hot float32), ``"binary"``
            (float32 of shape ``(batch, 1)``, two classes) or ``None`` (images only).
        class_names: with inferred labels, the sub-folders to use, in label order.
        color_mode: ``"grayscale"``, ``"rgb"`` or ``"rgba"`` (1, 3 or 4 channels).
        batch_size: images per batch, or ``None`` for single images.
        image_size: ``(height, width)`` (an int for a square) every image is resized to.
        shuffle: order the files at random; ``False`` keeps the sorted order.
        key: a JAX key deciding the order and the validation files (the same key gives the same
            split in every process). Without it, a shuffled dataset draws a fresh order.
        validation_split: fraction of files for validation (the last ``int(split * n)`` of the
            ordered files).
        subset: ``"training"``, ``"validation"`` or ``"both"`` (returns both).
        interpolation: ``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``,
            ``"lanczos3"`` or ``"lanczos5"``.
        follow_links: also walk sub-folders that are symlinks.
        crop_to_aspect_ratio: resize the largest centred window with the target aspect ratio.
        pad_to_aspect_ratio: pad with zeros to the target aspect ratio before resizing.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        verbose: print how many files and classes were found.
        dtype: the images' dtype: ``"uint8"`` by default (values rounded to the nearest);
            ``"float32"`` gives Keras's values.
        jpeg_draft: let JPEG files decode at a reduced scale (1/2, 1/4 or 1/8, never below
            ``image_size``) before resizing: faster, with slightly different pixels.
        seed: Keras's integer seed instead of ``key``: the same file order and validation files
            as Keras 3 with that seed.
        format: only ``"grain"`` (the result is always a grain dataset).

    Returns:
        A :class:`~jkutils.data.directory.DirectoryDataset` (a ``grain.MapDataset``) yielding
        ``(images, labels)`` or ``images`` as NumPy arrays, with ``class_names`` and
        ``file_paths``; for ``subset="both"`` a ``(training, validation)`` tuple.

    Raises:
        ValueError: bad arguments, a missing folder, no files, labels that do not match the
            files, a split leaving a side empty; while iterating, a file that is not a readable
            image (the message names it).
        ImportError: Pillow is not installed.

    Example:
        >>> train, val = image_dataset_from_directory(  # doctest: +SKIP
        ...     "photos", validation_split=0.2, subset="both", key=jax.random.key(1337),
        ...     image_size=(180, 180), batch_size=32)
        >>> images, labels = train[0]  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((32, 180, 180, 3), dtype('uint8'))
    """
    _image.pil_image()
    check_format(format)
    _image.channel_count(color_mode)
    loader = ImageLoader(
        _image.checked_size(image_size, "image_size"),
        color_mode,
        _image.checked_interpolation(interpolation),
        bool(crop_to_aspect_ratio),
        bool(pad_to_aspect_ratio),
        _image.checked_data_format(data_format),
        _checked_dtype(dtype),
        bool(jpeg_draft),
    )
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be True.")
    return from_directory(
        directory,
        kind="image",
        formats=ALLOWLIST_FORMATS,
        loader=loader,
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
