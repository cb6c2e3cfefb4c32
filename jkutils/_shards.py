"""How a batch's rows fall on the devices, and what the data-parallel programs share.

* :func:`row_layout` lays ``rows`` real rows on ``devices`` devices, ``per_device`` rows each.
  When the rows do not divide, a device that holds ``r`` real rows fills its ``per_device``
  slots with each of them repeated ``per_device // r`` times (``r`` always divides
  ``per_device``). Every device therefore sees only real rows, each equally often, so any mean
  over a device's rows (a scalar loss, a metric, batch statistics) equals the mean over its real
  rows, and weighting each device by ``r / rows`` gives the mean over the whole batch.
* :class:`InFlight` bounds how many collective programs are dispatched and unfinished.
* :func:`partitioned` / :func:`combined` split a pytree into arrays and the other leaves (an
  Equinox module's activation functions), the way ``eqx.filter_jit`` does.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Any

import jax
import numpy as np

# A few programs in flight are enough to keep the devices busy; many collective programs in
# flight on host CPU devices abort the process (all-reduce termination timeout, jax 0.10).
CPU_IN_FLIGHT = 2
_FULL_DEVICE_TRIES = 4


# ----------------------------------------------------------------------------- row layout


@functools.cache
def _divisors(n: int) -> tuple[int, ...]:
    return tuple(k for k in range(1, n + 1) if n % k == 0)


def _fewest_parts(total: int, parts: tuple[int, ...]) -> list[int] | None:
    """The shortest list of values from ``parts`` summing to ``total`` (coin change), or None."""
    best: list[int | None] = [0] + [None] * total
    last = [0] * (total + 1)
    for amount in range(1, total + 1):
        for part in parts:
            before = best[amount - part] if part <= amount else None
            if before is not None:
                current = best[amount]
                if current is None or before + 1 < current:
                    best[amount], last[amount] = before + 1, part
    if best[total] is None:
        return None
    out, amount = [], total
    while amount:
        out.append(last[amount])
        amount -= last[amount]
    return out


def _spread(counts: list[int], devices: int, per_device: int) -> list[int]:
    """``counts`` split into more, smaller divisors of ``per_device`` while devices are free.

    A count ``c`` becomes ``p`` counts ``c // p`` (``p`` its smallest prime factor), so every
    count still divides ``per_device``; fewer devices sit empty and the counts even out.
    """
    counts = sorted(counts, reverse=True)
    while len(counts) < devices and counts[0] > 1:
        big = counts[0]
        factor = next(k for k in _divisors(big) if k > 1)
        if len(counts) + factor - 1 > devices:
            break
        counts = sorted(counts[1:] + [big // factor] * factor, reverse=True)
    return counts


def _device_counts(rows: int, devices: int, per_device: int) -> tuple[int, ...] | None:
    """Real rows per device, each a divisor of ``per_device`` (or 0), summing to ``rows``."""
    most_full = min(rows // per_device, devices)
    smaller = tuple(k for k in _divisors(per_device) if k < per_device)
    for full in range(most_full, max(most_full - _FULL_DEVICE_TRIES, -1), -1):
        rest, free = rows - full * per_device, devices - full
        parts = _fewest_parts(rest, smaller) if rest else []
        if parts is not None and len(parts) <= free:
            counts = _spread([per_device] * full + parts, devices, per_device)
            return tuple(counts) + (0,) * (devices - len(counts))
    return None


@dataclasses.dataclass(frozen=True, eq=False)
class RowLayout:
    """Where each real row sits: ``counts[d]`` rows on device ``d``, ``per_device`` slots each.

    Attributes:
      rows: real rows fed by this process.
      per_device: slots (rows of the program's input) per device.
      counts: real rows per (local) device, each dividing ``per_device``, or 0.
      total: real rows of the whole batch (all processes).
    """

    rows: int
    per_device: int
    counts: tuple[int, ...]
    total: int

    @functools.cached_property
    def identity(self) -> bool:
        """Whether every slot holds a distinct real row in order (the batch divided)."""
        return all(count == self.per_device for count in self.counts)

    @functools.cached_property
    def slots(self) -> np.ndarray:
        """The real row each slot holds (device ``d``'s slots at ``d * per_device``)."""
        blocks, start = [], 0
        for count in self.counts:
            if count:
                blocks.append(np.repeat(np.arange(start, start + count), self.per_device // count))
            else:  # an empty device computes on copies of row 0, with weight 0
                blocks.append(np.zeros(self.per_device, np.int64))
            start += count
        return np.concatenate(blocks)

    @functools.cached_property
    def first_slots(self) -> np.ndarray:
        """For each real row in order, the slot that holds its first copy."""
        firsts = [
            d * self.per_device + np.arange(count) * (self.per_device // count)
            for d, count in enumerate(self.counts)
            if count
        ]
        return np.concatenate(firsts)

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """Each device's share of the batch's mean: its real rows over all real rows."""
        return (np.asarray(self.counts, np.float64) / self.total).astype(np.float32)


@functools.lru_cache(maxsize=256)
def row_layout(
    rows: int, devices: int, total: int | None = None, per_device: int | None = None
) -> RowLayout:
    """The layout of ``rows`` real rows on ``devices`` devices with the fewest slots per device.

    Args:
      rows: real rows (at least 1 unless ``total`` counts rows fed elsewhere).
      devices: devices the rows are split across.
      total: real rows of the whole batch when several processes feed it (default ``rows``).
      per_device: the smallest number of slots per device to consider (processes agree on it).

    Example:
      >>> layout = row_layout(13, 8)
      >>> layout.per_device, layout.counts
      (2, (2, 2, 2, 2, 2, 1, 1, 1))
    """
    total = rows if total is None else total
    start = max(-(-rows // devices), 1) if per_device is None else per_device
    for size in range(start, max(rows, start) + 1):
        counts = _device_counts(rows, devices, size) if rows else (0,) * devices
        if counts is not None:
            return RowLayout(rows, size, counts, total)
    raise AssertionError(f"no layout for {rows} rows on {devices} devices")  # pragma: no cover


@dataclasses.dataclass(frozen=True, eq=False)
class TiledLayout(RowLayout):
    """``copies`` copies of the batch, cut into equal blocks: every device holds ``per_device``
    rows and every real row appears ``copies`` times in all, so the plain average of the
    devices' means over their rows (what ``pmean`` gives, and what batch norm with an
    ``axis_name`` computes) equals the mean over the real rows. Costs ``copies`` times the rows
    of the batch (at most the device count)."""

    copies: int = 1

    @functools.cached_property
    def identity(self) -> bool:
        return self.copies == 1

    @functools.cached_property
    def slots(self) -> np.ndarray:
        return np.tile(np.arange(self.rows), self.copies)

    @functools.cached_property
    def first_slots(self) -> np.ndarray:
        return np.arange(self.rows)

    @functools.cached_property
    def weights(self) -> np.ndarray:
        return np.full(len(self.counts), 1.0 / len(self.counts), np.float32)


@functools.lru_cache(maxsize=256)
def tiled_layout(rows: int, devices: int) -> TiledLayout:
    """The :class:`TiledLayout` with the fewest copies: ``devices / gcd(rows, devices)``.

    Example:
      >>> layout = tiled_layout(12, 8)
      >>> layout.copies, layout.per_device
      (2, 3)
    """
    copies = devices // math.gcd(rows, devices)
    per_device = rows * copies // devices
    return TiledLayout(rows, per_device, (per_device,) * devices, rows, copies)


def common_layout(counts: np.ndarray, index: int, devices: int) -> RowLayout:
    """This process's layout when processes feed ``counts`` rows: one ``per_device`` for all."""
    total = int(counts.sum())
    size = max(row_layout(int(c), devices).per_device for c in counts)
    while True:
        layouts = [row_layout(int(c), devices, total, size) for c in counts]
        if all(layout.per_device == size for layout in layouts):
            return layouts[index]
        size = max(layout.per_device for layout in layouts)


def arranged(batch: Any, layout: RowLayout) -> Any:
    """``batch`` with its rows copied into the layout's slots (unchanged when it divides)."""
    if layout.identity:
        return batch
    slots = layout.slots
    return jax.tree.map(
        lambda leaf: leaf[slots] if isinstance(leaf, jax.Array) else np.asarray(leaf)[slots], batch
    )


# ----------------------------------------------------------------------------- in flight


class InFlight:
    """Keeps at most ``limit`` dispatched programs unfinished (no limit when ``None``).

    Example:
      >>> window = InFlight(2)
      >>> for i in range(5):
      ...     window.admit(jax.numpy.zeros(()))
    """

    def __init__(self, limit: int | None):
        self._limit = limit
        self._pending: collections.deque = collections.deque()

    def admit(self, result: Any) -> None:
        """Record ``result`` (an array of the program just dispatched); wait for an old one."""
        if self._limit is None:
            return
        self._pending.append(result)
        if len(self._pending) > self._limit:
            jax.block_until_ready(self._pending.popleft())


def in_flight_limit(mesh: Any) -> int | None:
    """``CPU_IN_FLIGHT`` for a mesh of several host CPU devices, else no limit."""
    devices = mesh.devices.flat
    first = next(iter(devices))
    return CPU_IN_FLIGHT if first.platform == "cpu" and mesh.size > 1 else None


# ----------------------------------------------------------------------------- static leaves


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array | np.ndarray | np.generic)


@functools.cache
def _is_equinox_type(kind: Any) -> bool:
    """Whether objects of this type are Equinox modules (whose fields may be functions)."""
    return any(base.__module__.split(".")[0] == "equinox" for base in kind.__mro__)


def partitioned(tree: Any) -> tuple[Any, Any]:
    """``(arrays, static)``: an Equinox module's array leaves and the rest, else ``(tree, None)``.

    ``static`` is hashable (the tree structure and the non-array leaves), so a jitted program
    can take it as a static argument; :func:`combined` puts the two back together.
    """
    if not _is_equinox_type(type(tree)):  # type: ignore[arg-type]
        return tree, None
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [leaf if _is_array(leaf) else None for leaf in leaves]
    static = (treedef, tuple(None if _is_array(leaf) else leaf for leaf in leaves))
    try:
        hash(static)
    except TypeError:
        raise TypeError(
            f"The non-array fields of {type(tree).__name__} must be hashable to be compiled "
            f"as constants; make them tuples or mark them static."
        ) from None
    return arrays, static


def combined(arrays: Any, static: Any) -> Any:
    """The tree :func:`partitioned` split, rebuilt from its two parts."""
    if static is None:
        return arrays
    treedef, others = static
    return treedef.unflatten([a if s is None else s for a, s in zip(arrays, others)])
