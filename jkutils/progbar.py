"""A progress bar for training loops and downloads that never waits for the device.

``Progbar`` keeps Keras's interface and looks, and never makes a training loop wait for the
device: ``update`` keeps JAX arrays exactly as passed and copies them to the host only once they
have finished computing, so a loop that dispatches work asynchronously keeps running ahead. Lines
drawn before the end show the metrics of the steps that have finished; the final line waits for
every value and shows the averages over all steps.

On a terminal the bar is Keras 3's (colours, redrawn in place with ``\\r``). Anywhere else (a
pipe, a log file, CI) it writes whole plain lines in Keras 2's ASCII layout, with no ``\\b``,
``\\r`` or ANSI codes, at most one per ``interval`` plus the final line (by default one per
0.05 s on a terminal and one per 10 s elsewhere). With ``unit_name="B"`` counts are sizes in
KiB/MiB/GiB and the time per step becomes a transfer rate.

The module is callable: ``progbar(iterable)`` is :func:`track`, the name earlier releases used.

Example:
    >>> from jkutils import progbar
    >>> bar = progbar.Progbar(target=2, verbose=0)
    >>> [x * 2 for x in progbar(range(3), verbose=0)]
    [0, 2, 4]
"""

from __future__ import annotations

import math
import numbers
import re
import reprlib
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TextIO, TypeVar

import numpy as np

__all__ = ["Progbar", "track"]

T = TypeVar("T")

# The clock every bar reads; a module attribute so that tests can replace it with a fake one.
_now = time.monotonic

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOLD, _GREEN, _WHITE, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
_BAR_CHAR = "━"
# Longest wait, in seconds, before finished values move to the host when no line is due: it
# bounds how many updates are kept (silent bars and long intervals included).
_FOLD_PERIOD = 0.05
# Default ``interval``: Keras's redraw period on a terminal, and a log-friendly one elsewhere.
_TERMINAL_INTERVAL = 0.05
_LOG_INTERVAL = 10.0
# ``unit_name`` that makes counts byte sizes and the time per step a transfer rate.
_BYTES = "B"
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
# Marks the end of an iterable that ``track`` reads one item ahead.
_END: Any = object()


def _type_name(value: Any) -> str:
    return type(value).__name__


def _is_device_value(value: Any) -> bool:
    """Whether ``value`` lives on a device that computes asynchronously (a ``jax.Array``)."""
    return callable(getattr(value, "is_ready", None))


