"""One epoch of jkutils' image decoding in a plain spawned ``ProcessPoolExecutor`` whose
workers import no JAX or grain: ``python benchmarks/spawned_pool.py FOLDER WORKERS`` prints the
seconds from starting the pool to the last batch.

It runs as its own script because a spawned worker imports the parent's main module again, and
``bench_directory.py`` imports JAX. ``bench_directory.py`` runs it to show how much of the gap
to torchvision's forked workers is JAX's import and how much is spawning processes.
"""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._photos import decode_batch  # noqa: E402

BATCH = 32


def main() -> None:
    folder, workers = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    batches = [paths[i : i + BATCH] for i in range(0, len(paths), BATCH)]
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        images = sum(len(batch) for batch in pool.map(decode_batch, batches))
    elapsed = time.perf_counter() - start
    assert images == len(paths), (images, len(paths))
    print(elapsed)


if __name__ == "__main__":
    main()
