"""Every fenced ``python`` block in README.md and docs/*.md runs as written.

Each page runs as one script, its blocks in order (later blocks see what earlier ones defined),
from an empty temporary directory, in a fresh interpreter. The code is compiled under the page's
own path with the page's line numbers, so a traceback names the page and line. It runs under the
script's ``if __name__ == "__main__":`` guard, as a user's script would keep its set-up: worker
processes that are spawned (and re-import the main script) do not run the page again. A block
preceded by an HTML comment ``<!-- skip: reason -->`` is not run; keep those for what truly
cannot run here (a real remote server, a GPU) and say why in the comment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\s*$")
SKIP = re.compile(r"^<!--\s*skip:\s*\S.*-->\s*$")
TIMEOUT_S = 540


def python_blocks(text: str) -> list[tuple[int, list[str], bool]]:
    """``(first code line number, code lines, skipped)`` for each fenced python block."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"unclosed ```python block at line {index + 1}")
        blocks.append((index + 2, lines[index + 1 : end], bool(SKIP.match(before.strip()))))
        index = end + 1
    return blocks


def page_script(text: str) -> str:
    """The page's runnable blocks at their own line numbers, everything else blank."""
    lines = [""] * len(text.splitlines())
    for first, code, skipped in python_blocks(text):
        if not skipped:
            lines[first - 1 : first - 1 + len(code)] = code
    return "\n".join(lines) + "\n"


# Runs the page's code (argv[2]) compiled under the page's path (argv[1]).
DRIVER = """
import sys

if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        code = compile(f.read(), sys.argv[1], "exec")
    exec(code, globals())
"""


def _failure_place(stderr: str, page_path: Path, page: str) -> str:
    """``page:line`` of the deepest frame in the page's code, and the error line."""
    frames = re.findall(rf'File "{re.escape(str(page_path))}", line (\d+)', stderr)
    where = f"{page}:{frames[-1]}" if frames else page
    error = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"{where}: {error}"


def test_block_parser_keeps_line_numbers_and_skip_marks():
    text = "# T\n```python\nx = 1\n```\n\n<!-- skip: needs a GPU -->\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(3, ["x = 1"], False), (8, ["y = 2"], True)]
    assert page_script(text).splitlines() == ["", "", "x = 1", "", "", "", "", "", ""]


def page_failure(page: Path, name: str, folder: Path) -> str | None:
    """Run a page's blocks as one script in ``folder``; ``None``, or where and why it failed."""
    code = folder / "page_code.py"
    code.write_text(page_script(page.read_text()))
    driver = folder / "run_page.py"
    driver.write_text(DRIVER)
    # 8 host devices, as in the tests and as the parallel page assumes.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "JAX_NUM_CPU_DEVICES": "8",
    }
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, str(driver), str(page), str(code)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if out.returncode == 0:
        return None
    return f"{_failure_place(out.stderr, page, name)}\n--- stderr (end) ---\n{out.stderr[-3000:]}"


def test_a_failing_block_is_reported_with_its_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# P\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x + labels\n```\n")
    (tmp_path / "run").mkdir()
    failure = page_failure(page, "docs/page.md", tmp_path / "run")
    assert failure.startswith("docs/page.md:10: NameError: name 'labels' is not defined")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_snippets_run_as_written(page, tmp_path):
    if not any(not skipped for _, _, skipped in python_blocks(page.read_text())):
        pytest.skip("no runnable python blocks")
    failure = page_failure(page, str(page.relative_to(ROOT)), tmp_path)
    assert failure is None, failure
