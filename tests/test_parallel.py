"""jkutils.parallel on 8 forced host CPU devices: meshes, placement, data_parallel, train step.

The model, data and loss are the ones the 2-process test uses (``_multiprocess_worker``).
"""

from __future__ import annotations

import functools

import _multiprocess_worker as model
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, Mesh, PartitionSpec

from jkutils.parallel import (
    data_parallel,
    data_parallel_train_step,
    make_data_mesh,
    multi_gpu_model,
    replicate,
    shard_batch,
)

DEVICE_COUNTS = (2, 4, 8)
BATCH_SIZES = (1, 3, 13, 16)


def _params() -> dict:
    return model.init_params()


def _batch(size: int) -> dict:
    return model.full_batch(size)


apply = model.apply
weighted_loss = model.per_example_loss


def numpy_apply(params, x):
    return np.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


def _reference_training(params, batch, opt, steps):
    """Plain single-device optax steps on the whole batch: the numbers to match."""

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean(weighted_loss(p, batch)))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = opt.init(params), []
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    return params, losses


ADAM = optax.adam(0.05)
ADAM_STEPS = 3


@functools.cache
def _adam_reference(size: int):
    return _reference_training(_params(), _batch(size), ADAM, ADAM_STEPS)


@functools.cache
def _adam_step(devices: int):
    """One step function per device count, shared by the batch sizes (compiled per shape)."""
    return data_parallel_train_step(weighted_loss, ADAM, devices)


def _train(step, opt, batch, steps):
    params = _params()
    opt_state = opt.init(params)
    losses = []
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(float(loss))
    return params, losses


def _assert_same_training(got, expected):
    (params, losses), (ref_params, ref_losses) = got, expected
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    for name, value in ref_params.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- make_data_mesh


def test_make_data_mesh_defaults_to_all_devices_on_an_auto_axis():
    mesh = make_data_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.shape["data"] == 8 == jax.device_count()
    assert mesh.axis_types == (AxisType.Auto,)
    assert list(mesh.devices.flat) == jax.devices()


def test_make_data_mesh_from_a_count_takes_the_first_devices():
    assert list(make_data_mesh(3).devices.flat) == jax.devices()[:3]
    assert list(make_data_mesh(np.int64(2)).devices.flat) == jax.devices()[:2]


def test_make_data_mesh_from_a_list_keeps_its_order():
    devices = [jax.devices()[5], jax.devices()[1]]
    assert list(make_data_mesh(devices).devices.flat) == devices


@pytest.mark.parametrize(
    "devices, error, message",
    [
        (0, ValueError, "asks for 0 devices but 8 exist"),
        (9, ValueError, "asks for 9 devices but 8 exist"),
        ([], ValueError, "must not be empty"),
        ("all", TypeError, "Received: devices='all'"),
        (True, TypeError, "Received: devices=True"),
        ([0, 1], TypeError, "jax.Device objects"),
        (2.0, TypeError, "of type float"),
    ],
)
def test_make_data_mesh_rejects_bad_devices(devices, error, message):
    with pytest.raises(error, match=message):
        make_data_mesh(devices)


def test_make_data_mesh_rejects_a_device_listed_twice():
    device = jax.devices()[0]
    with pytest.raises(ValueError, match="more than once"):
        make_data_mesh([device, device])


# ----------------------------------------------------------------------------- placement


def test_replicate_puts_every_leaf_on_every_device():
    mesh = make_data_mesh(4)
    tree = replicate(_params(), mesh)
    for name, leaf in tree.items():
        assert leaf.sharding.is_fully_replicated
        assert {shard.device for shard in leaf.addressable_shards} == set(mesh.devices.flat)
        np.testing.assert_array_equal(leaf, _params()[name])


def test_shard_batch_gives_each_device_its_rows():
    mesh = make_data_mesh(4)
    batch = {"x": np.arange(24.0).reshape(8, 3), "y": np.arange(8)}
    placed = shard_batch(batch, mesh)
    assert placed["x"].sharding.spec == PartitionSpec("data")
    for shard in placed["y"].addressable_shards:
        position = list(mesh.devices.flat).index(shard.device)
        np.testing.assert_array_equal(shard.data, [2 * position, 2 * position + 1])
    np.testing.assert_array_equal(placed["x"], batch["x"])


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"x": np.zeros((6, 2))}, "batch size 6 of `tree` does not divide by the 4 devices"),
        ({"x": np.zeros((8, 2)), "s": np.float32(1.0)}, r"Leaf \['s'\] is a scalar"),
        ({"x": np.zeros((8, 2)), "y": np.zeros(4)}, r"\['x'\]: 8, \['y'\]: 4"),
        ({}, "holds no arrays"),
    ],
)
def test_shard_batch_rejects_bad_batches(tree, message):
    with pytest.raises(ValueError, match=message):
        shard_batch(tree, make_data_mesh(4))


