"""Process helpers for the tests that kill processes: is a pid alive, wait for pids to go."""

from __future__ import annotations

import time


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie or a missing pid is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def gone_within(pids, seconds: float) -> list[int]:
    """Wait up to ``seconds`` for every pid in ``pids`` to end; the ones still running."""
    deadline = time.monotonic() + seconds
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if running(pid)]
