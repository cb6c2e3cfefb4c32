"""Module-level ``__getattr__`` and ``__dir__`` that import a package's public names on first use.

A package lists which module defines each public name; nothing is imported until a name is
asked for, so importing the package (or one light name from it) does not pay for its heaviest
dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    namespace: dict[str, Any], exports: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the ``(__getattr__, __dir__)`` pair for a package whose names load on first use.

    Args:
        namespace: The package's ``globals()``; each name is cached there once imported.
        exports: Public name -> the module that defines it under that name.
        submodules: Submodules reachable as attributes (imported on first access).

    Example:
        >>> ns = {"__name__": "demo"}
        >>> getattr_, dir_ = lazy_attributes(ns, {"sqrt": "math"})
        >>> getattr_("sqrt")(9.0)
        3.0
        >>> "sqrt" in dir_()
        True
    """
    package = namespace["__name__"]
    modules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports, *modules})

    return __getattr__, __dir__
