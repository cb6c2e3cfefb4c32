"""Moving bytes from an origin into the cache, one file at a time, without ever exposing a part.

Three pieces, used by :func:`jkutils.files.get_file`:

* :func:`file_lock` — an exclusive inter-process lock on a small lock file (``flock`` on POSIX,
  ``msvcrt.locking`` on Windows); threads of one process exclude each other too.
* :func:`download` — fetch ``http(s)://`` or ``file://`` into a unique temp file beside the
  target while hashing (on a second thread) and syncing to disk (on a third, every 16 MiB),
  check the size and the expected digest, ``fsync``, then ``os.replace``.
* the HTTP transfer itself: streamed ``requests`` reads of the bytes as sent (never decoded),
  retries with exponential back-off on connection errors, timeouts, transfers below a minimum
  rate, truncated bodies, 429 and 5xx (``Retry-After`` honoured), and resumption with
  ``Range`` and ``If-Range`` when the first answer carried a strong validator.

Plus the names of the hidden companions of a cached file (:func:`companion`) and the small
atomic JSON records kept beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import errno
import hashlib
import http.client
import json
import os
import queue
import random
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import BinaryIO

import requests
import urllib3

from jkutils._user_warnings import warn_user

CHUNK_SIZE = 1 << 20
"""Bytes per read and per write: large enough that per-chunk Python overhead vanishes."""

FLUSH_EVERY = 16 << 20
"""Bytes written between two background syncs of a temp file (see ``_Flusher``)."""

MAX_BACKOFF_S = 30.0
"""Longest wait between two attempts computed from the back-off schedule."""

MAX_RETRY_AFTER_S = 60.0
"""Longest wait a server's ``Retry-After`` header can impose."""

STALE_PARTIAL_S = 3600.0
"""Temp files of the same target untouched this long belong to a dead download."""

LONG_STEM_BYTES = 160
"""Longest file name kept whole in the names of its hidden companions (see :func:`companion`)."""

DEFAULT_MIN_RATE = (1024.0, 60.0)
"""Default ``(bytes_per_s, window_s)`` below which a transfer is abandoned: 1 KiB/s over 60 s."""

MIN_VALIDATOR_AGE_S = 60.0
"""How much older than the answer's ``Date`` a ``Last-Modified`` must be to count as strong."""

_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,  # every urllib3 error: protocol, decoding, timeouts, ...
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FATAL_NETWORK_ERRORS = (requests.exceptions.SSLError, urllib3.exceptions.SSLError)

# How the retry loop waits; a module attribute so that tests can record waits instead.
_sleep = time.sleep

Say = Callable[[str], None]
ProgressFactory = Callable[[int], Callable[[int], None]]


# --------------------------------------------------------------------------- names


