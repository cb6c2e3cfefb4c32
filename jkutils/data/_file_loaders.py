"""How each kind of file becomes an element: the loaders of the directory datasets.

A loader is a small picklable object (its settings only), so worker processes can run it. This
module imports neither JAX nor grain: a worker process that decodes files imports only NumPy,
Pillow (for images) and the standard library, which keeps its start-up short.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from typing import Any

import numpy as np

from jkutils import image as _image

__all__ = ["AudioLoader", "FileLoader", "ImageLoader", "TextLoader", "read_wav"]


class FileLoader:
    """What a :class:`DirectoryDataset` reads its files with (picklable, so that grain worker
    processes can run it): ``load(path)`` gives one element and ``load_batch(paths)`` a batch,
    by default ``stack`` of the loaded elements (a loader may fill its batch directly instead).

    ``cpu_bound`` loaders (image decoding) read each batch holding one of the process's CPU
    slots (:mod:`jkutils.data._cpu_slots`); the others (text, audio: mostly waiting on files)
    read with as many threads as grain runs.
    """

    cpu_bound = False

    def load(self, path: str) -> Any:
        raise NotImplementedError

    def stack(self, items: list[Any]) -> Any:
        raise NotImplementedError  # needed only by the default load_batch

    def load_batch(self, paths: Sequence[str] | np.ndarray) -> Any:
        """The batch of the files at ``paths``."""
        return self.stack([self.load(path) for path in paths])


def _in_range(array: np.ndarray, dtype: np.dtype, path: str) -> None:
    """Raise when decoded pixel values do not fit an integer ``dtype`` (16-bit PNGs in uint8)."""
    if np.issubdtype(dtype, np.floating) or array.size == 0 or np.can_cast(array.dtype, dtype):
        return
    info = np.iinfo(dtype)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        raise ValueError(
            f"The image file {path!r} holds values in [{low}, {high}], which do not fit "
            f"dtype={dtype.name}; pass dtype='float32' (Keras's values) or a wider integer dtype"
        )


class ImageLoader(FileLoader):
    """Reads image files into arrays of the loader's size, channels and dtype (picklable, so
    grain worker processes can run it). A batch is filled in place, image by image."""

    cpu_bound = True

    def __init__(
        self,
        image_size: tuple[int, int],
        color_mode: str,
        interpolation: str,
        crop_to_aspect_ratio: bool,
        pad_to_aspect_ratio: bool,
        data_format: str,
        dtype: np.dtype,
        jpeg_draft: bool,
    ):
        self.image_size = image_size
        self.color_mode = color_mode
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.data_format = data_format
        self.dtype = dtype
        self.jpeg_draft = jpeg_draft

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape: ``(height, width, channels)``, or channels first."""
        channels = _image.channel_count(self.color_mode)
        if self.data_format == "channels_first":
            return (channels, *self.image_size)
        return (*self.image_size, channels)

    def decoded(self, path: str) -> np.ndarray:
        """The file's pixels as ``(height, width, channels)``, in Keras's colour conversion
        (8-bit images in a per-thread buffer that the thread's next ``decoded`` overwrites).

        Raises:
            ValueError: the file is not a readable image (truncated, corrupt, another format),
                naming the file.
        """
        Image = _image.pil_image()
        try:
            with Image.open(path) as img:
                if self.jpeg_draft and img.format == "JPEG":
                    img.draft(img.mode, (self.image_size[1], self.image_size[0]))
                array = _image.scratch_pixels(_image.converted(img, self.color_mode))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"Cannot read the image file {path!r}: {exc}") from exc
        return array[..., None] if array.ndim == 2 else array

    def load_into(self, path: str, out: np.ndarray) -> None:
        """Decode, resize and convert the file at ``path`` into ``out`` (of :attr:`shape`)."""
        array = self.decoded(path)
        _in_range(array, self.dtype, path)
        if self.data_format == "channels_first":
            array = array.transpose(2, 0, 1)
        resized = _image.scratch_resize(
            array,
            self.image_size,
            self.interpolation,
            self.crop_to_aspect_ratio,
            self.pad_to_aspect_ratio,
            self.data_format,
        )
        _image.store_resized(resized, out)

    def load(self, path: str) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        self.load_into(path, out)
        return out

    def load_batch(self, paths: Sequence[str] | np.ndarray) -> np.ndarray:
        batch = np.empty((len(paths), *self.shape), self.dtype)
        for path, out in zip(paths, batch):
            self.load_into(path, out)
        return batch


class TextLoader(FileLoader):
    """Reads one ``.txt`` file as UTF-8 text, cut to ``max_length`` characters."""

    def __init__(self, max_length: int | None):
        self.max_length = max_length

    def load(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read() if self.max_length is None else f.read(self.max_length)
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"Cannot read the text file {path!r} as UTF-8: {exc}") from exc

    def stack(self, items: list[str]) -> np.ndarray:
        batch = np.empty(len(items), dtype=object)
        batch[:] = items
        return batch


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
