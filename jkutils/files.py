"""get_file: a download cache that never hands out a partial, corrupt or escaped file.

Keras's signature and cache layout (files are shared with a Keras cache in ``~/.keras``), with
these guarantees:

* nothing partial under the final name: a unique temp file, one-pass hashing, size check,
  ``fsync`` and ``os.replace`` (see :mod:`jkutils._download`);
* one download per file however many processes or threads ask at once (a file lock);
* retries with back-off, ``Retry-After``, timeouts, a minimum rate and ``Range`` resumption
  (only with a strong validator);
* a cache hit with a known hash reads a small digest record instead of the whole file;
* safe extraction, once per archive content (see :mod:`jkutils._extract`);
* ``JKUTILS_OFFLINE=1`` serves the cache without touching the network.

Beside each cached file ``<name>`` the cache folder holds hidden companions:
``.<name>.lock`` (the lock file), ``.<name>.digests.json`` (the digests last verified, with the
size, mtime, inode and ctime they belong to) and, for an extraction folder ``<dir>``, the
extracted trees ``.<dir>.<archive digest>.<random>.tree`` that ``<dir>`` (a symbolic link)
points to.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import posixpath
import threading
import urllib.parse
from collections.abc import Callable

from jkutils import _download, _extract

__all__ = ["get_file"]

OFFLINE_ENV = "JKUTILS_OFFLINE"
"""Environment variable that, set to 1, forbids all network access in :func:`get_file`."""

_HASH_LENGTHS = {"sha256": 64, "md5": 32}
_SCHEMES = ("http", "https", "file")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def get_file(
    fname: str | os.PathLike[str] | None = None,
    origin: str | None = None,
    untar: bool = False,
    md5_hash: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str | os.PathLike[str] = "datasets",
    hash_algorithm: str = "auto",
    extract: bool = False,
    archive_format: str | list[str] | tuple[str, ...] | None = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    *,
    verbose: int = 1,
    timeout: float | tuple[float, float] = 30.0,
    max_retries: int = 5,
    backoff: float = 0.5,
    min_rate: tuple[float, float] | None = _download.DEFAULT_MIN_RATE,
) -> str:
    """Download a file from a URL into the cache unless a valid copy is already there.

    Args:
        fname: file name in the cache; ``None`` takes the last part of the URL's path. A name
            with a path separator is refused (use ``cache_dir``/``cache_subdir``).
        origin: ``http://``, ``https://`` or ``file://`` URL of the file.
        untar: like ``extract=True`` with ``archive_format="tar"`` (kept for Keras 2 code).
        md5_hash: an MD5 hex digest; same as ``file_hash`` with ``hash_algorithm="md5"``.
        file_hash: expected hex digest (case-insensitive). A cached file that does not match
            is downloaded again; a download that does not match raises and is deleted.
        cache_subdir: folder under ``cache_dir``; an absolute path is used as is.
        hash_algorithm: ``"sha256"``, ``"md5"`` or ``"auto"`` (64 hex digits mean sha256,
            32 mean md5).
        extract: extract the archive and return the extraction folder.
        archive_format: ``"auto"`` (tar, then zip), ``"tar"``, ``"zip"`` or a list of them.
        cache_dir: cache root; default ``$KERAS_HOME``, else ``~/.keras``. Created if missing.
        force_download: download again even if a valid copy is cached.
        verbose: 0 prints nothing; 1 prints what goes where and a progress bar; 2 prints the
            messages and one progress line at the end.
        timeout: seconds to connect and per read, or a ``(connect, read)`` pair.
        max_retries: failed attempts in a row, without new bytes, tolerated after the first.
        backoff: seconds before the first retry, doubled after each failure (at most 30 s);
            a server's ``Retry-After`` (honoured up to 60 s) wins when longer.
        min_rate: ``(bytes_per_s, window_s)``: an attempt slower than ``bytes_per_s`` over
            ``window_s`` seconds is abandoned as a timeout (and retried); ``None`` waits for
            any server that sends something within ``timeout``.

    Returns:
        The path of the cached file, or of the extraction folder when extracting: with an
        ``fname`` containing a dot, ``<fname up to its first dot>_extracted``; otherwise the
        archive is stored as ``<name>_archive`` and extracted into ``<name>`` (Keras 3 rules).

    Raises:
        ValueError: a bad argument; a download whose hash does not match (nothing is kept);
            an ``extract`` of a file that is not an archive of the accepted formats.
        TypeError: an argument of the wrong type.
        FileNotFoundError: offline (``JKUTILS_OFFLINE=1``) and the file is not cached, or a
            ``file://`` origin that does not exist.
        requests.HTTPError: a 4xx answer other than 429 (at once, no retry), or 429/5xx
            after the last retry; the message names the status and the URL.
        requests.ConnectionError, requests.Timeout: the network failed after the last retry.
        OSError: the cache cannot be written (a full disk, quota or file-size limit is named
            as such; nothing partial is kept), or its lock file is a symbolic link.

    Example:
        >>> path = get_file(origin="https://example.com/data/iris.csv",
        ...                 file_hash="ab12...")  # doctest: +SKIP
        >>> folder = get_file("mnist.tar.gz", "https://example.com/mnist.tar.gz",
        ...                   extract=True)  # doctest: +SKIP
    """
    origin = _checked_origin(origin)
    policy = _checked_policy(timeout, max_retries, backoff, min_rate)
    verbose = _checked_verbose(verbose)
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    expected = _expected_digest(file_hash, hash_algorithm)
    extracting = bool(extract or untar)
    formats = _archive_formats("tar" if untar else archive_format) if extracting else ()
    offline = _offline() and urllib.parse.urlsplit(origin).scheme != "file"
    if force_download and offline:
        raise ValueError(
            f"force_download=True needs the network, but {OFFLINE_ENV} is set: unset it, "
            "or drop force_download to use the cached copy."
        )
    name = _file_name(fname, origin)
    folder = _cache_folder(cache_dir, cache_subdir)
    target, extract_dir = _cache_paths(folder, name, bool(fname), extracting)
    result = extract_dir if extracting else target
    if not force_download and _ready(target, expected, extract_dir):
        return result

    say = _printer(verbose)
    with _download.file_lock(
        _download.companion(target, "lock"),
        on_wait=lambda: say(f"Waiting for another download of {target}."),
    ):
        if force_download or not _cached_copy_ok(target, expected, say, offline, origin):
            _fetch(origin, target, expected, offline, policy, verbose, say)
        if extracting:
            _extract_once(target, extract_dir, formats, say)
    return result


# --------------------------------------------------------------------------- argument checks


def _checked_origin(origin: object) -> str:
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if not isinstance(origin, str):
        raise TypeError(f"`origin` must be a URL string; received {origin!r}.")
    if "\0" in origin:
        raise ValueError(f"Invalid `origin`: {origin!r} contains a NUL byte.")
    parts = urllib.parse.urlsplit(origin)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"Invalid `origin`: {origin!r}; expected an http://, https:// or file:// URL."
        )
    if scheme == "file":
        _download.local_path_of(origin)  # refuses remote hosts and empty paths early
    elif not parts.hostname:
        raise ValueError(f"Invalid `origin`: {origin!r} names no host (http://host/path).")
    return origin


def _checked_policy(
    timeout: object, max_retries: object, backoff: object, min_rate: object
) -> _download.RetryPolicy:
    pair = timeout if isinstance(timeout, tuple) and len(timeout) == 2 else (timeout,)
    if not all(_is_number(t) and 0 < t <= threading.TIMEOUT_MAX for t in pair):
        raise ValueError(
            "`timeout` must be a positive, finite number of seconds (at most "
            f"{threading.TIMEOUT_MAX:.0f}) or a (connect, read) pair of them; "
            f"received {timeout!r}."
        )
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"`max_retries` must be an int >= 0; received {max_retries!r}.")
    if not _is_number(backoff) or not 0 <= backoff < math.inf:
        raise ValueError(
            f"`backoff` must be a finite number of seconds >= 0; received {backoff!r}."
        )
    return _download.RetryPolicy(
        timeout=timeout,
        max_retries=max_retries,
        backoff=backoff,
        min_rate=_checked_min_rate(min_rate),
    )


def _checked_min_rate(min_rate: object) -> tuple[float, float] | None:
    if min_rate is None:
        return None
    if not (
        isinstance(min_rate, tuple)
        and len(min_rate) == 2
        and all(_is_number(v) and 0 < v < math.inf for v in min_rate)
    ):
        raise ValueError(
            "`min_rate` must be None or a (bytes_per_s, window_s) pair of positive, finite "
            f"numbers; received {min_rate!r}."
        )
    return float(min_rate[0]), float(min_rate[1])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked_verbose(verbose: object) -> int:
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2; received {verbose!r}.")
    return int(verbose)


def _expected_digest(file_hash: object, hash_algorithm: object) -> tuple[str, str] | None:
    """``(algorithm, lowercase hex)`` to check downloads against, or None."""
    algorithm = hash_algorithm.lower() if isinstance(hash_algorithm, str) else None
    if algorithm not in ("auto", *_HASH_LENGTHS):
        raise ValueError(
            f"`hash_algorithm` must be 'auto', 'sha256' or 'md5'; received {hash_algorithm!r}."
        )
    if file_hash is None:
        return None
    if not isinstance(file_hash, str):
        raise TypeError(f"`file_hash` must be a hex string; received {file_hash!r}.")
    digest = file_hash.strip().lower()
    if algorithm == "auto":
        algorithm = next((a for a, n in _HASH_LENGTHS.items() if n == len(digest)), None)
        if algorithm is None:
            raise ValueError(
                f"`file_hash` {file_hash!r} has {len(digest)} characters; with "
                "hash_algorithm='auto' it must have 64 (sha256) or 32 (md5)."
            )
    if len(digest) != _HASH_LENGTHS[algorithm] or not _is_hex(digest):
        raise ValueError(
            f"`file_hash` {file_hash!r} is not a {algorithm} digest: expected "
            f"{_HASH_LENGTHS[algorithm]} hexadecimal digits."
        )
    return algorithm, digest


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _archive_formats(archive_format: object) -> tuple[str, ...]:
    if archive_format is None:
        raise ValueError("`archive_format` is None, which cannot extract; extract=True needs one.")
    if archive_format == "auto":
        return _extract.ARCHIVE_FORMATS
    formats = (archive_format,) if isinstance(archive_format, str) else archive_format
    if (
        not isinstance(formats, list | tuple)
        or not formats
        or any(f not in _extract.ARCHIVE_FORMATS for f in formats)
    ):
        raise ValueError(
            f"`archive_format` must be 'auto', 'tar', 'zip' or a list of 'tar'/'zip'; "
            f"received {archive_format!r}."
        )
    return tuple(formats)


def _offline() -> bool:
    raw = os.environ.get(OFFLINE_ENV, "")
    value = raw.strip().lower()
    if value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise ValueError(f"{OFFLINE_ENV}={raw!r} is not understood; use 1 (offline) or 0 (online).")


# --------------------------------------------------------------------------- where things go


def _cache_folder(cache_dir: object, cache_subdir: object) -> str:
    """``cache_dir`` (or ``$KERAS_HOME``, or ``~/.keras``) joined with ``cache_subdir``, created."""
    for arg, value in (("cache_dir", cache_dir), ("cache_subdir", cache_subdir)):
        if value is not None and not isinstance(value, str | os.PathLike):
            raise TypeError(f"`{arg}` must be a path; received {value!r}.")
        if value is not None and "\0" in os.fspath(value):
            raise ValueError(f"`{arg}` contains a NUL byte; received {value!r}.")
    if cache_dir is not None and not os.fspath(cache_dir):
        raise ValueError(
            "`cache_dir` is empty; pass a folder, or None for $KERAS_HOME or ~/.keras."
        )
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    base = os.path.expanduser(os.fspath(cache_dir))
    folder = os.path.join(base, os.fspath(cache_subdir or ""))
    os.makedirs(folder, exist_ok=True)
    return folder


def _file_name(fname: object, origin: str) -> str:
    if fname is not None and not isinstance(fname, str | os.PathLike):
        raise TypeError(f"`fname` must be a file name; received {fname!r}.")
    name = os.fspath(fname) if fname else ""
    if name and any(sep and sep in name for sep in (os.sep, os.altsep)):
        raise ValueError(
            "Paths are no longer accepted as the `fname` argument. To specify the file's parent "
            f"directory, use the `cache_dir` argument. Received: fname={name}"
        )
    if "\0" in name:
        raise ValueError(f"`fname` contains a NUL byte; received fname={name!r}.")
    derived = not name
    name = name or posixpath.basename(urllib.parse.urlsplit(origin).path)
    if name in ("", ".", "..") or (derived and "\\" in name):
        raise ValueError(
            f"Can't parse the file name from the origin provided: {origin!r} (empty, '.', '..' "
            "or containing a backslash, which is a path separator on Windows). "
            "Please specify the `fname` argument."
        )
    return name


def _cache_paths(folder: str, name: str, named: bool, extracting: bool) -> tuple[str, str]:
    """``(where the file is stored, where it is extracted)`` under Keras 3's rules."""
    if not extracting:
        return os.path.join(folder, name), ""
    if named and "." in name:
        stem = name[: name.index(".")]
        return os.path.join(folder, name), os.path.join(folder, f"{stem}_extracted")
    return os.path.join(folder, f"{name}_archive"), os.path.join(folder, name)


