"""split_dataset and process_shard: Keras's size rules (checked against Keras's own size code),
structure and library preservation, keyed shuffles, stratification, grain inputs, sharding."""

import random

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras.src.utils.dataset_utils import _rescale_dataset_split_sizes

from jkutils.data.split import process_shard, split_dataset, split_sizes

SIZES = [
    None,
    0,
    1,
    2,
    3,
    9,
    10,
    11,
    -1,
    0.0,
    0.1,
    0.25,
    0.35,
    0.5,
    0.66,
    0.9,
    0.99,
    1.0,
    -0.2,
    1.5,
]


def _keras_sizes(left, right, n):
    try:
        return _rescale_dataset_split_sizes(left, right, n)
    except (ValueError, TypeError) as err:
        return type(err)


def _our_sizes(left, right, n):
    try:
        return split_sizes(left, right, n)
    except (ValueError, TypeError) as err:
        return type(err)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 17])
def test_size_rules_match_keras(n):
    for left in SIZES:
        for right in SIZES:
            if left is None and right is None:
                continue
            assert _our_sizes(left, right, n) == _keras_sizes(left, right, n), (left, right, n)


def test_size_rules_by_hand():
    assert split_sizes(0.25, None, 10) == (2, 8)  # 2.5 rounds half to even
    assert split_sizes(0.35, None, 10) == (4, 6)  # 3.5 rounds to 4
    assert split_sizes(0.5, 3, 10) == (5, 3)
    assert split_sizes(None, 0.3, 10) == (7, 3)
    assert split_sizes(np.int64(3), np.float32(0.5), 10) == (3, 5)  # NumPy scalars accepted


@pytest.mark.parametrize(
    "left, right, error, words",
    [
        (None, None, ValueError, "At least one"),
        (0, 0, ValueError, "both zero"),
        (10, None, ValueError, "left_size=10"),
        (None, 1.0, ValueError, "right_size=1.0"),
        (0.6, 0.6, ValueError, "must not exceed 1"),
        (6, 6, ValueError, r"6 \+ 6 rows"),
        (0.01, None, ValueError, "left side would be empty"),
        ("3", None, TypeError, "left_size='3'"),
        (True, None, TypeError, "bool"),
    ],
)
def test_size_errors_name_the_argument(left, right, error, words):
    with pytest.raises(error, match=words):
        split_dataset(np.arange(10), left, right)


def test_middle_is_dropped_when_both_sizes_leave_rows_over():
    left, right = split_dataset(np.arange(10), left_size=3, right_size=4)
    np.testing.assert_array_equal(left, [0, 1, 2])
    np.testing.assert_array_equal(right, [6, 7, 8, 9])


def test_structure_and_library_are_kept():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    tree = {"x": x, "pair": [jnp.arange(10), (np.arange(10) * 2).astype(np.int16)]}
    left, right = split_dataset(tree, left_size=0.6)
    assert jax.tree.structure(left) == jax.tree.structure(tree)
    assert isinstance(left["x"], np.ndarray) and left["x"].dtype == np.float32
    assert isinstance(left["pair"][0], jax.Array)
    assert left["pair"][1].dtype == np.int16
    np.testing.assert_array_equal(left["x"], x[:6])
    np.testing.assert_array_equal(right["pair"][0], np.arange(6, 10))
    tuple_left, _ = split_dataset((x, x), 0.5)
    assert isinstance(tuple_left, tuple)


def test_shuffle_keeps_rows_aligned_and_covers_everything():
    x = np.arange(1000)
    left, right = split_dataset((x, x * 10), left_size=0.7, shuffle=True, key=jax.random.key(3))
    np.testing.assert_array_equal(left[1], left[0] * 10)
    np.testing.assert_array_equal(right[1], right[0] * 10)
    assert len(left[0]) == 700 and len(right[0]) == 300
    np.testing.assert_array_equal(np.sort(np.concatenate([left[0], right[0]])), x)
    assert not np.array_equal(left[0], np.sort(left[0]))  # actually shuffled


