"""Model introspection for JAX: parameter summaries and computation graphs.

A model is a parameter pytree plus a function. :func:`print_summary` tabulates the pytree (and,
given the function and example inputs, output shapes, FLOPs and memory); :func:`model_to_dot` and
:func:`plot_model` draw the traced function. Both read the function through one jaxpr walker.
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
