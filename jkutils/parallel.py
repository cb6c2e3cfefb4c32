"""Data parallelism over a 1-D device mesh: one function, many devices, the same numbers.

Keras 2's ``multi_gpu_model`` copied a model onto each GPU under device scopes and concatenated
the outputs on the CPU; Keras 3's ``DataParallel`` shards the batch but fails when the batch does
not divide by the device count. Here every multi-device function is ``jax.shard_map`` over a
:class:`jax.sharding.Mesh` with one axis, ``"data"``, built with ``Auto`` axis types:

* :func:`make_data_mesh`, :func:`replicate`, :func:`shard_batch` place arrays on the mesh;
* :func:`data_parallel` splits the batch arguments of a function across the devices, pads a
  batch that does not divide (with copies of its last row) and strips the padding again;
* :func:`data_parallel_train_step` builds an optax training step whose gradients are summed
  across devices with each shard weighted by its number of real examples, so any batch size
  gives the single-device numbers;
* :func:`multi_gpu_model` keeps Keras 2's signature on top of :func:`data_parallel`.

In a multi-process program (after ``jax.distributed.initialize``) a mesh may span the devices of
every process. Each process then passes its own rows (host data) and the global batch is the
concatenation of the processes' rows in process order.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jkutils import _shards, _step
from jkutils._model import view_of
from jkutils._pytree import leaf_label

__all__ = [
    "make_data_mesh",
    "replicate",
    "shard_batch",
    "data_parallel",
    "data_parallel_train_step",
    "multi_gpu_model",
    "DATA_AXIS",
]

DATA_AXIS = _step.DATA_AXIS


# ----------------------------------------------------------------------------- meshes


def _devices_from_count(count: Any) -> list[jax.Device]:
    """The first ``count`` devices of the default backend."""
    available = jax.devices()
    count = operator.index(count)
    if not 1 <= count <= len(available):
        raise ValueError(
            f"`devices` asks for {count} devices but {len(available)} exist "
            f"({available[0].platform}); pass an int in [1, {len(available)}]."
        )
    return available[:count]


def _devices_from_list(devices: Sequence[Any]) -> list[jax.Device]:
    """``devices`` checked to be a non-empty list of distinct JAX devices."""
    devices = list(devices)
    if not devices:
        raise ValueError("`devices` must not be empty. Received: devices=[]")
    for device in devices:
        if not isinstance(device, jax.Device):
            raise TypeError(
                f"`devices` must hold jax.Device objects (from jax.devices()). Received an "
                f"element {device!r} of type {type(device).__name__}"
            )
    if len(set(devices)) != len(devices):
        raise ValueError(f"`devices` lists a device more than once. Received: devices={devices}")
    return devices


def _device_list(devices: Any) -> list[jax.Device]:
    """The devices named by ``None`` (all), an int (the first n) or a list of devices."""
    if devices is None:
        return jax.devices()
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        return _devices_from_count(devices)
    if isinstance(devices, Sequence | np.ndarray) and not isinstance(devices, str | bytes):
        return _devices_from_list(np.ravel(np.asarray(devices, dtype=object)).tolist())
    raise TypeError(
        f"`devices` must be None, an int or a list of devices. Received: devices={devices!r} "
        f"(of type {type(devices).__name__})"
    )


def make_data_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over the given devices, with ``Auto`` axis types.

    ``Auto`` (not ``jax.make_mesh``'s default ``Explicit``) lets jitted code take inputs of any
    placement and slice sharded results, which :func:`data_parallel` relies on.

    Args:
      devices: ``None`` for every device of the default backend (in a multi-process program,
        every process's devices), an int ``n`` for the first ``n`` of them, or a list of
        ``jax.Device`` objects.

    Returns:
      A ``jax.sharding.Mesh`` of shape ``{"data": len(devices)}``.

    Raises:
      ValueError: for a count outside ``[1, jax.device_count()]``, an empty list or a device
        listed twice.
      TypeError: for anything else than ``None``, an int or a list of devices.

    Example:
      >>> mesh = make_data_mesh(4)
      >>> mesh.shape["data"]
      4
    """
    device_list = _device_list(devices)
    return Mesh(np.array(device_list), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def _auto_mesh(mesh: Any) -> Mesh:
    """``mesh`` checked to be 1-D, returned with ``Auto`` axis types and the ``"data"`` axis."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"`mesh` must be a jax.sharding.Mesh. Received: mesh={mesh!r} "
            f"(of type {type(mesh).__name__})"
        )
    if mesh.devices.ndim != 1:
        raise ValueError(
            f"`mesh` must have exactly one axis (the batch axis). Received a mesh with axes "
            f"{dict(mesh.shape)}"
        )
    return Mesh(mesh.devices, (DATA_AXIS,), axis_types=(AxisType.Auto,))


def _resolve_mesh(devices: Any, mesh: Any) -> Mesh:
    """The mesh given, or one built from ``devices``; never both."""
    if mesh is None:
        return make_data_mesh(devices)
    if devices is not None:
        raise ValueError(
            f"Pass either `devices` or `mesh`, not both. Received: devices={devices!r} and a mesh"
        )
    return _auto_mesh(mesh)


# ----------------------------------------------------------------------------- placement


def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _split(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def _fed_device_count(mesh: Mesh) -> int:
    """How many devices this process's rows are split across: the mesh's devices that belong
    to this process (all of them in a single-process program)."""
    if not mesh.is_multi_process:
        return mesh.size
    return sum(device.process_index == jax.process_index() for device in mesh.devices.flat)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``tree`` with every array leaf copied onto every device of ``mesh``.

    In a multi-process program every process must pass the same values.

    Args:
      tree: a pytree of arrays (parameters, optimizer state).
      mesh: the mesh to place on, e.g. from :func:`make_data_mesh`.

    Returns:
      The same pytree of ``jax.Array`` s with a fully replicated sharding.

    Example:
      >>> params = replicate({"w": np.ones((3, 2))}, make_data_mesh(2))
      >>> params["w"].sharding.is_fully_replicated
      True
    """
    return jax.device_put(tree, _replicated(_auto_mesh(mesh)))


def _leading_sizes(tree: Any, argname: str) -> list[tuple[str, int]]:
    """``(path, leading size)`` of every leaf; a leaf without a leading axis is an error."""
    sizes = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(
                f"Every leaf of `{argname}` needs a leading batch axis. Leaf "
                f"{leaf_label(path)} is a scalar ({leaf!r})."
            )
        sizes.append((leaf_label(path), shape[0]))
    return sizes


def _batch_size(tree: Any, argname: str) -> int:
    """The common leading size of every leaf of ``tree``; unequal sizes are an error."""
    sizes = _leading_sizes(tree, argname)
    if not sizes:
        raise ValueError(f"`{argname}` holds no arrays; a batch needs at least one leaf.")
    if len({size for _, size in sizes}) != 1:
        listing = ", ".join(f"{name}: {size}" for name, size in sizes)
        raise ValueError(
            f"Every leaf of `{argname}` must have the same leading (batch) size. Received {listing}"
        )
    return sizes[0][1]


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """``tree`` with the leading axis of every leaf split evenly across the devices of ``mesh``.

    In a single process ``tree`` is the whole batch. In a multi-process program it is this
    process's rows, and the result is the global batch (the processes' rows in process order),
    built with ``jax.make_array_from_process_local_data``.

    Args:
      tree: a pytree of arrays sharing one leading (batch) size that divides by the number of
        (local) devices. Use :func:`data_parallel` to run on batches that do not divide.
      mesh: the mesh to place on, e.g. from :func:`make_data_mesh`.

    Returns:
      The same pytree of ``jax.Array`` s sharded as ``PartitionSpec("data")``.

    Raises:
      ValueError: for scalar leaves, unequal leading sizes or a size that does not divide.

    Example:
      >>> batch = shard_batch({"x": np.zeros((8, 3))}, make_data_mesh(4))
      >>> batch["x"].addressable_shards[0].data.shape
      (2, 3)
    """
    mesh = _auto_mesh(mesh)
    size = _batch_size(tree, "tree")
    parts = _fed_device_count(mesh)
    if size % parts:
        raise ValueError(
            f"The batch size {size} of `tree` does not divide by the {parts} devices of the "
            f"mesh{' in this process' if mesh.is_multi_process else ''}; pad it to a multiple "
            f"of {parts} or use data_parallel, which pads and strips the padding for you."
        )
    return _placed_batch(tree, mesh)


def _placed_batch(tree: Any, mesh: Mesh) -> Any:
    """Host rows placed as one global batch (multi-process) or split across devices."""
    sharding = _split(mesh)
    if mesh.is_multi_process:
        return jax.tree.map(
            lambda leaf: jax.make_array_from_process_local_data(sharding, np.asarray(leaf)), tree
        )
    return jax.device_put(tree, sharding)


# ----------------------------------------------------------------------------- padding


def _padded_leaf(leaf: Any, size: int) -> Any:
    """``leaf`` grown along axis 0 to ``size`` rows by repeating its last row (zeros if empty).

    Repeated real rows keep padded examples finite through any model, so masking them out can
    never inject NaN into gradients.
    """
    extra = size - np.shape(leaf)[0]
    if extra == 0:
        return leaf
    xp = jnp if isinstance(leaf, jax.Array) else np
    leaf = leaf if xp is jnp else np.asarray(leaf)
    widths = [(0, extra)] + [(0, 0)] * (leaf.ndim - 1)
    return xp.pad(leaf, widths, mode="edge" if leaf.shape[0] else "constant")


def _row_counts(rows: int, mesh: Mesh) -> np.ndarray:
    """Rows fed by each process: ``[rows]`` in one process, one small gather across many."""
    if mesh.is_multi_process:
        return np.ravel(multihost_utils.process_allgather(np.int64(rows)))
    return np.array([rows])


def _padded_size(rows: int, mesh: Mesh, argname: str) -> int:
    """Rows each process feeds after padding: the most rows of any process, rounded up to a
    multiple of the process's devices (every process must feed the same number of rows).

    Raises ValueError when no process has any row.
    """
    counts = _row_counts(rows, mesh)
    if counts.sum() == 0:
        raise ValueError(f"`{argname}` is an empty batch (leading size 0); nothing to compute.")
    parts = _fed_device_count(mesh)
    return -(-int(counts.max()) // parts) * parts


# ----------------------------------------------------------------------------- data_parallel


def _positions(value: Any, name: str) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints) as a sorted tuple of distinct non-negative ints."""
    nums = (value,) if isinstance(value, int | np.integer) else value
    try:
        nums = tuple(nums)
    except TypeError:
        nums = (None,)
    if any(isinstance(n, bool) or not isinstance(n, int | np.integer) for n in nums):
        raise TypeError(
            f"`{name}` must be an int or a sequence of ints. Received: {name}={value!r}"
        )
    if any(n < 0 for n in nums) or len(set(nums)) != len(nums):
        raise ValueError(
            f"`{name}` must hold distinct non-negative positions. Received: {name}={value!r}"
        )
    return tuple(sorted(int(n) for n in nums))


def _batch_argnums(batch_argnums: Any) -> tuple[int, ...]:
    """``batch_argnums`` checked: distinct non-negative positions, at least one."""
    nums = _positions(batch_argnums, "batch_argnums")
    if not nums:
        raise TypeError(
            f"`batch_argnums` must be an int or a non-empty sequence of ints. Received: "
            f"batch_argnums={batch_argnums!r}"
        )
    return nums


def _checked_outputs(out: Any, rows: int) -> Any:
    """``out`` (one shard's outputs) checked to have the shard's rows as leading axis."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(out):
        if leaf.ndim == 0 or leaf.shape[0] != rows:
            raise ValueError(
                f"data_parallel needs every output of `fn` to have the batch as its leading "
                f"axis (one row per example); output {leaf_label(path)} has shape {leaf.shape} "
                f"for a shard of {rows} rows. Reduce over the batch outside `fn`."
            )
    return out


def _sharded_apply(
    fn: Callable, mesh: Mesh, batch_argnums: tuple[int, ...], statics: tuple, kwargs: dict
) -> Callable:
    """``fn`` under ``shard_map``: batch arguments split, others replicated, outputs split."""

    def per_shard(*args):
        rows = jax.tree.leaves([args[i] for i in batch_argnums])[0].shape[0]
        return _checked_outputs(fn(*_with_statics(args, statics), **kwargs), rows)

    in_specs = tuple(P(DATA_AXIS) if i in batch_argnums else P() for i in range(len(statics)))
    return jax.shard_map(per_shard, mesh=mesh, in_specs=in_specs, out_specs=P(DATA_AXIS))


def _apply_program(fn: Callable, mesh: Mesh, batch_argnums: tuple[int, ...]) -> Callable:
    """The jitted program: shard, apply, and (single process) strip padding to ``rows``."""

    @functools.partial(jax.jit, static_argnums=(0, 1, 2))
    def program(rows, statics, kwargs_items, *args):
        out = _sharded_apply(fn, mesh, batch_argnums, statics, dict(kwargs_items))(*args)
        return out if rows is None else jax.tree.map(lambda leaf: leaf[:rows], out)

    return program


def _hashable(value: Any, what: str) -> Any:
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"{what} must be hashable. Received: {value!r}") from None
    return value


def _without_statics(args: tuple, static_argnums: tuple[int, ...]) -> tuple[list, tuple]:
    """``args`` as (the arrays to trace, what is constant per argument).

    A static argument is passed as ``None`` and kept whole as a constant; an Equinox module
    passes its arrays and keeps its other fields (functions) as a constant; other arguments
    pass as they are.
    """
    dynamic: list = []
    statics: list[tuple[str, Any] | None] = []
    for i, arg in enumerate(args):
        if i in static_argnums:
            dynamic.append(None)
            statics.append(("value", _hashable(arg, f"Static argument {i}")))
        else:
            arrays, static = _shards.partitioned(arg)
            dynamic.append(arrays)
            statics.append(None if static is None else ("fields", static))
    return dynamic, tuple(statics)


def _with_statics(args: tuple, statics: tuple) -> list:
    """The arguments :func:`_without_statics` split, put back together."""
    out = []
    for arg, static in zip(args, statics):
        if static is None:
            out.append(arg)
        elif static[0] == "value":
            out.append(static[1])
        else:
            out.append(_shards.combined(arg, static[1]))
    return out


def _static_kwargs(kwargs: dict) -> tuple:
    """Keyword arguments as a hashable, ordered tuple (they are static to the program)."""
    for name, value in kwargs.items():
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"Keyword arguments of a data_parallel function are static and must be "
                f"hashable (e.g. training=False); pass arrays positionally. Received: "
                f"{name}={value!r}"
            ) from None
    return tuple(sorted(kwargs.items()))


