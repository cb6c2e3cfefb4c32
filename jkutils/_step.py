"""The data-parallel training step: the user's loss and model, split across a device mesh.

One jitted program per row layout (:mod:`jkutils._shards`): ``shard_map`` over the mesh, each
device rebuilding the user's model from the arrays it was given, differentiating its trainable
part (:func:`jkutils._model.view_of`), and ``psum`` combining the devices' shares of the
batch's mean loss, their gradients, metrics and state, each weighted by its real rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jkutils import _shards
from jkutils._model import NNX, view_of

DATA_AXIS = "data"


# ----------------------------------------------------------------------------- loss outputs


def _parts(out: Any, has_aux: bool, has_state: bool) -> tuple[Any, Any, Any]:
    """``(loss, aux, new_state)`` from what ``loss_fn`` returned, per the step's flags."""
    if not (has_aux or has_state):
        return out, None, None
    if not (isinstance(out, tuple) and len(out) == 2):
        shape = "(loss, (new_state, aux))" if has_aux and has_state else "(loss, extra)"
        raise ValueError(
            f"With has_aux={has_aux} and has_state={has_state}, `loss_fn` must return {shape}. "
            f"It returned {type(out).__name__}."
        )
    loss, extra = out
    if has_aux and has_state:
        if not (isinstance(extra, tuple) and len(extra) == 2):
            raise ValueError(
                "With has_aux=True and has_state=True, `loss_fn` must return "
                f"(loss, (new_state, aux)); its second output is {type(extra).__name__}."
            )
        return loss, extra[1], extra[0]
    return (loss, extra, None) if has_aux else (loss, None, extra)


def _shard_mean(loss: Any, rows: int) -> jax.Array:
    """The mean over this device's rows of a scalar loss or of per-example losses."""
    if isinstance(loss, tuple | list | dict):
        raise ValueError(
            f"`loss_fn` returned a {type(loss).__name__} where a loss was expected; if it "
            f"returns (loss, aux), pass has_aux=True."
        )
    loss = jnp.asarray(loss)
    if loss.shape not in ((), (rows,)):
        raise ValueError(
            f"`loss_fn` must return a scalar mean loss or one loss per example (shape "
            f"({rows},) on a device's {rows} rows); it returned shape {loss.shape}."
        )
    if not jnp.issubdtype(loss.dtype, jnp.inexact):
        raise ValueError(f"`loss_fn` must return a float loss; it returned dtype {loss.dtype}.")
    return jnp.mean(loss)


# ----------------------------------------------------------------------------- collectives


def _weighted_sum(x: jax.Array, weight: jax.Array) -> jax.Array:
    """``sum_d weight_d * x_d`` over the devices: a float leaf averaged by real rows."""
    return jax.lax.psum(weight.astype(x.dtype) * x, DATA_AXIS)


def _first_device(x: jax.Array) -> jax.Array:
    """Device 0's value of a non-float leaf, the same on every device."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(x)
        return jax.random.wrap_key_data(_first_device(jax.random.key_data(x)), impl=impl)
    first = jax.lax.axis_index(DATA_AXIS) == 0
    as_int = x.astype(jnp.int32) if x.dtype == jnp.bool_ else x
    summed = jax.lax.psum(jnp.where(first, as_int, jnp.zeros_like(as_int)), DATA_AXIS)
    return summed.astype(x.dtype)


def _agreed(tree: Any, weight: jax.Array) -> Any:
    """``tree`` made the same on every device: float leaves averaged by real rows (a leaf
    already equal everywhere stays as it is: the weights sum to 1), others from device 0."""

    def agree(x):
        if not isinstance(x, jax.Array):
            return x
        if jnp.issubdtype(x.dtype, jnp.inexact):
            return _weighted_sum(x, weight)
        return _first_device(x)

    return jax.tree.map(agree, tree)


def _split_aux(aux: Any, rows: int) -> tuple[Any, list, list]:
    """Aux leaves as (structure, per-example leaves, other leaves): a leaf whose leading size
    is the device's row count is per example; every other leaf is a metric."""
    leaves, treedef = jax.tree.flatten(aux)
    per_example = [x if jnp.ndim(x) and jnp.shape(x)[0] == rows else None for x in leaves]
    metrics = [None if p is not None else jnp.asarray(x) for p, x in zip(per_example, leaves)]
    return treedef, per_example, metrics


def _as_float(x: jax.Array) -> jax.Array:
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)


# ----------------------------------------------------------------------------- the program


