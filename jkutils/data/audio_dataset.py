"""``audio_dataset_from_directory``: Keras 3's WAV folder loader as a grain dataset, decoding
with the standard library's ``wave`` module (no TensorFlow, no extra dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jkutils.data import _rows
from jkutils.data._file_loaders import AudioLoader, read_wav
from jkutils.data.directory import DirectoryDataset, from_directory

__all__ = ["audio_dataset_from_directory", "read_wav"]

ALLOWED_FORMATS = (".wav",)


def audio_dataset_from_directory(
    directory: Any,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    batch_size: int | None = 32,
    sampling_rate: int | None = None,
    output_sequence_length: int | None = None,
    ragged: bool = False,
    shuffle: bool = True,
    key: jax.Array | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    follow_links: bool = False,
    verbose: bool = True,
    *,
    seed: int | None = None,
) -> DirectoryDataset | tuple[DirectoryDataset, DirectoryDataset]:
    """A grain dataset of audio batches from a folder of class sub-folders of ``.wav`` files.

    The listing, labels and split are those of
    :func:`~jkutils.data.image_dataset.image_dataset_from_directory`. Audio is float32 of
    shape ``(batch, samples, channels)`` scaled to [-1, 1) (16-bit: ``x / 32768``, as
    TensorFlow's ``decode_wav``); PCM of 8, 16, 24 and 32 bits is read with Python's ``wave``.

    Args:
        directory: the folder.
        labels: ``"inferred"``, ``None`` or one int per file (sorted file paths).
        label_mode: ``"int"``, ``"categorical"``, ``"binary"`` or ``None``.
        class_names: with inferred labels, the sub-folders to use, in label order.
        batch_size: clips per batch, or ``None`` for single clips.
        sampling_rate: the rate every file must have; a file with another rate raises a
            ``ValueError`` naming it (Keras resamples with tensorflow-io; nothing is resampled
            here).
        output_sequence_length: cut or zero-pad every clip to this many samples; without it a
            batch is zero-padded to its longest clip.
        ragged: batches as tuples of clips of their own lengths.
        shuffle: order the files at random.
        key: a JAX key for the order and the validation files.
        validation_split: fraction of files for validation.
        subset: ``"training"``, ``"validation"`` or ``"both"``.
        follow_links: also walk sub-folders that are symlinks.
        verbose: print how many files and classes were found.
        seed: Keras's integer seed instead of ``key`` (Keras's order and split).

    Returns:
        A :class:`~jkutils.data.directory.DirectoryDataset` yielding ``(audio, labels)`` or
        ``audio``.

    Example:
        >>> train = audio_dataset_from_directory(  # doctest: +SKIP
        ...     "mini_speech_commands", output_sequence_length=16000, key=jax.random.key(0))
    """
    if ragged and output_sequence_length is not None:
        raise ValueError("Cannot set both `ragged` and `output_sequence_length`")
    for name, value in (
        ("sampling_rate", sampling_rate),
        ("output_sequence_length", output_sequence_length),
    ):
        if value is not None and _rows.checked_int(value, name) <= 0:
            raise ValueError(f"`{name}` should be higher than 0. Received: {name}={value}")
    return from_directory(
        directory,
        kind="audio",
        formats=ALLOWED_FORMATS,
        loader=AudioLoader(sampling_rate, output_sequence_length, bool(ragged)),
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
