"""Image helpers with Keras's arguments and results: ``load_img``, ``img_to_array``,
``array_to_img``, ``save_img``, ``smart_resize``, and the NumPy ``resize`` behind them.

``resize`` computes what ``keras.ops.image.resize`` computes on the JAX backend
(``jax.image.resize`` without antialiasing, half-pixel centres, the same kernels and weight
normalisation), in NumPy on the host: each output pixel reads only the few input pixels its
kernel touches, so no device or compilation is involved. Pillow is imported only when a
function that needs it is called; install it with ``pip install "jkutils[image]"``.
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jkutils import _resample
from jkutils._scratch import scratch_array

__all__ = [
    "load_img",
    "img_to_array",
    "array_to_img",
    "save_img",
    "smart_resize",
    "resize",
    "INTERPOLATIONS",
]

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")
_PIL_RESAMPLING = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
_COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
_DATA_FORMATS = ("channels_last", "channels_first")
_F32 = np.float32


def pil_image() -> Any:
    """The ``PIL.Image`` module, or an ImportError saying how to install it."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "Pillow is needed to read and write images; install it with "
            'pip install "jkutils[image]" (or pip install pillow)'
        ) from exc
    return Image


# -- argument checks --------------------------------------------------------------------------


def checked_data_format(data_format: str | None) -> str:
    """``data_format`` with ``None`` read as ``"channels_last"`` (Keras's default setting)."""
    if data_format is None:
        return "channels_last"
    if data_format not in _DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of {_DATA_FORMATS} or None. "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def channel_count(color_mode: str) -> int:
    """Channels for a Keras ``color_mode``: 1, 3 or 4."""
    if color_mode not in _COLOR_MODES:
        raise ValueError(
            '`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
            f"Received: color_mode={color_mode!r}"
        )
    return _COLOR_MODES[color_mode]


def checked_size(size: Any, argname: str) -> tuple[int, int]:
    """``size`` as ``(height, width)`` of positive ints; an int means a square."""
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, Sequence | np.ndarray)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
        or min(size) < 1
    ):
        raise ValueError(
            f"`{argname}` must be a tuple of 2 positive integers (height, width). "
            f"Received: {argname}={size!r}"
        )
    return int(size[0]), int(size[1])


def checked_interpolation(interpolation: Any) -> str:
    """``interpolation`` in lower case, one of :data:`INTERPOLATIONS`."""
    name = interpolation.lower() if isinstance(interpolation, str) else interpolation
    if name not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {INTERPOLATIONS}. "
            f"Received: interpolation={interpolation!r}"
        )
    return name


# -- crop and pad to the target aspect ratio (Keras's arithmetic) -----------------------------


def _crop_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    target_height, target_width = size
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    top = int(float(height - crop_height) / 2)
    left = int(float(width - crop_width) / 2)
    return top, left, crop_height, crop_width