def test_shuffle_depends_on_key_only_and_not_on_global_rng():
    x = np.arange(100)
    py_state, np_state = random.getstate(), np.random.get_state()
    a, _ = split_dataset(x, 0.5, shuffle=True, key=jax.random.key(7))
    random.seed(123)
    np.random.seed(123)
    b, _ = split_dataset(x, 0.5, shuffle=True, key=jax.random.key(7))
    c, _ = split_dataset(x, 0.5, shuffle=True, key=jax.random.key(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    random.setstate(py_state)
    np.random.set_state(np_state)
    split_dataset(x, 0.5, shuffle=True, key=jax.random.key(9))
    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_numpy_and_jax_inputs_get_the_same_rows():
    x = np.arange(50)
    key = jax.random.key(0)
    np_left, _ = split_dataset(x, 0.4, shuffle=True, key=key)
    jax_left, _ = split_dataset(jnp.asarray(x), 0.4, shuffle=True, key=key)
    np.testing.assert_array_equal(np_left, np.asarray(jax_left))


def test_legacy_uint32_keys_work():
    left, right = split_dataset(np.arange(10), 0.5, shuffle=True, key=jax.random.PRNGKey(1))
    assert sorted(np.concatenate([left, right]).tolist()) == list(range(10))


def _within_one(counts_side, counts_all, side_rows, total):
    expected = counts_all * side_rows / total
    return np.all(np.abs(counts_side - expected) <= 1.0)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("sizes", [(0.8, None), (0.3, None), (17, 50), (0.1, 0.2)])
@pytest.mark.parametrize("names", [["a", "b", "c", "d"], [7, -1, 300, 2]], ids=["str", "int"])
def test_stratify_keeps_class_shares(shuffle, sizes, names):
    rng = np.random.default_rng(0)
    labels = rng.choice(names, size=333, p=[0.55, 0.3, 0.1, 0.05])
    rows = np.arange(333)
    (left, left_y), (right, right_y) = split_dataset(
        (rows, labels), *sizes, shuffle=shuffle, key=jax.random.key(1), stratify=labels
    )
    left_rows, right_rows = split_sizes(*sizes, 333)
    assert len(left) == left_rows and len(right) == right_rows
    assert not set(left.tolist()) & set(right.tolist())
    np.testing.assert_array_equal(labels[left], left_y)
    classes = np.unique(labels)
    counts = np.array([(labels == c).sum() for c in classes])
    for side, side_rows in ((left_y, left_rows), (right_y, right_rows)):
        side_counts = np.array([(side == c).sum() for c in classes])
        assert _within_one(side_counts, counts, side_rows, 333), (side_counts, counts)
    if not shuffle:  # first rows of each class on the left, original order kept
        assert np.all(np.diff(left) > 0)


def test_stratify_errors():
    with pytest.raises(ValueError, match=r"stratify.*\(10,\)"):
        split_dataset(np.arange(10), 0.5, stratify=np.zeros(9))


def test_grain_map_dataset_in_gives_map_datasets_out():
    ds = grain.MapDataset.range(10).map(lambda i: i * 10)
    left, right = split_dataset(ds, 0.3)
    assert isinstance(left, grain.MapDataset) and isinstance(right, grain.MapDataset)
    assert list(left) == [0, 10, 20] and list(right) == [30, 40, 50, 60, 70, 80, 90]
    left, right = split_dataset(ds, 4, 3, shuffle=True, key=jax.random.key(2))
    assert len(left) == 4 and len(right) == 3
    assert not set(left) & set(right)
    assert list(left) == list(split_dataset(ds, 4, 3, shuffle=True, key=jax.random.key(2))[0])


class _Records:
    def __len__(self):
        return 6

    def __getitem__(self, index):
        return {"id": index}


def test_random_access_source_and_stratify_labels():
    labels = np.array([0, 0, 0, 1, 1, 1])
    left, right = split_dataset(_Records(), 0.5, stratify=labels)
    assert [e["id"] for e in left] == [0, 1, 3]
    assert [e["id"] for e in right] == [2, 4, 5]


@pytest.mark.parametrize(
    "dataset, error, words",
    [
        ((np.zeros(3), np.zeros(4)), ValueError, r"\[0\] has 3 but \[1\] has 4"),
        (np.zeros((0, 2)), ValueError, "empty"),
        ([1, 2, 3], TypeError, r"leaf at \[0\] is int"),
        ([], TypeError, "no arrays"),
        (5, TypeError, "must hold NumPy or JAX arrays"),
        (np.array(1.0), ValueError, "0-d"),
    ],
)
def test_dataset_errors(dataset, error, words):
    with pytest.raises(error, match=words):
        split_dataset(dataset, 0.5)


def test_shuffle_and_key_errors():
    with pytest.raises(ValueError, match="needs `key`"):
        split_dataset(np.arange(10), 0.5, shuffle=True)
    with pytest.raises(TypeError, match="shuffle"):
        split_dataset(np.arange(10), 0.5, shuffle="yes")
    with pytest.raises(TypeError, match="key"):
        split_dataset(np.arange(10), 0.5, shuffle=True, key=42)


@pytest.mark.parametrize("n", [0, 1, 7, 10, 12])
@pytest.mark.parametrize("count", [1, 3, 4])
def test_process_shards_cover_every_row_once(n, count):
    shards = [list(process_shard(grain.MapDataset.range(n), i, count)) for i in range(count)]
    assert sum(shards, []) == list(range(n))
    sizes = [len(s) for s in shards]
    assert sizes == [n // count + (i < n % count) for i in range(count)]


def test_process_shard_defaults_and_inputs():
    assert jax.process_count() == 1
    assert list(process_shard(grain.MapDataset.range(5))) == [0, 1, 2, 3, 4]
    shard = process_shard({"x": np.arange(10)}, process_index=1, process_count=2)
    assert [int(e["x"]) for e in shard] == [5, 6, 7, 8, 9]
    assert list(process_shard(_Records(), 0, 2)) == [{"id": 0}, {"id": 1}, {"id": 2}]


@pytest.mark.parametrize(
    "index, count, error",
    [(2, 2, ValueError), (-1, 2, ValueError), (0, 0, ValueError), (0.0, 2, TypeError)],
)
def test_process_shard_errors(index, count, error):
    with pytest.raises(error, match="process_"):
        process_shard(grain.MapDataset.range(4), index, count)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([2**63 + 5, 1] * 10, np.uint64),  # past the int64 range
        np.array([-(2**62), 2**62] * 10, np.int64),  # range wider than int64
        np.array([-128, 127] * 10, np.int8),  # range wider than the dtype
    ],
)
def test_stratify_with_wide_integer_labels(labels):
    (_, left), (_, right) = split_dataset((np.arange(20), labels), 0.5, stratify=labels)
    for part in (left, right):
        assert sorted(np.unique(part, return_counts=True)[1]) == [5, 5]


def test_keras_int_seed_gives_the_split_of_jax_random_key_of_it():
    x = np.arange(50)
    by_seed = split_dataset(x, left_size=0.6, shuffle=True, seed=1)
    by_key = split_dataset(x, left_size=0.6, shuffle=True, key=jax.random.key(1))
    np.testing.assert_array_equal(by_seed[0], by_key[0])
    np.testing.assert_array_equal(by_seed[1], by_key[1])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(seed=1, key=jax.random.key(1)), ValueError, "not both"),
        (dict(seed=1.5), TypeError, "seed=1.5"),
        (dict(seed="1"), TypeError, "`seed` must be an int"),
    ],
)
def test_bad_seed_names_seed(kwargs, error, match):
    with pytest.raises(error, match=match):
        split_dataset(np.arange(10), left_size=0.5, shuffle=True, **kwargs)
