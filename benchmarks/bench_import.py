"""Start-up cost: what ``import jkutils`` and a few names cost, beside what they must import.

Each measure is the import time that ``python -X importtime`` reports for a fresh interpreter
running one import statement (the interpreter's own start-up subtracted), best of a few runs.
The reference is ``import jax`` (what every jkutils import cost when the package imported all
its modules eagerly); the limit is the import of the dependencies the names really need.

Run: ``python benchmarks/bench_import.py [--quick]``.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._harness import Row, print_table  # noqa: E402

AREA = "import"
_ENTRY = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")

# (measure, our statement, reference statement, limit name, limit statement)
CASES = [
    ("import jkutils", "import jkutils", "import jax", "python alone", "pass"),
    (
        "from jkutils import get_file, Progbar",
        "from jkutils import get_file, Progbar",
        "import jax",
        "import numpy, requests",
        "import numpy, requests",
    ),
    (
        "from jkutils import to_categorical",
        "from jkutils import to_categorical",
        "import jax, grain, h5py",
        "import jax.numpy",
        "import jax.numpy",
    ),
    (
        "from jkutils import ArraySource",
        "from jkutils import ArraySource",
        "import jax, grain, h5py",
        "import jax",
        "import jax",
    ),
]


def import_seconds(statement: str) -> float:
    """Seconds the top-level imports of ``statement`` take in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    total_us = 0
    for line in out.stderr.splitlines():
        match = _ENTRY.match(line)
        if match:  # a name without leading spaces: imported by the statement or by start-up
            total_us += int(match.group(1))
    return total_us / 1e6


def best_import_seconds(statement: str, repeat: int) -> float:
    startup = min(import_seconds("pass") for _ in range(repeat))
    return max(0.0, min(import_seconds(statement) for _ in range(repeat)) - startup)


# Seconds from iter() to the first batch of a PyDataset with 4 spawned process workers. With
# IMPORT_JAX set, each worker first imports JAX: what every worker paid while importing
# jkutils imported JAX (and grain, h5py, optax...).
FIRST_BATCH_SCRIPT = """
import os, sys, time
import numpy as np
from jkutils.data.py_dataset import PyDataset


class Rows(PyDataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        if os.environ.get("IMPORT_JAX"):
            import jax  # noqa: F401
        return np.full(4, index)


if __name__ == "__main__":
    ds = Rows(workers=4, use_multiprocessing=True)
    start = time.perf_counter()
    it = iter(ds)
    next(it)
    print(time.perf_counter() - start)
    for _ in it:
        pass
"""


def first_batch_seconds(import_jax: bool, repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "JAX_PLATFORMS": "cpu"}
    if import_jax:
        env["IMPORT_JAX"] = "1"
    with tempfile.TemporaryDirectory() as folder:
        script = pathlib.Path(folder, "first_batch.py")
        script.write_text(textwrap.dedent(FIRST_BATCH_SCRIPT))
        return min(
            float(
                subprocess.run(
                    [sys.executable, str(script)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(repeat)
        )


def rows(quick: bool = False) -> list[Row]:
    repeat = 1 if quick else 3
    out = []
    for measure, ours, ref, limit_name, limit in CASES:
        out.append(
            Row(
                AREA,
                measure,
                best_import_seconds(ours, repeat),
                ref,
                best_import_seconds(ref, repeat),
                limit_name,
                best_import_seconds(limit, repeat) if limit != "pass" else None,
            )
        )
    out.append(
        Row(
            AREA,
            "PyDataset: first batch from 4 spawned process workers",
            first_batch_seconds(False, repeat),
            "workers that import jax",
            first_batch_seconds(True, repeat),
        )
    )
    return out


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
