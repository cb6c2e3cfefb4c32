"""Directory loaders: images per second for one epoch over a folder of JPEGs.

2,000 photo-like JPEGs of 500x375 (two classes) resized to 180x180, batches of 32, decoded in
grain worker processes (``.to_iter_dataset().mp_prefetch(...)``, the same worker count for
both loaders):

- jkutils ``image_dataset_from_directory`` (uint8 batches; and with ``jpeg_draft=True``);
- Keras 3 ``image_dataset_from_directory(..., format="grain")`` with the same workers;
- the limit: serial Pillow decode + resize of the same files (``Image.resize`` bilinear),
  times the number of workers.

Two rates per loader: the whole epoch, from creating the iterator to its last batch (grain
starts the worker processes, which import JAX, for every epoch's iterator), and the steady
rate, the extra images of a 2,000-file epoch over a 64-file one divided by the extra time,
which cancels the start-up.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import grain  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks._harness import Row, print_table  # noqa: E402

AREA = "directory"
SIZE = (180, 180)
BATCH = 32


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


def _epoch_seconds(dataset, workers: int, expected: int) -> float:
    """Seconds for a whole epoch through ``workers`` grain processes, from creating the
    iterator (which starts the workers) to the last batch."""
    if isinstance(dataset, grain.MapDataset):  # Keras already returns an IterDataset
        dataset = dataset.to_iter_dataset()
    pipeline = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    start = time.perf_counter()
    images = sum(len(batch[0]) for batch in pipeline)
    elapsed = time.perf_counter() - start
    assert images == expected, (images, expected)
    return elapsed


def _rates(make, big: pathlib.Path, small: pathlib.Path, counts, workers) -> tuple[float, float]:
    """(whole-epoch images/s, steady images/s): the second divides the extra images of the big
    folder by the extra time, which cancels the workers' start-up."""
    t_big = _epoch_seconds(make(big), workers, counts[0])
    t_small = _epoch_seconds(make(small), workers, counts[1])
    return counts[0] / t_big, (counts[0] - counts[1]) / max(t_big - t_small, 1e-9)


def _serial_pil_rate(paths: list[str]) -> float:
    from PIL import Image

    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            np.asarray(img.convert("RGB").resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR))
    return len(paths) / (time.perf_counter() - start)


def rows(quick: bool = False) -> list[Row]:
    """Benchmark rows for the directory loaders (``quick`` uses 400 files)."""
    import keras

    from jkutils.data import image_dataset_from_directory

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    count = 400 if quick else 2000
    counts = (count, 64)
    workers = min(4, os.cpu_count() or 1)
    common = dict(image_size=SIZE, batch_size=BATCH, verbose=False)

    def ours(root):
        return image_dataset_from_directory(root, key=jax.random.key(0), **common)

    def ours_draft(root):
        return image_dataset_from_directory(root, key=jax.random.key(0), jpeg_draft=True, **common)

    def theirs(root):
        return keras.utils.image_dataset_from_directory(root, seed=0, format="grain", **common)

    with tempfile.TemporaryDirectory() as tmp:
        big = make_folder(pathlib.Path(tmp) / "big", count)
        small = make_folder(pathlib.Path(tmp) / "small", counts[1])
        ours_epoch, ours_steady = _rates(ours, big, small, counts, workers)
        keras_epoch, keras_steady = _rates(theirs, big, small, counts, workers)
        draft_epoch, draft_steady = _rates(ours_draft, big, small, counts, workers)
        limit = _serial_pil_rate(ours(big).file_paths) * workers
    label = f"{count} JPEGs 500x375 -> 180x180, {workers} workers"
    limit_name = f"serial PIL decode+resize x {workers}"
    keras_name = "Keras 3 format='grain'"
    table = [
        (f"steady rate, {label}", ours_steady, keras_steady, ">= 3x Keras"),
        (f"whole epoch with worker start-up, {label}", ours_epoch, keras_epoch, ""),
        (f"steady rate, jpeg_draft=True, {label}", draft_steady, keras_steady, ""),
        (f"whole epoch, jpeg_draft=True, {label}", draft_epoch, keras_epoch, ""),
    ]
    return [
        Row(AREA, measure, mine, keras_name, ref, limit_name, limit, unit="img/s",
            higher_is_better=True, target=target)
        for measure, mine, ref, target in table
    ]  # fmt: skip


if __name__ == "__main__":
    begin = time.perf_counter()
    print_table(rows(quick="--quick" in sys.argv))
    print(f"(ran in {time.perf_counter() - begin:.1f} s)")
