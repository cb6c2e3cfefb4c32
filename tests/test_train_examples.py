"""The per-framework training examples run end to end (a few steps each, 8 CPU devices)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["train_nnx.py", "train_linen.py", "train_equinox.py"])
def test_training_example_learns_in_a_few_steps(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "40"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", out.stdout).group(1))
    assert accuracy > 0.9  # four well separated classes: chance is 0.25
    assert "Total params" in out.stdout  # the model summary was printed
