"""Custom-object code written against ``keras.utils`` runs unchanged on jkutils.

Everything in the "shared" part below uses only ``keras.utils`` names; the one line that changes
when porting is the import. Run it on jkutils, then (for comparison) on Keras itself:

    python examples/keras_port.py
    KERAS_BACKEND=jax python examples/keras_port.py --keras

Both print the same "shared" lines. On jkutils the script then shows what it adds: names of JAX
activations, initializers, optax optimizers and losses resolved by ``utils.get``.
"""

import json
import sys

import numpy as np

if "--keras" in sys.argv:
    from keras import utils
else:
    import jkutils as utils  # was: from keras import utils


# ---- shared: plain keras.utils code --------------------------------------------------------


@utils.register_keras_serializable(package="port")
def clipped_relu(x):
    return np.clip(x, 0.0, 1.0)


@utils.register_keras_serializable(package="port")
class Scaled:
    """Multiplies the output of a registered function by a constant."""

    def __init__(self, scale=1.0, fn=clipped_relu):
        self.scale = scale
        self.fn = fn

    def __call__(self, x):
        return self.scale * self.fn(np.asarray(x, dtype=np.float32))

    def get_config(self):
        return {"scale": self.scale, "fn": utils.serialize_keras_object(self.fn)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = utils.deserialize_keras_object(config["fn"])
        return cls(**config)


def halve(x):
    return np.asarray(x, dtype=np.float32) / 2


def shared_lines():
    """What the Keras-style code resolves, one line each; identical on Keras and jkutils."""
    lines = [
        f"registered name of Scaled: {utils.get_registered_name(Scaled)}",
        f"registered name of clipped_relu: {utils.get_registered_name(clipped_relu)}",
        f"'port>Scaled' -> {utils.get_registered_object('port>Scaled').__name__}",
        f"'halve' outside a scope -> {utils.get_registered_object('halve')}",
    ]
    with utils.CustomObjectScope({"halve": halve}):
        lines.append(f"'halve' inside a scope -> {utils.get_registered_object('halve').__name__}")
        config = utils.serialize_keras_object(Scaled(3.0, halve))
        rebuilt = utils.deserialize_keras_object(json.loads(json.dumps(config)))
    lines.append(f"Scaled(3.0, halve) round trip -> {rebuilt(np.array([1.0, 3.0])).tolist()}")
    config = utils.serialize_keras_object(Scaled(3.0))
    rebuilt = utils.deserialize_keras_object(json.loads(json.dumps(config)))
    lines.append(f"Scaled(3.0) round trip -> {rebuilt(np.array([-1.0, 0.5, 2.0])).tolist()}")
    with utils.custom_object_scope({"halve": halve}):
        fn = utils.deserialize_keras_object("halve", custom_objects={})
    lines.append(f"deserialize('halve') in a scope -> {fn.__name__}")
    utils.get_custom_objects()["my_halve"] = halve
    found = utils.get_registered_object("my_halve")
    lines.append(f"get_custom_objects()['my_halve'] -> {found.__name__}")
    del utils.get_custom_objects()["my_halve"]
    return lines


# ---- jkutils only: names of JAX and optax objects ------------------------------------------


def _qualified(obj):
    config = utils.serialize(obj)
    return f"{config['module']}.{config['config']}"


def jkutils_lines():
    """Names resolved to JAX/optax objects, and a Keras-style optimizer config."""
    import jax.numpy as jnp

    lines = []
    for name, kind in [("relu", None), ("linear", "activation"), ("GlorotUniform", None),
                       ("Adam", "optimizer"), ("softmax_cross_entropy", "loss")]:
        lines.append(f"get({name!r}, kind={kind!r}) -> {_qualified(utils.get(name, kind=kind))}")
    opt = utils.get({"class_name": "Adam", "config": {"learning_rate": 0.1}}, kind="optimizer")
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = opt.update({"w": jnp.array([0.5, -4.0])}, opt.init(params), params)
    first = [round(float(u), 4) for u in updates["w"]]
    lines.append(f"Adam(learning_rate=0.1) first update -> {first}")
    lines.append(f"serialize(jax.nn.gelu) -> {json.dumps(utils.serialize(utils.get('gelu')))}")
    return lines


if __name__ == "__main__":
    print("\n".join(shared_lines()))
    if "--keras" not in sys.argv:
        print("\n".join(jkutils_lines()))
