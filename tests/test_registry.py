"""Custom objects: scopes per thread and task, registration, name resolution, JSON round trips."""

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jkutils import registry
from jkutils.registry import (
    CustomObjectScope,
    custom_object_scope,
    deserialize,
    deserialize_keras_object,
    get,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    register_serializable,
    serialize,
    serialize_keras_object,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_registry():
    """Each test starts from, and leaves, the registry as it found it."""
    objects = dict(registry._GLOBAL_CUSTOM_OBJECTS)
    names = dict(registry._GLOBAL_CUSTOM_NAMES)
    yield
    registry._GLOBAL_CUSTOM_OBJECTS.clear()
    registry._GLOBAL_CUSTOM_OBJECTS.update(objects)
    registry._GLOBAL_CUSTOM_NAMES.clear()
    registry._GLOBAL_CUSTOM_NAMES.update(names)


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "jax"
    return keras


def double(x):
    return 2 * x


def triple(x):
    return 3 * x


def relu(x):
    """A user function that shares its name with jax.nn.relu."""
    return x


def _json(value):
    return json.loads(json.dumps(value))


def _scoped(name):
    return get_registered_object(name)


# ---------------------------------------------------------------------------------------------
# Scopes
# ---------------------------------------------------------------------------------------------


def test_scope_makes_names_visible_only_inside():
    assert _scoped("double") is None
    with CustomObjectScope({"double": double}) as scope:
        assert isinstance(scope, CustomObjectScope)
        assert _scoped("double") is double
        assert get("double") is double
    assert _scoped("double") is None


def test_scope_takes_several_dicts_later_wins_and_ignores_none():
    with CustomObjectScope({"f": double, "g": double}, None, {"g": triple}):
        assert _scoped("f") is double
        assert _scoped("g") is triple
    with CustomObjectScope():
        assert _scoped("f") is None


def test_custom_object_scope_is_the_same_class():
    assert custom_object_scope is CustomObjectScope


def test_nested_scopes_merge_inner_wins_and_restore():
    with CustomObjectScope({"a": double, "b": double}):
        with custom_object_scope({"b": triple, "c": triple}):
            assert (_scoped("a"), _scoped("b"), _scoped("c")) == (double, triple, triple)
        assert (_scoped("a"), _scoped("b"), _scoped("c")) == (double, double, None)
    assert (_scoped("a"), _scoped("b")) == (None, None)


def test_scope_restored_when_body_raises():
    with pytest.raises(KeyError, match="boom"):
        with CustomObjectScope({"a": double}):
            with CustomObjectScope({"b": triple}):
                raise KeyError("boom")
    assert (_scoped("a"), _scoped("b")) == (None, None)
    with CustomObjectScope({"a": double}):
        with pytest.raises(RuntimeError):
            with CustomObjectScope({"a": triple}):
                raise RuntimeError
        assert _scoped("a") is double


def test_same_scope_object_can_be_nested_and_reused():
    scope = CustomObjectScope({"a": double})
    with scope:
        with scope:
            assert _scoped("a") is double
        assert _scoped("a") is double
    assert _scoped("a") is None
    with scope:
        assert _scoped("a") is double


def test_scope_changes_are_a_snapshot_of_the_dicts_given():
    objects = {"a": double}
    scope = CustomObjectScope(objects, {"b": triple})
    objects["a"] = triple
    scope.custom_objects["a"] = triple  # a copy: changing it changes nothing
    assert scope.custom_objects == {"a": double, "b": triple}
    with scope:
        assert _scoped("a") is double


def test_out_of_order_exit_is_an_error():
    outer, inner = CustomObjectScope({"a": double}), CustomObjectScope({"b": triple})
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="out of order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert (_scoped("a"), _scoped("b")) == (None, None)
    with pytest.raises(RuntimeError, match="out of order"):
        CustomObjectScope({}).__exit__(None, None, None)


def test_keras_out_of_order_exit_leaks_a_scope(keras):
    outer = keras.utils.CustomObjectScope({"a": double})
    inner = keras.utils.CustomObjectScope({"b": triple})
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    try:
        # Both scopes have exited, yet "a" is visible again: inner restored its stale backup.
        assert keras.utils.get_registered_object("a") is double
    finally:
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("custom_objects_scope_dict", {})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([("a", double)],), r"custom_objects\[0\].*dict.*list"),
        (({}, "a"), r"custom_objects\[1\].*str"),
        (({1: double},), r"non-str key 1"),
    ],
)
def test_scope_rejects_bad_arguments(args, message):
    with pytest.raises(TypeError, match=message):
        CustomObjectScope(*args)


def test_scope_accepts_keras_3_keyword_spelling():
    with CustomObjectScope(custom_objects={"double": double}):
        assert get("double") is double
    with custom_object_scope({"double": len}, custom_objects={"double": double}):
        assert get("double") is double  # the keyword dict comes last and wins
    with pytest.raises(TypeError, match=r"`custom_objects` must be a dict"):
        CustomObjectScope(custom_objects=[("double", double)])


