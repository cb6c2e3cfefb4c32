"""Image helpers against Keras 3 (JAX backend), jax.image.resize and Pillow."""

import io
import sys

import jax
import keras
import numpy as np
import pytest
from PIL import Image

from jkutils import image as jk_image
from jkutils.image import array_to_img, img_to_array, load_img, resize, save_img, smart_resize

RNG = np.random.default_rng(0)
METHODS = ["bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area"]


def _jax_resize(x, size, method, data_format="channels_last"):
    if data_format == "channels_last":
        shape = x.shape[:-3] + tuple(size) + x.shape[-1:]
    else:
        shape = x.shape[:-2] + tuple(size)
    return np.asarray(jax.image.resize(x.astype(np.float32), shape, method, antialias=False))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "shape, size",
    [
        ((75, 100, 3), (36, 36)),
        ((7, 5, 1), (13, 3)),
        ((40, 33, 4), (40, 17)),
        ((2, 10, 12, 3), (5, 30)),
    ],
)
def test_resize_equals_jax_image_resize_without_antialias(method, shape, size):
    x = RNG.integers(0, 256, shape).astype(np.uint8)
    ours = resize(x, size, method)
    np.testing.assert_allclose(ours.astype(np.float32), _jax_resize(x, size, method), atol=5e-3)
    assert ours.dtype == (np.uint8 if method == "nearest" else np.float32)


def test_resize_channels_first_equals_jax():
    x = RNG.random((3, 20, 31)).astype(np.float32)
    ours = resize(x, (9, 40), "bicubic", data_format="channels_first")
    np.testing.assert_allclose(
        ours, _jax_resize(x, (9, 40), "bicubic", "channels_first"), atol=1e-4
    )


@pytest.mark.parametrize("option", ["crop_to_aspect_ratio", "pad_to_aspect_ratio"])
@pytest.mark.parametrize("shape, size", [((30, 50, 3), (20, 20)), ((51, 20, 1), (10, 30))])
def test_resize_to_aspect_ratio_equals_keras_ops(option, shape, size):
    x = RNG.integers(0, 256, shape).astype(np.float32)
    expected = np.asarray(keras.ops.image.resize(x, size, **{option: True}))
    np.testing.assert_allclose(resize(x, size, **{option: True}), expected, atol=5e-3)


def test_smart_resize_equals_keras():
    x = RNG.integers(0, 256, (34, 50, 3)).astype(np.uint8)
    for size, method in [((20, 20), "bilinear"), ((10, 25), "nearest"), ((40, 30), "bicubic")]:
        expected = keras.preprocessing.image.smart_resize(x, size, interpolation=method)
        ours = smart_resize(x, size, interpolation=method)
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours.astype(np.float32), expected.astype(np.float32), atol=5e-3)


def test_resize_rejects_bad_arguments_naming_them():
    x = np.zeros((4, 4, 3))
    with pytest.raises(ValueError, match="interpolation.*gaussian"):
        resize(x, (2, 2), "gaussian")
    with pytest.raises(ValueError, match="rank"):
        resize(np.zeros((4, 4)), (2, 2))
    with pytest.raises(ValueError, match="size"):
        resize(x, (2, 0))
    with pytest.raises(ValueError, match="Only one"):
        resize(x, (2, 2), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="data_format"):
        resize(x, (2, 2), data_format="NHWC")


def _png_bytes(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(_png_bytes(RNG.integers(0, 256, (30, 45, 4), dtype=np.uint8)))
    return path


@pytest.mark.parametrize("color_mode", ["rgb", "rgba", "grayscale"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"target_size": (20, 20)},
        {"target_size": (12, 40), "interpolation": "bicubic"},
        {"target_size": (20, 10), "keep_aspect_ratio": True, "interpolation": "lanczos"},
    ],
)
def test_load_img_equals_keras(photo, color_mode, kwargs):
    ours = load_img(photo, color_mode=color_mode, **kwargs)
    expected = keras.utils.load_img(photo, color_mode=color_mode, **kwargs)
    assert ours.mode == expected.mode and ours.size == expected.size
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(expected))


