"""torchvision ``ImageFolder`` + ``DataLoader`` on the folder of ``bench_directory.py``.

torch is not a dependency of jkutils or of its ``bench`` extra, so this script runs in an
environment of its own that has torch, torchvision, Pillow and NumPy::

    python3.11 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch torchvision pillow numpy
    /tmp/tvenv/bin/python benchmarks/torchvision_folder.py

It prints images per second for epochs of 2,000 JPEGs of 500x375 resized to 180x180
(``Resize((180, 180))`` then ``PILToTensor``, uint8 like jkutils' default), batches of 32,
shuffled: with the same worker count as ``bench_directory.py`` (worker start-up included; the
``DataLoader`` forks its workers for every epoch), and in the calling process
(``num_workers=0``), each the best of two rounds.

``bench_directory.py`` runs it itself, on its own folder and in the same run, when
``JKUTILS_TORCHVISION_PYTHON`` names that environment's interpreter; it then passes
``--folder DIR --workers N --json`` and reads one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._photos import make_folder  # noqa: E402


def _epoch_rate(root: pathlib.Path, workers: int) -> float:
    import torch
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.Resize((180, 180)), transforms.PILToTensor()])
    folder = datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=32, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    images = sum(len(batch[0]) for batch in loader)
    elapsed = time.perf_counter() - start
    assert images == len(folder), (images, len(folder))
    return images / elapsed


def rates(root: pathlib.Path, workers: int, rounds: int = 2) -> dict[str, float]:
    """Best images per second over ``rounds`` with ``workers`` processes and in-process."""
    import torch

    torch.set_num_threads(1)
    best = {"workers": 0.0, "in-process": 0.0}
    for _ in range(rounds):
        best["workers"] = max(best["workers"], _epoch_rate(root, workers))
        best["in-process"] = max(best["in-process"], _epoch_rate(root, 0))
    return best


def main() -> None:
    import torch
    import torchvision

    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=pathlib.Path, help="an existing folder of class folders")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--quick", action="store_true", help="400 files instead of 2,000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or make_folder(pathlib.Path(tmp), 400 if args.quick else 2000)
        best = rates(root, args.workers, args.rounds)
    if args.json:
        versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
        print(json.dumps({**best, **versions, "worker_count": args.workers}))
        return
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, batch 32")
    with_workers = f"epoch, {args.workers} worker processes (start-up included)"
    print(f"{with_workers}: {best['workers']:.1f} img/s")
    print(f"epoch in one process: {best['in-process']:.1f} img/s")


if __name__ == "__main__":
    main()