def test_scopes_are_isolated_between_threads():
    barrier = threading.Barrier(2, timeout=10)
    seen = {}

    def worker(name, fn):
        with CustomObjectScope({"f": fn}):
            barrier.wait()  # both threads are inside their scopes now
            seen[name] = (_scoped("f"), _scoped("main_only"))
            barrier.wait()
        seen[name + "_after"] = _scoped("f")

    with CustomObjectScope({"main_only": double}):
        threads = [
            threading.Thread(target=worker, args=("t1", double)),
            threading.Thread(target=worker, args=("t2", triple)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _scoped("f") is None
    assert seen == {
        "t1": (double, None),
        "t2": (triple, None),
        "t1_after": None,
        "t2_after": None,
    }


def test_one_scope_object_entered_by_two_threads_at_once():
    scope = CustomObjectScope({"f": double})
    barrier = threading.Barrier(2, timeout=10)
    seen = {}

    def worker(exits_first):
        with scope:
            barrier.wait()
            if not exits_first:
                barrier.wait()  # the other thread has left the scope by now
            inside = _scoped("f")
        if exits_first:
            barrier.wait()
        seen[exits_first] = (inside, _scoped("f"))

    threads = [threading.Thread(target=worker, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {True: (double, None), False: (double, None)}


def test_thread_pool_sees_scope_only_when_context_is_copied():
    with CustomObjectScope({"f": double}), ThreadPoolExecutor(1) as pool:
        assert pool.submit(_scoped, "f").result() is None
        ctx = contextvars.copy_context()
        assert pool.submit(ctx.run, _scoped, "f").result() is double


async def _two_tasks_in_scopes(utils):
    """Tasks "a" and "b" each enter their own scope and read both names while both are inside."""
    barrier = asyncio.Barrier(2)

    async def task(name):
        with utils.CustomObjectScope({name: double}):
            await barrier.wait()
            seen = (utils.get_registered_object("a"), utils.get_registered_object("b"))
            await barrier.wait()
        return seen

    return await asyncio.gather(task("a"), task("b"))


def test_scopes_are_isolated_between_asyncio_tasks():
    assert asyncio.run(_two_tasks_in_scopes(registry)) == [(double, None), (None, double)]
    assert (_scoped("a"), _scoped("b")) == (None, None)


def test_keras_scopes_leak_between_asyncio_tasks(keras):
    # Keras keeps scopes in a threading.local, shared by every task of an event loop.
    assert asyncio.run(_two_tasks_in_scopes(keras.utils)) == [(None, double), (None, double)]


def test_asyncio_task_inherits_scope_at_creation_and_does_not_leak_back():
    async def child():
        inherited = _scoped("outer")
        with CustomObjectScope({"inner": triple}):
            await asyncio.sleep(0)
            return inherited, _scoped("inner")

    async def main():
        with CustomObjectScope({"outer": double}):
            result = await asyncio.create_task(child())
            return result, _scoped("inner")

    (inherited, inner), parent_sees_inner = asyncio.run(main())
    assert (inherited, inner, parent_sees_inner) == (double, triple, None)


def test_get_custom_objects_is_the_live_global_dict():
    objects = get_custom_objects()
    assert objects is get_custom_objects()
    objects["my_double"] = double
    assert get("my_double") is double
    assert get_registered_object("my_double") is double
    with CustomObjectScope({"scoped": triple}):
        assert "scoped" not in get_custom_objects()
    del objects["my_double"]
    assert get_registered_object("my_double") is None


def test_global_objects_seen_from_other_threads():
    get_custom_objects()["my_double"] = double
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(get_registered_object, "my_double").result() is double


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def test_register_class_and_function_under_package_and_name():
    @register_serializable("pkg")
    class Thing:
        def get_config(self):
            return {}

    @register_keras_serializable(package="pkg", name="twice")
    def fn(x):
        return 2 * x

    @register_serializable()
    def plain(x):
        return x

    assert get_registered_name(Thing) == "pkg>Thing"
    assert get_registered_name(fn) == "pkg>twice"
    assert get_registered_name(plain) == "Custom>plain"
    assert get_registered_object("pkg>Thing") is Thing
    assert get_custom_objects()["pkg>twice"] is fn
    assert get("Custom>plain") is plain
    assert register_keras_serializable is register_serializable


def test_register_returns_the_object_unchanged_and_is_idempotent():
    decorator = register_serializable("pkg")
    assert decorator(double) is double
    assert decorator(double) is double
    assert get_registered_name(double) == "pkg>double"


def test_register_class_without_get_config_is_the_keras_error(keras):
    class NoConfig:
        pass

    with pytest.raises(ValueError) as ours:
        register_serializable("pkg")(NoConfig)
    with pytest.raises(ValueError) as theirs:
        keras.utils.register_keras_serializable("pkg")(NoConfig)
    assert str(ours.value).startswith(str(theirs.value))
    assert get_registered_object("pkg>NoConfig") is None


def test_register_other_object_under_taken_name_fails():
    register_serializable("pkg", name="op")(double)
    with pytest.raises(ValueError, match=r"'pkg>op'.*already taken by <function double"):
        register_serializable("pkg", name="op")(triple)
    assert get("pkg>op") is double


def test_redefinition_of_the_same_class_replaces_it():
    classes = []
    for _ in range(2):  # a re-run notebook cell: same module and qualified name, new object

        @register_serializable("pkg")
        class Layer:
            def get_config(self):
                return {}

        classes.append(Layer)
    old, new = classes
    assert old is not new
    assert get_registered_object("pkg>Layer") is new
    assert get_registered_name(new) == "pkg>Layer"
    assert get_registered_name(old) == "Layer"  # no longer registered


def test_unhashable_objects_can_be_registered():
    class Op:
        __hash__ = None

        def __eq__(self, other):
            raise AssertionError("registry must compare by identity")

        def __call__(self, x):
            return x

    op = Op()
    register_serializable("pkg", name="op")(op)
    assert get_registered_name(op) == "pkg>op"
    assert get("pkg>op") is op
    assert _json(serialize(op))["config"] == "pkg>op"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"package": "a>b"}, ValueError, r"`package`.*without '>'.*'a>b'"),
        ({"package": ""}, ValueError, r"`package` must be a non-empty"),
        ({"package": 3}, TypeError, r"`package` must be a string.*int"),
        ({"name": ""}, ValueError, r"`name` must be a non-empty"),
        ({"name": 1.5}, TypeError, r"`name` must be a string.*float"),
    ],
)
def test_register_rejects_bad_names(kwargs, error, message):
    with pytest.raises(error, match=message):
        register_serializable(**kwargs)


