"""Shared timing and table printing for the benchmark scripts.

Every ``benchmarks/bench_<area>.py`` exposes ``rows(quick: bool = False) -> list[Row]`` and,
when run as a script, prints its own table with :func:`print_table`. ``benchmarks/run.py``
collects the rows of every area into one table. All numbers in one table come from one run.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured line: our time beside a reference time and the physical limit.

    ``ours``, ``ref`` and ``limit`` share one unit (seconds unless ``unit`` says otherwise);
    ``higher_is_better`` flips the ratios for throughputs.
    """

    area: str
    measure: str
    ours: float
    ref_name: str = ""
    ref: float | None = None
    limit_name: str = ""
    limit: float | None = None
    unit: str = "s"
    higher_is_better: bool = False
    target: str = ""

    def ratio_to(self, other: float | None) -> float | None:
        """How many times worse than ``other`` we are (1.0 = equal, < 1 = better)."""
        if other is None or other == 0 or self.ours == 0:
            return None
        return other / self.ours if self.higher_is_better else self.ours / other


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Best wall-clock seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if value >= scale or suffix == "ns":
                return f"{value / scale:.3g} {suffix}"
    return f"{value:.4g} {unit}"


def _fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def table_lines(rows: list[Row]) -> list[str]:
    """Render rows as aligned text lines (header first)."""
    header = ("area", "measure", "jkutils", "reference", "ref time", "vs ref",
              "limit", "limit time", "vs limit", "target")
    body = [
        (r.area, r.measure, _fmt_value(r.ours, r.unit), r.ref_name or "-",
         _fmt_value(r.ref, r.unit), _fmt_ratio(r.ratio_to(r.ref)), r.limit_name or "-",
         _fmt_value(r.limit, r.unit), _fmt_ratio(r.ratio_to(r.limit)), r.target or "-")
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    return lines


def print_table(rows: list[Row]) -> None:
    """Print rows as one aligned table. Ratios: ours / reference (or reference / ours for
    throughputs), so below 1.00x means jkutils is faster."""
    for line in table_lines(rows):
        print(line)