def companion(path: str, suffix: str) -> str:
    """The hidden companion ``.<name>.<suffix>`` of ``path``, in the same folder.

    A name longer than ``LONG_STEM_BYTES`` bytes is shortened to a prefix plus ``~`` and a hash
    of the whole name, so that every companion stays within the 255-byte limit of common file
    systems, however long the name and the suffix (up to 90 bytes).

    Example:
        >>> companion("/cache/data.bin", "lock")
        '/cache/.data.bin.lock'
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{companion_stem(name)}.{suffix}")


def companion_stem(name: str) -> str:
    """``name``, or for a long one a shortened, still unique form of it (see :func:`companion`)."""
    if len(os.fsencode(name)) <= LONG_STEM_BYTES:
        return name
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    prefix = name
    while len(os.fsencode(prefix + tag)) > LONG_STEM_BYTES:
        prefix = prefix[:-1]
    return prefix + tag


def companion_pattern(name: str, suffix: str) -> re.Pattern[str]:
    """A regex matching the companions ``.<name>.<suffix>`` of ``name``; ``suffix`` is a regex."""
    return re.compile(rf"\.{re.escape(companion_stem(name))}\.{suffix}")


def read_json(path: str) -> dict:
    """The JSON object stored at ``path``, or ``{}`` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: str, data: dict) -> None:
    """Store ``data`` at ``path`` atomically (a temp file renamed over it)."""
    temp = companion(path, f"{unique_token()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def disk_full_error(err: BaseException, path: str) -> OSError | None:
    """For a full disk, quota or file-size limit, an error that says so; else None."""
    code = err.errno if isinstance(err, OSError) else None
    if code is None or code not in _DISK_FULL:
        return None
    return OSError(
        code,
        f"{os.strerror(code)}: the disk, a quota or the file-size limit ran out while "
        "writing; nothing partial was kept. Free some space or choose another cache_dir",
        path,
    )


# --------------------------------------------------------------------------- the lock

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _wait_lock(fd: int) -> None:
        while not _try_lock(fd):
            time.sleep(0.05)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def file_lock(lock_path: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing, never deleted).

    Each call opens the lock file afresh, so two threads of one process exclude each other just
    as two processes do. Where the file system refuses locks, a warning says so and the body
    runs unlocked: the temp-file-and-rename protocol keeps the cache correct without the lock,
    the lock only saves duplicate downloads. Where the lock file cannot be created (a read-only
    cache), the body runs unlocked without a warning: reading needs no lock, and a download
    there fails anyway when it creates its temp file. A symbolic link at ``lock_path`` is never
    followed (``O_NOFOLLOW``): it raises ``OSError`` (``ELOOP``).

    Example:
        >>> with file_lock("/var/cache/x/.data.bin.lock"):  # doctest: +SKIP
        ...     pass
    """
    try:
        fd = _open_lock_file(lock_path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise
        yield  # a read-only cache: readers need no lock, writers fail on their own
        return
    locked = False
    try:
        try:
            if not _try_lock(fd):
                if on_wait is not None:
                    on_wait()
                _wait_lock(fd)
            locked = True
        except OSError as err:
            warn_user(
                f"Could not lock {lock_path} ({err}); continuing without the lock: concurrent "
                "downloads of this file may repeat work but stay correct.",
                RuntimeWarning,
            )
        yield
    finally:
        if locked:
            _unlock(fd)
        os.close(fd)


def _open_lock_file(lock_path: str) -> int:
    """Open (creating) the lock file without following a symbolic link planted at its name."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        if not nofollow and os.path.islink(lock_path):  # no O_NOFOLLOW: check, then open
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), lock_path)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | nofollow, 0o666)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise OSError(
            errno.ELOOP,
            "The lock file is a symbolic link, which is never followed (it could make this "
            "process create or lock any file it can write). Remove it and call again",
            lock_path,
        ) from err


# --------------------------------------------------------------------------- the sink


