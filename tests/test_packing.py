"""pack/unpack_x_y_sample_weight follow Keras 3, and work on traced values inside jit."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jkutils.data.packing import pack_x_y_sample_weight, unpack_x_y_sample_weight

CASES = [1, (1,), (1, 2), (1, 2, 3), [1, 2], [1], {"a": 1}, np.arange(3), (np.arange(2), None)]


@pytest.mark.parametrize("data", CASES, ids=repr)
def test_unpack_matches_keras(data):
    ours = unpack_x_y_sample_weight(data)
    theirs = keras.utils.unpack_x_y_sample_weight(data)
    assert len(ours) == 3
    for a, b in zip(ours, theirs):
        assert a is b


@pytest.mark.parametrize(
    "args",
    [(1,), (1, 2), (1, 2, 3), (1, None, 3), ([1, 2],), ((1, 2),), ({"x": 1}, None)],
    ids=repr,
)
def test_pack_matches_keras(args):
    assert pack_x_y_sample_weight(*args) == keras.utils.pack_x_y_sample_weight(*args)


def test_pack_hand_computed():
    assert pack_x_y_sample_weight([1, 2]) == ([1, 2],)  # Keras 2 returned the list itself
    # Weights without targets are ignored, as in Keras 3.
    assert pack_x_y_sample_weight(1, None, 3) == 1
    assert pack_x_y_sample_weight(1, 2, 3) == (1, 2, 3)


@pytest.mark.parametrize("bad", [(), (1, 2, 3, 4), [1, 2, 3, 4, 5]])
def test_unpack_wrong_length_raises_keras_message(bad):
    with pytest.raises(
        ValueError,
        match=r"Data is expected to be in format `x`, `\(x,\)`, "
        r"`\(x, y\)`, or `\(x, y, sample_weight\)`, found: ",
    ):
        unpack_x_y_sample_weight(bad)


def test_round_trip_inside_jit():
    @jax.jit
    def step(batch):
        x, y, sw = unpack_x_y_sample_weight(batch)
        return pack_x_y_sample_weight(x * 2, y, sw)

    x, y = jnp.arange(3.0), jnp.ones(3)
    out = step((x, y))
    assert len(out) == 2
    np.testing.assert_array_equal(out[0], x * 2)