def test_register_without_parentheses_says_so():
    with pytest.raises(TypeError, match="with parentheses"):

        @register_serializable
        class Thing:
            def get_config(self):
                return {}


def test_register_nameless_object_needs_a_name():
    obj = np.float64(1.0)
    with pytest.raises(TypeError, match=r"`obj` has no `__name__`: pass `name=`"):
        register_serializable("pkg")(obj)
    register_serializable("pkg", name="one")(obj)
    assert get("pkg>one") is obj


def test_concurrent_registration_loses_nothing():
    def make(i):
        def fn(x):
            return x + i

        fn.__name__ = fn.__qualname__ = f"fn{i}"
        return fn

    functions = [make(i) for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(register_serializable("conc"), functions))
    assert [get_registered_name(f) for f in functions] == [f"conc>fn{i}" for i in range(200)]
    assert all(get(f"conc>fn{i}") is f for i, f in enumerate(functions))


def test_get_registered_name_falls_back_to_dunder_name(keras):
    for obj in (double, jax.nn.relu, optax.adam, int):
        assert get_registered_name(obj) == keras.utils.get_registered_name(obj)
    with pytest.raises(TypeError, match=r"`obj` has no registered name.*obj=3 \(of type int\)"):
        get_registered_name(3)


def test_registered_names_match_keras(keras):
    @register_keras_serializable("pkg", name="renamed")
    @keras.utils.register_keras_serializable("pkg", name="renamed")
    def fn(x):
        return x

    @register_keras_serializable("pkg")
    @keras.utils.register_keras_serializable("pkg")
    class Thing:
        def get_config(self):
            return {}

    for obj in (fn, Thing):
        assert get_registered_name(obj) == keras.utils.get_registered_name(obj)
    assert get_registered_object("pkg>renamed") is keras.utils.get_registered_object("pkg>renamed")


def test_get_registered_object_lookup_order_is_keras_order(keras):
    def lookup(utils):
        utils.get_custom_objects()["order_a"] = double
        utils.get_custom_objects()["order_b"] = double
        try:
            with utils.CustomObjectScope({"order_a": triple}):
                return [
                    utils.get_registered_object(
                        name,
                        {"order_b": triple, "order_c": triple},
                        {"order_c": relu, "order_d": relu},
                    )
                    for name in ("order_a", "order_b", "order_c", "order_d", "order_e")
                ]
        finally:
            del utils.get_custom_objects()["order_a"], utils.get_custom_objects()["order_b"]

    ours = lookup(registry)
    assert ours == [triple, double, triple, relu, None]
    assert ours == lookup(keras.utils)


def test_get_registered_object_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"`name` must be a string.*name=5"):
        get_registered_object(5)
    with pytest.raises(TypeError, match=r"`custom_objects` must be a dict"):
        get_registered_object("a", custom_objects=["a"])
    with pytest.raises(TypeError, match=r"`module_objects` must be a dict"):
        get_registered_object("a", module_objects=3)


def test_keras_3_nested_scopes_replace_ours_merge(keras):
    with keras.utils.CustomObjectScope({"outer": double}):
        with keras.utils.CustomObjectScope({"inner": triple}):
            keras_sees_outer = keras.utils.get_registered_object("outer")
    with CustomObjectScope({"outer": double}):
        with CustomObjectScope({"inner": triple}):
            we_see_outer = get_registered_object("outer")
    assert keras_sees_outer is None  # Keras 3 replaces (documented difference)
    assert we_see_outer is double


# ---------------------------------------------------------------------------------------------
# Name resolution
# ---------------------------------------------------------------------------------------------


def _public_functions(module):
    return {
        name: getattr(module, name)
        for name in dir(module)
        if not name.startswith("_")
        and callable(getattr(module, name))
        and not isinstance(getattr(module, name), type)
    }


@pytest.mark.parametrize(
    ("kind", "plural", "module"),
    [
        ("activation", "activations", jax.nn),
        ("initializer", "initializers", jax.nn.initializers),
        ("loss", "losses", optax.losses),
    ],
)
def test_every_public_function_of_each_namespace_resolves(kind, plural, module):
    functions = _public_functions(module)
    assert len(functions) > 15
    for name, fn in functions.items():
        assert get(name, kind=kind) is fn, name
        assert get(name, kind=plural) is fn, name
        assert get(name) is fn, name


OPTIMIZERS = [
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "amsgrad",
    "fromage",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "nadam",
    "nadamw",
    "noisy_sgd",
    "novograd",
    "optimistic_adam",
    "optimistic_gradient_descent",
    "polyak_sgd",
    "radam",
    "rmsprop",
    "rprop",
    "sgd",
    "sign_sgd",
    "signum",
    "sm3",
    "yogi",
]


def test_optax_optimizers_resolve():
    for name in OPTIMIZERS:
        assert _optax(get(name, kind="optimizer")) is getattr(optax, name)
        assert _optax(get(name)) is getattr(optax, name)


def test_optax_transforms_and_schedules_resolve_by_name():
    for name in ("chain", "apply_updates", "scale", "clip_by_global_norm", "cosine_decay_schedule"):
        assert get(name, kind="optimizer") is getattr(optax, name)


def test_keras_spellings_resolve():
    assert _optax(get("Adam")) is optax.adam
    assert _optax(get("SGD", kind="optimizers")) is optax.sgd
    assert _optax(get("RMSprop")) is optax.rmsprop
    assert get("GlorotUniform") is jax.nn.initializers.glorot_uniform
    assert get("HeNormal", kind="initializer") is jax.nn.initializers.he_normal
    assert get("softsign") is jax.nn.soft_sign
    assert get("LeakyReLU") is jax.nn.leaky_relu
    assert get("linear") is jax.nn.identity
    x = jnp.array([-2.0, 0.0, 1.5])
    np.testing.assert_array_equal(get("linear")(x), x)
    np.testing.assert_allclose(get("exponential")(x), np.exp([-2.0, 0.0, 1.5]), rtol=1e-6)


