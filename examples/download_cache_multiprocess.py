"""The download cache in a multi-process job: several workers, one download.

A local HTTP server on 127.0.0.1 serves a 24 MiB "weights" file, slowly enough (about one
second) that the workers really collide. Four spawned processes start at the same moment and
each asks ``jkutils.get_file`` for the file with its sha256. Exactly one downloads it; the
others wait on the cache's file lock and then use the finished, verified file. The server's
request count proves it.

Run: ``python examples/download_cache_multiprocess.py``
"""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing as mp
import multiprocessing.synchronize
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N_WORKERS = 4
SIZE = 24 << 20
BYTES_PER_S = 24 << 20


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Serves the one file, counting GET requests and pacing the body."""

    body = b""
    gets = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).gets += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        step = 1 << 20
        for offset in range(0, len(self.body), step):
            self.wfile.write(self.body[offset : offset + step])
            time.sleep(step / BYTES_PER_S)

    def log_message(self, *args: object) -> None:
        pass


def worker(rank: int, start: mp.synchronize.Barrier, url: str, digest: str, cache: str,
           results: mp.Queue) -> None:
    from jkutils.files import get_file

    start.wait()  # every worker has imported jkutils: go together
    t0 = time.perf_counter()
    path = get_file(origin=url, file_hash=digest, cache_dir=cache, verbose=2)
    results.put((rank, path, time.perf_counter() - t0))


def main() -> None:
    body = os.urandom(SIZE)
    digest = hashlib.sha256(body).hexdigest()
    _SlowHandler.body = body
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/weights.bin"

    ctx = mp.get_context("spawn")  # fresh interpreters, as in most multi-worker jobs
    start, results = ctx.Barrier(N_WORKERS + 1), ctx.Queue()
    with tempfile.TemporaryDirectory() as cache:
        procs = [ctx.Process(target=worker, args=(rank, start, url, digest, cache, results))
                 for rank in range(N_WORKERS)]
        for proc in procs:
            proc.start()
        start.wait(timeout=60)  # raises BrokenBarrierError if a worker could not start
        outcomes = sorted(results.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join()
        for rank, path, seconds in outcomes:
            print(f"worker {rank}: {path} after {seconds:.2f} s")
        paths = {path for _, path, _ in outcomes}
        (path,) = paths
        with open(path, "rb") as file:
            same = hashlib.sha256(file.read()).hexdigest() == digest
        print(f"{N_WORKERS} processes asked for the file; the server sent it "
              f"{_SlowHandler.gets} time(s); every worker got the same verified file: {same}")
    server.shutdown()


if __name__ == "__main__":
    main()
