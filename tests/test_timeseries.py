"""timeseries_dataset_from_array against Keras's own (format="grain", JAX backend) and by hand."""

import grain
import jax
import keras
import numpy as np
import pytest

from jkutils.data.timeseries import timeseries_dataset_from_array

DATA = np.arange(60, dtype=np.float32).reshape(30, 2)
TARGETS = np.arange(30) * 10

CASES = [
    dict(sequence_length=3, batch_size=4),
    dict(sequence_length=5, sequence_stride=2, sampling_rate=3, batch_size=3),
    dict(sequence_length=4, sampling_rate=2, batch_size=None),
    dict(sequence_length=2, start_index=3, end_index=17, batch_size=5),
    dict(sequence_length=6, sequence_stride=4, start_index=5, batch_size=2),
    dict(sequence_length=30, batch_size=8),
    dict(sequence_length=31, batch_size=8),
    dict(sequence_length=1, sequence_stride=29, batch_size=1),
]


def _as_lists(dataset, with_targets):
    out = []
    for element in dataset:
        if with_targets:
            windows, targets = element
            out.append((np.asarray(windows).tolist(), np.asarray(targets).tolist()))
        else:
            out.append(np.asarray(element).tolist())
    return out


@pytest.mark.parametrize("with_targets", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_matches_keras_grain_format(case, with_targets):
    targets = TARGETS if with_targets else None
    theirs = keras.utils.timeseries_dataset_from_array(DATA, targets, format="grain", **case)
    ours = timeseries_dataset_from_array(DATA, targets, **case)
    assert isinstance(ours, grain.MapDataset)
    assert _as_lists(ours, with_targets) == _as_lists(theirs, with_targets)


def test_hand_computed_windows():
    ds = timeseries_dataset_from_array(np.arange(10), np.arange(10) * 10, 3, batch_size=4)
    assert len(ds) == 2
    windows, targets = ds[1]
    assert windows.tolist() == [[4, 5, 6], [5, 6, 7], [6, 7, 8], [7, 8, 9]]
    assert targets.tolist() == [40, 50, 60, 70]
    strided = timeseries_dataset_from_array(
        np.arange(12), None, 3, sequence_stride=2, sampling_rate=2, batch_size=None
    )
    assert [w.tolist() for w in strided] == [[0, 2, 4], [2, 4, 6], [4, 6, 8], [6, 8, 10]]
    window = timeseries_dataset_from_array(
        np.arange(10), np.arange(10), 2, 1, 1, None, start_index=3, end_index=7
    )
    assert [(w.tolist(), int(t)) for w, t in window] == [([3, 4], 3), ([4, 5], 4), ([5, 6], 5)]


def test_predict_next_step_recipe():
    series = np.arange(20)
    ds = timeseries_dataset_from_array(series, series[5:], 5, batch_size=None)
    for window, target in ds:
        assert target == window[-1] + 1


def test_short_targets_drop_windows_without_a_target():
    ds = timeseries_dataset_from_array(
        np.arange(20), np.arange(8) * 10, 3, batch_size=None, start_index=4
    )
    pairs = [(w.tolist(), int(t)) for w, t in ds]
    assert pairs == [([4, 5, 6], 40), ([5, 6, 7], 50), ([6, 7, 8], 60), ([7, 8, 9], 70)]


def test_shuffle_by_key():
    key = jax.random.key(4)
    plain = timeseries_dataset_from_array(DATA, TARGETS, 4, batch_size=None)
    ours = timeseries_dataset_from_array(DATA, TARGETS, 4, batch_size=5, shuffle=True, key=key)
    again = timeseries_dataset_from_array(DATA, TARGETS, 4, batch_size=5, shuffle=True, key=key)
    other = timeseries_dataset_from_array(
        DATA, TARGETS, 4, batch_size=5, shuffle=True, key=jax.random.key(5)
    )
    pairs = sorted(
        (w.tolist(), int(t)) for windows, targets in ours for w, t in zip(windows, targets)
    )
    assert pairs == sorted((w.tolist(), int(t)) for w, t in plain)
    assert _as_lists(ours, True) == _as_lists(again, True)
    assert _as_lists(ours, True) != _as_lists(other, True)
    assert _as_lists(ours, True) != _as_lists(
        timeseries_dataset_from_array(DATA, TARGETS, 4, batch_size=5), True
    )


def test_jax_input_gives_numpy_batches_with_a_short_last_batch():
    ds = timeseries_dataset_from_array(jax.numpy.asarray(DATA), None, 3, batch_size=8)
    assert len(ds) == 4  # 28 windows
    assert isinstance(ds[0], np.ndarray) and ds[0].shape == (8, 3, 2)
    assert ds[3].shape == (4, 3, 2)
    np.testing.assert_array_equal(ds[3][-1], DATA[27:30])


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(start_index=-1), ValueError, "start_index"),
        (dict(start_index=30), ValueError, "start_index"),
        (dict(start_index=5, end_index=5), ValueError, "end_index"),
        (dict(end_index=30), ValueError, "end_index"),
        (dict(end_index=0), ValueError, "end_index"),
        (dict(sampling_rate=0), ValueError, "sampling_rate"),
        (dict(sampling_rate=30), ValueError, "sampling_rate"),
        (dict(sequence_stride=0), ValueError, "sequence_stride"),
        (dict(sequence_stride=30), ValueError, "sequence_stride"),
        (dict(sequence_length=0), ValueError, "sequence_length"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(sequence_length=2.0), TypeError, "sequence_length"),
        (dict(start_index=1.0), TypeError, "start_index"),
        (dict(shuffle=True), ValueError, "key"),
        (dict(shuffle=True, key=3), TypeError, "key"),
    ],
)
def test_errors(kwargs, error, words):
    args = dict(sequence_length=3)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        timeseries_dataset_from_array(DATA, TARGETS, **args)


def test_scalar_inputs_rejected():
    with pytest.raises(ValueError, match="data"):
        timeseries_dataset_from_array(np.float32(1), None, 1)
    with pytest.raises(ValueError, match="targets"):
        timeseries_dataset_from_array(DATA, 3, 2)


@pytest.mark.parametrize("shuffle", ["yes", 1, None])
def test_non_bool_shuffle_rejected(shuffle):
    with pytest.raises(TypeError, match="shuffle"):
        timeseries_dataset_from_array(
            np.arange(10), None, 3, shuffle=shuffle, key=jax.random.key(0)
        )


def test_keras_int_seed_gives_the_order_of_jax_random_key_of_it():
    data = np.arange(40)
    by_seed = timeseries_dataset_from_array(data, None, 4, batch_size=None, shuffle=True, seed=1)
    by_key = timeseries_dataset_from_array(
        data, None, 4, batch_size=None, shuffle=True, key=jax.random.key(1)
    )
    assert [w.tolist() for w in by_seed] == [w.tolist() for w in by_key]
    in_order = timeseries_dataset_from_array(data, None, 4, batch_size=None)
    chronological = [w.tolist() for w in in_order]
    assert sorted(w.tolist() for w in by_seed) == chronological != [w.tolist() for w in by_seed]


def test_seed_and_key_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        timeseries_dataset_from_array(np.arange(10), None, 2, seed=0, key=jax.random.key(0))
