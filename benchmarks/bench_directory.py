"""Directory loaders: images per second for one epoch over a folder of JPEGs.

2,000 photo-like JPEGs of 500x375 (two classes) resized to 180x180, batches of 32, decoded in
grain worker processes (``.to_iter_dataset().mp_prefetch(...)``, the same worker count for
both loaders):

- jkutils ``image_dataset_from_directory`` (uint8 batches; and with ``jpeg_draft=True``);
- Keras 3 ``image_dataset_from_directory(..., format="grain")`` with the same workers;
- the limit: serial Pillow decode + resize of the same files (``Image.resize`` bilinear),
  times the number of workers.

Each figure is the best of two interleaved rounds (one with ``--quick``). One more row runs
two epochs through a single worker pipeline (``ds.repeat(2)``, workers started once) beside
Keras's one-epoch rate: Keras's grain result is an ``IterDataset`` iterated once per epoch, so
each epoch starts its workers again.

Two settings per loader: an epoch through worker processes, timed from creating the iterator
to its last batch (grain starts the workers, which import JAX, for every iterator, so start-up
is included), and an epoch in the calling process with grain's default reading threads.
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
from benchmarks._photos import make_folder  # noqa: E402

AREA = "directory"
SIZE = (180, 180)
BATCH = 32


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


def _threaded_seconds(dataset, expected: int) -> float:
    """Seconds for an epoch in this process, with grain's default reading threads."""
    if isinstance(dataset, grain.MapDataset):
        dataset = dataset.to_iter_dataset()
    start = time.perf_counter()
    images = sum(len(batch[0]) for batch in dataset)
    elapsed = time.perf_counter() - start
    assert images == expected, (images, expected)
    return elapsed


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
    workers = min(4, os.cpu_count() or 1)
    common = dict(image_size=SIZE, batch_size=BATCH, verbose=False)

    def ours(root, **extra):
        return image_dataset_from_directory(root, key=jax.random.key(0), **common, **extra)

    def theirs(root):
        return keras.utils.image_dataset_from_directory(root, seed=0, format="grain", **common)

    loaders = {
        "ours": lambda root: ours(root),
        "theirs": theirs,
        "draft": lambda root: ours(root, jpeg_draft=True),
    }
    rates: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(pathlib.Path(tmp), count)
        # best of rounds, interleaved, so that load from other jobs hits all loaders alike
        for _ in range(1 if quick else 2):
            for name, make in loaders.items():
                timed = {
                    "mp": _epoch_seconds(make(root), workers, count),
                    "in": _threaded_seconds(make(root), count),
                }
                for where, seconds in timed.items():
                    rates[where, name] = max(count / seconds, rates.get((where, name), 0.0))
            two_epochs = _epoch_seconds(ours(root).repeat(2), workers, 2 * count)
            rates["mp2", "ours"] = max(2 * count / two_epochs, rates.get(("mp2", "ours"), 0.0))
            serial = _serial_pil_rate(ours(root).file_paths)
            rates["limit", "serial"] = max(serial, rates.get(("limit", "serial"), 0.0))
        limit = rates["limit", "serial"] * workers
    mp_ours, mp_theirs, mp_draft = (rates["mp", n] for n in loaders)
    in_ours, in_theirs, in_draft = (rates["in", n] for n in loaders)
    label = f"{count} JPEGs 500x375 -> 180x180"
    table = [
        (
            f"epoch, {workers} worker processes (start-up included), {label}",
            mp_ours,
            mp_theirs,
            ">= 3x Keras",
        ),
        ("  the same, jpeg_draft=True", mp_draft, mp_theirs, ""),
        ("  2 epochs through one pipeline, ds.repeat(2)", rates["mp2", "ours"], mp_theirs, ""),
        (f"epoch in one process, grain's reading threads, {label}", in_ours, in_theirs, ""),
        ("  the same, jpeg_draft=True", in_draft, in_theirs, ""),
    ]
    return [
        Row(AREA, measure, mine, "Keras 3 format='grain'", ref,
            f"serial PIL decode+resize x {workers}", limit, unit="img/s",
            higher_is_better=True, target=target)
        for measure, mine, ref, target in table
    ]  # fmt: skip


if __name__ == "__main__":
    begin = time.perf_counter()
    print_table(rows(quick="--quick" in sys.argv))
    print(f"(ran in {time.perf_counter() - begin:.1f} s)")