def _placed_args(args: tuple, batch_argnums: tuple[int, ...], mesh: Mesh, size: int) -> list:
    """Batch arguments padded to ``size`` rows and split; the others replicated."""
    placed = []
    for i, arg in enumerate(args):
        if i in batch_argnums:
            placed.append(_placed_batch(jax.tree.map(lambda x: _padded_leaf(x, size), arg), mesh))
        else:
            placed.append(replicate(arg, mesh))
    return placed


def _local_rows_of(out: Any, rows: int) -> Any:
    """This process's first ``rows`` output rows, from its addressable shards in order."""

    def local(leaf):
        shards = sorted(leaf.addressable_shards, key=lambda s: s.index[0].start or 0)
        return np.concatenate([np.asarray(s.data) for s in shards])[:rows]

    return jax.tree.map(local, out)


def _batch_rows(args: tuple, batch_argnums: tuple[int, ...]) -> int:
    """The common leading size of all batch arguments."""
    if batch_argnums[-1] >= len(args):
        raise ValueError(
            f"`batch_argnums`={batch_argnums} names argument {batch_argnums[-1]} but the "
            f"function was called with {len(args)} positional arguments."
        )
    batch = {f"args[{i}]": args[i] for i in batch_argnums}
    return _batch_size(batch, "batch arguments")