def test_load_img_reads_bytesio_and_rejects_other_types(photo):
    img = load_img(io.BytesIO(photo.read_bytes()))
    assert img.mode == "RGB" and img.size == (45, 30)
    with pytest.raises(TypeError, match="path-like"):
        load_img(3)
    with pytest.raises(ValueError, match="Invalid interpolation"):
        load_img(photo, target_size=(5, 5), interpolation="area")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_img_to_array_and_array_to_img_equal_keras(data_format):
    for array in (
        RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8),
        RNG.integers(0, 256, (6, 7), dtype=np.uint8),
    ):
        img = Image.fromarray(array)
        ours = img_to_array(img, data_format=data_format)
        expected = keras.utils.img_to_array(img, data_format=data_format)
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        np.testing.assert_array_equal(ours, expected)
        for scale in (True, False):
            back = array_to_img(ours, data_format=data_format, scale=scale)
            keras_back = keras.utils.array_to_img(expected, data_format=data_format, scale=scale)
            assert back.mode == keras_back.mode
            np.testing.assert_array_equal(np.asarray(back), np.asarray(keras_back))


def test_array_to_img_modes_by_channels_and_range():
    assert array_to_img(np.zeros((2, 2, 4))).mode == "RGBA"
    assert array_to_img(np.full((2, 2, 1), 300.0), scale=False).mode == "I"
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="channel number: 2"):
        array_to_img(np.zeros((2, 2, 2)))


def test_save_img_round_trips_png_and_warns_for_rgba_jpeg(tmp_path):
    array = RNG.integers(0, 256, (5, 6, 3)).astype(np.float32)
    save_img(tmp_path / "a.png", array, scale=False)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "a.png")), array.astype(np.uint8)
    )
    with pytest.warns(UserWarning, match="RGBA"):
        save_img(tmp_path / "b.jpg", np.zeros((4, 4, 4)))
    assert Image.open(tmp_path / "b.jpg").format == "JPEG"


def test_missing_pillow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"jkutils\[image\]"):
        jk_image.pil_image()
    with pytest.raises(ImportError, match=r"jkutils\[image\]"):
        load_img("x.png")


@pytest.mark.parametrize("mode, shape", [("L", (7, 9)), ("RGB", (7, 9, 3)), ("RGBA", (7, 9, 4))])
def test_scratch_pixels_equal_numpy_asarray(mode, shape):
    img = Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8), mode)
    np.testing.assert_array_equal(jk_image.scratch_pixels(img), np.asarray(img))


def test_scratch_pixels_of_a_large_image_span_many_encoder_pieces():
    pixels = RNG.integers(0, 256, (300, 401, 3), dtype=np.uint8)  # 361 KB: six 64 KiB pieces
    np.testing.assert_array_equal(jk_image.scratch_pixels(Image.fromarray(pixels)), pixels)


def test_scratch_pixels_of_wide_modes_take_numpy():
    img = Image.fromarray(np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    assert img.mode == "I;16"
    np.testing.assert_array_equal(jk_image.scratch_pixels(img), np.asarray(img))


def test_resize_results_are_not_overwritten_by_later_calls():
    first_input, second_input = (RNG.random((30, 20, 3)).astype(np.float32) for _ in range(2))
    first = resize(first_input, (9, 11))
    expected = _jax_resize(first_input, (9, 11), "bilinear")
    resize(second_input, (9, 11))
    np.testing.assert_allclose(first, expected, atol=1e-5)


def test_threads_resizing_at_once_each_get_their_own_values():
    import threading

    images = [RNG.integers(0, 256, (60, 50, 3), dtype=np.uint8) for _ in range(8)]
    expected = [_jax_resize(image, (21, 17), "bicubic") for image in images]
    results = [None] * len(images)
    start = threading.Barrier(len(images))

    def work(i):
        start.wait()
        for _ in range(20):  # many rounds, so that the threads interleave
            result = jk_image.scratch_resize(images[i], (21, 17), "bicubic", False, False, None)
            results[i] = result.copy()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ours, theirs in zip(results, expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_scratch_buffers_are_reused_but_huge_ones_are_not_kept():
    from jkutils._scratch import scratch_array

    small = [scratch_array("test-small", (256, 256), np.float32) for _ in range(2)]
    assert np.shares_memory(small[0], small[1])  # the same thread's buffer, reused
    huge = [scratch_array("test-huge", (3000, 3000), np.float32) for _ in range(2)]  # 36 MB
    assert not np.shares_memory(huge[0], huge[1])  # fresh each time, nothing pinned


def test_scratch_pixels_without_pils_encoder_hook_take_numpy(monkeypatch):
    pixels = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    import types

    # a Pillow whose Image module has no _getencoder (PIL itself still converts the image)
    monkeypatch.setattr(jk_image, "pil_image", lambda: types.SimpleNamespace())
    np.testing.assert_array_equal(jk_image.scratch_pixels(Image.fromarray(pixels)), pixels)
