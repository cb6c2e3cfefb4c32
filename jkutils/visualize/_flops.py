"""FLOPs of single operations and of whole calls, from XLA's cost analysis.

XLA's cost analysis of a lowered (not yet optimised) program adds up the cost of each HLO
instruction, so the FLOPs of a whole call are the sum of the FLOPs of its operations, each
lowered on its own. This is what lets a summary give every layer its share and still add up to
the number XLA reports for the whole call (and to what Flax's ``tabulate(compute_flops=True)``
reports, which uses the same analysis). One operation's cost depends only on the primitive, its
parameters and its operand types, so costs are cached by that signature: a ResNet lowers each
distinct convolution once.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.extend import core as jex_core

__all__ = ["call_flops", "clear_cache", "formula_flops", "operation_flops"]

_CACHE_SIZE = 4096
# Operations whose cost XLA's analysis gives without lowering them: one FLOP per output element
# for plain elementwise arithmetic and comparisons, none for data movement and for
# transcendentals (counted apart, as ``transcendentals``). Checked against XLA in the tests.
_PER_ELEMENT = frozenset(
    {"add", "sub", "mul", "div", "max", "min", "lt", "gt", "eq", "neg", "abs", "select_n", "square"}
)
_FREE = frozenset(
    {"reshape", "transpose", "broadcast_in_dim", "squeeze", "slice", "exp", "log", "tanh", "rsqrt"}
)
# Operation signature -> FLOPs, oldest first (a bounded cache shared by all summaries).
_COSTS: dict[tuple, float | None] = {}


def _cost_flops(cost: Any) -> float | None:
    """``flops`` from a cost analysis result, None when the backend gave no analysis.

    XLA leaves the key out when a program does no floating-point work (a reshape), so a result
    without it is 0 FLOPs. Older JAX returned a list holding one dict.
    """
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    if cost is None:
        return None
    return float(cost.get("flops", 0.0))


def call_flops(traced: Any) -> float | None:
    """FLOPs of a traced call (``jax.jit(f).trace(...)``) from XLA's cost analysis, or None."""
    return _cost_flops(traced.lower().cost_analysis())


def _operand_key(atom: Any) -> tuple:
    if isinstance(atom, jex_core.Literal):
        return ("literal", repr(atom.val), str(atom.aval))
    return ("var", str(atom.aval))


def _signature(eqn: Any) -> tuple | None:
    """A hashable key for an equation's cost, or None when its parameters are not hashable."""
    try:
        params = tuple(sorted((k, repr(v)) for k, v in eqn.params.items()))
    except Exception:  # a parameter without a usable repr: cost it without caching
        return None
    return (eqn.primitive.name, params, tuple(_operand_key(a) for a in eqn.invars))


def _lowered_flops(eqn: Any) -> float | None:
    """Lower the one equation as a program of its own and read its FLOPs."""
    variables = list(dict.fromkeys(a for a in eqn.invars if not isinstance(a, jex_core.Literal)))
    position = {var: i for i, var in enumerate(variables)}

    def one_operation(*arrays):
        operands = [
            a.val if isinstance(a, jex_core.Literal) else arrays[position[a]] for a in eqn.invars
        ]
        return eqn.primitive.bind(*operands, **eqn.params)

    stand_ins = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in variables]
    try:
        return _cost_flops(jax.jit(one_operation).lower(*stand_ins).cost_analysis())
    except Exception:  # an operation that cannot be lowered alone (collectives, effects)
        return None


def formula_flops(eqn: Any) -> float | None:
    """The FLOPs of an operation XLA costs by a fixed rule (see ``_PER_ELEMENT``), else None."""
    name = eqn.primitive.name
    if name in _FREE:
        return 0.0
    if name in _PER_ELEMENT and len(eqn.outvars) == 1:
        return float(math.prod(eqn.outvars[0].aval.shape))
    return None


def operation_flops(eqn: Any) -> float | None:
    """FLOPs XLA's cost analysis gives one JAX equation, or None when it cannot be costed.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> (eqn,) = jax.make_jaxpr(jnp.matmul)(jnp.ones((4, 3)), jnp.ones((3, 2))).jaxpr.eqns
        >>> operation_flops(eqn)  # 2 * 4 * 3 * 2
        48.0
    """
    known = formula_flops(eqn)
    if known is not None:
        return known
    signature = _signature(eqn)
    if signature is None:
        return _lowered_flops(eqn)
    if signature not in _COSTS:
        if len(_COSTS) >= _CACHE_SIZE:
            _COSTS.pop(next(iter(_COSTS)))
        _COSTS[signature] = _lowered_flops(eqn)
    return _COSTS[signature]


def clear_cache() -> None:
    """Forget every cached operation cost (benchmarks time a first summary with it)."""
    _COSTS.clear()
