"""Reading the text table that print_summary prints, for the summary tests."""

from __future__ import annotations

import re

from jkutils.visualize import print_summary


def summary_lines(model, apply_fn=None, **kwargs) -> list[str]:
    lines: list[str] = []
    print_summary(model, apply_fn, print_fn=lines.append, **kwargs)
    return lines


def table_rows(lines: list[str]) -> dict[str, list[str]]:
    """First line of each table row, split on runs of 2+ spaces, keyed by layer name."""
    start = next(i for i, line in enumerate(lines) if line.startswith("=")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("="))
    rows = {}
    for line in lines[start:end]:
        if line and not line.startswith("  "):
            cells = re.split(r"\s{2,}", line.strip())
            rows[cells[0]] = cells
    return rows


def table_columns(lines: list[str]) -> dict[str, dict[str, str]]:
    """Layer name -> {header: first line of its cell}."""
    start = next(i for i, line in enumerate(lines) if line.startswith("="))
    headers = re.split(r"\s{2,}", lines[start - 1].strip())
    return {
        name: dict(zip(headers, cells, strict=True)) for name, cells in table_rows(lines).items()
    }


def total_line(lines: list[str], label: str) -> str:
    return next(line.strip() for line in lines if line.strip().startswith(label))


def number(text: str) -> int:
    return int(text.replace(",", ""))