SAME_AS_KERAS_3 = [
    "relu",
    "sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "selu",
    "elu",
    "silu",
    "swish",
    "hard_sigmoid",
    "hard_silu",
    "mish",
    "softmax",
    "log_softmax",
    "relu6",
    "celu",
    "glu",
    "sparse_plus",
    "squareplus",
    "log_sigmoid",
    "hard_tanh",
    "linear",
    "exponential",
]


@pytest.mark.parametrize("name", SAME_AS_KERAS_3)
def test_activation_names_compute_what_keras_computes(keras, name):
    x = np.linspace(-4.0, 4.0, 24, dtype=np.float32).reshape(2, 12)
    ours = np.asarray(get(name, kind="activation")(x))
    theirs = np.asarray(keras.activations.get(name)(x))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_activation_names_whose_defaults_differ_from_keras(keras):
    x = np.linspace(-4.0, 4.0, 9, dtype=np.float32)
    # jax.nn.gelu defaults to the tanh approximation, Keras to the exact erf form.
    np.testing.assert_allclose(
        get("gelu")(x), keras.activations.gelu(x, approximate=True), rtol=1e-5
    )
    assert not np.allclose(get("gelu")(x), keras.activations.get("gelu")(x), rtol=1e-6)
    # Negative slope 0.01 in JAX, 0.2 in Keras.
    np.testing.assert_allclose(get("leaky_relu")(np.float32(-1.0)), -0.01, rtol=1e-6)
    np.testing.assert_allclose(
        keras.activations.get("leaky_relu")(np.float32(-1.0)), -0.2, rtol=1e-6
    )


def test_kind_narrows_the_search():
    with pytest.raises(ValueError, match=r"Unknown loss name 'relu'.*then optax\.losses\.$"):
        get("relu", kind="loss")
    with pytest.raises(ValueError, match=r"Unknown initializer name 'adam'"):
        get("adam", kind="initializers")


def test_bad_kind_is_rejected():
    with pytest.raises(ValueError, match=r"`kind` must be None or one of 'activation'.*'metric'"):
        get("relu", kind="metric")
    with pytest.raises(ValueError, match=r"`kind` must be"):
        get("relu", kind=["activation"])


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown object name 'rleu'\. Did you mean: 'relu'"):
        get("rleu")
    with pytest.raises(ValueError, match=r"Did you mean: 'adam'"):
        get("adm", kind="optimizer")
    with CustomObjectScope({"my_custom_act": double}):
        with pytest.raises(ValueError, match=r"Did you mean: 'my_custom_act'"):
            get("my_custom_akt")
    with pytest.raises(ValueError, match=r"Unknown object name 'qqqqqqqq'\. Names are"):
        get("qqqqqqqq")


def test_keras_activations_get_ignores_custom_objects(keras):
    with keras.utils.CustomObjectScope({"double": double}):
        with pytest.raises(ValueError, match="Could not interpret activation"):
            keras.activations.get("double")
    with CustomObjectScope({"double": double}):
        assert get("double", kind="activation") is double


def test_custom_objects_win_over_builtin_names():
    with CustomObjectScope({"relu": double}):
        assert get("relu") is double
        assert get("relu", kind="activation") is double
    get_custom_objects()["adam"] = triple
    assert get("adam", kind="optimizer") is triple
    del get_custom_objects()["adam"]
    assert _optax(get("adam")) is optax.adam


def test_ambiguous_name_needs_kind(monkeypatch):
    original = registry._namespace_table

    def with_duplicate(kind):
        table = dict(original(kind))
        if kind == "loss":
            table["relu"] = optax.losses.l2_loss
        return table

    registry._name_index.cache_clear()
    monkeypatch.setattr(registry, "_namespace_table", with_duplicate)
    try:
        with pytest.raises(
            ValueError,
            match=r"'relu' is ambiguous.*activation \(jax\.nn\.relu\)"
            r".*loss \(optax\.losses\.relu\).*kind=",
        ):
            get("relu")
        assert get("relu", kind="activation") is jax.nn.relu
        assert get("relu", kind="loss") is optax.losses.l2_loss
    finally:
        registry._name_index.cache_clear()


def test_exact_spelling_beats_normalized_spelling(monkeypatch):
    original = registry._namespace_table

    def with_variant(kind):
        table = dict(original(kind))
        if kind == "activation":
            table["Relu"] = double
        return table

    registry._name_index.cache_clear()
    monkeypatch.setattr(registry, "_namespace_table", with_variant)
    try:
        assert get("relu") is jax.nn.relu
        assert get("Relu") is double
        with pytest.raises(ValueError, match="ambiguous"):
            get("RELU")
    finally:
        registry._name_index.cache_clear()


def test_get_passes_callables_through_and_rejects_other_things():
    assert get(double) is double
    assert get(optax.adam) is optax.adam
    for bad in (None, 3, [double]):
        with pytest.raises(TypeError, match=r"`identifier` must be a name \(str\)"):
            get(bad)


def test_get_builds_an_optimizer_from_a_keras_style_config():
    opt = get({"class_name": "Adam", "config": {"learning_rate": 0.1}}, kind="optimizer")
    params = jnp.array([1.0, -2.0, 3.0])
    grads = jnp.array([0.5, -4.0, 0.0])
    updates, _ = opt.update(grads, opt.init(params), params)
    # First Adam step: m_hat = g, v_hat = g**2, update = -lr * g / (|g| + eps).
    expected = -0.1 * np.array([0.5, -4.0, 0.0]) / (np.abs([0.5, -4.0, 0.0]) + 1e-8)
    np.testing.assert_allclose(updates, expected, rtol=1e-4)


