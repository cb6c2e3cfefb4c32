"""``audio_dataset_from_directory``: Keras 3's WAV folder loader as a grain dataset, decoding
with the standard library's ``wave`` module (no TensorFlow, no extra dependency)."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jkutils.data import _rows
from jkutils.data.directory import DirectoryDataset, FileLoader, from_directory

__all__ = ["audio_dataset_from_directory", "read_wav"]

ALLOWED_FORMATS = (".wav",)


def _samples(frames: bytes, width: int) -> np.ndarray:
    """PCM bytes of ``width`` bytes per sample as float32 in [-1, 1), as
    ``tf.audio.decode_wav`` scales 16-bit audio (``x / 32768``)."""
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(frames, np.uint8).astype(np.float32) - 128) / 128
    if width == 3:  # 24-bit: little-endian triplets, sign-extended through the top byte
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2].astype(np.int8).astype(np.int32) << 16)
        return ints.astype(np.float32) / 2**23
    dtype = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(frames, dtype).astype(np.float32) / 2 ** (8 * width - 1)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """``(audio, sampling_rate)`` of a PCM WAV file; ``audio`` is float32 of shape
    ``(samples, channels)`` in [-1, 1).

    Raises:
        ValueError: the file is not a PCM WAV file (8, 16, 24 or 32 bits), naming it.

    Example:
        >>> audio, rate = read_wav("speech/yes/0.wav")  # doctest: +SKIP
    """
    try:
        with wave.open(path, "rb") as f:
            channels, width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
            frames = f.readframes(f.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"Cannot read the WAV file {path!r}: {exc}") from exc
    if width not in (1, 2, 3, 4) or len(frames) % (width * channels):
        raise ValueError(
            f"Cannot read the WAV file {path!r}: {width}-byte samples in {len(frames)} bytes"
        )
    return _samples(frames, width).reshape(-1, channels), rate


def _fitted(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` cut or zero-padded to ``length`` samples."""
    out = np.zeros((length, audio.shape[1]), np.float32)
    kept = audio[:length]
    out[: len(kept)] = kept
    return out


class AudioLoader(FileLoader):
    """Reads one WAV file, checks its rate and fixes its length when asked."""

    def __init__(self, sampling_rate: int | None, output_sequence_length: int | None, ragged):
        self.sampling_rate = sampling_rate
        self.output_sequence_length = output_sequence_length
        self.ragged = ragged

    def load(self, path: str) -> np.ndarray:
        audio, rate = read_wav(path)
        if self.sampling_rate is not None and rate != self.sampling_rate:
            raise ValueError(
                f"The WAV file {path!r} is sampled at {rate} Hz, not sampling_rate="
                f"{self.sampling_rate}; resample the files first (no resampling is done here)"
            )
        if self.output_sequence_length is None:
            return audio
        return _fitted(audio, self.output_sequence_length)

    def stack(self, items: list[np.ndarray]) -> Any:
        if self.ragged:
            return tuple(items)
        longest = max(len(item) for item in items)
        return np.stack([_fitted(item, longest) for item in items])


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