def test_placement_rejects_what_is_not_a_mesh():
    with pytest.raises(TypeError, match="must be a jax.sharding.Mesh"):
        replicate({"w": np.ones(2)}, jax.devices())


# ----------------------------------------------------------------------------- data_parallel


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
@pytest.mark.parametrize("size", BATCH_SIZES)
def test_data_parallel_equals_the_full_batch_result(devices, size):
    params, x = _params(), _batch(size)["x"]
    run = data_parallel(apply, devices)
    out = run(params, x)
    assert out.shape == (size, 3)
    np.testing.assert_allclose(out, numpy_apply(params, x), rtol=1e-5, atol=1e-6)
    assert run.mesh.shape["data"] == devices


def test_data_parallel_splits_the_batch_across_the_devices():
    seen = []

    def fn(params, x):
        seen.append(x.shape)  # recorded while tracing: the per-device block
        return x * params

    out = data_parallel(fn, 4)(np.float32(2.0), np.arange(13.0))
    assert seen == [(4,)]  # 13 rows padded to 16, 4 per device
    np.testing.assert_array_equal(out, 2.0 * np.arange(13.0))


def test_data_parallel_takes_pytree_batches_and_several_batch_arguments():
    def fn(params, batch, offset):
        return {"z": apply(params, batch["x"]) + offset[:, None], "y": batch["y"] * 2}

    b = _batch(11)
    offset = np.arange(11, dtype=np.float32)
    out = data_parallel(fn, 8, batch_argnums=(1, 2))(_params(), b, offset)
    np.testing.assert_allclose(
        out["z"], numpy_apply(_params(), b["x"]) + offset[:, None], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(out["y"], b["y"] * 2)


def test_data_parallel_batch_argument_first_and_keyword_arguments_static():
    def fn(x, scale, *, negate):
        return -x * scale if negate else x * scale

    run = data_parallel(fn, 2, batch_argnums=0)
    np.testing.assert_array_equal(run(np.arange(5.0), 3.0, negate=True), -3.0 * np.arange(5.0))
    np.testing.assert_array_equal(run(np.arange(5.0), 3.0, negate=False), 3.0 * np.arange(5.0))


def test_data_parallel_rejects_unhashable_keyword_arguments():
    run = data_parallel(lambda x, *, scale: x * scale, 2, batch_argnums=0)
    with pytest.raises(TypeError, match="must be hashable.*Received: scale=array"):
        run(np.arange(4.0), scale=np.arange(4.0))


def test_data_parallel_accepts_arrays_placed_anywhere():
    params = jax.device_put(_params(), jax.devices()[3])  # committed to another device
    x = jax.device_put(_batch(6)["x"], jax.devices()[7])
    out = data_parallel(apply, 4)(params, x)
    np.testing.assert_allclose(out, numpy_apply(_params(), np.asarray(x)), rtol=1e-5, atol=1e-6)


def test_data_parallel_compiles_once_per_shape():
    traces = []

    def fn(params, x):
        traces.append(x.shape)
        return x + params

    run = data_parallel(fn, 4)
    for _ in range(3):
        run(np.float32(1.0), np.zeros((10, 2), np.float32))
    assert len(traces) == 1
    run(np.float32(1.0), np.zeros((7, 2), np.float32))
    assert len(traces) == 2


def test_data_parallel_accepts_an_explicit_axis_mesh():
    explicit = jax.make_mesh((4,), ("batch",))  # jax's default: Explicit axis types
    assert explicit.axis_types == (AxisType.Explicit,)
    run = data_parallel(apply, mesh=explicit)
    assert run.mesh.axis_types == (AxisType.Auto,)
    x = _batch(5)["x"]
    np.testing.assert_allclose(run(_params(), x), numpy_apply(_params(), x), rtol=1e-5, atol=1e-6)


def test_data_parallel_rejects_outputs_without_a_batch_axis():
    run = data_parallel(lambda params, x: jnp.sum(x), 2)
    with pytest.raises(ValueError, match=r"output <root> has shape \(\) for a shard of 2 rows"):
        run(None, np.ones((4, 3)))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_argnums": ()}, TypeError, "non-empty sequence of ints"),
        ({"batch_argnums": "1"}, TypeError, "Received: batch_argnums='1'"),
        ({"batch_argnums": 1.0}, TypeError, "int or a sequence of ints"),
        ({"batch_argnums": (1, 1)}, ValueError, "distinct non-negative"),
        ({"batch_argnums": -1}, ValueError, "distinct non-negative"),
        (
            {"devices": 2, "mesh": Mesh(np.array(jax.devices()[:2]), ("d",))},
            ValueError,
            "either `devices` or `mesh`",
        ),
        (
            {"mesh": Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))},
            ValueError,
            "exactly one axis",
        ),
        ({"mesh": "data"}, TypeError, "must be a jax.sharding.Mesh"),
    ],
)
def test_data_parallel_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        data_parallel(apply, **kwargs)


