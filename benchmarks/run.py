"""Run every area's benchmark and print one table from this single run.

Usage: ``python benchmarks/run.py [--quick] [area ...]`` (areas: the ``bench_<area>.py`` names).
Ratios are jkutils / reference (or reference / jkutils for throughputs): below 1.00x is better.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import platform
import sys
import traceback

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

# The parallel rows need the 8 forced host devices, and they must exist before any area's
# first computation initialises the CPU backend.
jax.config.update("jax_num_cpu_devices", 8)

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._harness import Row, print_table  # noqa: E402


def _areas() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def _machine() -> str:
    cores = os.cpu_count()
    return (f"{platform.processor() or platform.machine()}, {cores} cores, Python "
            f"{platform.python_version()}, jax {jax.__version__} on {jax.default_backend()}")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    wanted = [a for a in argv if not a.startswith("--")] or _areas()
    rows: list[Row] = []
    failed: list[str] = []
    for area in wanted:
        print(f"running {area} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{area}")
            rows.extend(module.rows(quick=quick))
        except Exception:
            traceback.print_exc()
            failed.append(area)
    print(f"machine: {_machine()}")
    print_table(rows)
    if failed:
        print(f"failed areas: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