class _Step:
    """The step's flags and functions, and one compiled program per row layout."""

    def __init__(
        self,
        loss_fn: Callable,
        optimizer: optax.GradientTransformation,
        mesh: Mesh,
        has_aux: bool,
        has_state: bool,
        static_argnums: tuple[int, ...],
        donate: bool,
    ):
        self.loss_fn, self.optimizer, self.mesh = loss_fn, optimizer, mesh
        self.has_aux, self.has_state = has_aux, has_state
        self.static_argnums, self.donate = static_argnums, donate
        self.repl = NamedSharding(mesh, P())
        self.split = NamedSharding(mesh, P(DATA_AXIS))
        self.programs: dict[Any, Callable] = {}
        self.window = _shards.InFlight(_shards.in_flight_limit(mesh))

    # The per-device computation -------------------------------------------------------

    def _loss_args(self, model, state, batch, extras, statics):
        first = (model, state, batch) if self.has_state else (model, batch)
        args, dynamic, static = list(first), iter(extras), dict(statics)
        for position in range(len(first), len(first) + len(extras) + len(static)):
            args.append(static[position] if position in static else next(dynamic))
        return args

    def _per_device(self, statics, model, state, opt_state, batch, extras, key, weights):
        model_static, statics, constant_weights = statics
        if constant_weights is not None:  # one process: the layout's weights, compiled in
            weights = jnp.asarray(constant_weights)[jax.lax.axis_index(DATA_AXIS)][None]
        weight = weights[0]
        rows = jax.tree.leaves(batch)[0].shape[0]
        view = view_of(_shards.combined(model, model_static))
        kwargs = {}
        if key is not None:
            kwargs["key"] = jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS))

        def share(trainable):
            rebuilt = view.rebuild(trainable, view.state)
            out = self.loss_fn(*self._loss_args(rebuilt, state, batch, extras, statics), **kwargs)
            loss, aux, new_state = _parts(out, self.has_aux, self.has_state)
            inner = _inner_state(view, rebuilt)
            return weight * _shard_mean(loss, rows), (aux, new_state, inner)

        # Without replication checks (shard_map below) the gradient is this device's alone;
        # psum adds the devices' shares.
        grad_fn = jax.value_and_grad(share, has_aux=True)
        (loss, (aux, new_state, inner)), grads = grad_fn(view.trainable)
        loss, grads = jax.lax.psum((loss, grads), DATA_AXIS)
        updates, opt_state = self.optimizer.update(grads, opt_state, view.trainable)
        trained = optax.apply_updates(view.trainable, updates)
        model = _shards.partitioned(view.rebuild(trained, _agreed(inner, weight)))[0]
        new_state = _agreed(new_state, weight)
        treedef, per_example, metrics = _split_aux(aux, rows)
        metrics = [None if m is None else _weighted_sum(_as_float(m), weight) for m in metrics]
        self._aux_treedef = treedef
        return model, new_state, opt_state, loss, metrics, per_example

    # The jitted program over the mesh -------------------------------------------------

    def program(self, layout: _shards.RowLayout) -> Callable:
        """The compiled step for batches laid out as ``layout`` (cached)."""
        cache_key = None if layout.identity else layout
        if cache_key not in self.programs:
            first_slots = None if layout.identity else layout.first_slots
            weights = None if self.mesh.is_multi_process else layout.weights
            self.programs[cache_key] = self._compile(first_slots, weights)
        return self.programs[cache_key]

    def _compile(self, first_slots: np.ndarray | None, weights: Any) -> Callable:
        """The jitted step; device weights compiled in when given, else an input."""

        def run(statics, model, state, opt_state, batch, extras, key, weights_in):
            per_device = jax.shard_map(
                lambda *a: self._per_device((*statics, weights), *a),
                mesh=self.mesh,
                in_specs=(P(), P(), P(), P(DATA_AXIS), P(), P(), P(DATA_AXIS)),
                out_specs=(P(), P(), P(), P(), P(), P(DATA_AXIS)),
                # Replication checks reject collectives over a vmap axis inside shard_map
                # (Equinox's BatchNorm) in jax 0.10; every P() output is made equal above.
                check_vma=False,
            )
            model, state, opt_state, loss, metrics, per_example = per_device(
                model, state, opt_state, batch, extras, key, weights_in
            )
            if first_slots is not None and not self.mesh.is_multi_process:
                per_example = jax.tree.map(lambda x: x[first_slots], per_example)
            leaves = [m if p is None else p for m, p in zip(metrics, per_example)]
            aux = jax.tree.unflatten(self._aux_treedef, leaves)
            return model, state, opt_state, loss, aux

        repl, split = self.repl, self.split
        return jax.jit(
            run,
            static_argnums=(0,),
            in_shardings=(repl, repl, repl, split, repl, repl, split),
            donate_argnums=(1, 2, 3) if self.donate else (),
        )


def _inner_state(view: Any, model: Any) -> Any:
    """The state a model carries after a call: NNX modules update theirs in place."""
    if view.framework == NNX:
        from flax import nnx

        return nnx.state(model, nnx.Not(nnx.Param))
    return view.state
