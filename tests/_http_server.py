"""A real HTTP server on 127.0.0.1 for the download tests, with scriptable misbehaviour.

Each path is a :class:`Route`: a body plus how to misbehave (fail N times with a status, cut the
body short, refuse ``Range``, stall, throttle, trickle, change the file between requests, send
weak or no validators, claim a ``Content-Encoding``). Every request is logged with its headers
so tests can count requests and look at ``Range`` headers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
import time


@dataclasses.dataclass
class Route:
    """What one path serves and how it misbehaves."""

    body: bytes = b""
    status: int = 200  # anything but 200 is always answered with this status
    fail_first: int = 0  # answer `fail_status` to the first N requests
    fail_status: int = 503
    retry_after: str | None = None  # sent with failures
    cut_after: int | None = None  # send only this many body bytes, then drop the connection
    cut_times: int = 10**9  # ... for this many responses
    send_at_most: int | None = None  # every response sends at most this many body bytes
    ranges: bool = True  # honour Range requests
    stall_first: int = 0  # for the first N requests, sleep `stall_s` after the headers
    stall_s: float = 0.0
    bytes_per_s: float | None = None  # throttle the body
    content_length: bool = True
    partial_only: int | None = None  # answer 206 with the first N bytes, whatever was asked
    next_body: bytes | None = None  # the file as it is from the second request on
    etag_kind: str = "strong"  # "strong", "weak" (W/"...") or "none"
    honour_if_range: bool = True  # False: answer a Range with 206 even if If-Range differs
    last_modified: str | None = None  # a Last-Modified header to send
    content_encoding: str | None = None  # a Content-Encoding header to send (body unchanged)
    trickle_s: float | None = None  # send the body one byte every `trickle_s` seconds
    refuse_ranges: bool = False  # answer every Range request with 416
    served: int = 0  # requests answered so far

    @property
    def etag(self) -> str:
        return self.etag_of(self.body)

    def body_at(self, index: int) -> bytes:
        """The file as it is when answering request number ``index`` (from 0)."""
        return self.body if index == 0 or self.next_body is None else self.next_body

    def etag_of(self, body: bytes) -> str:
        tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        return "W/" + tag if self.etag_kind == "weak" else tag


@dataclasses.dataclass
class Request:
    """One request as received; ``done`` is set once its answer has been sent."""

    path: str
    headers: dict[str, str]
    started: float
    finished: float = 0.0
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        request = Request(self.path, dict(self.headers), time.time())
        with self.server.lock:
            self.server.log.append(request)
        route = self.server.routes.get(self.path.split("?")[0])
        try:
            if route is None:
                self._send_status(404)
            else:
                self._serve(route)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            request.finished = time.time()
            request.done.set()

    def _serve(self, route: Route) -> None:
        with self.server.lock:
            index = route.served
            route.served += 1
        if route.status != 200:
            return self._send_status(route.status)
        if index < route.fail_first:
            return self._send_status(route.fail_status, route.retry_after)
        if route.partial_only is not None:
            return self._send_partial(route)
        if route.refuse_ranges and "Range" in self.headers:
            return self._send_status(416)
        whole = route.body_at(index)
        start = self._range_start(route, whole)
        body = whole[start:]
        self.send_response(206 if start else 200)
        if start:
            size = len(whole)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        if route.content_length:
            self.send_header("Content-Length", str(len(body)))
        if route.etag_kind != "none":
            self.send_header("ETag", route.etag_of(whole))
        for name, value in (
            ("Last-Modified", route.last_modified),
            ("Content-Encoding", route.content_encoding),
        ):
            if value is not None:
                self.send_header(name, value)
        self.send_header("Accept-Ranges", "bytes" if route.ranges else "none")
        self.end_headers()
        if index < route.stall_first:
            time.sleep(route.stall_s)
        cut = route.cut_after - start if route.cut_after is not None else None
        cut = None if index >= route.cut_times else cut
        if route.send_at_most is not None and route.send_at_most < len(body):
            cut = route.send_at_most if cut is None else min(cut, route.send_at_most)
        if route.trickle_s is not None:
            return self._trickle(body, route.trickle_s)
        self._send_body(body if cut is None else body[: max(0, cut)], route.bytes_per_s)
        if cut is not None:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _send_partial(self, route: Route) -> None:
        body, size = route.body[: route.partial_only], len(route.body)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._send_body(body, None)

    def _range_start(self, route: Route, whole: bytes) -> int:
        spec = self.headers.get("Range", "")
        if not (route.ranges and spec.startswith("bytes=") and spec.endswith("-")):
            return 0
        if_range = self.headers.get("If-Range")
        current = route.etag_of(whole) if route.etag_kind == "strong" else route.last_modified
        if route.honour_if_range and if_range is not None and if_range != current:
            return 0
        start = int(spec[len("bytes=") : -1])
        return start if start < len(whole) else 0

    def _trickle(self, body: bytes, every_s: float) -> None:
        for offset in range(len(body)):
            self.wfile.write(body[offset : offset + 1])
            self.wfile.flush()
            time.sleep(every_s)

    def _send_body(self, body: bytes, bytes_per_s: float | None) -> None:
        step = 64 << 10
        for offset in range(0, len(body), step):
            self.wfile.write(body[offset : offset + step])
            if bytes_per_s:
                time.sleep(step / bytes_per_s)

    def _send_status(self, status: int, retry_after: str | None = None) -> None:
        message = f"status {status}".encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(message)))
        self.end_headers()
        self.wfile.write(message)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    log: list[Request]
    lock: threading.Lock


class HTTPTestServer:
    """Serve :class:`Route` objects on 127.0.0.1 at a free port, in a background thread."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.routes, self._server.log = {}, []
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes = b"", **options: object) -> str:
        """Serve ``body`` at ``path`` (with misbehaviour ``options``); return its URL."""
        self._server.routes[path] = Route(body=body, **options)
        return self.base_url + path

    def requests(self, path: str | None = None) -> list[Request]:
        """Requests received so far (for ``path`` only, when given)."""
        with self._server.lock:
            return [r for r in self._server.log if path is None or r.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
