"""Model introspection for JAX: layer summaries and computation graphs.

A model is what its framework makes: a Flax NNX module, a bound Linen module (or Linen variables
with ``module.apply``), an Equinox module, or any pytree of parameters with its function.
:func:`print_summary` prints one row per layer (type, shapes, arrays, FLOPs);
:func:`model_to_dot` and :func:`plot_model` draw the traced call with one node per layer. Both
find layers the same way, in :mod:`jkutils.visualize._layers`.
"""

from jkutils.visualize.graph import model_to_dot as model_to_dot
from jkutils.visualize.graph import plot_model as plot_model
from jkutils.visualize.summary import print_summary as print_summary

__all__ = ["print_summary", "model_to_dot", "plot_model"]