def test_get_dict_without_class_name_is_rejected():
    with pytest.raises(ValueError, match="must be a config with a 'class_name' key"):
        get({"name": "relu"})


# ---------------------------------------------------------------------------------------------
# serialize / deserialize
# ---------------------------------------------------------------------------------------------


@register_serializable("tests")
class Dense:
    """A small registered class with nested objects in its config."""

    def __init__(self, units, activation=None, kernel_shape=(1, 1), init=None, extra=None):
        self.units = units
        self.activation = activation
        self.kernel_shape = kernel_shape
        self.init = init
        self.extra = extra

    def get_config(self):
        return {
            "units": self.units,
            "activation": self.activation,
            "kernel_shape": self.kernel_shape,
            "init": self.init,
            "extra": self.extra,
        }


@register_serializable("tests", name="scaled_tanh")
def scaled_tanh(x):
    return 1.7159 * jnp.tanh(2.0 / 3.0 * x)


def test_builtin_function_config_shape():
    assert serialize(jax.nn.relu) == {
        "module": "jax.nn",
        "class_name": "function",
        "config": "relu",
        "registered_name": "function",
    }
    assert serialize(optax.adam)["module"] == "optax"
    assert serialize(jax.nn.initializers.he_normal)["module"] == "jax.nn.initializers"
    assert serialize(optax.losses.huber_loss)["module"] == "optax.losses"


def test_every_builtin_round_trips_through_json():
    for kind in registry._KINDS:
        for name, obj in registry._namespace_table(kind).items():
            config = _json(serialize(obj))
            assert deserialize(config) is obj, (kind, name)
            assert config["module"] == registry._KIND_NAMESPACES[kind]


def test_aliases_serialize_under_their_own_name():
    assert serialize(jax.nn.swish)["config"] == "silu"  # jax.nn.swish is jax.nn.silu
    assert serialize(jax.nn.initializers.xavier_uniform)["config"] == "glorot_uniform"
    assert serialize(jnp.exp)["config"] == "exponential"


def test_registered_class_with_nested_objects_round_trips_through_json():
    inner = Dense(3, activation=scaled_tanh)
    outer = Dense(
        np.int64(4),
        activation=jax.nn.gelu,
        kernel_shape=(2, (3, 4)),
        init=jax.nn.initializers.zeros,
        extra={
            "child": inner,
            "weights": np.arange(6, dtype=np.int8).reshape(2, 3),
            "list": [1.5, None, True, "text", [optax.sgd]],
        },
    )
    config = serialize(outer)
    text = json.dumps(config)
    assert json.loads(text) == config  # JSON-safe as returned
    assert config["class_name"] == "Dense" and config["registered_name"] == "tests>Dense"
    assert config["config"]["kernel_shape"] == {
        "class_name": "__tuple__",
        "config": {"value": [2, {"class_name": "__tuple__", "config": {"value": [3, 4]}}]},
    }
    back = deserialize(json.loads(text))
    assert isinstance(back, Dense) and back.units == 4 and type(back.units) is int
    assert back.activation is jax.nn.gelu and back.init is jax.nn.initializers.zeros
    assert back.kernel_shape == (2, (3, 4))
    child = back.extra["child"]
    assert isinstance(child, Dense) and child.activation is scaled_tanh and child.units == 3
    assert back.extra["weights"].dtype == np.int8
    np.testing.assert_array_equal(back.extra["weights"], np.arange(6).reshape(2, 3))
    assert back.extra["list"] == [1.5, None, True, "text", [optax.sgd]]


def test_registered_function_config_and_round_trip():
    config = serialize(scaled_tanh)
    assert config == {
        "module": __name__,
        "class_name": "function",
        "config": "tests>scaled_tanh",
        "registered_name": "function",
    }
    assert deserialize(_json(config)) is scaled_tanh
    assert deserialize("tests>scaled_tanh") is scaled_tanh


@pytest.mark.parametrize(
    "array",
    [
        np.array([1.5, -2.0], dtype=np.float32),
        np.array([[True, False]]),
        np.arange(4, dtype=np.uint16),
        np.array(7.25),
        jnp.array([1.0, 2.5], dtype=jnp.bfloat16),
        jnp.arange(3),
    ],
)
def test_arrays_round_trip_with_dtype(array):
    back = deserialize(_json(serialize(array)))
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, np.asarray(array))


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 3), np.float32),
        jnp.zeros((2, 0), jnp.bfloat16),
        np.zeros((3, 0, 2), np.int8),
        jnp.array([1, -2], jnp.int4),
    ],
)
def test_empty_and_narrow_arrays_keep_their_shape(array):
    back = deserialize(_json(serialize(array)))
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, np.asarray(array))


def test_array_config_without_shape_loads_like_keras_writes_it():
    config = {"class_name": "__numpy__", "config": {"value": [[1, 2]], "dtype": "int32"}}
    assert deserialize(config).shape == (1, 2)
    config["config"]["shape"] = [3]
    with pytest.raises(TypeError, match="'shape' must list the dimensions"):
        deserialize(config)


@pytest.mark.parametrize(
    "value",
    [
        np.array([1 + 2j]),
        np.complex64(1j),
        np.datetime64("2020-01-01"),
        np.bytes_(b"x"),
        np.array([b"x"]),
        {"nested": np.array(["2020-01-01"], dtype="datetime64[D]")},
    ],
)
def test_values_json_cannot_hold_are_refused_at_serialize(value):
    with pytest.raises(TypeError, match="no JSON form"):
        serialize(value)


