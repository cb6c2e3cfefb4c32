"""The shared model view over real Flax NNX, Flax Linen and Equinox models and plain pytrees."""

import subprocess
import sys

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jkutils._model import EQUINOX, LINEN, NNX, PYTREE, framework_of, tree_paths, view_of

X = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 1)), jnp.float32)


class NnxCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.head = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        x = self.drop(nnx.relu(self.bn(self.conv(x))))
        return self.head(x.mean((1, 2)))


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(4, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(3)(x.mean((1, 2)))


def _paths(tree):
    return sorted(path for path, _ in tree_paths(tree))


def test_frameworks_are_recognised_and_pytrees_are_not():
    linen = LinenCNN()
    variables = linen.init(jax.random.key(0), X)
    assert framework_of(NnxCNN(nnx.Rngs(0))) == NNX
    assert framework_of(linen) == LINEN
    assert framework_of(linen.apply) == LINEN
    assert framework_of(eqx.nn.Linear(2, 3, key=jax.random.key(0))) == EQUINOX
    assert framework_of(variables) is None
    assert framework_of(lambda x: x) is None


def test_nnx_params_trainable_batch_stats_and_rng_state_not():
    model = NnxCNN(nnx.Rngs(0))
    view = view_of(model)
    assert view.framework == NNX and view.type_name == "NnxCNN"
    assert _paths(view.trainable) == [
        ("bn", "bias"), ("bn", "scale"), ("conv", "bias"), ("conv", "kernel"),
        ("head", "bias"), ("head", "kernel"),
    ]  # fmt: skip
    assert _paths(view.state) == [
        ("bn", "mean"), ("bn", "var"), ("drop", "rngs", "count"), ("drop", "rngs", "key"),
    ]  # fmt: skip


def test_nnx_apply_is_pure_and_equals_calling_the_module():
    model = NnxCNN(nnx.Rngs(0))
    model.eval()
    view = view_of(model)
    out, _ = jax.jit(view.apply)(view.trainable, view.state, X)
    np.testing.assert_allclose(out, model(X), rtol=1e-6)


def test_nnx_apply_returns_updated_batch_stats_and_leaves_the_model_alone():
    model = NnxCNN(nnx.Rngs(0))
    view = view_of(model)
    before = np.asarray(model.bn.mean[...])
    _, new_state = view.apply(view.trainable, view.state, X)
    expected_mean = 0.99 * before + 0.01 * np.asarray(
        nnx.merge(*nnx.split(model)).conv(X).mean((0, 1, 2))
    )
    np.testing.assert_allclose(new_state["bn"]["mean"][...], expected_mean, rtol=1e-5)
    np.testing.assert_array_equal(model.bn.mean[...], before)
    rebuilt = view.rebuild(view.trainable, new_state)
    np.testing.assert_allclose(rebuilt.bn.mean[...], expected_mean, rtol=1e-5)


def test_linen_params_trainable_other_collections_state():
    module = LinenCNN()
    variables = module.init(jax.random.key(0), X)
    for view in (view_of(variables, module.apply), view_of(module.bind(variables))):
        assert view.framework == LINEN and view.type_name == "LinenCNN"
        assert _paths(view.trainable) == _paths(variables["params"])
        assert _paths(view.state) == [("batch_stats", "BatchNorm_0", "mean"),
                                      ("batch_stats", "BatchNorm_0", "var")]  # fmt: skip
        out, state = view.apply(view.trainable, view.state, X, train=True)
        ref_out, ref_updates = module.apply(variables, X, train=True, mutable=["batch_stats"])
        np.testing.assert_allclose(out, ref_out, rtol=1e-6)
        np.testing.assert_allclose(
            state["batch_stats"]["BatchNorm_0"]["mean"],
            ref_updates["batch_stats"]["BatchNorm_0"]["mean"],
        )
        assert set(view.rebuild(view.trainable, state)) == {"params", "batch_stats"}


def test_unbound_linen_module_without_variables_says_how_to_pass_them():
    with pytest.raises(TypeError, match=r"module.bind\(variables\)"):
        view_of(LinenCNN())


def test_linen_variables_without_params_are_refused_naming_what_was_given():
    with pytest.raises(TypeError, match="'params' collection.*batch_stats"):
        view_of({"batch_stats": {}}, LinenCNN().apply)


def test_equinox_arrays_trainable_static_fields_kept_aside():
    mlp = eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(0))
    view = view_of(mlp)
    assert view.framework == EQUINOX and view.type_name == "MLP"
    expected = [path for path, leaf in tree_paths(mlp) if eqx.is_inexact_array(leaf)]
    assert _paths(view.trainable) == sorted(expected)
    x = jnp.ones((4,))
    out, _ = jax.jit(view.apply)(view.trainable, view.state, x)
    np.testing.assert_allclose(out, mlp(x), rtol=1e-6)
    rebuilt = view.rebuild(view.trainable, view.state)
    np.testing.assert_allclose(rebuilt(x), mlp(x), rtol=1e-6)


def test_equinox_integer_arrays_are_state_not_trainable():
    class Counter(eqx.Module):
        weight: jax.Array
        steps: jax.Array

    view = view_of(Counter(jnp.ones(3), jnp.zeros((), jnp.int32)))
    assert _paths(view.trainable) == [("weight",)]
    assert _paths(view.state) == [("steps",)]


def test_pytree_with_function_is_all_trainable():
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    view = view_of(params, lambda p, x: x @ p["w"] + p["b"])
    assert view.framework == PYTREE and view.state == {}
    out, _ = view.apply(view.trainable, view.state, jnp.ones((1, 3)))
    np.testing.assert_allclose(out, [[3.0, 3.0]])


def test_a_module_with_an_apply_fn_is_refused():
    with pytest.raises(TypeError, match="called directly"):
        view_of(eqx.nn.Linear(2, 3, key=jax.random.key(0)), lambda m, x: m(x))


def test_nnx_value_level_is_removed_from_paths():
    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    assert _paths(nnx.state(model)) == [("bias",), ("kernel",)]


def test_the_view_never_imports_flax_or_equinox_for_a_pytree():
    code = (
        "import sys; from jkutils._model import view_of; "
        "view_of({'w': 1.0}, lambda p, x: x); "
        "print(any(m in sys.modules for m in ('flax', 'equinox')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
