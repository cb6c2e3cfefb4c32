"""Importing jkutils is cheap: each public name loads only what it needs, on first use."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jkutils

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "grain", "h5py", "optax", "pydot", "requests", "cloudpickle", "numpy")


def modules_loaded_by(statement: str) -> set[str]:
    """Which of the heavy dependencies a fresh interpreter has loaded after ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout)) & set(HEAVY)


@pytest.mark.parametrize(
    "statement, expected",
    [
        ("import jkutils", set()),
        ("import jkutils.data, jkutils.visualize", set()),
        ("from jkutils import Progbar, track", {"numpy"}),
        ("from jkutils import get_file, Progbar", {"numpy", "requests"}),
        ("from jkutils import pad_sequences", {"numpy"}),
        ("from jkutils import ArraySource", {"numpy", "jax", "cloudpickle"}),
        ("from jkutils import print_summary", {"numpy", "jax", "cloudpickle"}),
    ],
)
def test_names_import_only_their_own_dependencies(statement, expected):
    # cloudpickle comes with jax itself, not from jkutils.
    assert modules_loaded_by(statement) == expected


def test_every_public_name_resolves_to_its_defining_module():
    for name, module in jkutils._EXPORTS.items():
        assert getattr(jkutils, name) is getattr(importlib.import_module(module), name)
    assert set(jkutils.__all__) <= set(dir(jkutils))


def test_submodules_are_attributes_not_shadowed_by_functions():
    assert jkutils.progbar is sys.modules["jkutils.progbar"]
    assert jkutils.data.to_grain is importlib.import_module("jkutils.data.py_dataset").to_grain
    assert jkutils.visualize.print_summary is jkutils.print_summary


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        jkutils.nonexistent  # noqa: B018
    with pytest.raises(ImportError):
        exec("from jkutils import nonexistent", {})