def test_numpy_scalars_become_python_numbers():
    assert serialize({"a": np.float32(2.5), "b": np.int64(3), "c": np.bool_(True)}) == {
        "a": 2.5,
        "b": 3,
        "c": True,
    }


def test_from_config_is_used_when_defined():
    calls = []

    @register_serializable("tests")
    class WithFromConfig:
        def __init__(self, value):
            self.value = value

        def get_config(self):
            return {"stored": self.value}

        @classmethod
        def from_config(cls, config):
            calls.append(config)
            return cls(config["stored"])

    back = deserialize(_json(serialize(WithFromConfig((1, 2)))))
    assert back.value == (1, 2) and calls == [{"stored": (1, 2)}]


def test_class_objects_serialize_by_name():
    config = serialize(Dense)
    assert config["class_name"] == "class" and config["config"] == "tests>Dense"
    assert deserialize(_json(config)) is Dense


def test_scoped_function_serializes_under_its_scope_name():
    with CustomObjectScope({"my_act": double}):
        config = serialize(double)
        assert config["config"] == "my_act"
        assert deserialize(_json(config)) is double
    with pytest.raises(ValueError, match="Unknown object name 'my_act'"):
        deserialize(_json(config))
    assert deserialize(_json(config), custom_objects={"my_act": triple}) is triple


def test_builtin_in_a_scope_still_serializes_under_its_builtin_name():
    with CustomObjectScope({"my_relu": jax.nn.relu}):
        config = serialize(jax.nn.relu)
    assert config["module"] == "jax.nn" and config["config"] == "relu"
    assert deserialize(_json(config)) is jax.nn.relu


def test_unregistered_module_function_round_trips_with_custom_objects():
    config = _json(serialize(triple))
    assert config == {
        "module": __name__,
        "class_name": "function",
        "config": "triple",
        "registered_name": "function",
    }
    with pytest.raises(ValueError, match=r"Unknown object name 'triple'\.") as info:
        deserialize(config)
    assert any("from module" in note for note in info.value.__notes__)
    assert deserialize(config, custom_objects={"triple": triple}) is triple


def test_user_function_never_silently_becomes_a_builtin():
    config = _json(serialize(relu))  # this module's relu, not jax.nn.relu
    assert config["module"] == __name__
    with pytest.raises(ValueError, match="Unknown object name 'relu'"):
        deserialize(config)
    with CustomObjectScope({"relu": relu}):
        assert deserialize(config) is relu


def test_keras_turns_a_user_function_into_its_builtin_of_the_same_name(keras):
    config = _json(keras.utils.serialize_keras_object(relu))
    assert keras.utils.deserialize_keras_object(config) is keras.activations.relu


def test_unregistered_class_with_registered_name_is_not_a_builtin():
    config = {"module": None, "class_name": "adam", "config": {}, "registered_name": "pkg>adam"}
    with pytest.raises(ValueError, match="Unknown object name 'adam'"):
        deserialize(config)


def test_class_found_by_class_name_in_custom_objects():
    config = _json(serialize(Dense(2)))
    config["registered_name"] = "elsewhere>Dense"
    back = deserialize(config, custom_objects={"Dense": Dense})
    assert isinstance(back, Dense) and back.units == 2


def test_function_configs_call_builtin_factories():
    init = deserialize(
        {
            "class_name": "variance_scaling",
            "config": {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"},
        }
    )
    values = init(jax.random.key(0), (200, 10))
    limit = np.sqrt(3 * 2.0 / 200)  # uniform variance scaling: sqrt(3 * scale / fan_in)
    assert float(jnp.max(jnp.abs(values))) <= limit
    assert float(jnp.max(jnp.abs(values))) > 0.9 * limit


def test_deserialize_resolves_top_level_strings_only():
    assert deserialize("relu") is jax.nn.relu
    assert deserialize({"activation": "relu"}) == {"activation": "relu"}
    assert deserialize(["relu", 1]) == ["relu", 1]
    assert deserialize(None) is None
    with pytest.raises(ValueError, match=r"Unknown object name 'reluu'.*'relu'"):
        deserialize("reluu")


@pytest.mark.parametrize(
    ("obj", "error", "message"),
    [
        (lambda x: x, ValueError, "a lambda or a function defined inside another function"),
        (jax.nn.initializers.glorot_uniform(), ValueError, r"store the factory call instead"),
        (object(), TypeError, r"Cannot serialize <object object.*get_config"),
        ({1: "a"}, TypeError, r"non-str key 1"),
        ({"a": {2.5: "b"}}, TypeError, r"non-str key 2\.5"),
        ({"s"}, TypeError, r"Cannot serialize \{'s'\}"),
        (jax.random.key(0), TypeError, r"Cannot serialize array"),
        (np.array([None, double]), TypeError, r"array of Python objects"),
    ],
)
def test_serialize_rejects_what_cannot_come_back(obj, error, message):
    with pytest.raises(error, match=message):
        serialize(obj)


def test_serialize_rejects_get_config_that_is_not_a_dict():
    class Bad:
        def get_config(self):
            return ["not", "a", "dict"]

    with pytest.raises(TypeError, match=r"Bad\.get_config\(\) must return a dict"):
        serialize(Bad())


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"class_name": "__lambda__", "config": {"value": "abc"}}, ValueError, "lambda"),
        (
            {"class_name": "__numpy__", "config": {"value": [1]}},
            TypeError,
            r"'__numpy__' config must hold a dict with keys \('value', 'dtype'\)",
        ),
        ({"class_name": "__tuple__", "config": [1]}, TypeError, r"'__tuple__' config"),
        ({"class_name": ["x"], "config": {}}, TypeError, r"config\['class_name'\]` must be"),
        ({"class_name": "function", "config": 3}, TypeError, r"config\['config'\]` must be"),
        ({"class_name": "tests>Dense", "config": [1]}, TypeError, r"must be a dict for"),
        ({"class_name": "NoSuchThing", "config": {}}, ValueError, "Unknown object name"),
        ({"class_name": "relu", "module": ["x"], "config": {}}, ValueError, "Unknown object"),
        ({"class_name": "__numpy__", "config": {"value": [1], "dtype": "nope"}}, TypeError,
         "nope"),
    ],
)
def test_deserialize_rejects_malformed_configs(config, error, message):
    with pytest.raises(error, match=message):
        deserialize(config)


