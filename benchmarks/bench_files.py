"""get_file: download throughput and cache-hit cost against Keras, pooch and a plain copy.

The file is served over loopback by ``http.server`` in a separate process (so the server does
not share the client's interpreter). Rows:

* cold download with a sha256 to check: jkutils vs Keras, and vs pooch (default downloader,
  1 KiB chunks); the limit is a plain urllib loop that reads 1 MiB, hashes and writes it, then
  renames the file (no fsync; jkutils also fsyncs before the rename);
* a cache hit with ``file_hash`` given: jkutils vs Keras and vs pooch (both re-hash the whole
  file); the limit is one ``os.stat``;
* a cache hit with ``extract=True`` on a tar.gz of 2,000 small files: jkutils vs Keras (which
  extracts again on every call); the limit is one ``os.stat``.

Run: ``python benchmarks/bench_files.py [--quick]``
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._harness import Row, best_of, print_table  # noqa: E402
from jkutils.files import get_file  # noqa: E402

_MIB = 1 << 20

_SERVER = r"""
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def _served(folder: str):
    """Serve ``folder`` on 127.0.0.1 from a child process; yield the base URL."""
    child = subprocess.Popen([sys.executable, "-c", _SERVER, folder], stdout=subprocess.PIPE,
                             text=True)
    try:
        yield f"http://127.0.0.1:{int(child.stdout.readline())}"
    finally:
        child.kill()
        child.wait()


def _plain_copy(url: str, dest: str) -> str:
    """The limit: stream with 1 MiB reads, hash while writing, rename."""
    hasher = hashlib.sha256()
    with urllib.request.urlopen(url) as response, open(dest + ".part", "wb") as out:
        while chunk := response.read(_MIB):
            hasher.update(chunk)
            out.write(chunk)
    os.replace(dest + ".part", dest)
    return hasher.hexdigest()


def _interleaved_best(fns: dict[str, object], repeat: int) -> dict[str, float]:
    """Best seconds per contender, running them in turn so drift hits all alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], best_of(fn, repeat=1))
    return best


def _quiet(fn):
    def call():
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return fn()
    return call


def _download_rows(url: str, digest: str, size_mib: int, work: str, repeat: int) -> list[Row]:
    import keras
    import pooch

    pooch.get_logger().setLevel("WARNING")  # one "Downloading ..." line per call otherwise

    def pooch_fetch():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(work, "pooch", "big.bin"))
        pooch.retrieve(url, f"sha256:{digest}", fname="big.bin", path=os.path.join(work, "pooch"),
                       progressbar=False)

    fns = {
        "limit": lambda: _plain_copy(url, os.path.join(work, "plain.bin")),
        "ours": _quiet(lambda: get_file(origin=url, cache_dir=os.path.join(work, "ours"),
                                        file_hash=digest, force_download=True)),
        "keras": _quiet(lambda: keras.utils.get_file(
            origin=url, cache_dir=os.path.join(work, "keras"), file_hash=digest,
            force_download=True)),
        "pooch": pooch_fetch,
    }
    os.makedirs(os.path.join(work, "keras"))
    t = {name: size_mib / s for name, s in _interleaved_best(fns, repeat).items()}
    measure = f"download {size_mib} MiB + sha256 (MiB/s)"
    common = {"area": "files", "ours": t["ours"], "limit_name": "urllib copy+sha256",
              "limit": t["limit"], "unit": "MiB/s", "higher_is_better": True}
    return [
        Row(measure=measure, ref_name="keras get_file", ref=t["keras"],
            target="<= 1.25x vs limit", **common),
        Row(measure=measure, ref_name="pooch.retrieve", ref=t["pooch"], **common),
    ]


def _cache_hit_rows(url: str, digest: str, size_mib: int, work: str, repeat: int) -> list[Row]:
    import keras
    import pooch

    ours_dir, keras_dir = os.path.join(work, "ours"), os.path.join(work, "keras")
    path = get_file(origin=url, cache_dir=ours_dir, file_hash=digest, verbose=0)
    fns = {
        "limit": lambda: os.stat(path),
        "ours": lambda: get_file(origin=url, cache_dir=ours_dir, file_hash=digest, verbose=0),
        "keras": _quiet(lambda: keras.utils.get_file(origin=url, cache_dir=keras_dir,
                                                     file_hash=digest)),
        "pooch": lambda: pooch.retrieve(url, f"sha256:{digest}", fname="big.bin",
                                        path=os.path.join(work, "pooch"), progressbar=False),
    }
    for fn in fns.values():  # warm every cache
        fn()
    t = _interleaved_best(fns, repeat)
    measure = f"cache hit {size_mib} MiB with file_hash"
    common = {"area": "files", "measure": measure, "ours": t["ours"], "limit_name": "os.stat",
              "limit": t["limit"]}
    return [
        Row(ref_name="keras get_file", ref=t["keras"], target="<= 20 ms", **common),
        Row(ref_name="pooch.retrieve", ref=t["pooch"], **common),
    ]


def _extract_rows(base_url: str, folder: str, work: str, n_files: int, repeat: int) -> list[Row]:
    import keras

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(n_files):
            data = f"row {i}\n".encode() * 20
            info = tarfile.TarInfo(f"data/part{i // 100}/file{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with open(os.path.join(folder, "many.tar.gz"), "wb") as out:
        out.write(buffer.getvalue())
    url = f"{base_url}/many.tar.gz"
    ours_dir, keras_dir = os.path.join(work, "x_ours"), os.path.join(work, "x_keras")
    os.makedirs(keras_dir)
    extracted = get_file("many.tar.gz", url, extract=True, cache_dir=ours_dir, verbose=0)
    fns = {
        "limit": lambda: os.stat(extracted),
        "ours": lambda: get_file("many.tar.gz", url, extract=True, cache_dir=ours_dir,
                                 verbose=0),
        "keras": _quiet(lambda: keras.utils.get_file("many.tar.gz", url, extract=True,
                                                     cache_dir=keras_dir)),
    }
    for fn in fns.values():
        fn()
    t = _interleaved_best(fns, repeat)
    return [Row(area="files", measure=f"extract=True cache hit, {n_files}-file tar.gz",
                ours=t["ours"], ref_name="keras get_file", ref=t["keras"],
                limit_name="os.stat", limit=t["limit"])]


def rows(quick: bool = False) -> list[Row]:
    """Rows for get_file; ``quick`` uses a 32 MiB file and fewer repeats."""
    size_mib, repeat = (32, 2) if quick else (128, 3)
    folder = tempfile.mkdtemp(prefix="bench_files_src_")
    work = tempfile.mkdtemp(prefix="bench_files_cache_")
    try:
        data = os.urandom(size_mib * _MIB)
        with open(os.path.join(folder, "big.bin"), "wb") as out:
            out.write(data)
        digest = hashlib.sha256(data).hexdigest()
        del data
        with _served(folder) as base:
            url = f"{base}/big.bin"
            return (_download_rows(url, digest, size_mib, work, repeat)
                    + _cache_hit_rows(url, digest, size_mib, work, repeat + 2)
                    + _extract_rows(base, folder, work, 500 if quick else 2000, repeat))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print_table(rows(quick="--quick" in sys.argv))
