"""Keras's ``get_file(..., extract=True)``, ported: download an archive once, get its folder.

Keras: ``path = keras.utils.get_file("flower_photos", origin=URL, extract=True)``. The call is
the same here; jkutils also checks a hash while it downloads, writes atomically, and extracts
once. To stay offline the script serves a small ``.tar.gz`` from a local HTTP server on
127.0.0.1 (replace ``origin`` with the real URL in your code).

Run: ``python examples/port_get_file_extract.py [CACHE_DIR]`` (default: a temporary folder).
"""

import functools
import hashlib
import http.server
import io
import os
import sys
import tarfile
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jkutils  # noqa: E402


def make_archive() -> bytes:
    """A .tar.gz with two class folders of small text "images"."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("flowers/daisy/1.txt", "flowers/daisy/2.txt", "flowers/roses/1.txt"):
            data = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the example's output to its own lines
        pass


def serve(folder: str) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(cache_dir: str) -> list[str]:
    with tempfile.TemporaryDirectory() as site:
        archive = make_archive()
        with open(os.path.join(site, "flower_photos.tgz"), "wb") as f:
            f.write(archive)
        server = serve(site)
        origin = f"http://127.0.0.1:{server.server_address[1]}/flower_photos.tgz"
        try:
            for attempt in ("downloads and extracts", "served from the cache"):
                folder = jkutils.get_file(
                    "flower_photos.tgz",
                    origin=origin,
                    extract=True,
                    cache_dir=cache_dir,
                    file_hash=hashlib.sha256(archive).hexdigest(),
                )
                print(f"{attempt}: {folder}")
        finally:
            server.shutdown()
    files = sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )
    print("\n".join(files))
    return files


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as cache:
            main(cache)