def test_constructor_errors_say_which_config_failed():
    config = {"class_name": "tests>Dense", "config": {"units": 1, "bogus": 2}}
    with pytest.raises(TypeError, match="bogus") as info:
        deserialize(config)
    assert any("while deserializing 'tests>Dense'" in note for note in info.value.__notes__)


def test_deserialize_rejects_bad_custom_objects():
    with pytest.raises(TypeError, match=r"`custom_objects` must be a dict.*list"):
        deserialize("relu", custom_objects=[double])


def test_keras_aliases():
    assert serialize_keras_object is serialize
    assert deserialize_keras_object is deserialize


@pytest.fixture
def register_both(keras):
    """Decorator registering an object as "both>name" here and in Keras."""

    def register(obj):
        register_serializable("both")(obj)
        return keras.utils.register_keras_serializable("both")(obj)

    return register


def offset(x):
    """Only registered (here and in Keras) by the interoperability tests."""
    return x + 1


class Pair:
    """A plain class with a function in its config, registered per test in both registries."""

    def __init__(self, a, fn):
        self.a, self.fn = a, fn

    def get_config(self):
        return {"a": self.a, "fn": self.fn}


def test_keras_configs_load_here(keras, register_both):
    register_both(Pair)
    register_both(offset)
    back = deserialize(_json(keras.utils.serialize_keras_object(Pair(5, offset))))
    assert isinstance(back, Pair) and back.a == 5 and back.fn is offset
    keras_relu = _json(keras.utils.serialize_keras_object(keras.activations.relu))
    assert keras_relu["module"] == "builtins"
    assert deserialize(keras_relu) is jax.nn.relu


def test_keras_optimizer_configs_build_the_optax_optimizer(keras):
    config = _json(keras.utils.serialize_keras_object(keras.optimizers.Adam(0.01, beta_1=0.8)))
    opt = deserialize(config)
    # Keras's own values, in optax's names: b1=0.8 (given), b2=0.999 and eps=1e-7 (Keras's).
    expected = optax.adam(config["config"]["learning_rate"], b1=0.8, b2=0.999, eps=1e-7)
    _assert_same_updates(opt, expected)


def test_keras_only_optimizer_settings_name_the_optax_spelling(keras):
    config = _json(keras.utils.serialize_keras_object(keras.optimizers.Adam(0.01, clipnorm=1.0)))
    with pytest.raises(ValueError, match=r"`clipnorm`=1\.0.*optax\.clip_by_global_norm") as info:
        deserialize(config)
    assert any("while deserializing 'Adam'" in note for note in info.value.__notes__)


def test_our_configs_load_in_keras(keras, register_both):
    @register_both
    class KerasPair(Pair):
        @classmethod
        def from_config(cls, config):  # Keras 3 leaves nested configs to from_config
            return cls(config["a"], keras.utils.deserialize_keras_object(config["fn"]))

    register_both(offset)
    back = keras.utils.deserialize_keras_object(_json(serialize(KerasPair(3, offset))))
    assert isinstance(back, KerasPair) and back.a == 3 and back.fn is offset


# ---------------------------------------------------------------------------------------------
# The Keras-port example
# ---------------------------------------------------------------------------------------------

_RUN_EXAMPLE = """
import runpy, sys
import jkutils, jkutils.registry as registry
for name in registry.__all__:  # the same names the package re-exports
    if not hasattr(jkutils, name):
        setattr(jkutils, name, getattr(registry, name))
sys.argv = ["keras_port.py", *sys.argv[1:]]
runpy.run_path("examples/keras_port.py", run_name="__main__")
"""


def _run_example(*args):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", _RUN_EXAMPLE, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_keras_port_example_prints_the_same_on_keras_and_jkutils(keras):
    ours = _run_example()
    theirs = _run_example("--keras")
    assert ours[: len(theirs)] == theirs
    assert "Scaled(3.0, halve) round trip -> [1.5, 4.5]" in theirs
    assert "Scaled(3.0) round trip -> [0.0, 1.5, 3.0]" in theirs
    extra = ours[len(theirs) :]
    assert "get('relu', kind=None) -> jax.nn.relu" in extra
    assert "get('Adam', kind='optimizer') -> optax.adam" in extra
    assert "Adam(learning_rate=0.1) first update -> [-0.1, 0.1]" in extra


# --- Keras's names and arguments ----------------------------------------------------------


def _optax(factory):
    """The optax factory behind what ``get`` returns for an optimizer name."""
    return getattr(factory, "__wrapped__", factory)


def _assert_same_updates(opt, expected, steps=3):
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, 0.25, -1.0])}
    state, expected_state = opt.init(params), expected.init(params)
    for _ in range(steps):
        updates, state = opt.update(grads, state, params)
        expected_updates, expected_state = expected.update(grads, expected_state, params)
        np.testing.assert_array_equal(updates["w"], expected_updates["w"])


@pytest.mark.parametrize("name", ["adam", "Adam"])
def test_adam_takes_learning_rate_and_keras_legacy_lr(name):
    _assert_same_updates(get(name)(learning_rate=0.1), optax.adam(0.1))
    _assert_same_updates(get(name)(lr=0.1), optax.adam(0.1))
    keras_style = get(name)(lr=0.1, beta_1=0.5, epsilon=1e-3)
    _assert_same_updates(keras_style, optax.adam(0.1, 0.5, eps=1e-3))


