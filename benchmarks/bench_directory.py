"""Directory loaders: images per second for one epoch over a folder of JPEGs.

2,000 photo-like JPEGs of 500x375 (two classes) resized to 180x180, batches of 32, decoded in
grain worker processes (``.to_iter_dataset().mp_prefetch(...)``, the same worker count for
both loaders):

- jkutils ``image_dataset_from_directory`` (uint8 batches; and with ``jpeg_draft=True``);
- the same dataset through ``ds.with_workers(n)``: worker processes that import neither JAX,
  grain nor this script, started for the first epoch (start-up included) and kept for the
  next ones;
- Keras 3 ``image_dataset_from_directory(..., format="grain")`` with the same workers;
- torchvision ``ImageFolder`` + ``DataLoader`` with the same workers, when
  ``JKUTILS_TORCHVISION_PYTHON`` names the interpreter of an environment that has torch and
  torchvision (``benchmarks/torchvision_folder.py``, run on the same folder in this run);
- beside torchvision, the same decoding in a plain spawned ``ProcessPoolExecutor`` whose
  workers import no JAX or grain (``spawned_pool.py``): how much of the gap to
  torchvision's forked workers is JAX's import and how much is spawning;
- the limit: serial Pillow decode + resize of the same files (``Image.resize`` bilinear),
  times the number of workers.

Each figure is the best of two interleaved rounds (one with ``--quick``), after one untimed
epoch of each loader that warms the page cache and the workers' imports.

Two settings per loader: an epoch through worker processes, timed from creating the iterator
to its last batch (grain starts the workers, which import JAX, for every iterator, so start-up
is included), and an epoch in the calling process with grain's default reading threads. One
more row is the steady rate of a training loop's pipeline: the later epochs of
``ds.repeat(3)`` through one set of workers (started once, each epoch in its own order),
measured as the time three epochs take beyond the time of one (the workers read ahead, so
the batches of one epoch do not mark when its decoding ended),
beside Keras's one-epoch rate (Keras's grain result is an ``IterDataset`` iterated once per
epoch, so each epoch starts its workers again) and torchvision's (whose ``DataLoader`` forks
its workers for each epoch).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
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
from jkutils.data.worker_dataset import stop_idle_workers  # noqa: E402

AREA = "directory"
SIZE = (180, 180)
BATCH = 32


def _epoch_seconds(dataset, workers: int, expected: int) -> float:
    """Seconds for a whole pipeline through ``workers`` grain processes, from creating the
    iterator (which starts the workers) to the last batch."""
    if isinstance(dataset, grain.MapDataset):  # Keras already returns an IterDataset
        dataset = dataset.to_iter_dataset()
    pipeline = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    start = time.perf_counter()
    images = sum(len(batch[0]) for batch in pipeline)
    elapsed = time.perf_counter() - start
    assert images == expected, (images, expected)
    return elapsed


def _with_workers_seconds(datasets, workers: int, expected: int) -> float:
    """Seconds for the epochs ``datasets`` through ``ds.with_workers(workers)``, the first
    one starting fresh worker processes (the kept ones are stopped before)."""
    stop_idle_workers()
    start = time.perf_counter()
    images = sum(len(batch[0]) for ds in datasets for batch in ds.with_workers(workers))
    elapsed = time.perf_counter() - start
    assert images == expected, (images, expected)
    return elapsed


def _bare_pool_seconds(root, workers: int) -> float:
    """Seconds for an epoch of ``root`` through ``spawned_pool.py`` (spawned workers that
    import no JAX or grain; batches come back pickled through the pool's pipe)."""
    script = pathlib.Path(__file__).with_name("spawned_pool.py")
    command = [sys.executable, str(script), str(root), str(workers)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return float(result.stdout.strip().splitlines()[-1])


def _torchvision_rates(root, workers: int, rounds: int) -> dict | None:
    """torchvision's rates on ``root`` from the environment ``JKUTILS_TORCHVISION_PYTHON``."""
    python = os.environ.get("JKUTILS_TORCHVISION_PYTHON")
    if not python:
        return None
    script = pathlib.Path(__file__).with_name("torchvision_folder.py")
    command = [python, str(script), "--folder", str(root), "--workers", str(workers)]
    command += ["--rounds", str(rounds), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(result.stdout.strip().splitlines()[-1])


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


def _warm_up(root, loaders: dict, workers: int, count: int) -> None:
    """One untimed epoch of each loader through worker processes, and one with
    ``with_workers``, so that no timed loader alone pays for a cold page cache (the photos, and
    the libraries its spawned workers import)."""
    for make in loaders.values():
        _epoch_seconds(make(root), workers, count)
    _with_workers_seconds([loaders["ours"](root)], workers, count)


def _later_epochs_rate(images: int, all_seconds: float, first_seconds: float) -> float:
    """Images per second of the epochs after the first: ``images`` in the time ``all_seconds``
    takes beyond ``first_seconds``; NaN when noise makes that difference not positive."""
    beyond = all_seconds - first_seconds
    return images / beyond if beyond > 0 else float("nan")


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
    totals: dict[str, float] = {}
    rounds = 1 if quick else 2
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(pathlib.Path(tmp), count)
        _warm_up(root, loaders, workers, count)
        # best of rounds, interleaved, so that load from other jobs hits all loaders alike
        for _ in range(rounds):
            for name, make in loaders.items():
                timed = {
                    "mp": _epoch_seconds(make(root), workers, count),
                    "in": _threaded_seconds(make(root), count),
                }
                for where, seconds in timed.items():
                    rates[where, name] = max(count / seconds, rates.get((where, name), 0.0))
            three = _epoch_seconds(ours(root).repeat(3), workers, 3 * count)
            train = ours(root)
            one = _with_workers_seconds([train], workers, count)
            rates["pool", "ours"] = max(count / one, rates.get(("pool", "ours"), 0.0))
            epochs = [train.for_epoch(e) for e in range(3)]
            pool_three = _with_workers_seconds(epochs, workers, 3 * count)
            totals["pool three"] = min(pool_three, totals.get("pool three", float("inf")))
            totals["pool one"] = min(one, totals.get("pool one", float("inf")))
            totals["three epochs"] = min(three, totals.get("three epochs", float("inf")))
            bare = count / _bare_pool_seconds(root, workers)
            rates["bare", "pool"] = max(bare, rates.get(("bare", "pool"), 0.0))
            serial = _serial_pil_rate(ours(root).file_paths)
            rates["limit", "serial"] = max(serial, rates.get(("limit", "serial"), 0.0))
        torchvision = _torchvision_rates(root, workers, rounds)
    # the two later epochs of one pipeline cost what three epochs cost beyond one epoch
    rates["steady", "ours"] = _later_epochs_rate(
        2 * count, totals["three epochs"], count / rates["mp", "ours"]
    )
    rates["pool steady", "ours"] = _later_epochs_rate(
        2 * count, totals["pool three"], totals["pool one"]
    )
    limit = rates["limit", "serial"] * workers
    label = f"{count} JPEGs 500x375 -> 180x180"
    mp_label = f"epoch, {workers} worker processes (start-up included), {label}"
    in_label = f"epoch in one process, grain's reading threads, {label}"
    steady_label = "  training loop: epochs 2-3 of ds.repeat(3) (time beyond one epoch)"
    bare_label = f"  epoch, {workers} spawned processes that never import JAX (not grain)"
    pool_label = f"epoch, ds.with_workers({workers}) (start-up included), {label}"
    pool_steady_label = "  training loop: epochs 2-3 of with_workers (time beyond one epoch)"
    keras_name, draft = "Keras 3 format='grain'", "  the same, jpeg_draft=True"
    table = [
        (pool_label, rates["pool", "ours"], keras_name, rates["mp", "theirs"], ">= 3x Keras"),
        (pool_steady_label, rates["pool steady", "ours"], keras_name, rates["mp", "theirs"], ""),
        (mp_label, rates["mp", "ours"], keras_name, rates["mp", "theirs"], ">= 3x Keras"),
        (draft, rates["mp", "draft"], keras_name, rates["mp", "theirs"], ""),
        (steady_label, rates["steady", "ours"], keras_name, rates["mp", "theirs"], ""),
        (in_label, rates["in", "ours"], keras_name, rates["in", "theirs"], ""),
        (draft, rates["in", "draft"], keras_name, rates["in", "theirs"], ""),
    ]
    if torchvision is not None:
        tv_name = f"torchvision {torchvision['torchvision'].split('+')[0]} ImageFolder"
        tv_mp, tv_in = torchvision["workers"], torchvision["in-process"]
        table += [
            (pool_label, rates["pool", "ours"], f"{tv_name}, {workers} workers", tv_mp, ">= 1x"),
            (pool_steady_label, rates["pool steady", "ours"], f"{tv_name}, {workers} workers",
             tv_mp, ""),
            (mp_label, rates["mp", "ours"], f"{tv_name}, {workers} workers", tv_mp, ""),
            (steady_label, rates["steady", "ours"], f"{tv_name}, {workers} workers", tv_mp, ""),
            (in_label, rates["in", "ours"], f"{tv_name}, {workers} workers", tv_mp, ""),
            (in_label, rates["in", "ours"], f"{tv_name}, num_workers=0", tv_in, ""),
            (bare_label, rates["bare", "pool"], f"{tv_name}, {workers} workers", tv_mp, ""),
        ]
    return [
        Row(AREA, measure, mine, ref_name, ref, f"serial PIL decode+resize x {workers}", limit,
            unit="img/s", higher_is_better=True, target=target)
        for measure, mine, ref_name, ref, target in table
    ]  # fmt: skip


if __name__ == "__main__":
    begin = time.perf_counter()
    print_table(rows(quick="--quick" in sys.argv))
    print(f"(ran in {time.perf_counter() - begin:.1f} s)")