class _Digests:
    """Running digests of a byte stream, computed on a second thread.

    ``hashlib`` releases the GIL on large chunks, so hashing chunk ``n`` overlaps receiving and
    writing chunk ``n + 1``; the bounded queue keeps at most a few chunks in memory.
    """

    def __init__(self, algorithms: tuple[str, ...]):
        self._hashers = {name: hashlib.new(name) for name in algorithms}
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jkutils-hash", daemon=True)
        self._thread.start()

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so the producer never blocks
            try:
                for hasher in self._hashers.values():
                    hasher.update(chunk)
            except BaseException as err:  # noqa: BLE001 - re-raised by hexdigests()
                self._error = err

    def stop(self) -> None:
        """Finish the queued chunks and end the thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigests(self) -> dict[str, str]:
        self.stop()
        if self._error is not None:
            raise self._error
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}


class _Flusher:
    """Writes the temp file out to disk in the background while the download goes on.

    Without it the final ``fsync`` would write the whole file at once, after the last byte
    arrived; with it only the last few MiB are left. An error of a background sync is kept and
    raised by :meth:`raise_error` (the kernel reports it only once).
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._wake = threading.Event()
        self._pending = False  # a sync was asked for and has not run yet
        self._stopping = False
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="jkutils-flush", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._pending = True
        self._wake.set()

    def _run(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)
        while True:
            self._wake.wait()
            self._wake.clear()
            # A sync asked for just before stop() still runs: its error must not be lost.
            if self._pending:
                self._pending = False
                try:
                    sync(self._fd)
                except OSError as err:
                    self.error = self.error or err
            if self._stopping:
                return

    def stop(self) -> None:
        """End the thread (idempotent)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()


class _Sink:
    """The open temp file plus the running digests and byte count of what was written."""

    def __init__(self, file: BinaryIO, algorithms: tuple[str, ...]):
        self.file = file
        self.algorithms = algorithms
        self.size = 0
        self.digests = _Digests(algorithms)
        self.progress: Callable[[int], None] | None = None
        self._flusher: _Flusher | None = None  # started once the file is worth flushing early
        self._unflushed = 0

    def write(self, chunk: bytes) -> None:
        _write_all(self.file, chunk)
        self.digests.update(chunk)
        self.size += len(chunk)
        self._unflushed += len(chunk)
        if self._unflushed >= FLUSH_EVERY:
            self._unflushed = 0
            self._flusher = self._flusher or _Flusher(self.file.fileno())
            self._flusher.poke()
        if self.progress is not None:
            self.progress(self.size)

    def restart(self) -> None:
        """Forget everything written: the next byte is byte 0 again (a no-op when empty)."""
        if not self.size:
            return
        self.digests.stop()
        self.file.seek(0)
        self.file.truncate()
        self.digests = _Digests(self.algorithms)
        self.size = 0

    def finish(self) -> dict[str, str]:
        """Digests of everything written; raises what the background threads ran into."""
        digests = self.digests.hexdigests()
        if self._flusher is not None:
            self._flusher.stop()
            if self._flusher.error is not None:
                raise self._flusher.error
        return digests

    def close(self) -> None:
        """Stop the background threads, whatever happened."""
        self.digests.stop()
        if self._flusher is not None:
            self._flusher.stop()


def _write_all(file: BinaryIO, chunk: bytes) -> None:
    """Write every byte of ``chunk``: a short write is continued, a write of nothing raises."""
    view = memoryview(chunk)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


# --------------------------------------------------------------------------- download


def unique_token() -> str:
    """A random token for temp names, unique across processes and threads."""
    return uuid.uuid4().hex[:12]


def partial_path(target: str) -> str:
    """A fresh temp-file name beside ``target``, unique across processes and threads."""
    return companion(target, f"{unique_token()}.partial")


def remove_stale_partials(
    target: str,
    max_age_s: float = STALE_PARTIAL_S,
    suffixes: tuple[str, ...] = (".partial",),
    middle: str = r"[^.]+",
    keep: str | None = None,
) -> None:
    """Delete temp files of ``target`` left by work killed at least ``max_age_s`` ago.

    Only names ``.<target name>.<middle><suffix>`` count (``middle``, a regex, is by default
    the random part, without dots), so the temp files of another target whose name starts the
    same (``data`` and ``data.tar.gz``) are left alone; the entry named ``keep`` is never
    deleted. Folders (an extraction killed midway) are deleted with their content.
    """
    folder, name = os.path.split(target)
    pattern = companion_pattern(name, middle + f"(?:{'|'.join(map(re.escape, suffixes))})")
    now = time.time()
    with os.scandir(folder or ".") as entries:
        stale = [
            entry.path
            for entry in entries
            if pattern.fullmatch(entry.name)
            and entry.name != keep
            and _age_s(entry, now) >= max_age_s
        ]
    for path in stale:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _age_s(entry: os.DirEntry, now: float) -> float:
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return -1.0


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transfer is retried.

    Attributes:
        timeout: seconds for connecting and for each read (a number or ``(connect, read)``).
        max_retries: failed attempts in a row (without new bytes) tolerated after the first.
        backoff: seconds before the first retry; doubled after each failure up to
            ``MAX_BACKOFF_S``, jittered by ±20 %.
        min_rate: ``(bytes_per_s, window_s)``: an attempt that receives less than
            ``bytes_per_s * window_s`` bytes in a window of ``window_s`` seconds is abandoned
            like a timeout; None never abandons a slow transfer.
    """

    timeout: float | tuple[float, float] = 30.0
    max_retries: int = 5
    backoff: float = 0.5
    min_rate: tuple[float, float] | None = DEFAULT_MIN_RATE

    def wait_s(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to sleep after the ``failures``-th failure in a row."""
        scheduled = min(MAX_BACKOFF_S, self.backoff * 2 ** (failures - 1)) * rng.uniform(0.8, 1.2)
        if retry_after is None:
            return scheduled
        return max(scheduled, min(retry_after, MAX_RETRY_AFTER_S))


def download(
    origin: str,
    target: str,
    *,
    algorithms: tuple[str, ...],
    expected: tuple[str, str] | None,
    policy: RetryPolicy,
    say: Say,
    progress: ProgressFactory | None,
) -> dict[str, str]:
    """Put the bytes at ``origin`` under ``target`` atomically and return their digests.

    The bytes go to a unique temp file in the target's folder, hashed with every algorithm in
    ``algorithms`` as they arrive. Only when the size matches what the server announced and the
    digest matches ``expected`` (``(algorithm, lowercase hex)``), the file is fsynced and renamed
    over ``target``. On any failure, interruption included, the temp file is deleted and
    ``target`` is untouched.

    Raises:
        ValueError: the digest differs from ``expected`` (nothing is kept).
        requests.HTTPError: a 4xx answer other than 429, or 429/5xx after the last retry.
        requests.ConnectionError / requests.Timeout: the network failed after the last retry.
        FileNotFoundError: a ``file://`` origin that does not exist.
        OSError: writing failed; a full disk, quota or file-size limit (``ENOSPC``,
            ``EDQUOT``, ``EFBIG``) is named as such.
    """
    temp = partial_path(target)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb", buffering=0) as file:
            sink = _Sink(file, algorithms)
            try:
                if urllib.parse.urlsplit(origin).scheme == "file":
                    _copy_local(origin, sink, progress)
                else:
                    _fetch_http(origin, sink, policy, say, progress)
                digests = sink.finish()
            finally:
                sink.close()
            _check_digest(origin, expected, digests)
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        full = disk_full_error(err, target)
        if full is not None:
            raise full from err
        raise
    _fsync_folder(os.path.dirname(target))
    return digests


def _check_digest(origin: str, expected: tuple[str, str] | None, digests: dict[str, str]) -> None:
    if expected is None:
        return
    algorithm, want = expected
    got = digests[algorithm]
    if got != want:
        raise ValueError(
            f"Hash mismatch for the file downloaded from {origin}: expected {algorithm} {want}, "
            f"got {algorithm} {got}. The download was deleted; the file may be corrupt at the "
            "source or `file_hash` may be wrong."
        )


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- file://


def local_path_of(origin: str) -> str:
    """The local path named by a ``file://`` URL (host empty or ``localhost``)."""
    parts = urllib.parse.urlsplit(origin)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"Invalid `origin`: {origin!r} names the remote host {parts.netloc!r}; file:// "
            "origins must be local (file:///path or file://localhost/path)."
        )
    if not parts.path:
        raise ValueError(f"Invalid `origin`: {origin!r} names no file (file:///path/to/file).")
    return urllib.request.url2pathname(parts.path)