def test_keras_and_optax_names_for_one_argument_are_refused():
    with pytest.raises(ValueError, match="`lr` and `learning_rate` name the same argument"):
        get("adam")(learning_rate=0.1, lr=0.2)


def test_keras_rmsprop_rho_is_optax_decay():
    _assert_same_updates(get("RMSprop")(lr=0.1, rho=0.5), optax.rmsprop(0.1, decay=0.5))


def test_keras_adam_config_from_the_issue_resolves():
    config = {"class_name": "Adam", "config": {"learning_rate": 1e-3, "name": "adam"}}
    _assert_same_updates(get(config), optax.adam(1e-3))


def test_optimizer_name_still_serializes_as_the_optax_factory():
    config = _json(serialize(get("adam")))
    assert config["module"] == "optax" and config["config"] == "adam"
    assert deserialize(config) is optax.adam


@pytest.mark.parametrize(
    "fn", [optax.chain, optax.clip_by_global_norm, optax.cosine_decay_schedule, optax.nadam]
)
def test_optax_transforms_and_schedules_round_trip(fn):
    assert deserialize(_json(serialize(fn))) is fn


def test_optax_factory_configs_build_schedules_and_transforms():
    inner = {"init_value": 1.0, "decay_steps": 10}
    config = {"class_name": "cosine_decay_schedule", "config": inner}
    schedule = deserialize(_json(config))
    assert float(schedule(5)) == pytest.approx(float(optax.cosine_decay_schedule(1.0, 10)(5)))
    clip = deserialize({"class_name": "clip_by_global_norm", "config": {"max_norm": 1.0}})
    _assert_same_updates(clip, optax.clip_by_global_norm(1.0))


def test_top_level_config_with_a_non_string_class_name_is_refused():
    with pytest.raises(TypeError, match="class_name"):
        deserialize({"class_name": 3})


KERAS_LOSS_CASES = {
    "mse": (np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[0.5, 1.0], [1.0, 5.0]])),
    "mean_squared_error": (np.array([[0.0, 1.0]]), np.array([[0.5, 2.0]])),
    "mae": (np.array([[0.0, 1.0]]), np.array([[0.5, -2.0]])),
    "categorical_crossentropy": (
        np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        np.array([[0.2, 0.7, 0.1], [0.0, 0.5, 0.5]]),
    ),
    "sparse_categorical_crossentropy": (
        np.array([1, 0]),
        np.array([[0.2, 0.7, 0.1], [0.0, 0.5, 0.5]]),
    ),
    "binary_crossentropy": (
        np.array([[1.0, 0.0, 1.0]]),
        np.array([[0.9, 0.2, 0.0]]),
    ),
}


@pytest.mark.parametrize(
    "name, from_logits",
    [(name, None) for name in KERAS_LOSS_CASES if "crossentropy" not in name]
    + [(name, b) for name in KERAS_LOSS_CASES if "crossentropy" in name for b in (False, True)],
)
def test_keras_loss_names_match_keras_losses(keras, name, from_logits):
    y_true, y_pred = KERAS_LOSS_CASES[name]
    kwargs = {} if from_logits is None else {"from_logits": from_logits}
    if from_logits:
        y_pred = np.log(y_pred + 0.1) * 3.0  # arbitrary scores
    ours = get(name, kind="loss")(y_true, y_pred, **kwargs)
    theirs = keras.losses.get(name)(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6)


def test_keras_cross_entropy_defaults_to_probabilities_unlike_optax():
    labels, probabilities = np.array([[0.0, 1.0]]), np.array([[0.25, 0.75]])
    ours = get("categorical_crossentropy")(labels, probabilities)
    np.testing.assert_allclose(ours, [-np.log(0.75)], rtol=1e-6)
    # optax's takes logits: the same numbers read as scores give another value.
    assert not np.allclose(ours, optax.softmax_cross_entropy(probabilities, labels))


KERAS_LOSS_OBJECTS = {
    "CategoricalCrossentropy(from_logits=True)": (
        lambda k: k.losses.CategoricalCrossentropy(from_logits=True),
        np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 2.0]]),
    ),
    "MeanSquaredError()": (
        lambda k: k.losses.MeanSquaredError(),
        np.array([[0.0, 1.0], [2.0, 3.0]]),
        np.array([[0.5, 1.0], [1.0, 5.0]]),
    ),
    "SparseCategoricalCrossentropy()": (
        lambda k: k.losses.SparseCategoricalCrossentropy(),
        np.array([1, 0]),
        np.array([[0.2, 0.7, 0.1], [0.3, 0.5, 0.2]]),
    ),
    "BinaryCrossentropy(label_smoothing=0.1, reduction='sum')": (
        lambda k: k.losses.BinaryCrossentropy(label_smoothing=0.1, reduction="sum"),
        np.array([[1.0, 0.0, 1.0]]),
        np.array([[0.9, 0.2, 0.3]]),
    ),
}


@pytest.mark.parametrize("case", KERAS_LOSS_OBJECTS)
def test_keras_loss_object_configs_give_the_same_reduced_loss(keras, case):
    make, y_true, y_pred = KERAS_LOSS_OBJECTS[case]
    keras_loss = make(keras)
    ours = deserialize(_json(keras.utils.serialize_keras_object(keras_loss)))
    np.testing.assert_allclose(
        np.asarray(ours(y_true, y_pred)), np.asarray(keras_loss(y_true, y_pred)), rtol=1e-5
    )


def test_keras_loss_config_with_an_unsupported_setting_names_it():
    config = {"class_name": "SparseCategoricalCrossentropy", "config": {"ignore_class": 0}}
    with pytest.raises(ValueError, match="no setting 'ignore_class'"):
        deserialize(config)
