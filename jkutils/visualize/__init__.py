"""Model introspection for JAX: layer summaries and computation graphs.

A model is what its framework makes: a Flax NNX module, a bound Linen module (or Linen variables
with ``module.apply``), an Equinox module, or any pytree of parameters with its function.
:func:`print_summary` prints one row per layer (type, shapes, arrays, FLOPs);
:func:`model_to_dot` and :func:`plot_model` draw the traced call with one node per layer. Both
find layers the same way, in :mod:`jkutils.visualize._layers`.
Names are imported on first use (``print_summary`` does not import pydot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jkutils._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    "print_summary": "jkutils.visualize.summary",
    "model_to_dot": "jkutils.visualize.graph",
    "plot_model": "jkutils.visualize.graph",
}

__all__ = ["print_summary", "model_to_dot", "plot_model"]

__getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)

if TYPE_CHECKING:
    from jkutils.visualize.graph import model_to_dot as model_to_dot
    from jkutils.visualize.graph import plot_model as plot_model
    from jkutils.visualize.summary import print_summary as print_summary
