"""A 2-process x 4-CPU-device JAX program: the data-parallel step matches one process.

Two Python interpreters run ``_multiprocess_worker.py``; they meet through
``jax.distributed.initialize`` on 127.0.0.1 at a free port, each feeds its own rows of a
13-example batch (7 and 6 rows, so padding is needed on both processes) and trains over a mesh
of all 8 devices. The results must equal a plain single-device optax step on the whole batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import _multiprocess_worker as worker
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

WORKER = Path(__file__).with_name("_multiprocess_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    return env


def _start(process_ids: list[int], port: int, tmp_path: Path) -> list[subprocess.Popen]:
    """Start one worker per id; each writes its log next to its results in ``tmp_path``.

    If one cannot be started, those already running are killed before the error propagates.
    """
    procs = []
    try:
        for i in process_ids:
            command = [sys.executable, str(WORKER), str(port), str(i),
                       str(tmp_path / f"process{i}.npz")]
            with open(tmp_path / f"process{i}.log", "w") as log:
                procs.append(subprocess.Popen(command, env=_worker_env(), stdout=log,
                                              stderr=subprocess.STDOUT))
    except BaseException:
        _wait_all(procs, timeout_s=0)
        raise
    return procs


def _wait_all(procs: list[subprocess.Popen], timeout_s: float) -> list[int | None]:
    """Exit codes once all exit, or as soon as one fails or time runs out; the rest are killed.

    A killed process reports ``None``. Nothing is left running when this returns.
    """
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(code == 0 for code in codes) or any(code not in (0, None) for code in codes):
                break
            time.sleep(0.05)
        return [proc.poll() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _run_workers(tmp_path: Path) -> list[dict]:
    """Run both processes to completion and return what each saved."""
    ids = list(range(worker.NUM_PROCESSES))
    codes = _wait_all(_start(ids, _free_port(), tmp_path), TIMEOUT_S)
    for i, code in zip(ids, codes, strict=True):
        log = (tmp_path / f"process{i}.log").read_text()
        assert code == 0, f"process {i} ended with {code} (None: killed):\n{log}"
    return [dict(np.load(tmp_path / f"process{i}.npz")) for i in ids]


def _single_process_reference():
    """Plain single-device optax steps on the whole batch (no jkutils involved)."""
    opt = worker.optimizer()
    params = worker.init_params()
    opt_state = opt.init(params)
    batch = worker.full_batch()

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean(worker.per_example_loss(p, batch)))(
            params
        )
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(worker.STEPS):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    return params, np.array(losses)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[dict]:
    return _run_workers(tmp_path_factory.mktemp("multiprocess"))


def test_each_process_fed_its_own_rows_and_together_all_rows(results):
    shares = [r["local_share_x"] for r in results]
    assert [len(s) for s in shares] == [7, 6]
    together = np.concatenate(shares)
    full = worker.full_batch()["x"]
    assert sorted(map(tuple, together)) == sorted(map(tuple, full))


def test_train_step_matches_single_process(results):
    ref_params, ref_losses = _single_process_reference()
    for r in results:  # every process holds the same replicated result
        np.testing.assert_allclose(r["losses"], ref_losses, rtol=1e-5, atol=1e-6)
        for name, value in ref_params.items():
            np.testing.assert_allclose(r[f"param_{name}"], value, rtol=1e-5, atol=1e-5)


def test_data_parallel_returns_each_process_its_rows(results):
    params = worker.init_params()
    for r in results:
        expected = np.asarray(worker.apply(params, r["local_share_x"]))
        np.testing.assert_allclose(r["outputs"], expected, rtol=1e-5, atol=1e-6)


def test_shard_batch_builds_the_global_batch(results):
    for r in results:
        assert tuple(r["shard_shape"]) == (16, 1)
        assert float(r["shard_sum"]) == float(np.arange(16).sum())


def test_a_failing_process_stops_the_other_at_once(tmp_path):
    # process id 5 is out of range: that process fails at start-up while process 0 waits for
    # its peer; the runner must notice the failure and kill the waiting process right away.
    start = time.monotonic()
    codes = _wait_all(_start([0, 5], _free_port(), tmp_path), TIMEOUT_S)
    assert codes[1] not in (0, None)
    assert codes[0] != 0
    assert time.monotonic() - start < TIMEOUT_S / 2
