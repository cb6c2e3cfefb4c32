"""Per-update cost of jkutils.Progbar against tqdm and Keras's Progbar.

Every bar writes to os.devnull as a non-terminal stream with its normal time throttle, so each
figure includes the amortized cost of the lines drawn. Contenders compared in one row are timed
in alternating rounds (best round kept), so that a busy machine slows them alike. The limit is
an empty Python method call taking the same arguments: no Python-level update can cost less.

Run: ``python benchmarks/bench_progbar.py [--quick]``
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._harness import Row, best_of, print_table  # noqa: E402
from jkutils.progbar import Progbar, progbar  # noqa: E402

AREA = "progbar"
TARGET = 10**12  # never reached: no bar finalizes inside a timed loop


class _Empty:
    """The cheapest possible update: a method call that does nothing."""

    def update(self, current, values=None, finalize=None):
        pass


@contextlib.contextmanager
def _stdout_to(stream):
    """Keras's Progbar always writes to sys.stdout."""
    saved, sys.stdout = sys.stdout, stream
    try:
        yield
    finally:
        sys.stdout = saved


def _best_interleaved(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best seconds per call of each run, the runs taking turns round after round."""
    best = dict.fromkeys(runs, math.inf)
    for _ in range(rounds):
        for name, run in runs.items():
            best[name] = min(best[name], best_of(run, repeat=1))
    return best


def _updating(make_bar, values, steps: int) -> Callable[[], None]:
    """A run of ``steps`` calls ``bar.update(i, values)`` on a fresh bar."""

    def run():
        bar = make_bar()
        for i in range(1, steps + 1):
            bar.update(i, values)

    return run


def _tqdm_updating(stream, steps: int) -> Callable[[], None]:
    def run():
        bar = tqdm(total=TARGET, file=stream)
        for _ in range(steps):
            bar.update(1)
        bar.close()

    return run


def _iterating(wrap, steps: int) -> Callable[[], None]:
    def run():
        for _ in wrap(range(steps)):
            pass

    return run


def _device_step(size: int, rounds: int):
    """A jitted step of ``rounds`` matmuls on a ``size`` x ``size`` input, returning a scalar."""

    @jax.jit
    def step(a):
        return jax.lax.fori_loop(0, rounds, lambda i, a: jnp.tanh(a @ a), a).mean()

    a = jnp.full((size, size), 1.0 / size, dtype=jnp.float32)
    step(a).block_until_ready()
    return step, a


def _seconds_to_draw_while_computing(make_bar, repeat: int) -> float:
    """Time one drawing ``update`` takes while its metric is still being computed."""
    step, a = _device_step(512, 100)
    best = math.inf
    for _ in range(repeat):
        bar = make_bar()
        bar.update(1, [("loss", jnp.float32(0.0).block_until_ready())])
        loss = step(a)
        start = time.perf_counter()
        bar.update(2, [("loss", loss)])
        best = min(best, time.perf_counter() - start)
        loss.block_until_ready()
    return best


def _async_loop(make_bar, steps: int) -> Callable[[], None]:
    """A training loop whose host side (data loading, here a sleep) overlaps device compute.

    Each step waits 20 ms for its data, then dispatches device work and reports the loss.
    ``make_bar=None`` runs the loop with no bar: the physical limit.
    """
    step, a = _device_step(256, 60)

    def run():
        bar = make_bar() if make_bar else None
        loss = None
        for i in range(1, steps + 1):
            time.sleep(0.02)
            loss = step(a)
            if bar is not None:
                bar.update(i, [("loss", loss)])
        loss.block_until_ready()

    return run


def _measure(devnull, quick: bool) -> dict[str, float]:
    steps, rounds = (20_000, 3) if quick else (200_000, 5)
    keras_steps = steps // 10  # Keras is slower; fewer steps keep the run short
    floats = [("loss", 0.25), ("acc", 0.5)]
    ready = [("loss", jnp.float32(0.25).block_until_ready())]
    ours = lambda: Progbar(TARGET, stream=devnull)  # noqa: E731
    theirs = lambda: keras.utils.Progbar(TARGET)  # noqa: E731
    per_step = {
        "empty": (_updating(_Empty, None, steps), steps),
        "empty floats": (_updating(_Empty, floats, steps), steps),
        "tqdm": (_tqdm_updating(devnull, steps), steps),
        "ours": (_updating(ours, None, steps), steps),
        "ours floats": (_updating(ours, floats, steps), steps),
        "keras floats": (_updating(theirs, floats, keras_steps), keras_steps),
        "ours jax": (_updating(ours, ready, steps), steps),
        "keras jax": (_updating(theirs, ready, keras_steps // 10), keras_steps // 10),
        "bare for": (_iterating(iter, steps), steps),
        "progbar(it)": (_iterating(lambda it: progbar(it, stream=devnull), steps), steps),
        "tqdm(it)": (_iterating(lambda it: tqdm(it, file=devnull), steps), steps),
    }
    best = _best_interleaved({name: run for name, (run, _) in per_step.items()}, rounds)
    result = {name: best[name] / count for name, (_, count) in per_step.items()}
    loop_steps = 10 if quick else 25
    result.update(_best_interleaved({
        "loop bare": _async_loop(None, loop_steps),
        "loop ours": _async_loop(lambda: Progbar(loop_steps, stream=devnull), loop_steps),
        "loop keras": _async_loop(lambda: keras.utils.Progbar(loop_steps), loop_steps),
    }, 1 if quick else 3))
    result["loop steps"] = loop_steps
    draws = 2 if quick else 3
    result["draw ours"] = _seconds_to_draw_while_computing(
        lambda: Progbar(TARGET, interval=0, stream=devnull), draws)
    result["draw keras"] = _seconds_to_draw_while_computing(
        lambda: keras.utils.Progbar(TARGET, interval=0), draws)
    return result


def rows(quick: bool = False) -> list[Row]:
    with open(os.devnull, "w") as devnull, _stdout_to(devnull):
        t = _measure(devnull, quick)

    def row(measure, ours, ref_name, ref, limit_name, limit, goal=""):
        return Row(AREA, measure, t[ours], ref_name, t[ref], limit_name, t[limit], target=goal)

    return [
        row("update(i)", "ours", "tqdm.update(1)", "tqdm", "empty call", "empty", "<= 2x tqdm"),
        row("update(i, 2 floats)", "ours floats", "tqdm.update(1)", "tqdm", "empty call",
            "empty floats", "<= 2x tqdm"),
        row("update(i, 2 floats)", "ours floats", "keras Progbar", "keras floats", "empty call",
            "empty floats"),
        row("update(i, ready jax scalar)", "ours jax", "keras Progbar", "keras jax",
            "empty call", "empty floats"),
        row("drawn update while the step computes", "draw ours", "keras Progbar", "draw keras",
            "empty call", "empty floats", "never waits"),
        row(f"async loop, {t['loop steps']} steps of 20 ms I/O + compute", "loop ours",
            "keras Progbar", "loop keras", "no bar", "loop bare", "= no bar"),
        row("for x in progbar(it)", "progbar(it)", "tqdm(it)", "tqdm(it)", "bare for",
            "bare for"),
    ]


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