def _padded(x: np.ndarray, axes: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Zeros added on both sides of one spatial axis, as Keras's JAX backend pads (the same
    amount on each side; height first)."""
    height, width = x.shape[axes[0]], x.shape[axes[1]]
    pad_height = max(height, int(float(width * size[0]) / size[1]))
    pad_width = max(width, int(float(height * size[1]) / size[0]))
    top = int(float(pad_height - height) / 2)
    left = int(float(pad_width - width) / 2)
    widths = [(0, 0)] * x.ndim
    if top > 0:
        widths[axes[0]] = (top, top)
    elif left > 0:
        widths[axes[1]] = (left, left)
    else:
        return x
    return np.pad(x, widths)


def _spatial_axes(ndim: int, data_format: str) -> tuple[int, int]:
    return (ndim - 3, ndim - 2) if data_format == "channels_last" else (ndim - 2, ndim - 1)


def resize(
    image: Any,
    size: Sequence[int],
    interpolation: str = "bilinear",
    *,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: str | None = None,
) -> np.ndarray:
    """Resize an image or a batch of images as ``keras.ops.image.resize`` does on JAX.

    The values are those of ``jax.image.resize(..., antialias=False)`` (Keras's default) to
    float32 rounding, computed in NumPy on the host.

    Args:
        image: ``(height, width, channels)`` or ``(batch, height, width, channels)`` (channels
            first with ``data_format="channels_first"``), any real dtype.
        size: ``(height, width)`` of the result.
        interpolation: one of :data:`INTERPOLATIONS`.
        crop_to_aspect_ratio: first cut the largest centred window with the target aspect ratio.
        pad_to_aspect_ratio: first pad with zeros to the target aspect ratio.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Returns:
        A float32 array (``"nearest"`` keeps the input dtype, as in JAX).

    Example:
        >>> resize(np.zeros((375, 500, 3), np.uint8), (180, 180)).shape
        (180, 180, 3)
    """
    x = np.asarray(image)
    result = scratch_resize(
        x, size, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, data_format
    )
    keep = interpolation.lower() == "nearest"  # checked by scratch_resize
    return np.array(result, dtype=result.dtype if keep else _F32, copy=True)


def scratch_resize(
    x: np.ndarray, size: Any, interpolation: str, crop: bool, pad: bool, data_format: str | None
) -> np.ndarray:
    """:func:`resize`'s values without a copy: the result may be ``x`` itself or a buffer of
    this thread that its next ``scratch_resize`` overwrites (float64 input stays float64).

    For loaders that convert each resized image into a batch at once; ``crop`` and ``pad``
    are :func:`resize`'s ``crop_to_aspect_ratio`` and ``pad_to_aspect_ratio``.

    Example:
        >>> photo = np.zeros((375, 500, 3), np.uint8)
        >>> scratch_resize(photo, 180, "bilinear", False, False, None).shape
        (180, 180, 3)
    """
    if x.ndim not in (3, 4):
        raise ValueError(
            "`image` must have rank 3 (one image) or 4 (a batch of images). "
            f"Received shape {x.shape}"
        )
    size = checked_size(size, "size")
    interpolation = checked_interpolation(interpolation)
    if crop and pad:
        raise ValueError("Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True")
    axes = _spatial_axes(x.ndim, checked_data_format(data_format))
    if crop:
        top, left, crop_height, crop_width = _crop_box(x.shape[axes[0]], x.shape[axes[1]], size)
        x = x.take(np.arange(top, top + crop_height), axis=axes[0])
        x = x.take(np.arange(left, left + crop_width), axis=axes[1])
    elif pad:
        x = _padded(x, axes, size)
    if interpolation != "nearest" and not np.issubdtype(x.dtype, np.floating):
        if x.dtype.itemsize > 2:
            x = x.astype(_F32)
    for axis, out_size, role in zip(axes, size, ("height", "width")):
        if x.shape[axis] == out_size:  # as in jax.image.resize, an axis of the right size is kept
            continue
        if interpolation == "nearest":
            x = np.take(x, _resample.nearest_indices(x.shape[axis], out_size), axis=axis)
        else:
            x = _resample.resampled(x, axis, out_size, interpolation, role)
    return x


def smart_resize(
    x: Any,
    size: Sequence[int],
    interpolation: str = "bilinear",
    data_format: str = "channels_last",
) -> np.ndarray:
    """Resize to ``size`` without distorting the aspect ratio: centre-crop, then resize.

    Keras's ``smart_resize``: the largest centred window with the target aspect ratio is
    resized to ``size`` (a ``(340, 500)`` image and ``size=(200, 200)``: the centred
    ``(340, 340)`` window).

    Args:
        x: an image ``(height, width, channels)`` or a batch of them.
        size: ``(height, width)``.
        interpolation: one of :data:`INTERPOLATIONS`.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        A NumPy array of shape ``(*size, channels)`` (or the batch of them), float32 except for
        ``"nearest"``, which keeps the dtype.

    Example:
        >>> smart_resize(np.ones((340, 500, 3)), (200, 200)).shape
        (200, 200, 3)
    """
    if not isinstance(size, Sequence | np.ndarray) or len(size) != 2:
        raise ValueError(f"Expected `size` to be a tuple of 2 integers, but got: {size}.")
    array = np.asarray(x)
    if array.ndim not in (3, 4):
        raise ValueError(
            "Expected an image array with shape `(height, width, channels)`, or "
            "`(batch_size, height, width, channels)`, but got input with incorrect rank, "
            f"of shape {array.shape}."
        )
    return resize(array, size, interpolation, crop_to_aspect_ratio=True, data_format=data_format)


def store_resized(resized: np.ndarray, out: np.ndarray) -> None:
    """Write :func:`scratch_resize` values into ``out``: floats as computed; integers rounded to
    the nearest and clipped to the dtype's range (bicubic and Lanczos kernels overshoot near
    edges). Float values are rounded in place, so they must be the caller's to overwrite.

    Example:
        >>> out = np.empty(3, np.uint8)
        >>> store_resized(np.array([-3.2, 7.5, 300.0], np.float32), out)
        >>> out.tolist()
        [0, 8, 255]
    """
    if np.issubdtype(out.dtype, np.integer) and np.issubdtype(resized.dtype, np.floating):
        info = np.iinfo(out.dtype)
        if not resized.flags.writeable:
            resized = resized.copy()
        np.rint(resized, out=resized)
        np.clip(resized, info.min, info.max, out=resized)
        np.copyto(out, resized, casting="unsafe")
    else:
        out[...] = resized


# -- PIL images and arrays --------------------------------------------------------------------


# 8-bit modes whose raw bytes are NumPy's (height, width[, channels]) uint8 layout
_RAW_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}
_RAW_CHUNK = 65536  # what PIL's own tobytes asks of its encoder at a time


def scratch_pixels(img: Any) -> np.ndarray:
    """A PIL image's pixels as ``np.asarray(img)`` gives them, for 8-bit images in a buffer of
    this thread that its next ``scratch_pixels`` overwrites.

    ``np.asarray`` goes through ``img.tobytes()``, a fresh bytes object the size of the image
    (page-faulted in for every image, see :mod:`jkutils._scratch`); here PIL's raw encoder
    fills the reused buffer in 64 KiB pieces. Other modes (16- and 32-bit) take
    ``np.asarray``.

    Raises:
        OSError: the image's data cannot be decoded (PIL's error, from ``img.load()``).

    Example:
        >>> from PIL import Image
        >>> scratch_pixels(Image.new("RGB", (4, 2), (9, 8, 7)))[1, 3].tolist()
        [9, 8, 7]
    """
    channels = _RAW_CHANNELS.get(img.mode)
    width, height = img.size
    get_encoder = getattr(pil_image(), "_getencoder", None)  # what tobytes uses; not public
    if channels is None or width == 0 or height == 0 or get_encoder is None:
        return np.asarray(img)
    img.load()
    out = scratch_array("pixels", (height * width * channels,), np.uint8)
    encoder = get_encoder(img.mode, "raw", img.mode)
    try:
        encoder.setimage(img.im, (0, 0, width, height))
        filled, status = 0, 0
        while not status:
            _, status, data = encoder.encode(max(_RAW_CHUNK, width * 4))
            out[filled : filled + len(data)] = np.frombuffer(data, np.uint8)
            filled += len(data)
    finally:
        encoder.cleanup()
    if status < 0 or filled != out.size:
        raise OSError(f"PIL's raw encoder failed (error {status}) on a {img.mode} image")
    return out.reshape((height, width) if channels == 1 else (height, width, channels))


def converted(img: Any, color_mode: str) -> Any:
    """A PIL image in the mode Keras uses for ``color_mode`` (16- and 32-bit grayscale kept)."""
    channels = channel_count(color_mode)
    if channels == 1:
        return img if img.mode in ("L", "I;16", "I") else img.convert("L")
    target = "RGB" if channels == 3 else "RGBA"
    return img if img.mode == target else img.convert(target)


def _opened(path: Any) -> Any:
    Image = pil_image()
    if isinstance(path, io.BytesIO):
        return Image.open(path)
    if isinstance(path, str | bytes | os.PathLike):
        with open(path, "rb") as f:
            return Image.open(io.BytesIO(f.read()))
    raise TypeError(f"`path` should be path-like or io.BytesIO, not {type(path)}")


def load_img(
    path: Any,
    color_mode: str = "rgb",
    target_size: Sequence[int] | None = None,
    interpolation: str = "nearest",
    keep_aspect_ratio: bool = False,
) -> Any:
    """Load an image into a PIL image, as ``keras.utils.load_img`` does.

    Args:
        path: a path or an ``io.BytesIO``.
        color_mode: ``"grayscale"``, ``"rgb"`` or ``"rgba"``.
        target_size: ``None`` (keep the size) or ``(height, width)``.
        interpolation: PIL's resampling for ``target_size``: ``"nearest"`` (default),
            ``"bilinear"``, ``"bicubic"``, ``"hamming"``, ``"box"`` or ``"lanczos"``.
        keep_aspect_ratio: centre-crop to the target aspect ratio before resizing.

    Returns:
        A ``PIL.Image.Image``.

    Example:
        >>> img = load_img("photo.jpg", target_size=(180, 180))  # doctest: +SKIP
        >>> img.size  # doctest: +SKIP
        (180, 180)
    """
    Image = pil_image()
    channel_count(color_mode)
    img = converted(_opened(path), color_mode)
    if target_size is None:
        return img
    width_height = (int(target_size[1]), int(target_size[0]))
    if img.size == width_height:
        return img
    if interpolation not in _PIL_RESAMPLING:
        raise ValueError(
            f"Invalid interpolation method {interpolation} specified. Supported methods are "
            f"{', '.join(_PIL_RESAMPLING)}"
        )
    resample = getattr(Image.Resampling, interpolation.upper())
    if not keep_aspect_ratio:
        return img.resize(width_height, resample)
    width, height = img.size
    crop_height = min(height, width * width_height[1] // width_height[0])
    crop_width = min(width, height * width_height[0] // width_height[1])
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return img.resize(width_height, resample, box=(left, top, left + crop_width, top + crop_height))


def img_to_array(img: Any, data_format: str | None = None, dtype: Any = None) -> np.ndarray:
    """A PIL image as a 3-D NumPy array (float32 unless ``dtype`` says otherwise).

    Example:
        >>> img_to_array(array_to_img(np.zeros((4, 5, 3)))).shape
        (4, 5, 3)
    """
    data_format = checked_data_format(data_format)
    x = np.asarray(img, dtype=_F32 if dtype is None else dtype)
    if x.ndim == 2:
        x = x[None] if data_format == "channels_first" else x[..., None]
    elif x.ndim == 3:
        x = x.transpose(2, 0, 1) if data_format == "channels_first" else x
    else:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


def array_to_img(x: Any, data_format: str | None = None, scale: bool = True, dtype: Any = None):
    """A 3-D array as a PIL image; with ``scale`` its values are stretched to ``[0, 255]``.

    One channel gives an ``"L"`` image (``"I"`` when values exceed 255), three ``"RGB"`` and
    four ``"RGBA"``.

    Example:
        >>> array_to_img(np.random.random((100, 100, 3))).mode
        'RGB'
    """
    Image = pil_image()
    data_format = checked_data_format(data_format)
    x = np.array(x, dtype=_F32 if dtype is None else dtype)
    if x.ndim != 3:
        raise ValueError(
            f"Expected image array to have rank 3 (single image). Got array with shape: {x.shape}"
        )
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        peak = np.max(x)
        if peak != 0:
            x /= peak
        x *= 255
    channels = x.shape[2]
    if channels in (3, 4):
        return Image.fromarray(x.astype(np.uint8), "RGB" if channels == 3 else "RGBA")
    if channels == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype(np.int32), "I")
        return Image.fromarray(x[:, :, 0].astype(np.uint8), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def save_img(
    path: Any,
    x: Any,
    data_format: str | None = None,
    file_format: str | None = None,
    scale: bool = True,
    **kwargs: Any,
) -> None:
    """Write an array as an image file (format from the extension unless ``file_format``).

    An RGBA array saved as JPEG is converted to RGB with a warning, as in Keras; ``kwargs`` go
    to ``PIL.Image.Image.save``.

    Example:
        >>> save_img("out.png", np.zeros((8, 8, 3)))  # doctest: +SKIP
    """
    if file_format is None and isinstance(path, str | pathlib.Path):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn(
            "The JPEG format does not support RGBA images, converting to RGB.", stacklevel=2
        )
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)