def _copy_local(origin: str, sink: _Sink, progress: ProgressFactory | None) -> None:
    path = local_path_of(origin)
    with open(path, "rb") as source:
        total = os.fstat(source.fileno()).st_size
        if progress is not None:
            sink.progress = progress(total)
        while chunk := source.read(CHUNK_SIZE):
            sink.write(chunk)
    if sink.size != total:
        raise OSError(f"{path} changed while it was copied: read {sink.size} of {total} bytes.")


# --------------------------------------------------------------------------- http(s)


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(
        self,
        message: str,
        final: Exception,
        retry_after: float | None = None,
        too_slow: bool = False,
    ):
        super().__init__(message)
        self.final = final
        self.retry_after = retry_after
        self.too_slow = too_slow  # below min_rate: its bytes do not count as progress


@dataclasses.dataclass
class _Resume:
    """What the next attempt needs to continue where the previous one stopped."""

    total: int | None = None  # full size announced by the server, when it said
    validator: str | None = None  # strong validator for If-Range; None: restart, never resume
    high_water: int = 0  # most bytes ever held; an attempt that passes it made progress


def _fetch_http(
    origin: str, sink: _Sink, policy: RetryPolicy, say: Say, progress: ProgressFactory | None
) -> None:
    rng = random.Random()
    resume = _Resume()
    failures = 0
    with requests.Session() as session:
        session.headers.update({"User-Agent": _user_agent(), "Accept-Encoding": "identity"})
        while True:
            try:
                _attempt(session, origin, sink, policy, resume, progress)
                return
            except _Retryable as failure:
                progressed = sink.size > resume.high_water and not failure.too_slow
                resume.high_water = max(resume.high_water, sink.size)
                failures = 1 if progressed else failures + 1
                if failures > policy.max_retries:
                    raise failure.final from failure.final.__cause__
                wait = policy.wait_s(failures, failure.retry_after, rng)
                say(
                    f"{failure} Retrying in {wait:.1f} s "
                    f"({failures} of {policy.max_retries} retries)."
                )
                _sleep(wait)


