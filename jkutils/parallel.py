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

from jkutils._pytree import leaf_label

__all__ = [
    "make_data_mesh",
    "replicate",
    "shard_batch",
    "data_parallel",
    "data_parallel_train_step",
    "multi_gpu_model",
]

DATA_AXIS = "data"


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
            f"Every leaf of `{argname}` must have the same leading (batch) size. Received "
            f"{listing}"
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


def _batch_argnums(batch_argnums: Any) -> tuple[int, ...]:
    """``batch_argnums`` as a sorted tuple of distinct non-negative ints."""
    nums = (batch_argnums,) if isinstance(batch_argnums, int | np.integer) else batch_argnums
    try:
        nums = tuple(nums)
    except TypeError:
        raise TypeError(
            f"`batch_argnums` must be an int or a sequence of ints. Received: "
            f"batch_argnums={batch_argnums!r}"
        ) from None
    if not nums or any(isinstance(n, bool) or not isinstance(n, int | np.integer) for n in nums):
        raise TypeError(
            f"`batch_argnums` must be an int or a non-empty sequence of ints. Received: "
            f"batch_argnums={batch_argnums!r}"
        )
    if any(n < 0 for n in nums) or len(set(nums)) != len(nums):
        raise ValueError(
            f"`batch_argnums` must hold distinct non-negative positions. Received: "
            f"batch_argnums={batch_argnums!r}"
        )
    return tuple(sorted(int(n) for n in nums))


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


def _sharded_apply(fn: Callable, mesh: Mesh, batch_argnums: tuple[int, ...], n_args: int,
                   kwargs: dict) -> Callable:
    """``fn`` under ``shard_map``: batch arguments split, others replicated, outputs split."""

    def per_shard(*args):
        rows = jax.tree.leaves([args[i] for i in batch_argnums])[0].shape[0]
        return _checked_outputs(fn(*args, **kwargs), rows)

    in_specs = tuple(P(DATA_AXIS) if i in batch_argnums else P() for i in range(n_args))
    return jax.shard_map(per_shard, mesh=mesh, in_specs=in_specs, out_specs=P(DATA_AXIS))


