"""Photo-like JPEG folders for the folder-loader benchmarks (NumPy and Pillow only, so the
torchvision script can use it from its own environment)."""

from __future__ import annotations

import pathlib

import numpy as np


def _photo(rng: np.random.Generator) -> np.ndarray:
    """A smooth 375x500 RGB picture with some texture (JPEG-friendly, like a photo)."""
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    channels = [
        127 + 100 * np.sin(x / rng.uniform(20, 80) + p) * np.cos(y / rng.uniform(20, 80) - p)
        for p in phase
    ]
    image = np.stack(channels, -1) + rng.normal(0, 8, (375, 500, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_folder(root: pathlib.Path, count: int) -> pathlib.Path:
    """``count`` JPEGs of 500x375 in two class folders under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    bases = [_photo(rng) for _ in range(8)]
    for i in range(count):
        folder = root / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        shifted = np.roll(bases[i % 8], shift=(i * 7) % 375, axis=0)
        Image.fromarray(shifted).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def decode_batch(paths: list[str]) -> np.ndarray:
    """One uint8 batch of ``paths`` at 180x180 with the pixels of jkutils' default loader,
    importing only NumPy, Pillow and ``jkutils.image`` (for spawned processes that never import
    JAX or grain)."""
    from PIL import Image

    from jkutils import image

    batch = np.empty((len(paths), 180, 180, 3), np.uint8)
    for path, out in zip(paths, batch):
        with Image.open(path) as img:
            pixels = image.scratch_pixels(img)
        resized = image.scratch_resize(pixels, (180, 180), "bilinear", False, False, None)
        image.store_resized(resized, out)
    return batch