def _attempt(
    session: requests.Session,
    origin: str,
    sink: _Sink,
    policy: RetryPolicy,
    resume: _Resume,
    progress: ProgressFactory | None,
) -> None:
    """One GET: start (or continue) the transfer and stream it into ``sink``."""
    if resume.validator is None:
        sink.restart()  # without a strong validator a resumed file could splice two versions
    headers = _resume_headers(sink.size, resume)
    try:
        response = session.get(origin, headers=headers, stream=True, timeout=policy.timeout)
    except _FATAL_NETWORK_ERRORS:
        raise
    except _NETWORK_ERRORS as err:
        raise _network_failure(origin, err) from err
    with response:
        if response.status_code == 416:  # our Range no longer fits: the next try starts at 0
            sink.restart()
        _raise_for_status(origin, response)
        _align(origin, sink, response)
        expected = _expected_total(sink.size, response)
        if response.status_code == 200 or sink.size == 0:  # a fresh copy: its size rules
            resume.total, resume.validator = expected, _validator(response)
            if progress is not None and expected is not None and sink.progress is None:
                sink.progress = progress(expected)
        elif expected != resume.total or _validator(response) != resume.validator:
            sink.restart()
            raise _Retryable(
                f"{origin} changed between attempts (size {resume.total} -> {expected} bytes, "
                f"validator {resume.validator} -> {_validator(response)}); starting over.",
                requests.ConnectionError(f"URL fetch failure on {origin}: the file changed"),
            )
        _stream(origin, response, sink, expected, policy.min_rate)
    if expected is not None and sink.size != expected:
        raise _truncated(origin, sink.size, expected)


def _resume_headers(offset: int, resume: _Resume) -> dict[str, str]:
    if offset == 0:
        return {}
    headers = {"Range": f"bytes={offset}-"}
    if resume.validator:
        headers["If-Range"] = resume.validator
    return headers


def _raise_for_status(origin: str, response: requests.Response) -> None:
    status = response.status_code
    if status in (200, 206):
        return
    error = requests.HTTPError(
        f"URL fetch failure on {origin}: {status} {response.reason}", response=response
    )
    if status == 429 or status >= 500:
        retry_after = _retry_after_s(response.headers.get("Retry-After"))
        raise _Retryable(f"{origin} answered {status} {response.reason}.", error, retry_after)
    if status == 416:  # our Range no longer fits the resource (the sink was restarted)
        raise _Retryable(f"{origin} refused to resume (416).", error)
    raise error


def _align(origin: str, sink: _Sink, response: requests.Response) -> None:
    """Make ``sink`` hold exactly the bytes that precede the body of ``response``."""
    if response.status_code == 200:
        if sink.size:
            sink.restart()  # the server ignored (or could not honour) the Range request
        return
    start = _content_range_start(response.headers.get("Content-Range", ""))
    if start != sink.size:
        sink.restart()
        raise _Retryable(
            f"{origin} resumed at byte {start} instead of {sink.size}.",
            requests.ConnectionError(f"URL fetch failure on {origin}: inconsistent resume"),
        )


