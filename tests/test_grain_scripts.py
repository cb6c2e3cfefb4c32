"""Plain scripts (no absl.app.run, no test set-up) that hand jkutils sources to grain's worker
processes: they run, lose no rows, and leave no shared-memory warnings behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ARRAY_SOURCE_SCRIPT = """
import grain
import numpy as np
from jkutils import ArraySource

if __name__ == "__main__":  # grain starts its workers with "spawn"
    src = ArraySource({"x": np.ones((1000, 4), np.float32), "y": np.arange(1000)})
    it = iter(grain.MapDataset.source(src).shuffle(seed=0).batch(32).to_iter_dataset()
              .mp_prefetch(grain.MultiprocessingOptions(num_workers=2)))
    seen = sorted(int(v) for batch in it for v in batch["y"])
    print("rows", len(seen), seen == list(range(1000)))
"""

TO_GRAIN_SCRIPT = """
import grain
import numpy as np
from jkutils.data import PyDataset, to_grain


class Squares(PyDataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        return np.full((8, 3), i * i, np.int64)


if __name__ == "__main__":
    batches = to_grain(Squares())
    it = iter(batches.shuffle(seed=0).to_iter_dataset().mp_prefetch(
        grain.MultiprocessingOptions(num_workers=2)))
    first = next(it)  # a batch kept alive until the interpreter exits
    seen = sorted([int(first[0, 0])] + [int(b[0, 0]) for b in it])
    print("rows", len(seen), seen == [i * i for i in range(20)])
"""

EARLY_STOP_SCRIPT = """
import grain
import numpy as np
from jkutils import ArraySource

if __name__ == "__main__":
    src = ArraySource(np.arange(100_000).reshape(-1, 10))
    it = iter(grain.MapDataset.source(src).batch(50).to_iter_dataset()
              .mp_prefetch(grain.MultiprocessingOptions(num_workers=2)))
    for step, batch in enumerate(it):
        if step == 3:
            break  # buffered batches are never read
    print("rows", (step + 1) * len(batch), True)
"""

DIRECTORY_SCRIPT = """
import pathlib

import grain
from jkutils import text_dataset_from_directory

if __name__ == "__main__":
    for name in ("neg", "pos"):
        folder = pathlib.Path("reviews", name)
        folder.mkdir(parents=True)
        for i in range(15):
            (folder / f"{i}.txt").write_text(f"{name} {i}")
    ds = text_dataset_from_directory("reviews", batch_size=4, shuffle=False, verbose=False)
    it = iter(ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2)))
    texts = sorted(str(t) for batch, _ in it for t in batch)
    expected = sorted(f"{name} {i}" for name in ("neg", "pos") for i in range(15))
    print("rows", len(texts), texts == expected)
"""


def _run_script(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize(
    "source, rows",
    [
        (ARRAY_SOURCE_SCRIPT, 1000),
        (TO_GRAIN_SCRIPT, 20),
        (EARLY_STOP_SCRIPT, 200),
        (DIRECTORY_SCRIPT, 30),
    ],
    ids=["ArraySource", "to_grain", "early-stop", "directory"],
)
def test_plain_script_runs_grain_workers_without_leak_warnings(tmp_path, source, rows):
    out = _run_script(tmp_path, source)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split() == ["rows", str(rows), "True"]
    assert "UnparsedFlagAccessError" not in out.stderr
    assert "leaked shared_memory" not in out.stderr, out.stderr[-4000:]
    assert "Exception ignored" not in out.stderr, out.stderr[-4000:]