def _checked_count(argname: str, value: Any, *, allow_none: bool = False) -> int | float | None:
    """Return ``value`` as a finite, non-negative Python int or float, or raise naming it."""
    if value is None and allow_none:
        return None
    if _is_device_value(value):
        raise TypeError(
            f"`{argname}` must be a Python or NumPy number, not a device array: reading it would "
            f"make the bar wait for the device. Pass a Python int. Received: {argname}={value!r}"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        expected = "a number or None" if allow_none else "a number"
        raise TypeError(
            f"`{argname}` must be {expected}. "
            f"Received: {argname}={value!r} (of type {_type_name(value)})"
        )
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{argname}` must be a finite number >= 0. Received: {argname}={value}")
    return value


def _checked_positive_int(argname: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"`{argname}` must be a positive integer. Received: {argname}={value!r}"
        )
    return int(value)


def _checked_verbose(verbose: Any) -> int:
    if isinstance(verbose, numbers.Integral) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")


def _checked_interval(interval: Any) -> float | None:
    if interval is None:
        return None
    if isinstance(interval, bool) or not isinstance(interval, numbers.Real) or not (
        0 <= interval < math.inf
    ):
        raise ValueError(
            "`interval` must be None or a finite number of seconds >= 0. "
            f"Received: interval={interval!r}"
        )
    return float(interval)


def _checked_str(argname: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"`{argname}` must be a string. "
            f"Received: {argname}={value!r} (of type {_type_name(value)})"
        )
    return value


def _checked_names(argname: str, names: Any) -> frozenset[str] | None:
    """Return a collection of metric names as a frozenset (``None`` stays ``None``)."""
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TypeError(
            f"`{argname}` must be an iterable of metric names, such as a list of strings. "
            f"Received: {argname}={names!r}"
        )
    names = list(names)
    for name in names:
        _checked_str(f"{argname} entry", name)
    return frozenset(names)


def _checked_stream(stream: Any) -> TextIO | None:
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise TypeError(
            "`stream` must be None (meaning sys.stdout) or a text stream with a write() method. "
            f"Received: stream={stream!r}"
        )
    return stream


def _averaging_rule(
    stateful_metrics: frozenset[str] | None, stateless_metrics: frozenset[str] | None
) -> Callable[[str], bool]:
    """Return ``is_averaged(name)``: whether a metric is averaged over steps or shown as given."""
    if stateful_metrics is not None and stateless_metrics is not None:
        raise ValueError(
            "Only one of `stateful_metrics` or `stateless_metrics` can be provided: "
            "`stateful_metrics` names the metrics shown as given (all others are averaged), "
            "`stateless_metrics` the metrics averaged (all others are shown as given). "
            f"Received: stateful_metrics={set(stateful_metrics)}, "
            f"stateless_metrics={set(stateless_metrics)}"
        )
    if stateless_metrics is not None:
        return stateless_metrics.__contains__
    shown_as_given = stateful_metrics or frozenset()
    return lambda name: name not in shown_as_given


def _on_cpu(value: Any) -> bool:
    """Whether a device value lives on the host CPU, where reading it needs no copy."""
    try:
        return all(device.platform == "cpu" for device in value.devices())
    except (AttributeError, TypeError):
        return False


def _copy_finished_to_host(values: list, wait: bool) -> int:
    """Start host copies of the leading finished device values (never waits).

    Returns how many leading ``values`` have finished computing (with ``wait``: all of them).
    Starting every copy before reading any lets the copies overlap; values already on the CPU
    need none.
    """
    copies = None
    for index, value in enumerate(values):
        if not _is_device_value(value):
            continue
        if not wait and not value.is_ready():
            return index
        if copies is None:
            copies = not _on_cpu(value)
        if copies and hasattr(value, "copy_to_host_async"):
            value.copy_to_host_async()
    return len(values)


def _bad_values(values: Any) -> TypeError:
    return TypeError(
        "`values` must be a list of (name, value) pairs with string names, e.g. "
        f"[('loss', 0.25)], or a dict {{name: value}}. Received: values={reprlib.repr(values)}"
    )


def _host_scalar(name: str, value: Any) -> float:
    """One metric value as a host float (the mean of its elements); waits if it is on a device."""
    if isinstance(value, float | int):
        return float(value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf" or array.size == 0:
        raise TypeError(
            f"Metric {name!r} must be a real number or a non-empty array of real numbers. "
            f"Received: {reprlib.repr(value)} (of type {_type_name(value)})"
        )
    return float(array) if array.ndim == 0 else float(array.mean())


def _metric_text(value: float) -> str:
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def _eta_text(seconds: float) -> str:
    if seconds > 3600:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    if seconds > 60:
        return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    return f"{int(seconds)}s"


def _per_unit_text(seconds: float, unit_name: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit_name}"
    return f" {seconds * 1e6:.0f}us/{unit_name}"


def _size_text(size: int | float) -> str:
    """A byte count in binary units: ``'512 B'``, ``'1.5 KiB'``, ``'64.0 MiB'``."""
    exponent = 0
    while size >= 1024 and exponent < len(_SIZE_UNITS) - 1:
        size /= 1024
        exponent += 1
    if exponent == 0:
        return f"{int(size)} B"
    return f"{size:.1f} {_SIZE_UNITS[exponent]}"


def _rate_text(seconds_per_byte: float) -> str:
    """``' 8.1 MiB/s'`` (empty before any time has passed)."""
    if seconds_per_byte <= 0:
        return ""
    return f" {_size_text(1 / seconds_per_byte)}/s"


def _count_text(current: int | float, target: int | float | None) -> str:
    """``' 32/100'`` (right-aligned to the target's digits), or ``'     32/Unknown'``."""
    if target is None or target <= 0:
        return f"{int(current):7d}/Unknown"
    digits = int(math.log10(target)) + 1
    return f"{int(current):{digits}d}/{int(target)}"


def _size_count_text(current: int | float, target: int | float | None) -> str:
    """``' 1.0 MiB/64.0 MiB'`` (right-aligned to the target's width), or ``'1.0 MiB/Unknown'``."""
    if target is None or target <= 0:
        return f"{_size_text(current)}/Unknown"
    total = _size_text(target)
    return f"{_size_text(current):>{len(total)}}/{total}"


def _filled_width(current: int | float, target: int | float, width: int) -> int:
    return min(width, int(width * (float(current) / target)))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _write(stream: TextIO, text: str) -> None:
    """Write and flush; a stream that cannot encode ``━`` gets ``=`` (and ``?`` for the rest)."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.replace(_BAR_CHAR, "=").encode(encoding, "replace").decode(encoding))
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


class _Metric:
    """A metric's weighted sum ``total`` over ``weight`` steps (0: no value yet).

    A metric shown as given (not ``averaged``) holds its last value with weight 1.
    """

    __slots__ = ("total", "weight", "averaged")

    def __init__(self, averaged: bool) -> None:
        self.total = 0.0
        self.weight = 0
        self.averaged = averaged


class Progbar:
    """Keras's progress bar, safe for asynchronous JAX loops and for log files.

    Args:
        target: Total number of steps expected, or ``None`` if unknown.
        width: Width of the bar in characters.
        verbose: 0 (silent), 1 (a bar redrawn at most every ``interval`` seconds) or 2 (one line
            when the bar finishes).
        interval: Minimum number of seconds between two drawn lines (the final line is always
            drawn). ``None`` means 0.05 s on a terminal (Keras's default) and 10 s anywhere
            else, so that a log gets a line every 10 s rather than 20 a second.
        stateful_metrics: Names of metrics shown as given; every other metric is averaged over
            the steps seen, weighted by how many steps each update advanced.
        unit_name: Name of one step, shown in the time per step (``"step"``, ``"batch"``...).
            ``"B"`` means bytes: counts are shown as sizes (``1.5 MiB/64.0 MiB``) and the time
            per step as a transfer rate (``8.1 MiB/s``).
        stateless_metrics: Alternatively, the names of the metrics to average; every other metric
            is then shown as given. Give at most one of the two.
        stream: Where lines go; ``None`` means ``sys.stdout`` as it is when each line is drawn.

    Metric values may be Python or NumPy numbers or arrays, or JAX arrays (an array shows the
    mean of its elements). ``update`` never waits for a JAX array: it keeps it as passed, and it
    is copied to the host once it has finished computing (checked at most once per
    ``min(interval, 0.05)`` seconds). Lines before the last show averages over the steps whose
    values have finished, and their time per step and ETA count only those steps (a step counts
    as finished once the values passed for it have); the final line waits for all of them, and
    its elapsed time and time per step include that wait.

    Example:
        >>> bar = Progbar(target=3, verbose=2)
        >>> for step, loss in enumerate([0.5, 0.3, 0.1], start=1):
        ...     bar.update(step, [("loss", loss)])  # doctest: +ELLIPSIS
        3/3 - 0s - ...s/step - loss: 0.3000
    """

    __slots__ = (
        "target", "width", "verbose", "interval", "unit_name", "stream",
        "_is_averaged", "_final_at", "_seen", "_pending", "_metrics", "_start", "_next_tick",
        "_last_draw", "_first_step_time", "_line_width",
    )

    def __init__(
        self,
        target: int | float | None,
        width: int = 20,
        verbose: int = 1,
        interval: float | None = None,
        stateful_metrics: Iterable[str] | None = None,
        unit_name: str = "step",
        *,
        stateless_metrics: Iterable[str] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.target = _checked_count("target", target, allow_none=True)
        self.width = _checked_positive_int("width", width)
        self.verbose = _checked_verbose(verbose)
        self.interval = _checked_interval(interval)
        self.unit_name = _checked_str("unit_name", unit_name)
        self.stream = _checked_stream(stream)
        self._is_averaged = _averaging_rule(
            _checked_names("stateful_metrics", stateful_metrics),
            _checked_names("stateless_metrics", stateless_metrics),
        )
        # update() finalizes by default once current >= _final_at (never for an unknown target).
        self._final_at = math.inf if self.target is None else self.target
        self._seen: int | float = 0
        # name, value, steps advanced, current, name, ...: values not on the host yet (device
        # values, and everything shown as given: the last one wins, so order counts).
        self._pending: list = []
        # name -> its _Metric, in first-seen order.
        self._metrics: dict[str, _Metric] = {}
        self._start = _now()
        self._next_tick = -math.inf  # the first update always ticks (and draws at verbose=1)
        self._last_draw = -math.inf
        self._first_step_time: float | None = None
        self._line_width = 0  # visible width of the terminal line being redrawn

    def update(
        self,
        current: int | float,
        values: Iterable[tuple[str, Any]] | dict[str, Any] | None = None,
        finalize: bool | None = None,
    ) -> None:
        """Record that ``current`` steps are done, with this step's metric values.

        Args:
            current: Number of steps done so far.
            values: ``(name, value)`` pairs (or a dict of them) for the step(s) since the last
                update. Averaged metrics are weighted by the number of steps advanced (at
                least 1).
            finalize: Whether this is the last update; ``None`` means ``current >= target``.

        Example:
            >>> bar = Progbar(target=10, verbose=0)
            >>> bar.update(5, [("loss", 0.5)])
        """
        if type(current) is not int or current < 0:
            current = _checked_count("current", current)
        if values:
            # Inlined for speed: sums of averaged metrics take host numbers at once (order does
            # not matter to a sum); device values, and values shown as given (the last one
            # wins), stay pending in update order. ``_pending`` is one flat list so that an
            # update allocates no container the garbage collector would have to scan.
            advanced = current - self._seen
            if advanced < 1:
                advanced = 1
            metrics, pending = self._metrics, self._pending
            if type(values) is dict:
                values = values.items()
            try:
                for name, value in values:
                    try:
                        metric = metrics[name]
                    except KeyError:
                        metric = self._new_metric(name)
                    if metric.averaged and (type(value) is float or type(value) is int):
                        # Advancing one step (the usual case) needs no multiplication.
                        metric.total += value if advanced == 1 else value * advanced
                        metric.weight += advanced
                    else:
                        pending += (name, value, advanced, current)
            except (TypeError, ValueError) as error:
                raise _bad_values(values) from error
        self._seen = current
        now = _now()
        if current == 1:
            self._first_step_time = now
        if finalize is None:
            finalize = current >= self._final_at
        if finalize or now >= self._next_tick:
            self._tick(current, now, finalize)

    def add(
        self, n: int | float, values: Iterable[tuple[str, Any]] | dict[str, Any] | None = None
    ) -> None:
        """Record ``n`` more steps done: ``update(steps_so_far + n, values)``.

        Example:
            >>> bar = Progbar(target=10, verbose=0)
            >>> bar.add(2, [("loss", 0.5)])
        """
        if type(n) is not int or n < 0:
            n = _checked_count("n", n)
        self.update(self._seen + n, values)

    def _tick(self, current: int | float, now: float, finalize: bool) -> None:
        """Bring finished values to the host and draw a line if one is due."""
        stream = self.stream if self.stream is not None else sys.stdout
        interval = self._interval_for(stream)
        self._next_tick = now + min(interval, _FOLD_PERIOD)
        if self.verbose == 1:
            draws = finalize or now - self._last_draw >= interval
        else:
            draws = self.verbose == 2 and finalize
        waits = finalize and draws
        self._fold(wait=waits)
        if not draws:
            return
        if waits:
            now = _now()  # the final line's times include the wait for the device
        self._last_draw = now
        if self.verbose == 2:
            text = self._summary_line(current, now)
        elif _is_terminal(stream):
            text = self._terminal_line(current, now, finalize)
        else:
            text = self._plain_line(current, now, finalize)
        _write(stream, text)

    def _interval_for(self, stream: TextIO) -> float:
        """``interval``, or when it is ``None`` the default for ``stream``'s kind."""
        if self.interval is not None:
            return self.interval
        return _TERMINAL_INTERVAL if _is_terminal(stream) else _LOG_INTERVAL

    def _finished_steps(self) -> int | float:
        """Steps whose values have all reached the host (after the latest fold)."""
        pending = self._pending
        return pending[3] - pending[2] if pending else self._seen

    def _fold(self, wait: bool) -> None:
        """Move pending values to the host, in update order.

        Reading an unfinished JAX array waits for it, so unless ``wait`` is set only the values
        before the first unfinished one are moved; the rest stay pending.
        """
        pending, metrics = self._pending, self._metrics
        end = 4 * _copy_finished_to_host(pending[1::4], wait)
        folded = 0
        try:
            for name, value, advanced in zip(
                pending[0:end:4], pending[1:end:4], pending[2:end:4], strict=True
            ):
                metric = metrics[name]
                value = _host_scalar(name, value)
                if metric.averaged:
                    metric.total += value * advanced
                    metric.weight += advanced
                else:
                    metric.total, metric.weight = value, 1
                folded += 4
        finally:
            del pending[:folded]

    def _new_metric(self, name: Any) -> _Metric:
        """Register a metric, in first-seen order."""
        if not isinstance(name, str):
            # from None: update() calls this on a KeyError, which says nothing more.
            raise TypeError(f"metric names must be strings. Received: {name!r}") from None
        metric = self._metrics[name] = _Metric(self._is_averaged(name))
        return metric

    def _metrics_text(self) -> str:
        return "".join(
            f" - {name}: {_metric_text(metric.total / metric.weight)}"
            for name, metric in self._metrics.items()
            if metric.weight
        )

    def _seconds_per_step(self, current: int | float, now: float) -> float:
        """Keras's estimate: ignores the first step once later steps exist."""
        if not current:
            return 0.0
        if self._first_step_time is not None and current > 1:
            return (now - self._first_step_time) / (current - 1)
        return (now - self._start) / current

    def _has_target(self) -> bool:
        return self.target is not None and self.target > 0

    def _count(self, current: int | float) -> str:
        if self.unit_name == _BYTES:
            return _size_count_text(current, self.target)
        return _count_text(current, self.target)

    def _speed(self, seconds_per_step: float) -> str:
        """Time per step (``' 25ms/step'``), or for bytes the rate (``' 8.1 MiB/s'``)."""
        if self.unit_name == _BYTES:
            return _rate_text(seconds_per_step)
        return _per_unit_text(seconds_per_step, self.unit_name)

    def _eta(self, now: float) -> str:
        """Time left for the unfinished steps, at the pace of the finished ones."""
        finished, target = self._finished_steps(), self.target
        if not finished or target is None:
            return "?"
        return _eta_text(self._seconds_per_step(finished, now) * (target - finished))

    def _terminal_line(self, current: int | float, now: float, finalize: bool) -> str:
        """Keras 3's coloured bar, redrawn over the previous one with ``\\r``."""
        per_step = self._seconds_per_step(self._finished_steps(), now)
        if self._has_target():
            filled = _filled_width(current, self.target, self.width)
            bar = f"{_BOLD}{self._count(current)}{_RESET} "
            if filled > 0:
                bar += f"{_GREEN}{_BAR_CHAR * filled}{_RESET}"
            bar += f"{_WHITE}{_BAR_CHAR * (self.width - filled)}{_RESET}"
        else:
            bar = self._count(current)
        if self._has_target() and not finalize:
            clock = self._eta(now)
        else:
            clock = f"{now - self._start:.0f}s"
        line = f"{bar} {_BOLD}{clock}{_RESET}{self._speed(per_step)}"
        line += self._metrics_text()
        width = len(_ANSI.sub("", line))
        padding = " " * max(0, self._line_width - width)
        self._line_width = 0 if finalize else width
        return "\r" + line + padding + ("\n" if finalize else "")

    def _plain_line(self, current: int | float, now: float, finalize: bool) -> str:
        """Keras 2's ASCII layout as one whole line: no ``\\b``, ``\\r`` or ANSI codes."""
        line = self._count(current)
        if self._has_target():
            filled = _filled_width(current, self.target, self.width)
            arrow = ("=" * (filled - 1) + (">" if current < self.target else "=")) if filled else ""
            line += f" [{arrow}{'.' * (self.width - filled)}]"
        if self._has_target() and not finalize:
            line += f" - ETA: {self._eta(now)}"
            if self.unit_name == _BYTES:
                line += f" -{self._speed(self._seconds_per_step(self._finished_steps(), now))}"
        else:
            per_step = self._seconds_per_step(self._finished_steps(), now)
            line += f" - {now - self._start:.0f}s{self._speed(per_step)}"
        return line + self._metrics_text() + "\n"

    def _summary_line(self, current: int | float, now: float) -> str:
        """The single line of ``verbose=2`` (Keras 3's layout)."""
        per_step = self._speed(self._seconds_per_step(current, now))
        elapsed = f"{now - self._start:.0f}s"
        return f"{self._count(current)} - {elapsed} -{per_step}{self._metrics_text()}\n"


def track(iterable: Iterable[T], target: int | None = None, **kwargs: Any) -> Iterator[T]:
    """Yield the items of ``iterable`` while a :class:`Progbar` counts them.

    The bar counts an item as done once the next one has been fetched (or the iterable has
    ended), so the final line is drawn exactly once, at the end. ``progbar(iterable)`` (the
    module called as a function) is the same.

    Args:
        iterable: Anything iterable.
        target: Number of items expected; ``None`` takes ``len(iterable)`` when it has one.
        **kwargs: Passed to :class:`Progbar` (``width``, ``verbose``, ``interval``...).

    Example:
        >>> total = 0
        >>> for x in track(range(4), verbose=0):
        ...     total += x
        >>> total
        6
    """
    if target is None and isinstance(iterable, Sized):
        target = len(iterable)
    return _counted(iter(iterable), Progbar(target, **kwargs))


def _counted(items: Iterator[T], bar: Progbar) -> Iterator[T]:
    """Yield from ``items``, advancing ``bar`` after each item and finalizing once at the end."""
    done = 0
    item = next(items, _END)
    while item is not _END:
        yield item  # type: ignore[misc]
        done += 1
        item = next(items, _END)
        if item is not _END:
            bar.update(done)
    bar.update(done, finalize=True)


# The earlier name of ``track``; ``from jkutils.progbar import progbar`` keeps working.
progbar = track


class _CallableModule(types.ModuleType):
    """This module's type: calling the module is calling :func:`track`.

    ``from jkutils import progbar`` gives the module (so ``progbar.Progbar`` is reachable), and
    ``progbar(loader)`` keeps meaning what it meant when ``progbar`` was the function.
    """

    def __call__(self, iterable: Iterable[T], target: int | None = None, **kwargs: Any):
        return track(iterable, target, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