# --------------------------------------------------------------------------- the cache state


def _ready(target: str, expected: tuple[str, str] | None, extract_dir: str) -> bool:
    """True when the cache already answers the call, judged without reading the file."""
    if not os.path.isfile(target):
        return False
    if expected is None and not extract_dir:
        return True
    recorded = _recorded_digests(target)  # read once, for the hash and the extraction
    if expected is not None and recorded.get(expected[0]) != expected[1]:
        return False  # unknown or different: verified under the lock
    if not extract_dir:
        return True
    return _extract.extracted_digest(extract_dir) in recorded.values()


def _cached_copy_ok(
    target: str,
    expected: tuple[str, str] | None,
    say: Callable[[str], None],
    offline: bool,
    origin: str,
) -> bool:
    """Whether ``target`` exists and matches ``expected`` (hashing it at most once)."""
    if not os.path.isfile(target):
        return False
    if expected is None:
        return True
    algorithm, want = expected
    got = _digest_of(target, algorithm)
    if got == want:
        return True
    message = (
        f"A local file was found at {target}, but its {algorithm} hash {got} does not match "
        f"the expected {want}"
    )
    if offline:
        raise FileNotFoundError(f"{message}; {OFFLINE_ENV} is set, so {origin} is not fetched.")
    say(f"{message}; downloading it again.")
    return False