def data_parallel(
    fn: Callable,
    devices: int | Sequence[jax.Device] | None = None,
    *,
    batch_argnums: int | Sequence[int] = (1,),
    static_argnums: int | Sequence[int] = (),
    mesh: Mesh | None = None,
) -> Callable:
    """``fn`` run with its batch split across devices; the result equals ``fn`` on the batch.

    The positional arguments named by ``batch_argnums`` (pytrees of arrays sharing one leading
    size) are split on their leading axis across the mesh; every other positional argument is
    replicated; keyword arguments are passed to ``fn`` as static (hashable) values, e.g.
    ``training=False``. A batch that does not divide by the device count is padded with copies
    of its last row and the padded rows are removed from the outputs, so any batch size works.
    Every output of ``fn`` must have the batch as leading axis (one row per example). The
    program is compiled once per input shape and dtype. A model argument may be an NNX or
    Equinox module: an Equinox module's fields that are not arrays (activation functions) are
    compiled in as constants, as ``eqx.filter_jit`` does.

    In a multi-process program each process passes its own rows and receives the outputs for
    those rows as NumPy arrays; the processes may hold different numbers of rows.

    Args:
      fn: a function such as ``apply_fn(params, x)``; must be traceable by ``jax.jit``.
      devices: ``None`` (all devices), an int (the first n) or a list of devices.
      batch_argnums: position(s) of the batch arguments; default ``(1,)``.
      static_argnums: position(s) of arguments that are Python constants (a bool flag); they
        must be hashable and are compiled in, one program per value.
      mesh: a 1-D mesh to use instead of ``devices``.

    Returns:
      A function with ``fn``'s positional signature; its ``mesh`` attribute is the mesh used.

    Example:
      >>> apply = lambda params, x: x @ params["w"]
      >>> run = data_parallel(apply, 4)
      >>> run({"w": np.ones((3, 2))}, np.ones((13, 3))).shape
      (13, 2)
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable. Received: fn={fn!r}")
    mesh = _resolve_mesh(devices, mesh)
    batch_argnums = _batch_argnums(batch_argnums)
    static_argnums = _positions(static_argnums, "static_argnums")
    if set(batch_argnums) & set(static_argnums):
        raise ValueError(
            f"An argument cannot be both a batch and static. Received: "
            f"batch_argnums={batch_argnums}, static_argnums={static_argnums}"
        )
    program = _apply_program(fn, mesh, batch_argnums)
    window = _shards.InFlight(_shards.in_flight_limit(mesh))

    @functools.wraps(fn)
    def run(*args, **kwargs):
        kwargs_items = _static_kwargs(kwargs)
        rows = _batch_rows(args, batch_argnums)
        size = _padded_size(rows, mesh, "batch arguments")
        dynamic, statics = _without_statics(args, static_argnums)
        placed = _placed_args(dynamic, batch_argnums, mesh, size)
        out = program(None if mesh.is_multi_process else rows, statics, kwargs_items, *placed)
        window.admit(out)
        return _local_rows_of(out, rows) if mesh.is_multi_process else out

    run.mesh = mesh
    return run


# ----------------------------------------------------------------------------- train step


def _check_optimizer(optimizer: Any) -> None:
    if not all(callable(getattr(optimizer, name, None)) for name in ("init", "update")):
        raise TypeError(
            f"`optimizer` must be an optax GradientTransformation (with `init` and `update`), "
            f"e.g. optax.adam(1e-3). Received: optimizer={optimizer!r}"
        )


def _rows_of(batch: Any) -> int:
    """The batch's leading size, checked cheaply; the detailed check explains any problem."""
    leaves = jax.tree.leaves(batch)
    try:
        sizes = {leaf.shape[0] for leaf in leaves}
    except (AttributeError, IndexError):
        sizes = set()
    if len(sizes) != 1:
        return _batch_size(batch, "batch")
    return sizes.pop()


