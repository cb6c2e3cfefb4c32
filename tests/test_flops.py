"""Tests for the per-operation FLOP counts behind print_summary's FLOPs column."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jkutils.visualize import _flops

ELEMENTWISE = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "max": jnp.maximum,
    "min": jnp.minimum,
    "lt": lambda a, b: a < b,
    "gt": lambda a, b: a > b,
    "eq": lambda a, b: a == b,
    "neg": lambda a, b: -a,
    "abs": lambda a, b: jnp.abs(a),
    "select_n": lambda a, b: jax.lax.select_n(a > b, a, b),
    "square": lambda a, b: jnp.square(a),
    "reshape": lambda a, b: a.reshape(-1),
    "transpose": lambda a, b: a.T,
    "broadcast_in_dim": lambda a, b: jax.lax.broadcast_in_dim(a, (2, *a.shape), (1, 2)),
    "squeeze": lambda a, b: jax.lax.squeeze(a[None], (0,)),
    "slice": lambda a, b: jax.lax.slice(a, (0, 1), (2, 4)),
    "exp": lambda a, b: jnp.exp(a),
    "log": lambda a, b: jnp.log(a),
    "tanh": lambda a, b: jnp.tanh(a),
    "rsqrt": lambda a, b: jax.lax.rsqrt(a),
}


def lowered_alone(eqn) -> float:
    """XLA's cost analysis of the one equation as a program (the independent reference)."""
    return _flops._lowered_flops(eqn)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.int32])
@pytest.mark.parametrize("shape", [(3, 5), (7, 4)])
def test_rule_costs_equal_xla_cost_analysis(dtype, shape):
    a, b = jnp.ones(shape, dtype), jnp.ones(shape, dtype)
    checked = set()
    for name, fn in ELEMENTWISE.items():
        if dtype == jnp.int32 and name == "rsqrt":
            continue  # floats only
        for eqn in jax.make_jaxpr(fn)(a, b).jaxpr.eqns:
            rule = _flops.formula_flops(eqn)
            if rule is not None:
                assert rule == lowered_alone(eqn), (eqn.primitive.name, dtype, shape)
                checked.add(eqn.primitive.name)
    if dtype != jnp.int32:  # JAX turns integers into floats before div, exp, log, tanh, rsqrt
        assert checked == set(ELEMENTWISE)


def test_other_operations_are_lowered_and_cached():
    _flops.clear_cache()
    x = jnp.ones((4, 3))
    (eqn,) = jax.make_jaxpr(jnp.matmul)(x, jnp.ones((3, 2))).jaxpr.eqns
    assert _flops.formula_flops(eqn) is None
    assert _flops.operation_flops(eqn) == 2 * 4 * 3 * 2
    assert len(_flops._COSTS) == 1
    assert _flops.operation_flops(eqn) == 48 and len(_flops._COSTS) == 1