def _digest_of(path: str, algorithm: str) -> str:
    """The ``algorithm`` digest of ``path``: recorded if still current, else hashed (once)."""
    recorded = _recorded_digests(path)
    if algorithm not in recorded:
        identity = _file_identity(path)  # taken first: a change while hashing voids the record
        recorded[algorithm] = _hash_file(path, algorithm)
        _record_digests(path, recorded, identity)
    return recorded[algorithm]


def _hash_file(path: str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    buffer = bytearray(_download.CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        while n := file.readinto(buffer):
            hasher.update(view[:n])
    return hasher.hexdigest()


def _file_identity(path: str) -> list[int]:
    """Size, mtime, inode and ctime: the last one changes on every write and cannot be set back."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _recorded_digests(path: str) -> dict[str, str]:
    """Digests recorded for ``path``, provided its identity (:func:`_file_identity`) holds."""
    record = _download.read_json(_download.companion(path, "digests.json"))
    try:
        current = _file_identity(path)
    except OSError:
        return {}
    digests = record.get("digests")
    if record.get("identity") != current or not isinstance(digests, dict):
        return {}
    return {k: v for k, v in digests.items() if isinstance(v, str)}


def _record_digests(path: str, digests: dict[str, str], identity: list[int] | None = None) -> None:
    """Remember ``digests`` for ``path`` as it is now, or as it was at ``identity``.

    Skipped silently where the record cannot be written (a read-only cache).
    """
    record = {"identity": identity or _file_identity(path), "digests": digests}
    with contextlib.suppress(OSError):
        _download.write_json(_download.companion(path, "digests.json"), record)


# --------------------------------------------------------------------------- the work


def _fetch(
    origin: str,
    target: str,
    expected: tuple[str, str] | None,
    offline: bool,
    policy: _download.RetryPolicy,
    verbose: int,
    say: Callable[[str], None],
) -> None:
    if offline:
        raise FileNotFoundError(
            f"{target} is not in the cache and {OFFLINE_ENV} is set, so it is not downloaded "
            f"from {origin}. Unset {OFFLINE_ENV} or put the file there."
        )
    say(f"Downloading data from {origin} to {target}")
    _download.remove_stale_partials(target)
    digests = _download.download(
        origin,
        target,
        algorithms=(expected[0],) if expected else ("sha256",),
        expected=expected,
        policy=policy,
        say=say,
        progress=_progress_factory(verbose),
    )
    _record_digests(target, digests)


def _extract_once(
    archive: str, extract_dir: str, formats: tuple[str, ...], say: Callable[[str], None]
) -> None:
    """Extract ``archive`` into ``extract_dir`` unless it already holds this very content."""
    algorithm = next((a for a in _HASH_LENGTHS if a in _recorded_digests(archive)), "sha256")
    digest = _digest_of(archive, algorithm)
    if _extract.extracted_digest(extract_dir) == digest:
        return
    fmt = _extract.detect_format(archive, formats)
    if fmt is None:
        raise ValueError(
            f"{archive} is not a {' or '.join(formats)} archive, so it cannot be extracted "
            f"(archive_format={list(formats)}). Call get_file without extract=True to keep it "
            "as a plain file."
        )
    say(f"Extracting {archive} to {extract_dir}")
    _extract.remove_stale_work(extract_dir)
    _extract.extract_into(archive, extract_dir, fmt, digest)


def _printer(verbose: int) -> Callable[[str], None]:
    if not verbose:
        return lambda message: None
    return lambda message: print(message, flush=True)


def _progress_factory(verbose: int) -> _download.ProgressFactory | None:
    """A function that, given the size in bytes, starts a bar and returns its updater."""
    if not verbose:
        return None

    def start(total: int) -> Callable[[int], None]:
        from jkutils.progbar import Progbar

        if total <= 0:
            return lambda current: None
        bar = Progbar(total, verbose=verbose, unit_name="B")
        return lambda current: bar.update(current)

    return start
