"""to_categorical and normalize: Keras parity, deliberate differences, jit, and error paths."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jkutils.numerical import normalize, to_categorical

label_arrays = hnp.arrays(
    dtype=st.sampled_from([np.int32, np.int64, np.uint8]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5),
    elements=st.integers(0, 9),
)


# ---------------------------------------------------------------- to_categorical


@settings(max_examples=60, deadline=None)
@given(labels=label_arrays, extra=st.integers(0, 3))
def test_to_categorical_matches_keras_numpy_path(labels, extra):
    num_classes = int(labels.max()) + 1 + extra
    ours = to_categorical(labels, num_classes)
    theirs = keras.utils.to_categorical(labels, num_classes)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=30, deadline=None)
@given(labels=label_arrays)
def test_to_categorical_infers_num_classes_like_keras(labels):
    np.testing.assert_array_equal(to_categorical(labels), keras.utils.to_categorical(labels))


def test_shape_rules_hand_computed():
    assert to_categorical(3).tolist() == [0, 0, 0, 1]
    assert to_categorical([[1], [0]], 2).shape == (2, 2)
    assert to_categorical(np.zeros((2, 1, 1), int), 3).shape == (2, 1, 3)
    assert to_categorical(np.zeros((1, 1), int), 3).shape == (1, 3)
    assert to_categorical(np.zeros((1,), int), 3).shape == (1, 3)
    assert to_categorical([], 3).shape == (0, 3)


def test_dtype_argument_kept():
    assert to_categorical([0, 1], 2, dtype="int8").dtype == np.int8
    assert to_categorical([0, 1], 2, dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_whole_number_floats_accepted_fractions_rejected():
    assert to_categorical([1.0, 0.0], 2).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match=r"whole numbers; found x\[1\]=.*1\.7"):
        to_categorical([1.0, 1.7], 3)


@pytest.mark.parametrize(
    "labels, num_classes, bad", [([0, -1, 2], 3, -1), ([0, 3], 3, 3), ([[0, 5]], None, None)]
)
def test_out_of_range_labels_raise_naming_the_label(labels, num_classes, bad):
    if bad is None:
        assert to_categorical(labels).shape == (1, 2, 6)  # inferred: nothing is out of range
        return
    with pytest.raises(ValueError, match=rf"label {bad} at x\[\d+\] is outside"):
        to_categorical(labels, num_classes)
    with pytest.raises(ValueError, match=rf"label {bad}"):
        to_categorical(jnp.asarray(labels), num_classes)


def test_keras_wraps_negative_labels_we_refuse():
    # The deliberate difference: Keras's numpy path silently maps -1 to the last class.
    assert keras.utils.to_categorical([-1], 3).tolist() == [[0, 0, 1]]
    with pytest.raises(ValueError):
        to_categorical([-1], 3)


@pytest.mark.parametrize(
    "num_classes, err",
    [(0, ValueError), (-2, ValueError), (2.0, TypeError), ("3", TypeError), (True, TypeError)],
)
def test_bad_num_classes(num_classes, err):
    with pytest.raises(err, match="num_classes"):
        to_categorical([0], num_classes)


def test_empty_without_num_classes_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot infer `num_classes` from an empty `x`"):
        to_categorical([])


def test_non_numeric_labels_rejected():
    with pytest.raises(TypeError, match="integer class labels"):
        to_categorical(["a"], 2)


def test_jax_input_returns_jax_array_equal_to_numpy_path():
    labels = np.array([[2], [0], [1]])
    out = to_categorical(jnp.asarray(labels), 4)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32 and out.shape == (3, 4)
    np.testing.assert_array_equal(np.asarray(out), to_categorical(labels, 4))
    np.testing.assert_array_equal(
        np.asarray(to_categorical(jnp.asarray(labels))), to_categorical(labels)
    )


def test_under_jit_static_num_classes_and_zero_rows_for_bad_labels():
    fn = jax.jit(lambda y: to_categorical(y, 3))
    out = fn(jnp.array([0, 2, -1, 3]))
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    # vmap sees rows of shape (1,): 1-D input is never squeezed, so each row becomes (1, C).
    assert jax.vmap(lambda y: to_categorical(y, 2))(jnp.array([[1], [0]])).tolist() == [
        [[0, 1]],
        [[1, 0]],
    ]
    assert jax.jit(lambda y: to_categorical(y, 2))(jnp.array([[1], [0]])).shape == (2, 2)


def test_under_jit_num_classes_required():
    with pytest.raises(TypeError, match="must be given"):
        jax.jit(to_categorical)(jnp.array([0, 1]))


# ---------------------------------------------------------------- normalize


def _numpy_reference(x, axis, order):
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
        elements=st.floats(-1e3, 1e3).filter(lambda v: v == 0 or abs(v) > 1e-3),
    ),
    data=st.data(),
    order=st.sampled_from([1, 2, 3, np.inf]),
)
def test_normalize_matches_numpy_reference_any_axis(x, data, order):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    ours = normalize(x, axis=axis, order=order)
    assert ours.shape == x.shape and isinstance(ours, np.ndarray)
    np.testing.assert_allclose(ours, _numpy_reference(x, axis, order), rtol=1e-10, atol=1e-12)
    ours_jax = normalize(jnp.asarray(x, jnp.float32), axis=axis, order=order)
    np.testing.assert_allclose(
        np.asarray(ours_jax), _numpy_reference(x, axis, order), rtol=2e-5, atol=1e-6
    )


def test_normalize_matches_keras_on_last_axis_2d():
    x = np.random.default_rng(0).normal(size=(20, 7))
    for order in (1, 2, np.inf):
        np.testing.assert_allclose(normalize(x, order=order), keras.utils.normalize(x, order=order))


def test_normalize_hand_computed_and_deliberate_fixes():
    # 1-D stays 1-D (Keras returns shape (1, 2)).
    assert normalize(np.array([3.0, 4.0])).tolist() == [0.6, 0.8]
    assert keras.utils.normalize(np.array([3.0, 4.0])).shape == (1, 2)
    # axis=0 works (Keras 3.15 ignores axis=0 and gives a wrong answer on square input).
    np.testing.assert_allclose(
        normalize(np.array([[3.0, 0.0], [4.0, 1.0]]), axis=0), [[0.6, 0.0], [0.8, 1.0]]
    )
    # zero vectors stay zero, no NaN, on both paths.
    assert normalize(np.zeros((2, 3))).tolist() == [[0.0] * 3] * 2
    assert not np.isnan(np.asarray(normalize(jnp.zeros((2, 3))))).any()
    # tiny vectors are still scaled to unit norm (Keras's epsilon path leaves them tiny).
    np.testing.assert_allclose(normalize(jnp.array([[3e-9, 4e-9]])), [[0.6, 0.8]], rtol=1e-5)


def test_normalize_int_and_list_inputs():
    out = normalize([[3, 4]])
    assert out.dtype == np.float64 and out.tolist() == [[0.6, 0.8]]
    out = normalize(jnp.array([[3, 4]]))
    assert isinstance(out, jax.Array) and jnp.issubdtype(out.dtype, jnp.floating)


def test_normalize_under_jit_and_grad():
    fn = jax.jit(lambda x: normalize(x, axis=0))
    np.testing.assert_allclose(fn(jnp.array([[3.0], [4.0]])), [[0.6], [0.8]], rtol=1e-6)
    g = jax.grad(lambda x: normalize(x)[0])(jnp.array([3.0, 4.0]))
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"order": 0}, ValueError, "order"),
        ({"order": 0.5}, ValueError, "order"),
        ({"order": "fro"}, ValueError, "order"),
        ({"axis": 2}, ValueError, "axis"),
        ({"axis": None}, TypeError, "axis"),
        ({"axis": 1.0}, TypeError, "axis"),
    ],
)
def test_normalize_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        normalize(np.ones((2, 2)), **kwargs)


def test_normalize_scalar_rejected():
    with pytest.raises(ValueError, match="at least one dimension"):
        normalize(3.0)


@pytest.mark.parametrize("value", [1e-30, 1e20])
@pytest.mark.parametrize("order", [1, 2, 3, np.inf])
@pytest.mark.parametrize("lib", [np, jnp])
def test_normalize_extreme_magnitudes_reach_unit_norm(value, order, lib):
    x = lib.full((2, 4), value, dtype=lib.float32)
    out = np.asarray(normalize(x, order=order))
    assert np.allclose(np.linalg.norm(out, ord=order, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("order", [1, 1.5, 2, 3, np.inf])
def test_normalize_gradient_of_zero_vector_is_finite(order):
    grad = jax.grad(lambda v: normalize(v, order=order).sum())(jnp.zeros((2, 3)))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_normalize_gradient_of_zero_vector_is_finite_under_vmap():
    rows = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    grad = jax.vmap(jax.grad(lambda v: normalize(v).sum()))(rows)
    assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_normalize_numpy_repairs_only_the_out_of_range_vectors(axis):
    x = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    x[1, 2, :] = 1e-30
    x[2, :, 1] = 1e20
    x[0, 0, :] = 0
    out = normalize(x, axis=axis)
    reference = np.asarray(normalize(jnp.asarray(x), axis=axis))
    assert np.allclose(out, reference, rtol=1e-5, atol=1e-7)
    norms = np.linalg.norm(out.astype(np.float64), axis=axis)
    zero = np.all(x == 0, axis=axis)
    assert np.allclose(norms[~zero], 1.0, rtol=1e-5) and np.all(norms[zero] == 0)


def test_traced_labels_past_int32_are_out_of_range_not_wrapped():
    with jax.enable_x64(True):
        labels = jnp.array([2**32 + 1, 1, -(2**32) + 2], jnp.int64)
        out = jax.jit(lambda y: to_categorical(y, 3))(labels)
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_output_larger_than_memory_is_refused_before_allocating():
    # 2**40 + 1 float32 classes: 4 TiB per label (2**42 bytes), far more than any machine here.
    with pytest.raises(ValueError, match=r"num_classes=1099511627777 .*4\.00 TiB"):
        to_categorical([2**40])
    with pytest.raises(ValueError, match=r"num_classes=1099511627777: .*8\.00 TiB"):
        to_categorical(np.array([0, 1]), num_classes=2**40 + 1)