def _static_positions(static_argnums: Any, first_extra: int) -> tuple[int, ...]:
    """``static_argnums`` checked to name ``loss_fn`` arguments after the batch."""
    nums = _positions(static_argnums, "static_argnums")
    if any(n < first_extra for n in nums):
        raise ValueError(
            f"`static_argnums` must name arguments of `loss_fn` after the batch (positions "
            f">= {first_extra}). Received: static_argnums={static_argnums!r}"
        )
    return nums


def _split_extras(extras: tuple, first_extra: int, static: tuple[int, ...]) -> tuple:
    """Extra ``loss_fn`` arguments as (traced ones, hashable ``(position, value)`` pairs)."""
    dynamic, constant = [], []
    for i, value in enumerate(extras):
        position = first_extra + i
        if position in static:
            constant.append((position, _hashable(value, f"Static argument {position}")))
        else:
            dynamic.append(value)
    missing = [n for n in static if n >= first_extra + len(extras)]
    if missing:
        raise ValueError(
            f"`static_argnums` names argument {missing[0]} of `loss_fn` but the step was "
            f"called with arguments up to position {first_extra + len(extras) - 1}."
        )
    return tuple(dynamic), tuple(constant)


def _same_objects(these: tuple, those: tuple) -> bool:
    """Whether two equally long tuples hold the very same objects."""
    return bool(those) and these[0] is those[0] and these[1] is those[1] and these[2] is those[2]


