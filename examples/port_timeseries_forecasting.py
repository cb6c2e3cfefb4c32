"""Keras's timeseries forecasting, ported: windows of a series predict the next value.

The Keras version builds ``keras.utils.timeseries_dataset_from_array(..., shuffle=True,
seed=1)`` and calls ``model.fit``. Here the same call (Keras's ``seed=`` is accepted) gives a
``grain.MapDataset`` of ``(windows, targets)`` batches, and a jitted optax step replaces ``fit``.

Run: ``python examples/port_timeseries_forecasting.py`` (a few seconds on a CPU).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jkutils  # noqa: E402

WINDOW = 24


def make_series(steps: int = 2000) -> np.ndarray:
    """A noisy daily cycle, standing in for the temperature column of a weather file."""
    t = np.arange(steps, dtype=np.float32)
    noise = np.random.default_rng(0).normal(0, 0.1, steps).astype(np.float32)
    return np.sin(2 * np.pi * t / 24) + noise


def predict(params, windows):
    return windows @ params["w"] + params["b"]


@jax.jit
def train_step(params, opt_state, windows, targets):
    def loss_fn(p):
        return jnp.mean(jkutils.get("mse")(targets[:, None], predict(p, windows)[:, None]))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


OPTIMIZER = jkutils.get("Adam")(lr=1e-2)  # Keras's spelling: Adam(lr=...) builds optax.adam


def main() -> float:
    series = make_series()
    split = int(0.8 * len(series))
    # Keras: timeseries_dataset_from_array(data, targets, sequence_length, ..., seed=1)
    train = jkutils.timeseries_dataset_from_array(
        series[:split],
        series[WINDOW:split],
        sequence_length=WINDOW,
        batch_size=64,
        shuffle=True,
        seed=1,
    )
    val = jkutils.timeseries_dataset_from_array(
        series[split:], series[split + WINDOW :], sequence_length=WINDOW, batch_size=256
    )
    params = {"w": jnp.zeros(WINDOW), "b": jnp.zeros(())}
    opt_state = OPTIMIZER.init(params)
    for _epoch in range(3):
        bar = jkutils.Progbar(len(train))
        for step, (windows, targets) in enumerate(train, start=1):
            params, opt_state, loss = train_step(params, opt_state, windows, targets)
            bar.update(step, [("loss", loss)])
    errors = [np.mean((predict(params, w) - t) ** 2) for w, t in val]
    val_mse = float(np.mean(errors))
    print(f"validation mse: {val_mse:.4f} (noise variance 0.01, series variance 0.5)")
    return val_mse


if __name__ == "__main__":
    main()
