"""jkutils end to end: an MLP trained on every device from an HDF5 file fetched over HTTP.

Run from the repository root:  ``python examples/quickstart.py [OUTPUT_FOLDER]``

Steps: seed with a key tree; write a synthetic 4-class dataset to HDF5 and pack it as a
tar.gz; serve it from a local HTTP server on 127.0.0.1 and fetch it with ``get_file``
(hash-checked, extracted, then served from the cache); read it through ``HDF5Matrix`` in a
grain pipeline; split it with ``split_dataset`` (shuffled by key, stratified); one-hot encode
with ``to_categorical`` inside a jitted step; train an MLP with optax through
``data_parallel_train_step`` on every device (8 forced host devices on a CPU), with a
``Progbar`` per epoch; print ``print_summary`` and write ``plot_model``; report held-out
accuracy. Everything it writes goes into one folder (default ``quickstart_output/``).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import pathlib
import shutil
import sys
import tarfile
import threading
import time

import jax

# Eight host devices when running on the CPU; must happen before JAX starts a backend.
jax.config.update("jax_num_cpu_devices", 8)

import grain  # noqa: E402
import h5py  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jkutils  # noqa: E402

NUM_CLASSES = 4
NUM_FEATURES = 16
NUM_ROWS = 6000
EPOCHS = 6
BATCH = 256
HIDDEN = (64, 32)


# ------------------------------------------------------------------------------ the data file


def write_dataset(folder: pathlib.Path, key: jax.Array) -> pathlib.Path:
    """Write an imbalanced 4-class Gaussian-blob dataset to ``blobs.h5``; return a tar.gz of it."""
    k_means, k_labels, k_noise = jax.random.split(key, 3)
    means = 0.45 * jax.random.normal(k_means, (NUM_CLASSES, NUM_FEATURES))
    shares = jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1]))
    labels = jax.random.categorical(k_labels, shares, shape=(NUM_ROWS,))
    features = means[labels] + jax.random.normal(k_noise, (NUM_ROWS, NUM_FEATURES))
    folder.mkdir(parents=True, exist_ok=True)
    h5_path = folder / "blobs.h5"
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("x", data=np.asarray(features, np.float32), chunks=(512, NUM_FEATURES))
        f.create_dataset("y", data=np.asarray(labels, np.int64))
    archive = folder / "blobs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(h5_path, arcname="blobs.h5")
    return archive


def sha256_of(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests_served = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests_served += 1
        super().do_GET()

    def log_message(self, *args: object) -> None:  # keep the output readable
        pass


def serve(folder: pathlib.Path) -> http.server.ThreadingHTTPServer:
    """Serve ``folder`` on 127.0.0.1 at a free port, from a background thread."""
    handler = functools.partial(_CountingHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ------------------------------------------------------------------------------ the model


def init_params(key: jax.Array) -> dict:
    sizes = (NUM_FEATURES, *HIDDEN, NUM_CLASSES)
    names = [f"dense_{i}" for i in range(len(HIDDEN))] + ["head"]
    keys = jkutils.key_tree(key, names)
    init = jkutils.get("glorot_uniform", kind="initializer")()
    return {
        name: {"w": init(keys[name], (n_in, n_out)), "b": jnp.zeros(n_out)}
        for name, n_in, n_out in zip(names, sizes[:-1], sizes[1:])
    }


def apply_fn(params: dict, x: jax.Array) -> jax.Array:
    """The MLP; each layer is a named scope, so summaries and plots show one node per layer."""
    activation = jkutils.get("relu", kind="activation")
    for name, layer in params.items():
        with jax.named_scope(name):
            x = x @ layer["w"] + layer["b"]
            if name != "head":
                x = activation(x)
    return x


@jax.jit
def preprocess(x: jax.Array, y: jax.Array) -> dict:
    """Standardised-by-source features and one-hot targets, inside jit."""
    return {"x": x, "y": jkutils.to_categorical(y, NUM_CLASSES)}


def per_example_loss(params: dict, batch: dict) -> jax.Array:
    return optax.softmax_cross_entropy(apply_fn(params, batch["x"]), batch["y"])


# ------------------------------------------------------------------------------ the job


def main(out: pathlib.Path) -> float:
    start = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    keys = jkutils.set_random_seed(0, names=["data", "split", "params", "shuffle"])
    print(f"jax {jax.__version__}: {jax.device_count()} {jax.default_backend()} devices")

    # 1. A dataset file, served over HTTP and fetched through the download cache.
    archive = write_dataset(out / "served", keys["data"])
    server = serve(archive.parent)
    url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    fetch = functools.partial(jkutils.get_file, "blobs.tar.gz", url, file_hash=sha256_of(archive),
                              extract=True, cache_dir=out / "cache", verbose=0)
    folder = pathlib.Path(fetch())
    fetch()  # a cache hit: no request, no re-hash, no re-extraction
    server.shutdown()
    print(f"get_file: {folder} ({_CountingHandler.requests_served} HTTP request for 2 calls)")

    # 2. HDF5-backed features and labels, split by key with class shares kept.
    h5_path = folder / "blobs.h5"
    with jkutils.HDF5Matrix(h5_path, "x") as raw:
        everything = raw[:]
    mean, std = everything.mean(axis=0), everything.std(axis=0)
    features = jkutils.HDF5Matrix(h5_path, "x", normalizer=lambda a: (a - mean) / std)
    labels = jkutils.HDF5Matrix(h5_path, "y")
    rows = grain.MapDataset.range(len(features))
    train_rows, test_rows = jkutils.split_dataset(
        rows, left_size=0.8, shuffle=True, key=keys["split"], stratify=labels[:]
    )
    print(f"split_dataset: {len(train_rows)} train rows, {len(test_rows)} held-out rows")
    print(f"  class shares: train {_shares(labels, train_rows)}, "
          f"held out {_shares(labels, test_rows)}")

    def read_batch(indices: np.ndarray) -> dict:
        indices = np.asarray(indices)  # one sorted, de-duplicated HDF5 read per batch
        return preprocess(features[indices], labels[indices])

    # 3. Model, summary and graph.
    params = init_params(keys["params"])
    example = jnp.zeros((BATCH, NUM_FEATURES))
    jkutils.print_summary(params, apply_fn, inputs=(example,))
    graph_file = out / ("model.png" if shutil.which("dot") else "model.dot")
    jkutils.plot_model(params, apply_fn, inputs=(example,), to_file=graph_file, show_shapes=True)
    print(f"plot_model: wrote {graph_file}")

    # 4. Data-parallel training on every device, one progress bar per epoch.
    optimizer = jkutils.get("adam", kind="optimizer")(learning_rate=1e-2)
    opt_state = optimizer.init(params)
    step = jkutils.data_parallel_train_step(per_example_loss, optimizer)
    steps_per_epoch = -(-len(train_rows) // BATCH)
    for epoch in range(EPOCHS):
        print(f"Epoch {epoch + 1}/{EPOCHS}")
        seed = jkutils.seed_from_key(jax.random.fold_in(keys["shuffle"], epoch))
        batches = train_rows.shuffle(seed=seed).batch(BATCH).map(read_batch)
        bar = jkutils.Progbar(steps_per_epoch)
        for i, batch in enumerate(batches):
            params, opt_state, loss = step(params, opt_state, batch)
            bar.update(i + 1, values=[("loss", loss)])

    # 5. Held-out accuracy, predicted data-parallel too.
    predict = jkutils.data_parallel(apply_fn)
    test = read_batch(np.asarray(list(test_rows)))
    accuracy = float(np.mean(np.argmax(predict(params, test["x"]), -1) ==
                             np.argmax(test["y"], -1)))
    features.close()
    labels.close()
    print(f"held-out accuracy: {accuracy:.3f} "
          f"(chance: {1 / NUM_CLASSES:.2f}; always the majority class: 0.40)")
    print(f"outputs in {out.resolve()} ({time.perf_counter() - start:.1f} s)")
    return accuracy


def _shares(labels: jkutils.HDF5Matrix, rows: grain.MapDataset) -> list[float]:
    counts = np.bincount(labels[np.asarray(list(rows))], minlength=NUM_CLASSES)
    return [round(float(c), 2) for c in counts / counts.sum()]


if __name__ == "__main__":
    accuracy = main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart_output"))
    if accuracy < 0.6:
        sys.exit(f"accuracy {accuracy:.3f} is too low: something is wrong")