class _TrainStep:
    """The host side of the step: lay out the batch, call the compiled program, bound the
    programs in flight, give back the model in the caller's own form."""

    def __init__(self, core: _step._Step, exact_batch_stats: bool = False):
        self.core = core
        self.exact_batch_stats = exact_batch_stats
        self.mesh = core.mesh
        self.first_extra = 3 if core.has_state else 2
        self.plans: dict[int, tuple] = {}
        self.returned: tuple = ()

    def layout(self, rows: int) -> _shards.RowLayout:
        if not self.mesh.is_multi_process:
            if rows == 0:
                raise ValueError("`batch` is an empty batch (leading size 0); nothing to compute.")
            if self.exact_batch_stats:
                return _shards.tiled_layout(rows, self.mesh.size)
            return _shards.row_layout(rows, self.mesh.size)
        counts = _row_counts(rows, self.mesh)
        if counts.sum() == 0:
            raise ValueError("`batch` is an empty batch (leading size 0); nothing to compute.")
        return _shards.common_layout(counts, jax.process_index(), _fed_device_count(self.mesh))

    def plan(self, rows: int) -> tuple:
        """``(layout, program, device weights)`` for a batch of ``rows`` rows: cached in one
        process (whose program holds the weights), worked out at every call across processes
        (which agree on the layout and pass the weights)."""
        if rows in self.plans:
            return self.plans[rows]
        layout = self.layout(rows)
        # One process compiles each layout's device weights in; processes pass theirs.
        weights = _placed_batch(layout.weights, self.mesh) if self.mesh.is_multi_process else None
        plan = (layout, self.core.program(layout), weights)
        if not self.mesh.is_multi_process:
            self.plans[rows] = plan
        return plan

    def placed_batch(self, batch: Any, layout: _shards.RowLayout) -> Any:
        arranged = _shards.arranged(batch, layout)
        return _placed_batch(arranged, self.mesh) if self.mesh.is_multi_process else arranged

    def __call__(self, model: Any, *args: Any, key: Any = None) -> tuple:
        if len(args) < self.first_extra:
            names = (
                "model, state, opt_state, batch"
                if self.core.has_state
                else ("model, opt_state, batch")
            )
            raise TypeError(
                f"The step takes ({names}, *extra_args); got {1 + len(args)} positional arguments."
            )
        state = args[0] if self.core.has_state else None
        opt_state, batch = args[self.first_extra - 2], args[self.first_extra - 1]
        extras, statics = args[self.first_extra :], ()
        if extras or self.core.static_argnums:
            extras, statics = _split_extras(extras, self.first_extra, self.core.static_argnums)
        layout, program, weights = self.plan(_rows_of(batch))
        arrays, model_static = _shards.partitioned(model)
        if not _same_objects((model, state, opt_state), self.returned):  # placed already?
            arrays, state, opt_state = replicate((arrays, state, opt_state), self.mesh)
        placed = self.placed_batch(batch, layout)
        try:
            out = program(
                (model_static, statics), arrays, state, opt_state, placed, extras, key, weights
            )
        except ValueError as error:  # an array of the caller's sharded another way on the mesh
            if "does not match the sharding" not in str(error):
                raise
            arrays, state, opt_state, extras, key = replicate(
                (arrays, state, opt_state, extras, key), self.mesh
            )
            out = program(
                (model_static, statics), arrays, state, opt_state, placed, extras, key, weights
            )
        self.core.window.admit(out[3])
        trained, new_state, opt_state, loss, aux = out
        if model_static is not None:
            trained = _shards.combined(trained, model_static)
        self.returned = (trained, new_state, opt_state)
        if self.mesh.is_multi_process and self.core.has_aux:
            aux = _local_aux(aux, layout)
        result: tuple = (trained, opt_state, loss)
        if self.core.has_state:
            result = (trained, new_state, opt_state, loss)
        return result + (aux,) if self.core.has_aux else result

    def init(self, model: Any) -> Any:
        """The optimizer state for ``model``'s trainable arrays, in the step's structure."""
        return self.core.optimizer.init(view_of(model).trainable)


