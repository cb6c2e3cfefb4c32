"""Tests for jkutils.progbar: exact lines on fake terminals and log streams, averaging, and
proof that updates never wait for unfinished JAX computations."""

from __future__ import annotations

import importlib
import io
import re
import sys
import types

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras.src.utils import progbar as keras_progbar_module

from jkutils.progbar import Progbar, track

# The module itself (``jkutils.progbar`` may be the re-exported function on the package).
progbar_module = importlib.import_module("jkutils.progbar")

CONTROL = ("\b", "\r", "\x1b")


class FakeStream(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty
        self.flushes = 0

    def isatty(self) -> bool:
        return self.tty

    def flush(self) -> None:
        self.flushes += 1


class AsciiStream(FakeStream):
    """A terminal whose encoding is ASCII: writing ``━`` raises UnicodeEncodeError."""

    encoding = "ascii"

    def write(self, text: str) -> int:
        text.encode("ascii")
        return super().write(text)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """One fake clock read by both our bar and Keras's (``time.time`` in Keras's module)."""
    fake = FakeClock()
    monkeypatch.setattr(progbar_module, "_now", fake)
    monkeypatch.setattr(keras_progbar_module, "time", types.SimpleNamespace(time=fake))
    return fake


def drive(bar, clock, steps):
    """Call ``bar.update`` for each ``(seconds since start, current, values[, finalize])``."""
    start = clock.now
    for seconds, current, values, *finalize in steps:
        clock.now = start + seconds
        bar.update(current, values, *finalize)


def ours(clock, steps, *args, tty=True, **kwargs):
    stream = FakeStream(tty)
    drive(Progbar(*args, stream=stream, **kwargs), clock, steps)
    return stream.getvalue()


def keras3(clock, steps, *args, **kwargs):
    """What Keras 3's Progbar writes to a terminal for the same calls and clock."""
    stream, stdout = FakeStream(True), sys.stdout
    sys.stdout = stream
    try:
        drive(keras.utils.Progbar(*args, **kwargs), clock, steps)
    finally:
        sys.stdout = stdout
    return stream.getvalue()


LOSSES = [(0.5, 32, [("loss", 0.3)]), (1.0, 64, [("loss", 0.5)]), (2.5, 100, [("loss", 0.1)])]


# --- terminal layout: Keras 3's bytes, without its redundant backspaces --------------------


PARITY_CASES = {
    "known target, metrics shown as given": (
        [
            (0.5, 32, [("loss", 0.3), ("acc", 1e-4)]),
            (1.0, 64, [("loss", 0.5), ("acc", -0.5)]),
            (2.5, 100, [("loss", 0.1), ("acc", 2.0)]),
        ],
        dict(target=100, stateful_metrics=["loss", "acc"]),
    ),
    "averaged metrics before the final line": (
        [(0.5, 1, [("loss", 4.0)]), (1.5, 3, [("loss", 1.0)]), (2.0, 7, [("loss", 0.25)])],
        dict(target=10),
    ),
    "long ETAs in minutes and hours, lines that shrink": (
        [
            (100.0, 1, [("loss", 1.0)]),
            (7300.0, 2, [("loss", 1.0)]),
            (7310.0, 3, None),
            (7315.0, 9, None),
        ],
        dict(target=10, width=7, stateful_metrics=["loss"]),
    ),
    "unknown target and a unit name": (
        [(0.2, 1, [("bytes", 1.0)]), (2.0, 5, None), (4.0, 9, None, True)],
        dict(target=None, unit_name="chunk", stateful_metrics=["bytes"]),
    ),
    "target zero": ([(0.0, 0, None)], dict(target=0)),
    "verbose 2, metrics shown as given": (
        [(0.5, 32, [("loss", 0.3), ("acc", 1e-4)]), (2.5, 100, [("loss", 0.1), ("acc", 2e-4)])],
        dict(target=100, verbose=2, stateful_metrics=["loss", "acc"]),
    ),
    "microsecond steps": ([(0.0001, 1, None), (0.0003, 5, None)], dict(target=5, interval=0)),
}


@pytest.mark.parametrize("case", PARITY_CASES)
def test_terminal_output_matches_keras3_except_backspaces(case, clock):
    steps, kwargs = PARITY_CASES[case]
    expected = keras3(clock, steps, **kwargs).replace("\b", "")
    assert ours(clock, steps, **kwargs) == expected


def colour_bar(filled: int, width: int = 20) -> str:
    """Keras 3's bar: green done part (left out when empty), white remaining part."""
    done = f"\x1b[32m{'━' * filled}\x1b[0m" if filled else ""
    return done + f"\x1b[37m{'━' * (width - filled)}\x1b[0m"


def test_terminal_lines_hand_checked(clock):
    out = ours(clock, LOSSES, 100)
    assert out.split("\r")[1:] == [
        f"\x1b[1m 32/100\x1b[0m {colour_bar(6)} \x1b[1m1s\x1b[0m 16ms/step - loss: 0.3000",
        f"\x1b[1m 64/100\x1b[0m {colour_bar(12)} \x1b[1m0s\x1b[0m 16ms/step - loss: 0.4000",
        # (0.3*32 + 0.5*32 + 0.1*36) / 100: the final line is averaged too.
        f"\x1b[1m100/100\x1b[0m {colour_bar(20)} \x1b[1m2s\x1b[0m 25ms/step - loss: 0.2920\n",
    ]
    assert "\b" not in out


def test_terminal_pads_a_shorter_line_and_starts_fresh_after_the_final_line(clock):
    stream = FakeStream(True)
    bar = Progbar(None, stream=stream, stateful_metrics=["m"])
    drive(bar, clock, [(1, 1, [("m", 123.0)]), (2, 2, [("m", 1.0)]), (3, 3, None, True)])
    drive(bar, clock, [(1, 4, None)])  # one second later
    assert stream.getvalue().split("\r")[1:] == [
        "      1/Unknown \x1b[1m1s\x1b[0m 1s/step - m: 123.0000",
        "      2/Unknown \x1b[1m2s\x1b[0m 1s/step - m: 1.0000  ",  # blanks the old "00"
        "      3/Unknown \x1b[1m3s\x1b[0m 1s/step - m: 1.0000\n",
        "      4/Unknown \x1b[1m4s\x1b[0m 1s/step - m: 1.0000",  # a new line: nothing to blank
    ]


def test_terminal_without_unicode_draws_the_bar_with_equals(clock):
    stream = AsciiStream(True)
    drive(Progbar(4, width=4, stream=stream), clock, [(1, 2, None)])
    assert "\x1b[32m==\x1b[0m\x1b[37m==\x1b[0m" in stream.getvalue()


# --- plain lines for logs, pipes and CI ---------------------------------------------------


def test_plain_lines_use_keras2_layout_without_control_codes(clock):
    steps = [(s, c, v + [("acc", 1e-4)]) for s, c, v in LOSSES]
    assert ours(clock, steps, 100, width=30, interval=0.05, tty=False) == (
        " 32/100 [========>.....................] - ETA: 1s - loss: 0.3000 - acc: 1.0000e-04\n"
        " 64/100 [==================>...........] - ETA: 0s - loss: 0.4000 - acc: 1.0000e-04\n"
        "100/100 [==============================] - 2s 25ms/step - loss: 0.2920"
        " - acc: 1.0000e-04\n"
    )


def test_plain_lines_for_unknown_target_show_elapsed_time_and_time_per_step(clock):
    steps = [(0.4, 1, [("loss", 1.0)]), (2.0, 5, [("loss", 1.0)], True)]
    assert ours(clock, steps, None, interval=0.05, tty=False) == (
        "      1/Unknown - 0s 400ms/step - loss: 1.0000\n"
        "      5/Unknown - 2s 400ms/step - loss: 1.0000\n"
    )


def test_plain_output_writes_at_most_one_line_per_interval_plus_the_final_line(clock):
    stream = FakeStream(False)
    bar = Progbar(1000, interval=1.0, stream=stream)
    drive(bar, clock, [(0.25 * step, step, [("loss", 1.0)]) for step in range(1, 1001)])
    lines = stream.getvalue().splitlines()
    # Draws at steps 1, 5, 9, ... (every 4th step = every 1.0 s), then the final step 1000.
    assert [line.split("/")[0].strip() for line in lines] == [
        str(step) for step in range(1, 1000, 4)
    ] + ["1000"]
    assert not any(code in stream.getvalue() for code in CONTROL)


def test_the_bar_is_full_but_not_longer_when_current_passes_target(clock):
    assert ours(clock, [(1, 15, None)], 10, width=10, tty=False).startswith(
        "15/10 [==========] - 1s"
    )


# --- verbosity -----------------------------------------------------------------------------


@pytest.mark.parametrize("tty", [True, False])
def test_verbose_2_writes_one_line_at_the_end(clock, tty):
    steps = [(s, c, v + [("acc", -0.5)]) for s, c, v in LOSSES]
    assert ours(clock, steps, 100, verbose=2, tty=tty) == (
        "100/100 - 2s - 25ms/step - loss: 0.2920 - acc: -0.5000\n"
    )


def test_verbose_2_with_unknown_target_writes_the_line_when_finalized(clock):
    steps = [(1.0, 4, [("loss", 2.0)]), (2.0, 8, [("loss", 1.0)]), (3.0, 8, None, True)]
    assert ours(clock, steps, None, verbose=2) == (
        "      8/Unknown - 3s - 375ms/step - loss: 1.5000\n"
    )


@pytest.mark.parametrize("tty", [True, False])
def test_verbose_0_writes_nothing(clock, tty):
    assert ours(clock, LOSSES + [(3.0, 100, None, True)], 100, verbose=0, tty=tty) == ""


def test_default_stream_is_stdout_at_draw_time(clock, monkeypatch):
    bar = Progbar(2)
    first, second = FakeStream(False), FakeStream(False)
    monkeypatch.setattr(sys, "stdout", first)
    drive(bar, clock, [(1, 1, None)])
    monkeypatch.setattr(sys, "stdout", second)
    drive(bar, clock, [(2, 2, None)])
    assert first.getvalue().startswith("1/2 [")
    assert second.getvalue().startswith("2/2 [")
    assert first.flushes == second.flushes == 1


class ClosedStream(io.StringIO):
    """A stream whose isatty() raises, like a closed file's."""

    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


class WriteOnly:
    """The least a stream needs: a write() method (no flush, no isatty)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)


@pytest.mark.parametrize("stream", [ClosedStream(), WriteOnly()])
def test_streams_without_a_working_isatty_get_plain_lines(clock, stream):
    drive(Progbar(2, stream=stream), clock, [(1, 2, None)])
    text = stream.getvalue() if isinstance(stream, io.StringIO) else "".join(stream.parts)
    assert text == "2/2 [====================] - 1s 500ms/step\n"


# --- averaging -------------------------------------------------------------------------------


def final_metrics(clock, steps, target=None, **kwargs):
    """The metric part of the final verbose=2 line."""
    line = ours(clock, steps + [(99.0, steps[-1][1], None, True)], target, verbose=2, **kwargs)
    return line.split("/step")[1].strip()


def test_averages_are_weighted_by_steps_advanced(clock):
    steps = [(1, 2, [("loss", 1.0)]), (2, 3, [("loss", 4.0)]), (3, 7, [("loss", 0.5)])]
    # (1*2 + 4*1 + 0.5*4) / 7 (the finalizing call repeats step 7 with no values)
    assert final_metrics(clock, steps) == f"- loss: {(2 + 4 + 2) / 7:.4f}"


def test_add_advances_by_n_and_repeated_steps_weigh_one(clock):
    stream = FakeStream(False)
    bar = Progbar(None, verbose=2, stream=stream)
    bar.add(3, [("loss", 1.0)])
    bar.add(0, [("loss", 5.0)])  # no advance still counts once
    bar.update(3, [("loss", 3.0)], finalize=True)
    assert stream.getvalue().endswith(f"- loss: {(3 * 1.0 + 5.0 + 3.0) / 5:.4f}\n")
    assert stream.getvalue().startswith("      3/Unknown")


def test_stateful_metrics_are_shown_as_given(clock):
    steps = [(1, 1, [("loss", 1.0), ("acc", 0.5)]), (2, 2, [("loss", 3.0), ("acc", 0.75)])]
    assert final_metrics(clock, steps, stateful_metrics=["acc"]) == ("- loss: 2.0000 - acc: 0.7500")


def test_stateless_metrics_name_the_averaged_ones(clock):
    steps = [(1, 1, [("loss", 1.0), ("acc", 0.5)]), (2, 2, [("loss", 3.0), ("acc", 0.75)])]
    assert final_metrics(clock, steps, stateless_metrics=["acc"]) == (
        "- loss: 3.0000 - acc: 0.6250"
    )


def test_metrics_keep_the_order_they_first_appeared_in(clock):
    steps = [(1, 1, [("b", 1.0)]), (2, 2, [("a", 2.0), ("b", 1.0)])]
    assert final_metrics(clock, steps) == "- b: 1.0000 - a: 2.0000"


def test_array_values_show_the_mean_of_their_elements(clock):
    steps = [(1, 1, [("v", np.array([1.0, 2.0, 3.0]))]), (2, 2, [("v", [4.0, 6.0])])]
    assert final_metrics(clock, steps) == f"- v: {(2.0 + 5.0) / 2:.4f}"


def test_small_and_negative_values_use_scientific_notation_below_1e_3(clock):
    steps = [(1, 1, [("a", 1e-4), ("b", -1e-4), ("c", -0.5), ("d", 0.0)])]
    assert final_metrics(clock, steps, stateful_metrics=["a", "b", "c", "d"]) == (
        "- a: 1.0000e-04 - b: -1.0000e-04 - c: -0.5000 - d: 0.0000e+00"
    )


def test_values_may_be_a_dict(clock):
    steps = [(1, 1, {"loss": 1.0, "acc": 0.5}), (2, 2, {"loss": 3.0, "acc": 0.75})]
    assert final_metrics(clock, steps, stateful_metrics=["acc"]) == (
        "- loss: 2.0000 - acc: 0.7500"
    )


def test_passed_list_can_be_reused_by_the_caller(clock):
    stream = FakeStream(False)
    bar = Progbar(2, verbose=2, stream=stream, interval=100)
    values = [("loss", 1.0)]
    bar.update(1, values)
    values[0] = ("loss", 3.0)
    bar.update(2, values)
    assert stream.getvalue().endswith("- loss: 2.0000\n")


# --- JAX arrays: kept as given, never waited for between draws ------------------------------


@jax.jit
def _slow_mean(a):
    """About a second of CPU work whose result is a scalar."""
    return jax.lax.fori_loop(0, 200, lambda i, a: jnp.tanh(a @ a), a).mean()


@pytest.fixture(scope="module")
def slow_input():
    a = jnp.full((512, 512), 1.0 / 512, dtype=jnp.float32)
    _slow_mean(a).block_until_ready()  # compile outside the measured part
    return a


def test_update_does_not_wait_for_an_unfinished_computation(clock, slow_input):
    stream = FakeStream(True)
    bar = Progbar(10, stream=stream)
    bar.update(1, [("loss", jnp.float32(0.5))])  # drawn: the first update always draws
    pending = _slow_mean(slow_input)
    assert not pending.is_ready()
    for step in range(2, 10):  # the fake clock stands still: no draw is due
        bar.update(step, [("loss", pending), ("lr", pending)])
    assert not pending.is_ready(), "update() waited for the device"
    assert stream.getvalue().count("\r") == 1
    bar.update(10, [("loss", jnp.float32(0.5))])  # the final line waits for every value
    expected = (0.5 + 8 * float(pending) + 0.5) / 10
    assert stream.getvalue().endswith(f" - loss: {expected:.4f} - lr: {float(pending):.4f}\n")


def test_lines_before_the_end_do_not_wait_and_time_only_finished_steps(clock, slow_input):
    stream = FakeStream(False)
    bar = Progbar(4, stream=stream, interval=0.05)
    bar.update(1, [("loss", jnp.float32(2.0).block_until_ready())])
    pending = _slow_mean(slow_input)
    clock.now += 1
    bar.update(2, [("loss", pending)])
    clock.now += 1
    bar.update(3, [("loss", jnp.float32(4.0))])  # drawn, but step 2 is not computed yet
    assert not pending.is_ready(), "a drawn line waited for the device"
    jax.block_until_ready(pending)
    clock.now += 1
    bar.update(4, None)
    assert stream.getvalue().splitlines() == [
        "1/4 [====>...............] - ETA: 0s - loss: 2.0000",
        # Only step 1 has finished: 1 s (then 2 s) per finished step, 3 steps to go.
        "2/4 [=========>..........] - ETA: 3s - loss: 2.0000",
        "3/4 [==============>.....] - ETA: 6s - loss: 2.0000",
        f"4/4 [====================] - 3s 1s/step - loss: {(6 + float(pending)) / 3:.4f}",
    ]


def test_updates_between_draws_transfer_nothing_to_the_host(clock):
    stream = FakeStream(False)
    bar = Progbar(1000, stream=stream)
    values = [("loss", jnp.float32(2.0)), ("acc", jnp.arange(3.0))]
    bar.update(1, values)  # the first update draws
    with jax.transfer_guard("disallow"):
        for step in range(2, 1000):
            bar.update(step, values)
    bar.update(1000, values)
    assert stream.getvalue().endswith(" - loss: 2.0000 - acc: 1.0000\n")


def test_silent_bar_never_waits_even_when_finalized(clock, slow_input):
    bar = Progbar(3, verbose=0)
    pending = _slow_mean(slow_input)
    bar.update(1, [("loss", pending)])
    clock.now += 10
    bar.update(3, [("loss", pending)])
    assert not pending.is_ready()


class FakeAcceleratorValue:
    """A finished scalar on a non-CPU device that logs how it is copied and read."""

    def __init__(self, value: float, log: list[str], platform: str = "gpu"):
        self.value, self.log, self.platform = value, log, platform

    def is_ready(self) -> bool:
        return True

    def devices(self):
        return [types.SimpleNamespace(platform=self.platform)]

    def copy_to_host_async(self) -> None:
        self.log.append(f"copy {self.value}")

    def __array__(self, dtype=None, copy=None):
        self.log.append(f"read {self.value}")
        return np.asarray(self.value, dtype=dtype)


@pytest.mark.parametrize("platform, copies", [("gpu", True), ("cpu", False)])
def test_accelerator_values_are_all_copied_before_any_is_read(clock, platform, copies):
    log: list[str] = []
    stream = FakeStream(False)
    bar = Progbar(3, stream=stream, interval=100)
    bar.update(1, None)
    for step, value in ((2, 1.0), (3, 2.0)):
        bar.update(step, [("loss", FakeAcceleratorValue(value, log, platform))])
    expected_reads = ["read 1.0", "read 2.0"]
    assert log == (["copy 1.0", "copy 2.0"] if copies else []) + expected_reads
    assert stream.getvalue().endswith(" - loss: 1.5000\n")


# --- iterable wrapper ------------------------------------------------------------------------


def test_progbar_wrapper_counts_items_of_a_sized_iterable(clock):
    stream = FakeStream(False)
    assert list(track([10, 20, 30], stream=stream, interval=100)) == [10, 20, 30]
    lines = stream.getvalue().splitlines()
    assert [line[:4] for line in lines] == ["1/3 ", "3/3 "]


def test_progbar_wrapper_finalizes_unknown_and_short_iterables(clock):
    stream = FakeStream(False)
    assert list(track(iter("ab"), stream=stream, interval=100)) == ["a", "b"]
    assert stream.getvalue().splitlines()[-1].startswith("      2/Unknown - 0s")
    stream = FakeStream(False)
    assert list(track(iter("ab"), target=5, stream=stream, interval=100)) == ["a", "b"]
    assert stream.getvalue().splitlines()[-1].startswith("2/5 [=======>............] - 0s")


def test_track_of_a_generator_piped_writes_its_final_line_once(clock):
    stream = FakeStream(False)
    assert list(track((c for c in "abc"), stream=stream, interval=0)) == ["a", "b", "c"]
    counts = [line.split("/")[0].strip() for line in stream.getvalue().splitlines()]
    assert counts == ["1", "2", "3"]


def test_track_of_an_empty_iterable_writes_one_final_line(clock):
    stream = FakeStream(False)
    assert list(track(iter(()), stream=stream)) == []
    assert stream.getvalue() == "      0/Unknown - 0s 0s/step\n"


def test_progbar_module_is_reachable_and_callable_like_the_old_function(clock):
    import jkutils
    from jkutils import progbar as progbar_name

    assert jkutils.progbar is progbar_module is progbar_name
    assert jkutils.progbar.Progbar is Progbar
    stream = FakeStream(False)
    assert list(jkutils.progbar([1, 2], stream=stream)) == [1, 2]
    assert stream.getvalue().startswith("1/2 [")


def test_progbar_wrapper_checks_its_arguments_before_iterating():
    with pytest.raises(ValueError, match="verbose"):
        track([1], verbose=5)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(target="10"), TypeError, "`target` must be a number or None"),
        (dict(target=-1), ValueError, "`target` must be a finite number >= 0"),
        (dict(target=float("nan")), ValueError, "target=nan"),
        (dict(target=jnp.int32(3)), TypeError, "device array"),
        (dict(target=True), TypeError, "target=True"),
        (dict(target=10, width=0), ValueError, "`width` must be a positive integer"),
        (dict(target=10, width=2.5), ValueError, "width=2.5"),
        (dict(target=10, verbose=3), ValueError, "`verbose` must be 0, 1 or 2"),
        (dict(target=10, interval=-1), ValueError, "`interval`"),
        (dict(target=10, interval="fast"), ValueError, "interval='fast'"),
        (dict(target=10, stateful_metrics="acc"), TypeError, "iterable of metric names"),
        (dict(target=10, stateless_metrics=5), TypeError, "stateless_metrics=5"),
        (dict(target=10, width=True), ValueError, "width=True"),
        (dict(target=10, verbose=1.5), ValueError, "verbose=1.5"),
        (dict(target=10, stateful_metrics=[1]), TypeError, "stateful_metrics entry"),
        (dict(target=10, stateful_metrics=[["acc"]]), TypeError, "stateful_metrics entry"),

        (dict(target=10, unit_name=None), TypeError, "`unit_name` must be a string"),
        (dict(target=10, stream=object()), TypeError, "`stream`"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        Progbar(**kwargs)


@pytest.mark.parametrize(
    "current, error, match",
    [
        (-1, ValueError, "current=-1"),
        ("3", TypeError, "`current` must be a number"),
        (jnp.int32(3), TypeError, "device array"),
    ],
)
def test_bad_current_is_rejected(current, error, match):
    with pytest.raises(error, match=match):
        Progbar(10, verbose=0).update(current)


def test_numpy_and_float_counts_are_accepted(clock):
    steps = [(1, np.int64(5), None), (2, 7.5, None)]
    out = ours(clock, steps, np.int32(10), interval=0.05, tty=False)
    assert out.splitlines()[0].startswith(" 5/10 [=========>..........] - ETA: 1s")
    assert out.splitlines()[1].startswith(" 7/10 [==============>.....] - ETA: 0s")


def test_bad_add_count_is_rejected():
    with pytest.raises(TypeError, match="`n` must be a number"):
        Progbar(10, verbose=0).add("1")


@pytest.mark.parametrize(
    "values, error, match",
    [
        ({"loss": 1.0}.keys(), TypeError, r"\(name, value\) pairs"),
        ({1: 1.0}, TypeError, r"\(name, value\) pairs"),
        ([(1, 2.0)], TypeError, r"\(name, value\) pairs"),
        ([("loss",)], TypeError, r"\(name, value\) pairs"),
        ([("loss", "high")], TypeError, "Metric 'loss' must be a real number"),
        ([("loss", None)], TypeError, "Metric 'loss' must be a real number"),
        ([("loss", [])], TypeError, "non-empty array"),
        ([("loss", 1 + 2j)], TypeError, "complex"),
    ],
)
def test_bad_values_are_rejected_on_the_first_update(values, error, match):
    with pytest.raises(error, match=match):
        Progbar(10, verbose=0).update(1, values)


def test_both_metric_lists_raise_keras_message():
    with pytest.raises(ValueError) as keras_error:
        keras.utils.Progbar(10, stateful_metrics=["a"], stateless_metrics=["b"])
    keras_first_sentence = str(keras_error.value).split(". ")[0]
    assert keras_first_sentence.startswith("Only one of `stateful_metrics`")
    with pytest.raises(ValueError, match=re.escape(keras_first_sentence)):
        Progbar(10, stateful_metrics=["a"], stateless_metrics=["b"])


# --- the final line includes the wait for the device ----------------------------------------


class SlowDeviceValue:
    """A stand-in for an unfinished device scalar: reading it takes ``seconds`` on the clock."""

    def __init__(self, clock, seconds: float, value: float):
        self.clock, self.seconds, self.value = clock, seconds, value

    def is_ready(self) -> bool:
        return False

    def __array__(self, dtype=None, copy=None):
        self.clock.now += self.seconds
        return np.asarray(self.value, dtype=dtype)


def test_final_line_counts_the_time_spent_waiting_for_the_device(clock):
    stream = FakeStream(False)
    bar = Progbar(2, stream=stream, interval=0.05)
    bar.update(1, [("loss", 1.0)])
    clock.now += 1
    bar.update(2, [("loss", SlowDeviceValue(clock, 5.0, 3.0))])  # the wait takes 5 s
    # Started at 0, the last value arrived at 6 s: 6 s for the one step after the first.
    assert stream.getvalue().splitlines()[-1] == (
        "2/2 [====================] - 6s 6s/step - loss: 2.0000"
    )


# --- downloads: sizes and transfer rates; logs get a line per 10 s by default ---------------

MiB = 2**20


def test_byte_counts_show_sizes_and_rates_in_plain_lines(clock):
    steps = [(1.0, 8 * MiB, None), (8.0, 64 * MiB, None)]
    assert ours(clock, steps, 64 * MiB, unit_name="B", interval=0.05, tty=False) == (
        " 8.0 MiB/64.0 MiB [=>..................] - ETA: 7s - 8.0 MiB/s\n"
        "64.0 MiB/64.0 MiB [====================] - 8s 8.0 MiB/s\n"
    )


def test_byte_counts_on_a_terminal_show_the_rate(clock):
    out = ours(clock, [(2.0, 3 * 2**30, None, True)], None, unit_name="B", tty=True)
    assert out == "\r3.0 GiB/Unknown \x1b[1m2s\x1b[0m 1.5 GiB/s\n"


def test_small_byte_counts_are_whole_bytes(clock):
    out = ours(clock, [(1.0, 512, None), (2.0, 1536, None)], 1536, unit_name="B", tty=False)
    assert out.splitlines()[-1] == "1.5 KiB/1.5 KiB [====================] - 2s 768 B/s"


def test_a_64_mib_download_piped_to_a_log_writes_two_lines_by_default(clock):
    stream = FakeStream(False)
    bar = Progbar(64 * MiB, unit_name="B", stream=stream)
    # 1 MiB chunks at 8 MiB/s: 8 s in all, under the 10 s log interval.
    drive(bar, clock, [(0.125 * i, i * MiB, None) for i in range(1, 65)])
    lines = stream.getvalue().splitlines()
    assert [line.split("/")[0].strip() for line in lines] == ["1.0 MiB", "64.0 MiB"]

