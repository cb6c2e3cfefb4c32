"""Model introspection for JAX: parameter summaries and computation graphs.

A model is a parameter pytree plus a function. :func:`print_summary` tabulates the pytree (and,
given the function and example inputs, output shapes, FLOPs and memory); :func:`model_to_dot` and
:func:`plot_model` draw the traced function. Both read the function through one jaxpr walker.
"""

from jkutils.visualize.graph import model_to_dot as model_to_dot
from jkutils.visualize.graph import plot_model as plot_model
from jkutils.visualize.summary import print_summary as print_summary

__all__ = ["print_summary", "model_to_dot", "plot_model"]
