"""torchvision ``ImageFolder`` + ``DataLoader`` on the folder of ``bench_directory.py``.

torch is not a dependency of jkutils or of its ``bench`` extra, so this script runs in an
environment of its own that has torch, torchvision, Pillow and NumPy::

    python3.11 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch torchvision pillow numpy
    /tmp/tvenv/bin/python benchmarks/torchvision_folder.py

It prints images per second for an epoch of 2,000 JPEGs of 500x375 resized to 180x180
(``Resize((180, 180))`` then ``PILToTensor``, uint8 like jkutils' default), batches of 32,
shuffled, with the same worker count as ``bench_directory.py`` (worker start-up included)
and in the calling process (``num_workers=0``), each the best of two rounds.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._photos import make_folder  # noqa: E402


def _epoch_rate(root: pathlib.Path, workers: int, count: int) -> float:
    import torch
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.Resize((180, 180)), transforms.PILToTensor()])
    folder = datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=32, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    images = sum(len(batch[0]) for batch in loader)
    elapsed = time.perf_counter() - start
    assert images == count, (images, count)
    return images / elapsed


def main() -> None:
    import torch

    torch.set_num_threads(1)
    count = 400 if "--quick" in sys.argv else 2000
    workers = min(4, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(pathlib.Path(tmp), count)
        rates = {"workers": 0.0, "in-process": 0.0}
        for _ in range(2):
            rates["workers"] = max(rates["workers"], _epoch_rate(root, workers, count))
            rates["in-process"] = max(rates["in-process"], _epoch_rate(root, 0, count))
    print(f"torch {torch.__version__}, {count} JPEGs 500x375 -> 180x180, batch 32")
    print(f"epoch, {workers} worker processes (start-up included): {rates['workers']:.1f} img/s")
    print(f"epoch in one process: {rates['in-process']:.1f} img/s")


if __name__ == "__main__":
    main()
