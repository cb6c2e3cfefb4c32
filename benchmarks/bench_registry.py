"""Custom objects: name lookups, scopes and config round trips against Keras 3."""

from __future__ import annotations

import contextvars
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import Row, best_of, print_table  # noqa: E402
from jkutils import registry  # noqa: E402

AREA = "registry"


class _Block:
    def __init__(self, width, activation=None):
        self.width, self.activation = width, activation

    def get_config(self):
        return {"width": self.width, "activation": self.activation}


class _KerasBlock(_Block):
    """The same class written for Keras 3, whose from_config must rebuild nested objects."""

    @classmethod
    def from_config(cls, config):
        import keras

        config = dict(config)
        config["activation"] = keras.utils.deserialize_keras_object(config["activation"])
        return cls(**config)


def _act(x):
    return x


def _per_call(fn, n):
    def run():
        for _ in range(n):
            fn()
    return best_of(run, repeat=5) / n


def rows(quick: bool = False) -> list[Row]:
    import keras

    n = 2_000 if quick else 20_000
    start = time.perf_counter()
    registry.get("relu")
    cold = time.perf_counter() - start

    table = {"relu": _act}
    out = [Row(AREA, "first get() (builds all tables, imports optax)", cold)]
    out.append(Row(AREA, "get('relu') vs a plain table lookup",
                   _per_call(lambda: registry.get("relu"), n),
                   "keras.activations.get", _per_call(lambda: keras.activations.get("relu"), n),
                   "dict.get", _per_call(lambda: table.get("relu"), n)))
    out.append(Row(AREA, "get('relu') (custom objects searched first)",
                   _per_call(lambda: registry.get("relu"), n),
                   "keras.activations.deserialize",
                   _per_call(lambda: keras.activations.deserialize("relu"), n),
                   "dict.get", _per_call(lambda: table.get("relu"), n)))

    registry.register_serializable("bench")(_Block)
    registry.register_serializable("bench")(_act)
    keras.utils.register_keras_serializable("bench")(_KerasBlock)
    keras.utils.register_keras_serializable("bench")(_act)
    out.append(Row(AREA, "get_registered_object('bench>_act')",
                   _per_call(lambda: registry.get_registered_object("bench>_act"), n),
                   "keras", _per_call(lambda: keras.utils.get_registered_object("bench>_act"), n),
                   "dict.get", _per_call(lambda: table.get("relu"), n)))

    var = contextvars.ContextVar("bench")
    objects = {"a": _act, "b": _Block}

    def ours_scope():
        with registry.CustomObjectScope(objects):
            pass

    def keras_scope():
        with keras.utils.CustomObjectScope(objects):
            pass

    def limit_scope():
        var.reset(var.set(objects))

    out.append(Row(AREA, "scope enter+exit", _per_call(ours_scope, n),
                   "keras", _per_call(keras_scope, n), "ContextVar set+reset",
                   _per_call(limit_scope, n)))

    block, keras_block = _Block(64, activation=_act), _KerasBlock(64, activation=_act)

    def ours_rt():
        return registry.deserialize(json.loads(json.dumps(registry.serialize(block))))

    def keras_rt():
        return keras.utils.deserialize_keras_object(
            json.loads(json.dumps(keras.utils.serialize_keras_object(keras_block))))

    def limit_rt():
        return _Block(**json.loads(json.dumps({"width": 64, "activation": None})))

    assert ours_rt().activation is _act and keras_rt().activation is _act
    m = max(n // 10, 200)
    out.append(Row(AREA, "serialize+JSON+deserialize (nested fn)", _per_call(ours_rt, m),
                   "keras", _per_call(keras_rt, m), "json + __init__", _per_call(limit_rt, m)))
    return out


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
