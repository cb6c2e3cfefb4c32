"""pad_sequences: Keras's exact semantics on random inputs, plus every error path."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jkutils.sequence import pad_sequences

ragged = st.lists(st.lists(st.integers(-50, 50), max_size=7), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    seqs=ragged,
    maxlen=st.one_of(st.none(), st.integers(1, 9)),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
    value=st.integers(-3, 3),
    dtype=st.sampled_from(["int32", "int64", "float32"]),
)
def test_matches_keras_on_random_int_sequences(seqs, maxlen, padding, truncating, value, dtype):
    if maxlen is None and not any(seqs):
        maxlen = 3  # Keras cannot infer a length from all-empty input either
    ours = pad_sequences(seqs, maxlen, dtype, padding, truncating, value)
    theirs = keras.utils.pad_sequences(seqs, maxlen, dtype, padding, truncating, value)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=40, deadline=None)
@given(
    seqs=st.lists(st.lists(st.floats(-9, 9, width=32), max_size=5), min_size=1, max_size=5).filter(
        any
    ),
    maxlen=st.integers(1, 6),
)
def test_matches_keras_truncating_floats_to_default_int32(seqs, maxlen):
    np.testing.assert_array_equal(
        pad_sequences(seqs, maxlen), keras.utils.pad_sequences(seqs, maxlen)
    )


def test_hand_computed_examples():
    seqs = [[1], [2, 3], [4, 5, 6]]
    assert pad_sequences(seqs).tolist() == [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    assert pad_sequences(seqs, padding="post").tolist() == [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    assert pad_sequences(seqs, maxlen=2).tolist() == [[0, 1], [2, 3], [5, 6]]
    assert pad_sequences(seqs, maxlen=2, truncating="post").tolist() == [[0, 1], [2, 3], [4, 5]]
    assert pad_sequences(seqs).dtype == np.int32


def test_numpy_rows_and_generators_of_arrays():
    arr = np.array([[1, 2], [3, 4]])
    assert pad_sequences(arr, maxlen=3).tolist() == [[0, 1, 2], [0, 3, 4]]
    seqs = [np.arange(3), np.arange(1)]
    assert pad_sequences(seqs, value=-1).tolist() == [[0, 1, 2], [-1, -1, 0]]


def test_vector_steps_match_keras():
    seqs = [[[1, 2], [3, 4]], [[5, 6]]]
    ours = pad_sequences(seqs, maxlen=3, padding="post", dtype="float32")
    np.testing.assert_array_equal(ours, keras.utils.pad_sequences(seqs, 3, "float32", "post"))
    assert ours.shape == (2, 3, 2)


def test_strings_with_object_dtype_and_string_dtype():
    seqs = [["a", "b"], ["c"]]
    out = pad_sequences(seqs, dtype=object, value="x")
    assert out.tolist() == [["a", "b"], ["x", "c"]] and out.dtype == object
    out = pad_sequences(seqs, dtype="<U2", value="x", padding="post")
    assert out.tolist() == [["a", "b"], ["c", "x"]]
    # "object" spelled as a string is accepted too (Keras only accepts the type object).
    assert pad_sequences(seqs, dtype="object", value="x").tolist() == [["a", "b"], ["x", "c"]]


def test_empty_sequences_inside_are_all_padding():
    assert pad_sequences([[], [1]], maxlen=2).tolist() == [[0, 0], [0, 1]]


def test_maxlen_zero_gives_zero_width():
    assert pad_sequences([[1, 2], [3]], maxlen=0).shape == (2, 0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pad_sequences(5), "`sequences` must be iterable"),
        (lambda: pad_sequences([[1], 2]), "Found non-iterable: 2 at position 1"),
        (lambda: pad_sequences([[1]], padding="mid"), 'Padding type "mid" not understood'),
        (lambda: pad_sequences([[1]], truncating="mid"), 'Truncating type "mid" not understood'),
        (lambda: pad_sequences([["a"]], value="x"), "You should set `dtype=object`"),
        (
            lambda: pad_sequences([[[1, 2]], [[1]]]),
            r"Shape of sample \(1,\) of sequence at position 1",
        ),
        (lambda: pad_sequences([]), "`maxlen` must be given"),
        (lambda: pad_sequences([[1]], maxlen=-1), "maxlen=-1"),
        (lambda: pad_sequences([[1]], maxlen=2.5), "maxlen=2.5"),
    ],
)
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_padding_caught_even_when_every_sequence_is_empty():
    with pytest.raises(ValueError, match="Padding type"):
        pad_sequences([[], []], maxlen=2, padding="middle")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf, 1.7, np.float32(0.5)])
def test_padding_value_an_int_dtype_cannot_hold_exactly_is_refused(value):
    with pytest.raises(ValueError, match=r"`value` must be a whole number .*value="):
        pad_sequences([[1, 2]], maxlen=3, value=value)


@pytest.mark.parametrize(
    "value, dtype", [(300, "int8"), (-1, "uint8"), (2**31, "int32"), (2**70, "int64")]
)
def test_padding_value_out_of_the_dtype_range_is_refused(value, dtype):
    with pytest.raises(ValueError, match=rf"`value`={value} does not fit dtype {dtype}"):
        pad_sequences([[1]], maxlen=2, value=value, dtype=dtype)


def test_float_dtypes_pad_with_nan_and_inf_and_whole_floats_fit_ints():
    out = pad_sequences([[1.5]], maxlen=3, dtype="float32", value=np.nan)
    np.testing.assert_array_equal(out, np.array([[np.nan, np.nan, 1.5]], dtype=np.float32))
    out = pad_sequences([[1.5]], maxlen=2, dtype="float64", value=-np.inf)
    np.testing.assert_array_equal(out, [[-np.inf, 1.5]])
    np.testing.assert_array_equal(pad_sequences([[1]], maxlen=2, value=2.0), [[2, 1]])
    np.testing.assert_array_equal(
        pad_sequences([[1]], maxlen=2, value=255, dtype="uint8"), [[255, 1]]
    )


def test_maxlen_larger_than_memory_is_refused_before_allocating():
    # 10**12 int32 steps: 3.64 TiB.
    with pytest.raises(ValueError, match=r"maxlen=1000000000000.*3\.64 TiB"):
        pad_sequences([[1]], maxlen=10**12)
