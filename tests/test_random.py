"""Seeding returns keys; key trees are stable per name and identical across processes."""

import random
import subprocess
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jkutils.random import key_tree, seed_from_key, set_random_seed


def _data(key):
    return np.asarray(jax.random.key_data(key)).tolist()


def test_set_random_seed_returns_root_key_and_seeds_python_and_numpy():
    key = set_random_seed(42)
    first = (random.random(), np.random.rand())
    assert _data(key) == _data(jax.random.key(42))
    set_random_seed(42)
    assert (random.random(), np.random.rand()) == first
    # The same values Keras's set_random_seed(42) gives for Python and NumPy.
    assert first == (0.6394267984578837, 0.3745401188473625)


def test_set_random_seed_with_names_returns_key_tree():
    keys = set_random_seed(7, names=["params", "dropout"])
    expected = key_tree(jax.random.key(7), ["params", "dropout"])
    assert set(keys) == {"params", "dropout"}
    assert all(_data(keys[n]) == _data(expected[n]) for n in keys)


def test_numpy_integer_seed_accepted():
    assert _data(set_random_seed(np.int64(5))) == _data(jax.random.key(5))
    assert _data(set_random_seed(np.uint32(5))) == _data(jax.random.key(5))


@pytest.mark.parametrize("bad", [1.0, "1", None, True, [1]])
def test_non_integer_seed_rejected_naming_type(bad):
    with pytest.raises(ValueError, match=r"`seed` must be an integer.*" + type(bad).__name__):
        set_random_seed(bad)


@pytest.mark.parametrize("bad", [-1, 2**32])
def test_out_of_range_seed_rejected(bad):
    with pytest.raises(ValueError, match=rf"seed={bad}"):
        set_random_seed(bad)


def test_key_for_a_name_is_fold_in_of_crc32():
    root = jax.random.key(0)
    keys = key_tree(root, ["dropout"])
    expected = jax.random.fold_in(root, np.uint32(zlib.crc32(b"dropout")))
    assert _data(keys["dropout"]) == _data(expected)


def test_adding_a_stream_never_changes_the_others():
    root = jax.random.key(3)
    small = key_tree(root, ["params", "dropout"])
    large = key_tree(root, ["noise", "dropout", "params", "shuffle"])
    assert _data(small["params"]) == _data(large["params"])
    assert _data(small["dropout"]) == _data(large["dropout"])


def test_streams_are_distinct():
    keys = key_tree(jax.random.key(0), [f"s{i}" for i in range(50)])
    assert len({tuple(_data(k)) for k in keys.values()}) == 50


def test_pytree_structure_gets_one_key_per_leaf_by_path():
    root = jax.random.key(1)
    tree = key_tree(root, {"encoder": [None, None], "decoder": {"out": 0}})
    assert jax.tree.structure(tree, is_leaf=lambda x: x is None) == jax.tree.structure(
        {"encoder": [0, 0], "decoder": {"out": 0}}
    )
    assert _data(tree["encoder"][1]) == _data(key_tree(root, ["encoder/1"])["encoder/1"])
    assert _data(tree["decoder"]["out"]) == _data(key_tree(root, ["decoder/out"])["decoder/out"])
    assert all(jnp.issubdtype(k.dtype, jax.dtypes.prng_key) for k in jax.tree.leaves(tree))


def test_key_tree_works_under_jit_consumers():
    keys = key_tree(jax.random.key(0), ["a", "b"])
    draws = jax.jit(lambda t: jax.tree.map(jax.random.normal, t))(keys)
    assert draws["a"] != draws["b"]


def test_legacy_key_accepted():
    legacy = jax.random.PRNGKey(0)
    assert _data(key_tree(legacy, ["a"])["a"]) == _data(key_tree(jax.random.key(0), ["a"])["a"])


def test_key_tree_rejects_non_keys_and_duplicates():
    with pytest.raises(TypeError, match="`key` must be a JAX PRNG key"):
        key_tree(0, ["a"])
    with pytest.raises(ValueError, match=r"duplicate stream names \['a'\]"):
        key_tree(jax.random.key(0), ["a", "b", "a"])


def test_keys_are_identical_in_a_fresh_process():
    code = (
        "import jax, numpy as np; from jkutils.random import key_tree;"
        "k = key_tree(jax.random.key(9), ['params', 'dropout']);"
        "print(np.asarray(jax.random.key_data(k['dropout'])).tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    here = _data(key_tree(jax.random.key(9), ["params", "dropout"])["dropout"])
    assert out.stdout.strip() == str(here)


def test_seed_from_key_matches_bits_and_fits_grain():
    key = jax.random.key(0)
    seed = seed_from_key(key)
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert seed == int(jax.random.bits(key, dtype=jnp.uint32))
    assert seed_from_key(key) == seed  # deterministic
    assert seed_from_key(jax.random.key(1)) != seed


def test_seed_from_key_refuses_traced_key():
    with pytest.raises(TypeError, match="concrete key"):
        jax.jit(seed_from_key)(jax.random.key(0))


@pytest.mark.parametrize(
    "structure",
    [
        {"a/b": None, "a": {"b": None}},
        {"0": None, "x": None, "": [None]},
        ({"1": None}, [None, None]),
    ],
)
def test_key_tree_distinct_leaves_never_share_a_key(structure):
    try:
        keys = jax.tree.leaves(key_tree(jax.random.key(0), structure))
    except ValueError as err:
        assert "same key" in str(err)
        return
    data = {tuple(np.asarray(jax.random.key_data(k)).tolist()) for k in keys}
    assert len(data) == len(keys)


def test_key_tree_rejects_leaves_with_the_same_joined_path():
    with pytest.raises(ValueError, match="a/b"):
        key_tree(jax.random.key(0), {"a/b": None, "a": {"b": None}})


@pytest.mark.parametrize(
    "keys", [jax.random.split(jax.random.key(0), 3), jax.random.split(jax.random.PRNGKey(0), 3)]
)
def test_an_array_of_keys_is_rejected_naming_the_argument(keys):
    for call in (lambda: seed_from_key(keys), lambda: key_tree(keys, ["a"])):
        with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*\(3,\)"):
            call()


def test_key_tree_works_under_vmap_of_single_keys():
    keys = jax.vmap(lambda k: key_tree(k, ["a"])["a"])(jax.random.split(jax.random.key(0), 3))
    assert keys.shape == (3,)


def test_a_single_string_is_one_stream_name():
    keys = set_random_seed(1, names="abc")
    assert list(keys) == ["abc"]
    expected = jax.random.fold_in(jax.random.key(1), zlib.crc32(b"abc"))
    assert _data(keys["abc"]) == _data(expected)


@pytest.mark.parametrize("names", [3, 2.5, {"a": None}, ["a", 3], b"abc"])
def test_names_that_are_not_strings_raise_type_error_naming_names(names):
    with pytest.raises(TypeError, match=r"`names`.*received names="):
        set_random_seed(1, names=names)