def _content_range_start(header: str) -> int | None:
    # "bytes 100-199/200"
    unit, _, spec = header.partition(" ")
    first = spec.partition("-")[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _expected_total(offset: int, response: requests.Response) -> int | None:
    """Full size the transfer must reach, or None when the server did not say.

    A ``206`` names the full size in its ``Content-Range`` (``bytes 0-99/200``): that size
    rules, so a partial answer is never taken for the whole file. Sizes count the bytes as
    sent, which are the bytes stored, whatever ``Content-Encoding`` says.
    """
    if response.status_code == 206:
        full = response.headers.get("Content-Range", "").rpartition("/")[2].strip()
        if full.isdigit():
            return int(full)
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _validator(response: requests.Response) -> str | None:
    """The answer's strong validator, for ``If-Range``; None when it has none.

    RFC 9110 (13.1.5, 8.8.2.2): a strong ``ETag`` (not ``W/``); without any ``ETag``, a
    ``Last-Modified`` at least ``MIN_VALIDATOR_AGE_S`` before the answer's ``Date``, since a
    file cannot have changed twice within that second without the date showing it.
    """
    etag = response.headers.get("ETag")
    if etag:
        return None if etag.strip().startswith("W/") else etag
    modified = _http_date(response.headers.get("Last-Modified"))
    sent = _http_date(response.headers.get("Date"))
    if modified is None or sent is None or sent - modified < MIN_VALIDATOR_AGE_S:
        return None
    return response.headers["Last-Modified"]


def _http_date(header: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date, or None when absent or unreadable."""
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


def _stream(
    origin: str,
    response: requests.Response,
    sink: _Sink,
    expected: int | None,
    min_rate: tuple[float, float] | None,
) -> None:
    """Copy the body, undecoded (the bytes as sent), into ``sink``, watching the rate.

    Each read returns what the socket has (so the rate is seen even when bytes trickle); reads
    are gathered into writes of ``CHUNK_SIZE`` bytes, and what was gathered is written before
    any failure is raised, so a resumed transfer continues after it.
    """
    raw, watch, pending = response.raw, _RateWatch(min_rate), bytearray()
    while True:
        try:
            chunk = raw.read1(CHUNK_SIZE, decode_content=False)
        except _FATAL_NETWORK_ERRORS:
            raise
        except _NETWORK_ERRORS as err:
            _flush(pending, sink)
            if expected is not None and not _is_timeout(err):
                raise _truncated(origin, sink.size, expected) from err
            raise _network_failure(origin, err) from err
        if not chunk:
            _flush(pending, sink)
            return
        pending += chunk
        if len(pending) >= CHUNK_SIZE:
            _flush(pending, sink)
        if watch.too_slow(len(chunk)):
            _flush(pending, sink)
            failure = _network_failure(origin, watch.error())
            failure.too_slow = True
            raise failure


def _flush(pending: bytearray, sink: _Sink) -> None:
    """Write and forget the gathered bytes."""
    if pending:
        data = bytes(pending)
        pending.clear()
        sink.write(data)


class _RateWatch:
    """Tells when a transfer falls below a minimum rate over a window of time."""

    def __init__(self, min_rate: tuple[float, float] | None):
        self._min_rate = min_rate
        self._start = time.monotonic()
        self._received = 0

    def too_slow(self, n: int) -> bool:
        """Count ``n`` more bytes; True when the window ended with too few of them."""
        if self._min_rate is None:
            return False
        self._received += n
        rate, window = self._min_rate
        now = time.monotonic()
        if now - self._start < window:
            return False
        slow = self._received < rate * (now - self._start)
        self._start, self._received = now, 0
        return slow

    def error(self) -> TimeoutError:
        rate, window = self._min_rate or (0.0, 0.0)
        return TimeoutError(f"less than {rate:g} bytes/s over {window:g} s (min_rate)")


def _is_timeout(err: Exception) -> bool:
    return isinstance(err, requests.Timeout | urllib3.exceptions.ReadTimeoutError | TimeoutError)


def _network_failure(origin: str, err: Exception) -> _Retryable:
    kind = requests.Timeout if _is_timeout(err) else requests.ConnectionError
    reason = str(err).rstrip(".") or type(err).__name__
    final = kind(f"URL fetch failure on {origin}: {reason}")
    final.__cause__ = err
    return _Retryable(f"Downloading {origin} failed: {reason}.", final)


def _truncated(origin: str, got: int, expected: int) -> _Retryable:
    message = f"the transfer of {origin} stopped at {got} of {expected} bytes"
    final = requests.ConnectionError(f"URL fetch failure on {origin}: {message}")
    return _Retryable(f"{message[0].upper()}{message[1:]}.", final)


def _retry_after_s(header: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        ours = version("jkutils")
    except Exception:  # noqa: BLE001 - not installed as a distribution: name only
        ours = "dev"
    return f"jkutils/{ours} python-requests/{requests.__version__}"
