"""Type checkers see jkutils's signatures: the package ships py.typed, and mypy catches misuse."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

USER_CODE = """
import jkutils
import jkutils.progbar
from jkutils import Progbar, get_file, track

bar: jkutils.progbar.Progbar = Progbar(10, unit_name="B")
for item in track(range(3)):
    reveal_type(item)
path: str = get_file(origin="file:///tmp/x")
Progbar("ten")
Progbar(10, verbose="loud")
"""


def test_package_ships_py_typed():
    assert (ROOT / "jkutils" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["jkutils"]


def test_mypy_flags_a_string_target_and_accepts_correct_calls(tmp_path):
    user = tmp_path / "user.py"
    user.write_text(textwrap.dedent(USER_CODE))
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            "user.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [
        line.split(":", 1)[1] for line in out.stdout.splitlines() if line.startswith("user.py")
    ]
    assert lines == [
        '8: note: Revealed type is "int"',
        '10: error: Argument 1 to "Progbar" has incompatible type "str"; expected '
        '"int | float | None"  [arg-type]',
        '11: error: Argument "verbose" to "Progbar" has incompatible type "str"; expected '
        '"int"  [arg-type]',
    ], out.stdout + out.stderr