def test_data_parallel_rejects_a_function_that_is_not_callable():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        data_parallel("apply")


@pytest.mark.parametrize(
    "args, message",
    [
        ((_params(),), r"names argument 1 but the function was called with 1"),
        ((_params(), np.zeros((0, 5), np.float32)), "empty batch"),
        ((_params(), np.float32(3.0)), r"Leaf \['args\[1\]'\] is a scalar"),
    ],
)
def test_data_parallel_call_rejects_bad_batches(args, message):
    with pytest.raises(ValueError, match=message):
        data_parallel(apply, 2)(*args)


def test_data_parallel_call_rejects_batch_arguments_of_unequal_sizes():
    run = data_parallel(lambda x, y: x + y, 2, batch_argnums=(0, 1))
    with pytest.raises(ValueError, match=r"\['args\[0\]'\]: 4, \['args\[1\]'\]: 5"):
        run(np.zeros(4), np.zeros(5))


# ----------------------------------------------------------------------------- train step


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
@pytest.mark.parametrize("size", BATCH_SIZES)
def test_train_step_matches_single_device_adam_over_several_steps(devices, size):
    step = _adam_step(devices)
    params, losses = _train(step, ADAM, _batch(size), ADAM_STEPS)
    _assert_same_training((params, losses), _adam_reference(size))
    for leaf in jax.tree.leaves(params):
        assert leaf.sharding.is_fully_replicated
        assert len(leaf.sharding.device_set) == devices


def test_train_step_matches_single_device_sgd_with_momentum():
    # Unlike adam, sgd's update scales with the gradient: a gradient summed once too often or
    # divided by the wrong count shows up here.
    opt = optax.sgd(0.1, momentum=0.9)
    batch = _batch(13)
    got = _train(data_parallel_train_step(weighted_loss, opt, 8), opt, batch, 3)
    _assert_same_training(got, _reference_training(_params(), batch, opt, 3))


def test_train_step_compiles_once_per_batch_shape():
    traces = []

    def loss_fn(p, x):
        traces.append(x.shape)
        return (x * p) ** 2

    opt = optax.sgd(0.1)
    step = data_parallel_train_step(loss_fn, opt, 4)
    p, s = np.float32(1.0), opt.init(np.float32(1.0))
    for _ in range(3):  # numpy inputs first, then the replicated arrays the step returned
        p, s, _ = step(p, s, np.ones(6, np.float32))
    assert traces == [(2,)]  # 6 rows padded to 8: 2 per device, traced once


def test_train_step_loss_is_the_hand_computed_weighted_mean():
    # loss_i = w_i * (x_i . p - y_i)^2 with p = 0: the mean of w_i * y_i^2 over real rows only.
    def loss_fn(p, b):
        return b["w"] * (b["x"] @ p - b["y"]) ** 2

    batch = {
        "x": np.ones((3, 2), np.float32),
        "y": np.array([1.0, 2.0, 3.0], np.float32),
        "w": np.array([1.0, 0.5, 2.0], np.float32),
    }
    step = data_parallel_train_step(loss_fn, optax.sgd(0.1), 8)
    p = np.zeros(2, np.float32)
    p, _, loss = step(p, optax.sgd(0.1).init(p), batch)
    assert float(loss) == pytest.approx((1 * 1 + 0.5 * 4 + 2 * 9) / 3)
    # gradient: mean of 2 * w_i * (x_i . p - y_i) * x_i = -2 * (1 + 1 + 6) / 3 per coordinate
    np.testing.assert_allclose(p, -0.1 * np.full(2, -2 * 8 / 3), rtol=1e-6)


def test_train_step_padding_never_brings_nan():
    # -log(x) is finite on the real rows; zero rows as padding would give inf and NaN grads.
    def loss_fn(p, x):
        return -jnp.log(x * p)

    x = np.array([0.5, 2.0, 3.0], np.float32)
    step = data_parallel_train_step(loss_fn, optax.sgd(0.1), 8)
    p, _, loss = step(np.float32(1.0), optax.sgd(0.1).init(np.float32(1.0)), x)
    assert float(loss) == pytest.approx(-np.mean(np.log(x)), rel=1e-6)
    assert float(p) == pytest.approx(1.0 + 0.1, rel=1e-6)  # d/dp mean(-log(x p)) = -1/p


def test_train_step_donates_the_replicated_inputs():
    opt = optax.sgd(0.1)
    step = data_parallel_train_step(weighted_loss, opt, 4)
    params = replicate(_params(), step.mesh)
    opt_state = replicate(opt.init(params), step.mesh)
    new_params, _, _ = step(params, opt_state, _batch(8))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(params))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new_params))


