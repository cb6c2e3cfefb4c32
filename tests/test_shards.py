"""Row layouts of uneven batches, and the bound on programs in flight."""

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jkutils._shards import InFlight, common_layout, row_layout, tiled_layout


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(1, 3000), devices=st.integers(1, 16))
def test_every_row_appears_equally_often_on_one_device_only(rows, devices):
    layout = row_layout(rows, devices)
    slots = layout.slots.reshape(devices, layout.per_device)
    assert sum(layout.counts) == rows and len(layout.counts) == devices
    seen = []
    for device, count in enumerate(layout.counts):
        if count == 0:
            continue
        values, times = np.unique(slots[device], return_counts=True)
        assert len(values) == count  # the device's own rows ...
        assert set(times) == {layout.per_device // count}  # ... each repeated equally often
        seen.extend(values)
    assert sorted(seen) == list(range(rows))  # every row once, on one device
    np.testing.assert_array_equal(layout.slots[layout.first_slots], np.arange(rows))
    np.testing.assert_allclose(layout.weights.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(layout.weights, np.asarray(layout.counts) / rows, rtol=1e-6)


@pytest.mark.parametrize(
    "rows, devices, per_device, counts",
    [
        (16, 8, 2, (2,) * 8),  # divides: the batch as it is
        (13, 8, 2, (2, 2, 2, 2, 2, 1, 1, 1)),
        (3, 8, 1, (1, 1, 1, 0, 0, 0, 0, 0)),
        (20, 8, 3, (3, 3, 3, 3, 3, 3, 1, 1)),
    ],
)
def test_hand_checked_layouts(rows, devices, per_device, counts):
    layout = row_layout(rows, devices)
    assert (layout.per_device, layout.counts) == (per_device, counts)
    assert layout.identity == (rows == devices * per_device)


def test_processes_agree_on_the_slots_per_device():
    counts = np.array([7, 6])
    layouts = [common_layout(counts, i, 4) for i in range(2)]
    assert layouts[0].per_device == layouts[1].per_device
    assert [sum(layout.counts) for layout in layouts] == [7, 6]
    assert all(layout.total == 13 for layout in layouts)


def test_in_flight_waits_for_the_result_from_limit_calls_ago():
    waited = []

    class Result:
        def __init__(self, i):
            self.i = i

        def block_until_ready(self):
            waited.append(self.i)
            return self

    window = InFlight(2)
    for i in range(5):
        window.admit(Result(i))
    assert waited == [0, 1, 2]  # after call i, the program of call i - 2 has finished
    InFlight(None).admit(jax.numpy.zeros(()))  # no limit: nothing kept


@pytest.mark.parametrize(("rows", "devices"), [(13, 8), (12, 8), (16, 8), (1, 8), (7, 2)])
def test_tiled_layout_repeats_every_row_equally_in_equal_blocks(rows, devices):
    layout = tiled_layout(rows, devices)
    copies = devices // math.gcd(rows, devices)  # the fewest copies that fill equal blocks
    assert layout.copies == copies
    assert layout.per_device * devices == rows * copies
    assert np.bincount(layout.slots, minlength=rows).tolist() == [copies] * rows
    assert layout.first_slots.tolist() == list(range(rows))
    np.testing.assert_allclose(layout.weights, np.full(devices, 1 / devices))
    assert layout.identity == (rows % devices == 0)