def _apply_program(fn: Callable, mesh: Mesh, batch_argnums: tuple[int, ...]) -> Callable:
    """The jitted program: shard, apply, and (single process) strip padding to ``rows``."""

    @functools.partial(jax.jit, static_argnums=(0, 1, 2))
    def program(rows, n_args, kwargs_items, *args):
        out = _sharded_apply(fn, mesh, batch_argnums, n_args, dict(kwargs_items))(*args)
        return out if rows is None else jax.tree.map(lambda leaf: leaf[:rows], out)

    return program


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
    mesh: Mesh | None = None,
) -> Callable:
    """``fn`` run with its batch split across devices; the result equals ``fn`` on the batch.

    The positional arguments named by ``batch_argnums`` (pytrees of arrays sharing one leading
    size) are split on their leading axis across the mesh; every other positional argument is
    replicated; keyword arguments are passed to ``fn`` as static (hashable) values, e.g.
    ``training=False``. A batch that does not divide by the device count is padded with copies
    of its last row and the padded rows are removed from the outputs, so any batch size works.
    Every output of ``fn`` must have the batch as leading axis (one row per example). The
    program is compiled once per input shape and dtype.

    In a multi-process program each process passes its own rows and receives the outputs for
    those rows as NumPy arrays; the processes may hold different numbers of rows.

    Args:
      fn: a function such as ``apply_fn(params, x)``; must be traceable by ``jax.jit``.
      devices: ``None`` (all devices), an int (the first n) or a list of devices.
      batch_argnums: position(s) of the batch arguments; default ``(1,)``.
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
    program = _apply_program(fn, mesh, batch_argnums)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        kwargs_items = _static_kwargs(kwargs)
        rows = _batch_rows(args, batch_argnums)
        size = _padded_size(rows, mesh, "batch arguments")
        placed = _placed_args(args, batch_argnums, mesh, size)
        if mesh.is_multi_process:
            return _local_rows_of(program(None, len(args), kwargs_items, *placed), rows)
        return program(rows, len(args), kwargs_items, *placed)

    run.mesh = mesh
    return run


# ----------------------------------------------------------------------------- train step


def _masked_mean_loss(loss_fn: Callable, params: Any, batch: Any, mask: jax.Array) -> jax.Array:
    """This shard's share of the global mean loss: its real examples' sum over all real rows."""
    losses = loss_fn(params, batch)
    if jnp.shape(losses) != mask.shape:
        raise ValueError(
            f"`loss_fn(params, batch)` must return one loss per example, shape {mask.shape} "
            f"for this shard; it returned shape {jnp.shape(losses)}. Return the per-example "
            f"losses (multiplied by sample weights if any) instead of their mean."
        )
    real = jax.lax.psum(jnp.sum(mask), DATA_AXIS)
    return jnp.sum(jnp.where(mask, losses, 0.0)) / real


def _step_program(loss_fn: Callable, optimizer: optax.GradientTransformation, mesh: Mesh):
    """The jitted, buffer-donating ``shard_map`` step over (params, opt_state, batch, mask)."""

    def per_shard(params, opt_state, batch, mask):
        share = functools.partial(_masked_mean_loss, loss_fn, batch=batch, mask=mask)
        # Differentiate a per-device copy so each gradient is this shard's alone (the gradient
        # of replicated params would already be summed over devices), then sum the shares.
        local_params = jax.lax.pcast(params, DATA_AXIS, to="varying")
        loss, grads = jax.value_and_grad(share)(local_params)
        loss, grads = jax.lax.psum((loss, grads), DATA_AXIS)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    sharded = jax.shard_map(
        per_shard,
        mesh=mesh,
        in_specs=(P(), P(), P(DATA_AXIS), P(DATA_AXIS)),
        out_specs=(P(), P(), P()),
    )
    repl, split = _replicated(mesh), _split(mesh)
    return jax.jit(
        sharded,
        in_shardings=(repl, repl, split, split),
        out_shardings=(repl, repl, repl),
        donate_argnums=(0, 1),
    )


def _check_optimizer(optimizer: Any) -> None:
    if not all(callable(getattr(optimizer, name, None)) for name in ("init", "update")):
        raise TypeError(
            f"`optimizer` must be an optax GradientTransformation (with `init` and `update`), "
            f"e.g. optax.adam(1e-3). Received: optimizer={optimizer!r}"
        )


def data_parallel_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    devices: int | Sequence[jax.Device] | None = None,
    *,
    mesh: Mesh | None = None,
) -> Callable:
    """A data-parallel optax step equal to the single-device step for any batch size.

    ``loss_fn(params, batch)`` returns the per-example losses (shape ``(batch_size,)``; multiply
    by sample weights inside it if you use them); the step minimises their mean over the real
    examples. Each device computes its shard's sum of losses divided by the global number of
    real examples; ``psum`` of these shares and of their gradients gives exactly the mean over
    the whole batch, however the examples fall on the devices, padded rows excluded. Parameters
    and optimizer state stay replicated; their input buffers are donated, so do not reuse the
    ``params`` and ``opt_state`` you passed in (use the returned ones).

    In a multi-process program each process passes its own rows of the batch (they may differ
    in number); every process receives the same replicated results.

    Args:
      loss_fn: ``loss_fn(params, batch) -> per-example losses``; ``batch`` is any pytree of
        arrays sharing a leading batch axis (e.g. ``{"x": x, "y": y, "w": sample_weight}``).
      optimizer: an optax ``GradientTransformation``.
      devices: ``None`` (all devices), an int (the first n) or a list of devices.
      mesh: a 1-D mesh to use instead of ``devices``.

    Returns:
      ``step(params, opt_state, batch) -> (params, opt_state, loss)``; its ``mesh`` attribute
      is the mesh used.

    Example:
      >>> loss = lambda p, b: (b["x"] @ p - b["y"]) ** 2
      >>> opt = optax.sgd(0.1)
      >>> step = data_parallel_train_step(loss, opt, 4)
      >>> p = np.zeros(3, np.float32)
      >>> p, s, l = step(p, opt.init(p), {"x": np.ones((5, 3)), "y": np.ones(5)})
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable. Received: loss_fn={loss_fn!r}")
    _check_optimizer(optimizer)
    mesh = _resolve_mesh(devices, mesh)
    program = _step_program(loss_fn, optimizer, mesh)

    def step(params: Any, opt_state: Any, batch: Any) -> tuple[Any, Any, jax.Array]:
        rows = _batch_size(batch, "batch")
        size = _padded_size(rows, mesh, "batch")
        padded = jax.tree.map(lambda x: _padded_leaf(x, size), batch)
        # Placing everything first gives the program the same input types on every call (an
        # array's mesh is part of its type), so it compiles once per batch shape.
        padded, mask = _placed_batch((padded, np.arange(size) < rows), mesh)
        params, opt_state = replicate((params, opt_state), mesh)
        return program(params, opt_state, padded, mask)

    step.mesh = mesh
    return step


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