def _local_aux(aux: Any, layout: _shards.RowLayout) -> Any:
    """Per-example aux outputs as this process's rows (NumPy), in batch order."""

    def local(leaf):
        if leaf.sharding.is_fully_replicated:
            return leaf
        rows = _local_rows_of(leaf, layout.per_device * len(layout.counts))
        return rows[layout.first_slots] if len(layout.first_slots) else rows[:0]

    return jax.tree.map(local, aux)


def data_parallel_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    devices: int | Sequence[jax.Device] | None = None,
    *,
    mesh: Mesh | None = None,
    has_aux: bool = False,
    has_state: bool = False,
    static_argnums: int | Sequence[int] = (),
    donate: bool = False,
    exact_batch_stats: bool = False,
) -> Callable:
    """An optax training step over every device, with the numbers of the single-device step.

    ``loss_fn`` is the loss you already have, called on the model you hold: a parameter
    pytree (``loss_fn(params, batch)``, Linen's ``params`` with ``module.apply``), an
    ``nnx.Module`` or an ``eqx.Module`` (``loss_fn(model, batch)``). It returns a scalar mean
    over the batch's rows or one loss per example; with ``has_aux=True``, ``(loss, aux)``. The
    step differentiates the model's trainable part (Linen/pytree: all of it; NNX:
    ``nnx.Param``; Equinox: its float arrays), carries the rest (NNX ``BatchStat`` updated in
    place by the model), and returns the model in the same form.

    With ``has_state=True`` the model's state travels separately, as in Linen
    (``batch_stats``) and Equinox (``eqx.nn.State``) training loops:
    ``loss_fn(model, state, batch)`` returns ``(loss, new_state)``, or with ``has_aux=True``
    ``(loss, (new_state, aux))``.

    Each device gets a slice of the batch. A batch that does not divide by the device count
    is laid out so that every device holds only real rows, each repeated equally often, and
    each device's mean is weighted by its real rows, so a mean over rows computed inside
    ``loss_fn`` gives the mean over the batch exactly. Metrics in ``aux`` (leaves without the
    batch axis) are averaged over the real rows the same way; per-example ``aux`` leaves come
    back in batch order. New state is averaged over the devices by their real rows.

    Args:
      loss_fn: ``loss_fn(model, [state,] batch, *extra_args, [key=])``. ``batch`` is any
        pytree of arrays sharing a leading axis.
      optimizer: an optax ``GradientTransformation``; its state is
        ``optimizer.init(trainable)``, e.g. ``step.init(model)``.
      devices: ``None`` (all devices), an int (the first n) or a list of devices.
      mesh: a 1-D mesh to use instead of ``devices``.
      has_aux: ``loss_fn`` returns ``(loss, aux)``.
      has_state: the step and ``loss_fn`` take and return the model's state (see above).
      static_argnums: positions of ``loss_fn`` arguments after the batch that are Python
        constants (flags such as ``train=True`` passed positionally); they must be hashable.
      donate: let the step reuse the buffers of the model, state and optimizer state passed
        in (they are deleted); off by default so nothing the caller holds is deleted.
      exact_batch_stats: lay a batch that does not divide by the device count out as copies
        of the whole batch in equal blocks, so that every device holds as many rows and every
        real row counts equally; cross-device means inside the model (batch norm with
        ``axis_name=DATA_AXIS``) then equal the single-device batch statistics. Costs up to
        ``devices`` times the rows (``devices / gcd(rows, devices)``); batches that divide
        cost nothing extra. Single process only.

    Returns:
      ``step(model, opt_state, batch, *extra_args, key=None)`` returning
      ``(model, opt_state, loss)`` (``(model, state, opt_state, loss)`` with ``has_state``,
      and ``aux`` last with ``has_aux``). With ``key``, ``loss_fn`` receives ``key=`` folded
      with the device's index, so each device draws its own numbers; pass a new key each step
      (``jax.random.fold_in(root, i)``). The step has ``mesh`` and ``init(model)``.

    Example:
      >>> loss = lambda p, b: jnp.mean((b["x"] @ p - b["y"]) ** 2)
      >>> step = data_parallel_train_step(loss, optax.sgd(0.1), 4)
      >>> p = np.zeros(3, np.float32)
      >>> p, s, l = step(p, step.init(p), {"x": np.ones((5, 3)), "y": np.ones(5)})
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable. Received: loss_fn={loss_fn!r}")
    _check_optimizer(optimizer)
    flags = (
        ("has_aux", has_aux),
        ("has_state", has_state),
        ("donate", donate),
        ("exact_batch_stats", exact_batch_stats),
    )
    for name, flag in flags:
        if not isinstance(flag, bool):
            raise TypeError(f"`{name}` must be a bool. Received: {name}={flag!r}")
    mesh = _resolve_mesh(devices, mesh)
    static = _static_positions(static_argnums, 3 if has_state else 2)
    if exact_batch_stats and mesh.is_multi_process:
        raise ValueError(
            "`exact_batch_stats=True` is supported in a single process only; across processes "
            "feed batches that divide by the device count instead."
        )
    core = _step._Step(loss_fn, optimizer, mesh, has_aux, has_state, static, donate)
    return _TrainStep(core, exact_batch_stats)


# ----------------------------------------------------------------------------- multi_gpu_model


def _gpu_devices(gpus: Any) -> list[jax.Device]:
    """The devices ``multi_gpu_model`` runs on: at least two, all existing."""
    available = jax.devices()
    if gpus is None:
        chosen = available
    elif isinstance(gpus, bool | str | bytes) or not isinstance(gpus, int | np.integer | Sequence):
        raise TypeError(
            f"`gpus` must be None, an int or a list of device ids or devices. Received: "
            f"gpus={gpus!r} (of type {type(gpus).__name__})"
        )
    elif isinstance(gpus, int | np.integer):
        if gpus > len(available):
            raise ValueError(
                f"`gpus={gpus}` asks for more devices than exist: {len(available)} "
                f"{available[0].platform} device(s) are available. Try reducing `gpus`."
            )
        chosen = available[: max(int(gpus), 0)]
    else:
        chosen = [_device_by_id(g, available) for g in gpus]
    if len(chosen) < 2:
        raise ValueError(
            f"For multi-device usage to be effective, call `multi_gpu_model` with `gpus >= 2` "
            f"(and at least 2 devices present). Received: gpus={gpus!r} with "
            f"{len(available)} device(s) available."
        )
    return _devices_from_list(chosen)


def _device_by_id(gpu: Any, available: list[jax.Device]) -> jax.Device:
    """A device given as itself or as its position in ``jax.devices()``."""
    if isinstance(gpu, jax.Device):
        return gpu
    if isinstance(gpu, bool) or not isinstance(gpu, int | np.integer):
        raise TypeError(
            f"`gpus` list elements must be device ids (ints) or jax.Device objects. "
            f"Received: {gpu!r}"
        )
    if not 0 <= gpu < len(available):
        raise ValueError(
            f"`gpus` names device {gpu} but only {len(available)} device(s) exist "
            f"(ids 0..{len(available) - 1})."
        )
    return available[gpu]


def multi_gpu_model(
    model: Callable,
    gpus: int | Sequence[int | jax.Device] | None = None,
    cpu_merge: bool = True,
    cpu_relocation: bool = False,
) -> Callable:
    """Keras 2's ``multi_gpu_model`` over a device mesh: ``model(params, x)`` run data-parallel.

    The batch ``x`` is split across the devices, each device runs ``model`` on its slice with
    the same (replicated) parameters, and the outputs come back as one array in batch order,
    equal to ``model(params, x)``. A batch that does not divide is padded and the padding
    stripped (Keras 2 gave all the remainder to the last GPU).

    ``cpu_merge`` and ``cpu_relocation`` are accepted for compatibility and change nothing:
    there is no merge step (the output is one ``jax.Array`` already sharded over the devices,
    never gathered on the CPU), and parameters are arguments replicated onto the devices at each
    call, so there are no per-device weight copies to build on the CPU first.

    Args:
      model: ``apply_fn(params, x)``; ``x`` may be any pytree of arrays with a batch axis.
      gpus: ``None`` (every device of the default backend), an int ``>= 2`` (the first n
        devices) or a list of at least two device ids (positions in ``jax.devices()``) or
        ``jax.Device`` objects.
      cpu_merge: accepted for compatibility (bool); no effect.
      cpu_relocation: accepted for compatibility (bool); no effect.

    Returns:
      ``parallel(params, x)``, the :func:`data_parallel` form of ``model``.

    Raises:
      ValueError: fewer than two devices asked for or present, or more than exist (the message
        says how many there are).

    Example:
      >>> parallel = multi_gpu_model(lambda p, x: x @ p, gpus=2)
      >>> parallel(np.ones((3, 2)), np.ones((5, 3))).shape
      (5, 2)
    """
    for name, flag in (("cpu_merge", cpu_merge), ("cpu_relocation", cpu_relocation)):
        if not isinstance(flag, bool):
            raise TypeError(f"`{name}` must be a bool. Received: {name}={flag!r}")
    return data_parallel(model, _gpu_devices(gpus), batch_argnums=(1,))