def test_train_step_rejects_a_mean_loss():
    step = data_parallel_train_step(lambda p, b: jnp.mean(b * p), optax.sgd(0.1), 2)
    message = r"one loss per example, shape \(2,\).*returned shape \(\)"
    with pytest.raises(ValueError, match=message):
        step(np.float32(1.0), optax.sgd(0.1).init(np.float32(1.0)), np.ones(4, np.float32))


@pytest.mark.parametrize(
    "args, error, message",
    [
        (("loss", optax.sgd(0.1)), TypeError, "`loss_fn` must be callable"),
        ((weighted_loss, "adam"), TypeError, "optax GradientTransformation"),
        ((weighted_loss, optax.sgd(0.1), 99), ValueError, "asks for 99 devices but 8 exist"),
    ],
)
def test_train_step_rejects_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        data_parallel_train_step(*args)


@pytest.mark.parametrize(
    "batch, message",
    [
        ({"x": np.zeros((0, 5))}, "empty batch"),
        ({"x": np.zeros((4, 5)), "y": np.zeros(3)}, r"\['x'\]: 4, \['y'\]: 3"),
    ],
)
def test_train_step_rejects_bad_batches(batch, message):
    step = data_parallel_train_step(weighted_loss, optax.sgd(0.1), 2)
    with pytest.raises(ValueError, match=message):
        step(_params(), optax.sgd(0.1).init(_params()), batch)


# ----------------------------------------------------------------------------- multi_gpu_model


@pytest.mark.parametrize(
    "gpus, expected",
    [(None, list(range(8))), (2, [0, 1]), ([0, 3, 5], [0, 3, 5]), (np.int64(4), [0, 1, 2, 3])],
)
def test_multi_gpu_model_runs_on_the_devices_asked_for(gpus, expected):
    parallel = multi_gpu_model(apply, gpus=gpus)
    assert list(parallel.mesh.devices.flat) == [jax.devices()[i] for i in expected]
    x = _batch(10)["x"]
    np.testing.assert_allclose(
        parallel(_params(), x), numpy_apply(_params(), x), rtol=1e-5, atol=1e-6
    )


def test_multi_gpu_model_takes_devices_and_ignores_the_cpu_flags():
    devices = [jax.devices()[6], jax.devices()[2]]
    x = _batch(5)["x"]
    for cpu_merge in (True, False):
        for cpu_relocation in (True, False):
            parallel = multi_gpu_model(apply, devices, cpu_merge, cpu_relocation)
            assert list(parallel.mesh.devices.flat) == devices
            np.testing.assert_allclose(
                parallel(_params(), x), numpy_apply(_params(), x), rtol=1e-5, atol=1e-6
            )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"gpus": 1}, ValueError, r"`gpus >= 2`.*Received: gpus=1 with 8 device\(s\) available"),
        ({"gpus": 16}, ValueError, r"`gpus=16` asks for more devices than exist: 8 cpu device"),
        ({"gpus": [0]}, ValueError, "`gpus >= 2`"),
        ({"gpus": [0, 8]}, ValueError, r"names device 8 but only 8 device\(s\) exist"),
        ({"gpus": [0, 0]}, ValueError, "more than once"),
        ({"gpus": "2"}, TypeError, "Received: gpus='2'"),
        ({"gpus": [0, "1"]}, TypeError, "device ids"),
        ({"gpus": 2, "cpu_merge": "yes"}, TypeError, "`cpu_merge` must be a bool"),
        ({"gpus": 2, "cpu_relocation": None}, TypeError, "`cpu_relocation` must be a bool"),
    ],
)
def test_multi_gpu_model_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        multi_gpu_model(apply, **kwargs)


# ----------------------------------------------------------------------------- Keras 3


def test_a_batch_keras3_data_parallel_rejects_runs_here_with_keras_numbers():
    import keras  # a test dependency; conftest selects the JAX backend

    def layers():
        return [keras.Input((5,)), keras.layers.Dense(3, activation="tanh")]

    x = _batch(6)["x"]
    model = keras.Sequential(layers())
    expected = model.predict(x, verbose=0)  # plain Keras on one device

    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()[:4])
    with distribution.scope():
        sharded = keras.Sequential(layers())
        sharded.set_weights(model.get_weights())
        with pytest.raises(Exception, match="partitioned 4 times, but the dimension size is 6"):
            sharded.predict(x, batch_size=6, verbose=0)

    kernel, bias = (np.asarray(w) for w in model.get_weights())
    ours = data_parallel(lambda p, x: jnp.tanh(x @ p[0] + p[1]), 4)((kernel, bias), x)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
