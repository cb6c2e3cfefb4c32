"""get_file against a real HTTP server on 127.0.0.1: caching, atomicity, retries, extraction."""

from __future__ import annotations

import email.utils
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from _http_server import HTTPTestServer

from jkutils import _download, files
from jkutils.files import get_file

REPO = Path(__file__).resolve().parents[1]
BODY = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, not a multiple of any chunk
SHA256 = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()


@pytest.fixture(scope="module")
def server():
    srv = HTTPTestServer()
    yield srv
    srv.close()


@pytest.fixture
def route(server, request):
    """A unique path per test, so request counts never mix."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")
    return f"/{name}"


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv(files.OFFLINE_ENV, raising=False)
    for name in ("NO_PROXY", "no_proxy"):  # never send 127.0.0.1 through a proxy
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def _fetch(origin, cache, **kwargs):
    kwargs.setdefault("verbose", 0)
    return get_file(origin=origin, cache_dir=str(cache), **kwargs)


def _leftovers(folder):
    """Temp files and folders that a finished call must not leave behind."""
    return [
        n for n in os.listdir(folder) if n.endswith((".partial", ".extracting", ".old", ".tmp"))
    ]


def _sleeps(monkeypatch):
    waits = []
    monkeypatch.setattr(_download, "_sleep", waits.append)
    return waits


# --------------------------------------------------------------------------- plain downloads


def test_download_lands_under_its_name_and_second_call_makes_no_request(server, route, tmp_path):
    url = server.add(route + "/data.bin", BODY)
    path = _fetch(url, tmp_path, file_hash=SHA256)
    assert path == str(tmp_path / "datasets" / "data.bin")
    assert Path(path).read_bytes() == BODY
    assert _fetch(url, tmp_path, file_hash=SHA256) == path
    assert _fetch(url, tmp_path) == path
    assert len(server.requests(route + "/data.bin")) == 1
    assert _leftovers(tmp_path / "datasets") == []


def test_request_identifies_itself_and_asks_for_raw_bytes(server, route, tmp_path):
    url = server.add(route, BODY)
    _fetch(url, tmp_path, fname="x")
    headers = server.requests(route)[0].headers
    assert headers["User-Agent"].startswith("jkutils/")
    assert headers["Accept-Encoding"] == "identity"


def test_downloaded_file_mode_follows_the_umask(server, route, tmp_path):
    url = server.add(route, BODY)
    old = os.umask(0o022)
    try:
        path = _fetch(url, tmp_path, fname="x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_force_download_fetches_again(server, route, tmp_path):
    url = server.add(route, BODY)
    _fetch(url, tmp_path, fname="x")
    _fetch(url, tmp_path, fname="x", force_download=True)
    assert len(server.requests(route)) == 2


def test_file_url_origin(tmp_path):
    source = tmp_path / "src" / "local data.bin"
    source.parent.mkdir()
    source.write_bytes(BODY)
    path = _fetch(source.as_uri(), tmp_path / "cache", file_hash=MD5)
    assert Path(path).name == "local%20data.bin"  # Keras's rule: the URL's last path part
    assert Path(path).read_bytes() == BODY


def test_missing_file_url_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        _fetch((tmp_path / "nope.bin").as_uri(), tmp_path / "cache")
    assert os.listdir(tmp_path / "cache" / "datasets") == [".nope.bin.lock"]


def test_messages_say_where_the_file_goes_and_show_progress(server, route, tmp_path, capsys):
    url = server.add(route + "/f.bin", BODY)
    path = _fetch(url, tmp_path, verbose=1)
    out = capsys.readouterr().out
    assert f"Downloading data from {url} to {path}" in out
    assert "1.0 MiB/1.0 MiB" in out  # the 1048580-byte body, in binary units
    _fetch(url, tmp_path, verbose=1, force_download=True, file_hash=SHA256)
    _fetch(url, tmp_path, verbose=0, force_download=True)
    assert capsys.readouterr().out.count("Downloading data from") == 1


# --------------------------------------------------------------------------- names and folders


def test_cache_dir_rules(server, route, tmp_path, monkeypatch):
    url = server.add(route + "/a.txt", b"abc")
    deep = tmp_path / "not" / "yet" / "there"
    assert _fetch(url, deep) == str(deep / "datasets" / "a.txt")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert get_file(origin=url, verbose=0) == str(tmp_path / "kh" / "datasets" / "a.txt")

    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".keras" / "models" / "a.txt"
    assert get_file(origin=url, cache_subdir="models", verbose=0) == str(expected)

    absolute = tmp_path / "elsewhere"
    assert _fetch(url, tmp_path / "c", cache_subdir=str(absolute)) == str(absolute / "a.txt")


def test_unusable_cache_dir_raises_instead_of_falling_back(server, route, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        _fetch(server.add(route + "/a.txt", b"abc"), blocker / "cache")
    assert server.requests(route + "/a.txt") == []


@pytest.mark.parametrize(
    "origin, fname, match",
    [
        ("http://127.0.0.1:1/dir/", None, "Can't parse the file name"),
        ("http://127.0.0.1:1/dir/..", None, "Can't parse the file name"),
        ("http://127.0.0.1:1/x", "sub/x", "Paths are no longer accepted"),
        ("http://127.0.0.1:1/x", "..", "Can't parse the file name"),
    ],
)
def test_bad_file_names(origin, fname, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        _fetch(origin, tmp_path, fname=fname)


def _archive_bytes(kind="tar.gz"):
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr("top/a.txt", b"alpha")
            zf.writestr("top/sub/b.txt", b"beta")
        return buffer.getvalue()
    mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[kind]
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in (("top/a.txt", b"alpha"), ("top/sub/b.txt", b"beta")):
            _add_file(tar, name, data)
    return buffer.getvalue()


def _add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "fname, origin_name, kwargs",
    [
        (None, "a.txt", {}),
        (None, "data.tar.gz", {"extract": True}),
        ("mydata.tar.gz", "data.tar.gz", {"extract": True}),
        ("mydir", "data.tar.gz", {"extract": True}),
        ("u.tar.gz", "data.tar.gz", {"untar": True}),
    ],
)
def test_paths_match_keras(fname, origin_name, kwargs, tmp_path):
    from keras.utils import get_file as keras_get_file

    source = tmp_path / "src" / origin_name
    source.parent.mkdir()
    source.write_bytes(_archive_bytes() if origin_name.endswith(".gz") else b"text")
    (tmp_path / "keras").mkdir()
    theirs = keras_get_file(fname, source.as_uri(), cache_dir=str(tmp_path / "keras"), **kwargs)
    ours = get_file(fname, source.as_uri(), cache_dir=str(tmp_path / "ours"), verbose=0, **kwargs)
    assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "keras")
    ours_listing = sorted(n for n in os.listdir(tmp_path / "ours" / "datasets") if n[0] != ".")
    assert ours_listing == sorted(os.listdir(tmp_path / "keras" / "datasets"))


# --------------------------------------------------------------------------- hashes


def test_hash_spellings_all_verify(server, route, tmp_path):
    url = server.add(route, BODY)
    for i, kwargs in enumerate(
        [
            {"file_hash": SHA256},
            {"file_hash": SHA256.upper(), "hash_algorithm": "sha256"},
            {"md5_hash": MD5},
            {"file_hash": MD5, "hash_algorithm": "MD5"},
        ]
    ):
        assert Path(_fetch(url, tmp_path, fname=f"f{i}", **kwargs)).read_bytes() == BODY


def test_hash_mismatch_deletes_the_download_and_names_both_digests(server, route, tmp_path):
    url = server.add(route + "/f.bin", BODY)
    wrong = "0" * 64
    with pytest.raises(ValueError) as info:
        _fetch(url, tmp_path, file_hash=wrong)
    message = str(info.value)
    assert f"sha256 {wrong}" in message and f"sha256 {SHA256}" in message and url in message
    assert sorted(os.listdir(tmp_path / "datasets")) == [".f.bin.lock"]


def test_truncated_body_without_length_is_caught_by_the_hash(server, route, tmp_path):
    url = server.add(route + "/f.bin", BODY, content_length=False, cut_after=1000)
    with pytest.raises(ValueError, match="Hash mismatch"):
        _fetch(url, tmp_path, file_hash=SHA256)
    assert not (tmp_path / "datasets" / "f.bin").exists()
    assert _leftovers(tmp_path / "datasets") == []


def test_cache_hit_with_hash_reads_the_digest_record_not_the_file(
    server, route, tmp_path, monkeypatch
):
    url = server.add(route + "/f.bin", BODY)
    path = _fetch(url, tmp_path, file_hash=SHA256)
    record = json.loads((tmp_path / "datasets" / ".f.bin.digests.json").read_text())
    assert record["digests"] == {"sha256": SHA256}

    def no_hashing(*args):
        raise AssertionError("the cached file was hashed again")

    monkeypatch.setattr(files, "_hash_file", no_hashing)
    for _ in range(3):
        assert _fetch(url, tmp_path, file_hash=SHA256) == path
    assert len(server.requests(route + "/f.bin")) == 1


def test_changed_cached_file_is_verified_again_and_replaced(server, route, tmp_path, capsys):
    url = server.add(route + "/f.bin", BODY)
    path = Path(_fetch(url, tmp_path, file_hash=SHA256))
    path.write_bytes(b"X" * len(BODY))  # same size, new content and mtime
    _fetch(url, tmp_path, file_hash=SHA256, verbose=1)
    assert "does not match the expected" in capsys.readouterr().out
    assert path.read_bytes() == BODY
    assert len(server.requests(route + "/f.bin")) == 2


def test_unrecorded_cached_file_is_hashed_once_then_trusted(server, route, tmp_path, monkeypatch):
    url = server.add(route + "/f.bin", BODY)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "f.bin").write_bytes(BODY)  # e.g. left by Keras
    calls = []
    real = files._hash_file
    monkeypatch.setattr(files, "_hash_file", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        _fetch(url, tmp_path, file_hash=MD5)
    assert len(calls) == 1
    assert server.requests(route + "/f.bin") == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"file_hash": "ab" * 20}, ValueError, "must have 64 .sha256. or 32 .md5."),
        ({"file_hash": "zz" * 32}, ValueError, "not a sha256 digest"),
        ({"file_hash": MD5, "hash_algorithm": "sha256"}, ValueError, "not a sha256 digest"),
        ({"file_hash": SHA256, "hash_algorithm": "sha1"}, ValueError, "hash_algorithm"),
        ({"file_hash": 123}, TypeError, "file_hash"),
    ],
)
def test_bad_hash_arguments(kwargs, error, match, tmp_path):
    with pytest.raises(error, match=match):
        _fetch("http://127.0.0.1:1/x", tmp_path, **kwargs)


# --------------------------------------------------------------------------- retries and resume


def test_503_then_recovery_honours_retry_after(server, route, tmp_path, monkeypatch):
    waits = _sleeps(monkeypatch)
    url = server.add(route, BODY, fail_first=2, retry_after="2")
    assert Path(_fetch(url, tmp_path, fname="x", backoff=0.0)).read_bytes() == BODY
    assert len(server.requests(route)) == 3
    assert waits == [2.0, 2.0]


def test_retry_after_as_http_date_and_its_cap(server, route, tmp_path, monkeypatch):
    waits = _sleeps(monkeypatch)
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.add(route + "/date", BODY, fail_first=1, fail_status=429, retry_after=later)
    server.add(route + "/long", BODY, fail_first=1, retry_after="86400")
    _fetch(server.base_url + route + "/date", tmp_path, backoff=0.0)
    _fetch(server.base_url + route + "/long", tmp_path, backoff=0.0)
    assert 25 <= waits[0] <= 30
    assert waits[1] == _download.MAX_RETRY_AFTER_S


def test_back_off_doubles_with_jitter(server, route, tmp_path, monkeypatch):
    waits = _sleeps(monkeypatch)
    url = server.add(route, BODY, fail_first=3, fail_status=500)
    _fetch(url, tmp_path, fname="x", backoff=1.0)
    assert len(waits) == 3
    assert all(0.8 * base <= wait <= 1.2 * base for wait, base in zip(waits, (1, 2, 4)))


def test_retries_stop_at_the_limit(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route + "/f.bin", BODY, fail_first=100, fail_status=502)
    with pytest.raises(requests.HTTPError, match=f"502 .*{url}|{url}: 502"):
        _fetch(url, tmp_path, max_retries=2)
    assert len(server.requests(route + "/f.bin")) == 3
    assert os.listdir(tmp_path / "datasets") == [".f.bin.lock"]


@pytest.mark.parametrize("status", [404, 403, 410])
def test_client_errors_fail_at_once(server, route, tmp_path, monkeypatch, status):
    waits = _sleeps(monkeypatch)
    url = server.add(route, status=status)
    with pytest.raises(requests.HTTPError) as info:
        _fetch(url, tmp_path, fname="x")
    assert f"{url}: {status}" in str(info.value)
    assert info.value.response.status_code == status
    assert len(server.requests(route)) == 1 and waits == []


def test_cut_transfer_resumes_with_a_range_request(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route, BODY, cut_after=300_000, cut_times=2)
    path = _fetch(url, tmp_path, fname="x", file_hash=SHA256)
    assert Path(path).read_bytes() == BODY
    sent = [(r.headers.get("Range"), r.headers.get("If-Range")) for r in server.requests(route)]
    etag = server._server.routes[route].etag
    assert sent == [(None, None), ("bytes=300000-", etag), ("bytes=300000-", etag)]


def test_server_refusing_ranges_gets_a_fresh_transfer(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route, BODY, cut_after=300_000, cut_times=1, ranges=False)
    path = _fetch(url, tmp_path, fname="x", file_hash=SHA256)
    assert Path(path).read_bytes() == BODY
    assert len(server.requests(route)) == 2


def test_transfer_cut_every_time_leaves_nothing(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route + "/f.bin", BODY, cut_after=5000, ranges=False)
    with pytest.raises(requests.ConnectionError, match=f"stopped at 5000 of {len(BODY)} bytes"):
        _fetch(url, tmp_path, max_retries=3)
    assert len(server.requests(route + "/f.bin")) == 4
    assert os.listdir(tmp_path / "datasets") == [".f.bin.lock"]


def test_progress_resets_the_retry_budget(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route, BODY, send_at_most=250_000)  # every response is cut short
    path = _fetch(url, tmp_path, fname="x", max_retries=1, file_hash=SHA256)
    assert Path(path).read_bytes() == BODY
    starts = [r.headers.get("Range") for r in server.requests(route)]
    assert starts == [None] + [f"bytes={n}-" for n in range(250_000, len(BODY), 250_000)]


def test_read_timeout_is_retried(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route, BODY, stall_first=1, stall_s=1.0)
    assert Path(_fetch(url, tmp_path, fname="x", timeout=0.2)).read_bytes() == BODY


def test_timeouts_exhaust_into_a_timeout_error(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route + "/f.bin", BODY, stall_first=100, stall_s=1.0)
    with pytest.raises(requests.Timeout, match=url):
        _fetch(url, tmp_path, timeout=(1.0, 0.2), max_retries=1)
    assert os.listdir(tmp_path / "datasets") == [".f.bin.lock"]


def test_connection_refused_is_retried_then_raised(tmp_path, monkeypatch):
    waits = _sleeps(monkeypatch)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/f.bin"
    with pytest.raises(requests.ConnectionError, match=url):
        _fetch(url, tmp_path, max_retries=2)
    assert len(waits) == 2


def test_large_downloads_are_flushed_to_disk_in_the_background(
    server, route, tmp_path, monkeypatch
):
    monkeypatch.setattr(_download, "FLUSH_EVERY", 256 << 10)
    synced, real_sync = [], os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(fd) or real_sync(fd))
    path = _fetch(server.add(route + "/f.bin", BODY), tmp_path, file_hash=SHA256)
    assert Path(path).read_bytes() == BODY
    assert synced  # the temp file was synced while the transfer went on


def test_background_flush_error_is_raised_and_leaves_nothing(server, route, tmp_path, monkeypatch):
    monkeypatch.setattr(_download, "FLUSH_EVERY", 256 << 10)

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        _fetch(server.add(route + "/f.bin", BODY), tmp_path)
    assert os.listdir(tmp_path / "datasets") == [".f.bin.lock"]


def test_stale_partials_are_removed_fresh_ones_kept(server, route, tmp_path):
    url = server.add(route + "/f.bin", BODY)
    folder = tmp_path / "datasets"
    folder.mkdir()
    stale, fresh = folder / ".f.bin.aaaa.partial", folder / ".f.bin.bbbb.partial"
    stale.write_bytes(b"old")
    fresh.write_bytes(b"new")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    _fetch(url, tmp_path)
    assert not stale.exists() and fresh.exists()


def test_stale_partials_of_other_names_and_killed_extractions(server, route, tmp_path):
    folder = tmp_path / "datasets"
    folder.mkdir()
    other = folder / ".f.tar.gz.aaaa.partial"  # belongs to f.tar.gz, not to f
    killed = folder / ".f_extracted.bbbb.extracting"  # an extraction killed midway
    other.write_bytes(b"old")
    (killed / "sub").mkdir(parents=True)
    (killed / "sub" / "x.txt").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for path in (other, killed):
        os.utime(path, (two_hours_ago, two_hours_ago))
    _fetch(server.add(route + "/f", BODY), tmp_path)
    assert other.exists()
    _fetch(
        server.add(route + "/f.tar.gz", _archive_bytes()), tmp_path, fname="f.tar.gz", extract=True
    )
    assert not killed.exists()


def test_partial_answer_to_a_plain_request_is_not_taken_for_the_file(
    server, route, tmp_path, monkeypatch
):
    url = server.add(route + "/f.bin", BODY, partial_only=1000)
    with pytest.raises(requests.ConnectionError):
        _fetch(url, tmp_path, max_retries=2, backoff=0)
    assert _leftovers(tmp_path / "datasets") == []


# --------------------------------------------------------------------------- concurrency

_CHILD = r"""
import json, os, sys, time
from jkutils.files import get_file
go, origin, cache_dir, digest = sys.argv[1:5]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
start = time.time()
path = get_file(origin=origin, cache_dir=cache_dir, file_hash=digest or None, verbose=0)
print(json.dumps({"path": path, "start": start}), flush=True)
"""


def test_racing_processes_download_once(server, route, tmp_path):
    body = os.urandom(3 << 20)
    url = server.add(route + "/big.bin", body, bytes_per_s=3 << 20)  # about one second
    go = tmp_path / "go"
    digest = hashlib.sha256(body).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [  # two pin the hash, two do not (where Keras handed out truncated files)
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(go),
                url,
                str(tmp_path / "cache"),
                digest if i % 2 else "",
            ],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i in range(4)
    ]
    try:
        assert all(child.stdout.readline().strip() == "ready" for child in children)
        go.touch()
        results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0] * 4
    (download,) = server.requests(route + "/big.bin")
    assert download.done.wait(10)
    assert all(r["start"] < download.finished for r in results)  # they really overlapped
    assert {r["path"] for r in results} == {str(tmp_path / "cache" / "datasets" / "big.bin")}
    assert Path(results[0]["path"]).read_bytes() == body


def test_racing_threads_download_once(server, route, tmp_path):
    url = server.add(route + "/f.bin", BODY, bytes_per_s=4 << 20)
    barrier = threading.Barrier(4)

    def call(_):
        barrier.wait()
        return _fetch(url, tmp_path, file_hash=SHA256)

    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(call, range(4)))
    assert paths == {str(tmp_path / "datasets" / "f.bin")}
    assert len(server.requests(route + "/f.bin")) == 1


def test_refused_lock_warns_and_still_downloads_correctly(server, route, tmp_path, monkeypatch):
    def refuse(fd):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(_download, "_try_lock", refuse)
    url = server.add(route + "/f.bin", BODY)
    with pytest.warns(RuntimeWarning, match="continuing without the lock"):
        path = _fetch(url, tmp_path, file_hash=SHA256)
    assert Path(path).read_bytes() == BODY


def test_killed_download_leaves_no_file_under_the_final_name(server, route, tmp_path):
    body = os.urandom(2 << 20)
    url = server.add(route + "/f.bin", body, bytes_per_s=1 << 20)
    code = (
        f"from jkutils.files import get_file; get_file(origin={url!r}, cache_dir={str(tmp_path)!r})"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    folder = tmp_path / "datasets"
    deadline = time.time() + 30
    while time.time() < deadline and not any(
        p.name.endswith(".partial") and p.stat().st_size > 0 for p in folder.glob(".*")
    ):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (folder / "f.bin").exists()
    assert Path(_fetch(url, tmp_path)).read_bytes() == body


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tar.bz2", "tar.xz", "zip"])
def test_extracts_every_format(server, route, tmp_path, kind):
    url = server.add(f"{route}/data.{kind}", _archive_bytes(kind))
    folder = _fetch(url, tmp_path, fname=f"data.{kind}", extract=True)
    assert folder == str(tmp_path / "datasets" / "data_extracted")
    assert (Path(folder) / "top" / "a.txt").read_bytes() == b"alpha"
    assert (Path(folder) / "top" / "sub" / "b.txt").read_bytes() == b"beta"
    assert _leftovers(tmp_path / "datasets") == []


def test_untar_and_archive_format(server, route, tmp_path):
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    folder = Path(_fetch(url, tmp_path, fname="d.tar.gz", untar=True))
    assert (folder / "top" / "a.txt").read_bytes() == b"alpha"
    with pytest.raises(ValueError, match="is not a zip archive"):
        _fetch(url, tmp_path, fname="e.tar.gz", extract=True, archive_format="zip")
    assert (tmp_path / "datasets" / "e.tar.gz").exists()  # the download itself is kept


def test_extraction_happens_once_per_archive_content(server, route, tmp_path):
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    folder = Path(_fetch(url, tmp_path, fname="d.tar.gz", extract=True))
    (folder / "top" / "a.txt").unlink()
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True)
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True, force_download=True)  # same content
    assert not (folder / "top" / "a.txt").exists()  # not extracted again

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_file(tar, "top/new.txt", b"new")
    server.add(route + "/d.tar.gz", buffer.getvalue())
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True, force_download=True)
    assert sorted(p.name for p in (folder / "top").iterdir()) == ["new.txt"]  # old tree replaced
    assert _leftovers(tmp_path / "datasets") == []


def test_stale_extraction_folder_is_replaced(server, route, tmp_path):
    stale = tmp_path / "datasets" / "d_extracted"
    stale.mkdir(parents=True)
    (stale / "leftover.txt").write_text("from an older extraction")
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True)
    assert sorted(os.listdir(stale)) == ["top"]


def test_failed_extraction_keeps_the_previous_one(server, route, tmp_path):
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    folder = Path(_fetch(url, tmp_path, fname="d.tar.gz", extract=True))
    big = io.BytesIO()
    with tarfile.open(fileobj=big, mode="w:gz") as tar:
        _add_file(tar, "top/a.txt", b"changed")
        _add_file(tar, "top/big.bin", os.urandom(200_000))
    server.add(route + "/d.tar.gz", big.getvalue()[:-60_000])  # a truncated gzip stream
    with pytest.raises((tarfile.TarError, EOFError)):
        _fetch(url, tmp_path, fname="d.tar.gz", extract=True, force_download=True)
    assert (folder / "top" / "a.txt").read_bytes() == b"alpha"
    assert _leftovers(tmp_path / "datasets") == []


def test_extracting_a_non_archive_raises(server, route, tmp_path):
    url = server.add(route + "/plain.txt", b"just text")
    with pytest.raises(ValueError, match="is not a tar or zip archive"):
        _fetch(url, tmp_path, fname="plain.txt", extract=True)


def _snapshot(root):
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _hostile_tar(mode, outside, dest):
    buffer = io.BytesIO()
    up = os.path.relpath(outside, dest)  # a relative path from the destination to `outside`
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        _add_file(tar, "good.txt", b"good")
        _add_file(tar, "../evil_parent.txt", b"x")
        _add_file(tar, str(outside / "evil_abs.txt"), b"x")
        _add_file(tar, "a/../../evil_dotdot.txt", b"x")
        for name, target in [
            ("link_abs", str(outside)),
            ("link_up", up),
            ("inlink", "."),
            ("ok_link", "good.txt"),
            ("b", "c/e/../.."),
            ("c", "."),  # "b" escapes once "c" exists: it must not survive
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        tar.addfile(_dir_info("e"))
        _add_file(tar, "b/evil_through_link.txt", b"x")
        _add_file(tar, "link_up/evil_through_refused_link.txt", b"inside")
        for name, target in [
            ("../evil_hard", "good.txt"),
            ("hard_abs", "/etc/passwd"),
            ("hard_up", f"{up}/secret.txt"),
            ("hard_via_escape", "b/outside/secret.txt"),
            ("hard_ok", "good.txt"),
            ("hard_via_inlink", "inlink/good.txt"),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.LNKTYPE, target
            tar.addfile(info)
        for name, kind in [
            ("dev_null", tarfile.CHRTYPE),
            ("blockdev", tarfile.BLKTYPE),
            ("fifo", tarfile.FIFOTYPE),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.devmajor, info.devminor = kind, 1, 3
            tar.addfile(info)
    return buffer.getvalue()


def _dir_info(name):
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def _assert_contained(tmp_path, before, archive, dest, expected_skips, caught):
    """Only the archive, its companions and ``dest`` (a link to its tree) appeared; every path in
    ``dest`` stays in."""
    folder = archive.parent
    companions = {
        archive,
        folder / f".{archive.name}.lock",
        folder / f".{archive.name}.digests.json",
        folder,
        folder.parent,
    }
    tree = Path(os.path.realpath(dest))
    created = {tmp_path / p for p in _snapshot(tmp_path) - before}
    assert {p for p in created if not {dest, tree} & {p, *p.parents}} == companions
    root = os.path.realpath(dest)
    for path in dest.rglob("*"):
        resolved = os.path.realpath(path)
        assert resolved == root or resolved.startswith(root + os.sep), path
    messages = "\n".join(str(w.message) for w in caught)
    for name in expected_skips:
        assert f"{name!r}" in messages, name


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
@pytest.mark.parametrize("stdlib_filters", [True, False])
def test_hostile_tar_writes_nothing_outside(
    server, route, tmp_path, monkeypatch, mode, stdlib_filters
):
    if not stdlib_filters:  # as on Python versions that predate tarfile's extraction filters
        for name in ("data_filter", "tar_filter", "fully_trusted_filter"):
            monkeypatch.delattr(tarfile, name, raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    cache = tmp_path / "cache"
    dest = cache / "datasets" / "h_extracted"
    url = server.add(route + "/h.tar", _hostile_tar(mode, outside, dest))
    before = _snapshot(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = Path(_fetch(url, cache, fname="h.tar", extract=True))
    assert folder == dest
    _assert_contained(
        tmp_path,
        before,
        cache / "datasets" / "h.tar",
        dest,
        [
            "../evil_parent.txt",
            str(outside / "evil_abs.txt"),
            "a/../../evil_dotdot.txt",
            "link_abs",
            "link_up",
            "b",
            "b/evil_through_link.txt",
            "../evil_hard",
            "hard_abs",
            "hard_up",
            "hard_via_escape",
            "dev_null",
            "blockdev",
            "fifo",
        ],
        caught,
    )
    assert (folder / "good.txt").read_bytes() == b"good"
    assert os.readlink(folder / "ok_link") == "good.txt" and os.readlink(folder / "inlink") == "."
    assert not os.path.lexists(folder / "b")  # removed once "c" made it point outside
    assert (folder / "hard_ok").read_bytes() == b"good"
    assert os.path.samefile(folder / "hard_ok", folder / "good.txt")
    assert (folder / "hard_via_inlink").read_bytes() == b"good"
    assert (folder / "link_up" / "evil_through_refused_link.txt").read_bytes() == b"inside"
    assert (outside / "secret.txt").read_text() == "secret"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def _zip_entry(zf, name, data, mode):
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    zf.writestr(info, data)


def test_hostile_zip_writes_nothing_outside(server, route, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = tmp_path / "cache"
    dest = cache / "datasets" / "z_extracted"
    buffer = io.BytesIO()
    up = os.path.relpath(outside, dest)
    with zipfile.ZipFile(buffer, "w") as zf:
        _zip_entry(zf, "good.txt", b"good", stat.S_IFREG | 0o644)
        _zip_entry(zf, "run.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o755)
        _zip_entry(zf, "../evil_parent.txt", b"x", stat.S_IFREG | 0o644)
        _zip_entry(zf, str(outside / "evil_abs.txt"), b"x", stat.S_IFREG | 0o644)
        _zip_entry(zf, "..\\evil_backslash.txt", b"x", stat.S_IFREG | 0o644)
        _zip_entry(zf, "C:evil_drive.txt", b"x", stat.S_IFREG | 0o644)
        _zip_entry(zf, "d/../../evil_dotdot.txt", b"x", stat.S_IFREG | 0o644)
        _zip_entry(zf, "zlink_up", up.encode(), stat.S_IFLNK | 0o777)
        _zip_entry(zf, "zlink_abs", str(outside).encode(), stat.S_IFLNK | 0o777)
        _zip_entry(zf, "zlink_ok", b"good.txt", stat.S_IFLNK | 0o777)
        _zip_entry(zf, "zfifo", b"", stat.S_IFIFO | 0o644)
        _zip_entry(zf, "plain", b"no unix mode", 0)
    url = server.add(route + "/z.zip", buffer.getvalue())
    before = _snapshot(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = Path(_fetch(url, cache, fname="z.zip", extract=True))
    _assert_contained(
        tmp_path,
        before,
        cache / "datasets" / "z.zip",
        dest,
        [
            "../evil_parent.txt",
            str(outside / "evil_abs.txt"),
            "..\\evil_backslash.txt",
            "C:evil_drive.txt",
            "d/../../evil_dotdot.txt",
            "zlink_up",
            "zlink_abs",
            "zfifo",
        ],
        caught,
    )
    assert (folder / "good.txt").read_bytes() == b"good"
    assert (folder / "plain").read_bytes() == b"no unix mode"
    assert os.readlink(folder / "zlink_ok") == "good.txt"
    assert os.stat(folder / "run.sh").st_mode & 0o100
    assert os.listdir(outside) == []


def test_member_under_an_extracted_file_is_skipped_not_fatal(server, route, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_file(tar, "a", b"file a")
        _add_file(tar, "a/b", b"under a file")
        tar.addfile(_dir_info("a/c"))
        loop = tarfile.TarInfo("loop")
        loop.type, loop.linkname = tarfile.SYMTYPE, "loop"
        tar.addfile(loop)
        _add_file(tar, "loop/d", b"under a looping link")
        _add_file(tar, "last", b"still extracted")
    url = server.add(route + "/m.tar", buffer.getvalue())
    with pytest.warns(UserWarning) as caught:
        folder = Path(_fetch(url, tmp_path, fname="m.tar", extract=True))
    messages = "\n".join(str(w.message) for w in caught)
    for name in ("a/b", "a/c", "loop/d"):
        assert f"{name!r}" in messages and "already extracted as a file or link" in messages
    assert (folder / "a").read_bytes() == b"file a"
    assert (folder / "last").read_bytes() == b"still extracted"
    assert _leftovers(tmp_path / "datasets") == []


# --------------------------------------------------------------------------- offline


def test_offline_serves_the_cache_and_never_the_network(server, route, tmp_path, monkeypatch):
    url = server.add(route + "/f.bin", BODY)
    cached = _fetch(url, tmp_path, file_hash=SHA256)
    monkeypatch.setenv(files.OFFLINE_ENV, "1")
    assert _fetch(url, tmp_path, file_hash=SHA256) == cached
    with pytest.raises(FileNotFoundError, match=f"{files.OFFLINE_ENV} is set"):
        _fetch(server.add(route + "/g.bin", BODY), tmp_path)
    with pytest.raises(ValueError, match="force_download"):
        _fetch(url, tmp_path, force_download=True)
    Path(cached).write_bytes(b"?" * len(BODY))
    with pytest.raises(FileNotFoundError, match="does not match"):
        _fetch(url, tmp_path, file_hash=SHA256)
    assert len(server.requests(route + "/f.bin")) == 1
    assert server.requests(route + "/g.bin") == []


def test_offline_still_reads_file_urls_and_validates_its_switch(tmp_path, monkeypatch):
    source = tmp_path / "src.bin"
    source.write_bytes(BODY)
    monkeypatch.setenv(files.OFFLINE_ENV, "true")
    assert Path(_fetch(source.as_uri(), tmp_path / "c")).read_bytes() == BODY
    monkeypatch.setenv(files.OFFLINE_ENV, "maybe")
    with pytest.raises(ValueError, match="JKUTILS_OFFLINE='maybe'"):
        _fetch(source.as_uri(), tmp_path / "c")
    monkeypatch.setenv(files.OFFLINE_ENV, "0")
    assert _fetch(source.as_uri(), tmp_path / "c")


# --------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"origin": None}, ValueError, "origin"),
        ({"origin": b"http://x/y"}, TypeError, "origin"),
        ({"origin": "ftp://127.0.0.1/x"}, ValueError, "http://, https:// or file://"),
        ({"origin": "/local/path"}, ValueError, "http://, https:// or file://"),
        ({"origin": "file://otherhost/x"}, ValueError, "remote host"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": (1, 2, 3)}, ValueError, "timeout"),
        ({"timeout": (1,)}, ValueError, "timeout"),
        ({"timeout": (1, -1)}, ValueError, "timeout"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 1.5}, ValueError, "max_retries"),
        ({"backoff": -1}, ValueError, "backoff"),
        ({"backoff": float("nan")}, ValueError, "backoff"),
        ({"backoff": float("inf")}, ValueError, "backoff"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"timeout": (1, float("nan"))}, ValueError, "timeout"),
        ({"verbose": 3}, ValueError, "verbose"),
        ({"extract": True, "archive_format": "rar"}, ValueError, "archive_format"),
        ({"extract": True, "archive_format": None}, ValueError, "archive_format"),
        ({"extract": True, "archive_format": []}, ValueError, "archive_format"),
        ({"cache_dir": 3}, TypeError, "cache_dir"),
        ({"fname": 3}, TypeError, "fname"),
    ],
)
def test_bad_arguments_fail_before_any_request(kwargs, error, match, tmp_path):
    kwargs = {"origin": "http://127.0.0.1:1/x.bin", "cache_dir": str(tmp_path), **kwargs}
    with pytest.raises(error, match=match):
        get_file(**kwargs)


# --------------------------------------------------------------------------- faults: full disks

BODY2 = bytes(reversed(BODY))  # the same size as BODY, other bytes: "the file changed"


@pytest.fixture
def small_fs(tmp_path):
    """A real 1 MiB tmpfs (needs root), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the RLIMIT_FSIZE test covers this case")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("via", ["file", "http"])
def test_full_disk_fails_naming_it_and_keeps_nothing(server, route, tmp_path, small_fs, via):
    body = os.urandom(1 << 20)  # one read of the file:// copy; the disk has room for 3/4 of it
    (small_fs / "filler").write_bytes(b"x" * (256 << 10))
    source = tmp_path / "source.bin"
    source.write_bytes(body)
    origin = source.as_uri() if via == "file" else server.add(route + "/source.bin", body)
    digest = hashlib.sha256(body).hexdigest()
    with pytest.raises(OSError) as info:
        _fetch(origin, small_fs / "cache", file_hash=digest)
    assert info.value.errno == errno.ENOSPC
    assert "ran out while writing" in str(info.value)
    assert os.listdir(small_fs / "cache" / "datasets") == [".source.bin.lock"]


_FSIZE_CHILD = r"""
import json, os, resource, signal, sys
from jkutils.files import get_file
origin, cache_dir, digest, limit = sys.argv[1:5]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that write() fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
try:
    get_file(origin=origin, cache_dir=cache_dir, file_hash=digest, verbose=0)
    print(json.dumps({"errno": None}))
except OSError as err:
    print(json.dumps({"errno": err.errno, "message": str(err)}))
"""


def test_file_size_limit_fails_naming_it_and_keeps_nothing(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(BODY)  # read as 1 MiB, then 4 bytes: the second write is cut short
    cache = tmp_path / "cache"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _FSIZE_CHILD,
            source.as_uri(),
            str(cache),
            SHA256,
            str((1 << 20) + 2),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["errno"] == errno.EFBIG, result
    assert "ran out while writing" in result["message"]
    assert os.listdir(cache / "datasets") == [".source.bin.lock"]


# --------------------------------------------------------------------------- faults: resuming


@pytest.mark.parametrize("etag_kind", ["weak", "none"])
def test_changed_file_without_a_strong_validator_is_fetched_whole_again(
    server, route, tmp_path, monkeypatch, etag_kind
):
    _sleeps(monkeypatch)
    url = server.add(
        route, BODY, next_body=BODY2, etag_kind=etag_kind, cut_after=300_000, cut_times=1
    )
    path = _fetch(url, tmp_path, fname="x")
    assert Path(path).read_bytes() == BODY2  # the new version, never a splice of the two
    assert [r.headers.get("Range") for r in server.requests(route)] == [None, None]


def test_old_enough_last_modified_is_a_strong_validator(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    modified = email.utils.formatdate(time.time() - 86400, usegmt=True)
    url = server.add(
        route, BODY, etag_kind="none", last_modified=modified, cut_after=300_000, cut_times=1
    )
    assert Path(_fetch(url, tmp_path, fname="x")).read_bytes() == BODY
    sent = [(r.headers.get("Range"), r.headers.get("If-Range")) for r in server.requests(route)]
    assert sent == [(None, None), ("bytes=300000-", modified)]


def test_last_modified_just_now_is_weak(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    modified = email.utils.formatdate(time.time(), usegmt=True)
    url = server.add(
        route,
        BODY,
        next_body=BODY2,
        etag_kind="none",
        last_modified=modified,
        cut_after=300_000,
        cut_times=1,
        honour_if_range=False,
    )
    assert Path(_fetch(url, tmp_path, fname="x")).read_bytes() == BODY2
    assert [r.headers.get("Range") for r in server.requests(route)] == [None, None]


@pytest.mark.parametrize("honour_if_range", [True, False])
def test_changed_strong_etag_restarts_from_zero(
    server, route, tmp_path, monkeypatch, honour_if_range
):
    _sleeps(monkeypatch)
    url = server.add(
        route,
        BODY,
        next_body=BODY2,
        cut_after=300_000,
        cut_times=1,
        honour_if_range=honour_if_range,
    )
    assert Path(_fetch(url, tmp_path, fname="x")).read_bytes() == BODY2
    sent = [(r.headers.get("Range"), r.headers.get("If-Range")) for r in server.requests(route)]
    route_info = server._server.routes[route]
    assert sent[1] == ("bytes=300000-", route_info.etag_of(BODY))
    if not honour_if_range:  # the server answered 206 with the new ETag: the part is dropped
        assert sent[2:] == [(None, None)]


# --------------------------------------------------------------------------- faults: the record


def test_file_corrupted_in_place_with_its_mtime_restored_is_hashed_again(
    server, route, tmp_path, capsys
):
    url = server.add(route + "/f.bin", BODY)
    path = Path(_fetch(url, tmp_path, file_hash=SHA256))
    before = os.stat(path)
    time.sleep(0.05)  # let the file system's ctime clock tick past the download's
    with open(path, "r+b") as file:  # bit rot, or rsync --inplace -t: same size, same inode
        file.seek(1000)
        file.write(b"\xff")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    _fetch(url, tmp_path, file_hash=SHA256, verbose=1)
    assert "does not match the expected" in capsys.readouterr().out
    assert path.read_bytes() == BODY
    assert len(server.requests(route + "/f.bin")) == 2


# --------------------------------------------------------------------------- faults: encodings


def _big_archive():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_file(tar, "top/noise.bin", os.urandom(600_000))
    return buffer.getvalue()


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip"])
def test_archive_served_with_a_gzip_content_encoding_is_stored_as_served(
    server, route, tmp_path, encoding
):
    body = _archive_bytes("tar.gz")
    url = server.add(route + "/d.tar.gz", body, content_encoding=encoding)
    digest = hashlib.sha256(body).hexdigest()
    path = _fetch(url, tmp_path, file_hash=digest)
    assert Path(path).read_bytes() == body
    folder = Path(_fetch(url, tmp_path, fname="d.tar.gz", extract=True, file_hash=digest))
    assert (folder / "top" / "a.txt").read_bytes() == b"alpha"


def test_cut_gzip_encoded_answer_resumes_at_the_raw_offset(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    body = _big_archive()
    url = server.add(
        route + "/d.tar.gz", body, content_encoding="gzip", cut_after=300_000, cut_times=1
    )
    path = _fetch(url, tmp_path, file_hash=hashlib.sha256(body).hexdigest())
    assert Path(path).read_bytes() == body
    assert [r.headers.get("Range") for r in server.requests(route + "/d.tar.gz")] == [
        None,
        "bytes=300000-",
    ]


def test_any_urllib3_error_is_retried_then_raised_as_a_connection_error(
    server, route, tmp_path, monkeypatch
):
    import urllib3

    _sleeps(monkeypatch)
    real, calls = urllib3.response.HTTPResponse.read1, []

    def failing_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise urllib3.exceptions.DecodeError("failed to decode it")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read1", failing_once)
    url = server.add(route, BODY)
    assert Path(_fetch(url, tmp_path, fname="x", file_hash=SHA256)).read_bytes() == BODY
    calls.clear()
    with pytest.raises(requests.ConnectionError, match=f"{url}: the transfer .* stopped at 0"):
        _fetch(url, tmp_path, fname="y", max_retries=0)


# --------------------------------------------------------------------------- faults: slow servers


def test_trickling_server_is_abandoned_below_the_minimum_rate(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route + "/f.bin", BODY, trickle_s=0.2)  # 5 bytes/s, never silent for 0.2 s
    with pytest.raises(requests.Timeout, match="min_rate"):
        _fetch(url, tmp_path, min_rate=(100, 1.0), timeout=5, max_retries=1)
    assert len(server.requests(route + "/f.bin")) == 2
    assert os.listdir(tmp_path / "datasets") == [".f.bin.lock"]


# --------------------------------------------------------------------------- faults: names, lock


def test_symlinked_lock_file_is_refused(server, route, tmp_path):
    folder = tmp_path / "datasets"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (folder / ".f.bin.lock").symlink_to(victim)
    (folder / ".g.bin.lock").symlink_to(tmp_path / "created_by_the_lock")  # dangling
    for name in ("f.bin", "g.bin"):
        with pytest.raises(OSError, match="lock file is a symbolic link") as info:
            _fetch(server.add(f"{route}/{name}", BODY), tmp_path)
        assert info.value.errno == errno.ELOOP
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "created_by_the_lock").exists()
    assert server.requests(route + "/f.bin") == []


@pytest.mark.parametrize("length", [225, 240, 255])
def test_long_names_get_a_lock_a_temp_file_and_a_digest_record(
    server, route, tmp_path, monkeypatch, length
):
    name = "n" * (length - 4) + ".bin"
    url = server.add(f"{route}/{name}", BODY)
    path = _fetch(url, tmp_path, file_hash=SHA256)
    assert Path(path).name == name and Path(path).read_bytes() == BODY
    hidden = [n for n in os.listdir(tmp_path / "datasets") if n.startswith(".")]
    assert len(hidden) == 2 and all(len(n) <= 255 for n in hidden)  # lock and digest record
    monkeypatch.setattr(files, "_hash_file", lambda *a: pytest.fail("hashed again"))
    assert _fetch(url, tmp_path, file_hash=SHA256) == path


def test_long_name_extracts(server, route, tmp_path):
    name = "a" * 240 + ".tar.gz"
    url = server.add(f"{route}/{name}", _archive_bytes())
    folder = Path(_fetch(url, tmp_path, fname=name, extract=True))
    assert folder.name == "a" * 240 + "_extracted"
    assert (folder / "top" / "a.txt").read_bytes() == b"alpha"
    assert _leftovers(tmp_path / "datasets") == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"origin": "file:"}, ValueError, "`origin`: 'file:' names no file"),
        ({"origin": "file://"}, ValueError, "names no file"),
        ({"origin": "http://"}, ValueError, "`origin`: 'http://' names no host"),
        ({"origin": "https:///x.bin"}, ValueError, "names no host"),
        ({"origin": "http://127.0.0.1:1/x\0.bin"}, ValueError, "`origin`.*NUL"),
        ({"fname": "x\0.bin"}, ValueError, "`fname` contains a NUL byte"),
        ({"cache_dir": ""}, ValueError, "`cache_dir` is empty"),
        ({"timeout": 1e300}, ValueError, "timeout"),
        ({"timeout": (1.0, 1e300)}, ValueError, "timeout"),
        ({"min_rate": 100}, ValueError, "min_rate"),
        ({"min_rate": (100, 0)}, ValueError, "min_rate"),
        ({"origin": "http://127.0.0.1:1/d/..\\..\\Windows\\evil.dll"}, ValueError, "backslash"),
    ],
)
def test_bad_origins_names_and_limits_fail_before_any_request(kwargs, error, match, tmp_path):
    kwargs = {"origin": "http://127.0.0.1:1/x.bin", "cache_dir": str(tmp_path), **kwargs}
    with pytest.raises(error, match=match):
        get_file(**kwargs)
    assert not any(tmp_path.rglob("*.lock"))


# --------------------------------------------------------------------------- faults: extraction

_EXTRACT_CHILD = r"""
import contextlib, glob, os, sys, time
from jkutils import _download
go, origin, cache_dir, index, count, files_n = sys.argv[1:7]
_download.file_lock = lambda *args, **kwargs: contextlib.nullcontext()  # a lock that does nothing
from jkutils.files import get_file
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
folder = get_file("d.tar.gz", origin, cache_dir=cache_dir, extract=True, verbose=0)
open(f"{go}.done{index}", "w").close()
os.chdir(folder)  # as a script that works inside the folder it was given
deadline, rounds = time.time() + 60, 0
while True:  # keep reading the tree we were given while the others finish
    for k in range(int(files_n)):
        with open(os.path.join("top", f"f{k}.txt"), "rb") as file:
            assert file.read() == f"file {k} ".encode() * 200, k
    rounds += 1
    if len(glob.glob(f"{go}.done*")) == int(count) or time.time() > deadline:
        break
print(folder, rounds)
"""


def test_concurrent_extractions_without_a_lock_never_fail_or_pull_a_tree_away(tmp_path):
    n_files, n_children = 300, 4
    source = tmp_path / "d.tar.gz"
    with tarfile.open(source, "w:gz") as tar:
        for k in range(n_files):
            _add_file(tar, f"top/f{k}.txt", f"file {k} ".encode() * 200)
    cache = tmp_path / "cache"
    get_file("d.tar.gz", source.as_uri(), cache_dir=str(cache), verbose=0)  # cached, not extracted
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _EXTRACT_CHILD,
                str(go),
                source.as_uri(),
                str(cache),
                str(i),
                str(n_children),
                str(n_files),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i in range(n_children)
    ]
    try:
        assert all(child.stdout.readline().strip() == "ready" for child in children)
        go.touch()
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [c.returncode for c in children] == [0] * n_children, [err for _, err in outputs]
    folder = cache / "datasets" / "d_extracted"
    assert {out.split()[-2] for out, _ in outputs} == {str(folder)}
    assert sorted(os.listdir(folder / "top")) == sorted(f"f{k}.txt" for k in range(n_files))
    assert _leftovers(cache / "datasets") == []


def test_trees_of_replaced_archives_go_and_lost_races_go_after_an_hour(server, route, tmp_path):
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    folder = Path(_fetch(url, tmp_path, fname="d.tar.gz", extract=True))
    datasets = tmp_path / "datasets"
    first_tree = os.readlink(folder)
    loser = datasets / first_tree.replace(".tree", "").rsplit(".", 1)[0]
    loser = Path(f"{loser}.aaaaaaaaaaaa.tree")  # what a lost race of the same content leaves
    shutil.copytree(datasets / first_tree, loser)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_file(tar, "top/new.txt", b"new")
    server.add(route + "/d.tar.gz", buffer.getvalue())
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True, force_download=True)
    assert not (datasets / first_tree).exists()  # another archive's tree: deleted at once
    assert loser.exists()  # fresh: its caller may still be reading it
    two_hours_ago = time.time() - 7200
    os.utime(loser, (two_hours_ago, two_hours_ago))
    os.utime(datasets / os.readlink(folder), (two_hours_ago, two_hours_ago))
    server.add(route + "/d.tar.gz", _archive_bytes())
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True, force_download=True)
    assert not loser.exists()
    trees = [n for n in os.listdir(datasets) if n.endswith(".tree")]
    assert trees == [os.readlink(folder)]  # only the tree in use is left
    assert (folder / "top" / "a.txt").read_bytes() == b"alpha"


def test_tar_hard_link_named_like_its_own_target_extracts(server, route, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_file(tar, "file.txt", b"content")
        info = tarfile.TarInfo("file.txt")
        info.type, info.linkname = tarfile.LNKTYPE, "file.txt"
        tar.addfile(info)
    url = server.add(route + "/h.tar", buffer.getvalue())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is skipped
        folder = Path(_fetch(url, tmp_path, fname="h.tar", extract=True))
    assert os.listdir(folder) == ["file.txt"]
    assert (folder / "file.txt").read_bytes() == b"content"


_ZIP_MEMORY_CHILD = r"""
import resource, sys, warnings
from jkutils.files import get_file
warnings.simplefilter("ignore")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(get_file("z.zip", sys.argv[1], cache_dir=sys.argv[2], extract=True, verbose=0))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_huge_zip_symlink_entry_is_refused_without_reading_it(tmp_path):
    archive = tmp_path / "z.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as entry:
            for _ in range(256):  # 256 MiB of "a" as a link target, about 250 KiB compressed
                entry.write(b"a" * (1 << 20))
        _zip_entry(zf, "ok.txt", b"ok", stat.S_IFREG | 0o644)
    assert archive.stat().st_size < 1 << 20
    child = subprocess.run(
        [sys.executable, "-c", _ZIP_MEMORY_CHILD, archive.as_uri(), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.returncode == 0, child.stderr
    folder, grown_kib = child.stdout.split()[-2], int(child.stdout.split()[-1])
    assert grown_kib < 32 << 10, f"peak memory grew by {grown_kib} KiB"  # not 256 MiB or more
    assert (Path(folder) / "ok.txt").read_bytes() == b"ok"
    assert not os.path.lexists(Path(folder) / "link")

    with pytest.warns(UserWarning, match="'link'.*longer than 4096 bytes"):
        _fetch(archive.as_uri(), tmp_path / "again", extract=True)


def test_extraction_and_lock_warnings_point_at_the_callers_line(
    server, route, tmp_path, monkeypatch
):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_file(tar, "../evil.txt", b"x")
    url = server.add(route + "/w.tar", buffer.getvalue())
    with pytest.warns(UserWarning, match="evil.txt") as caught:
        _fetch(url, tmp_path, fname="w.tar", extract=True)
    assert [w.filename for w in caught] == [__file__]

    monkeypatch.setattr(_download, "_try_lock", lambda fd: (_ for _ in ()).throw(OSError(37, "x")))
    with pytest.warns(RuntimeWarning, match="continuing without the lock") as caught:
        _fetch(server.add(route + "/f.bin", BODY), tmp_path)
    assert [w.filename for w in caught] == [__file__]


def test_without_symbolic_links_the_tree_is_moved_in_and_recorded(
    server, route, tmp_path, monkeypatch
):
    def no_symlinks(*args, **kwargs):
        raise OSError(1, "symbolic links are not permitted here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    folder = Path(_fetch(url, tmp_path, fname="d.tar.gz", extract=True))
    assert folder.is_dir() and not folder.is_symlink()
    (folder / "top" / "a.txt").unlink()
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True)
    assert not (folder / "top" / "a.txt").exists()  # recorded as extracted: not done again
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_file(tar, "top/new.txt", b"new")
    server.add(route + "/d.tar.gz", buffer.getvalue())
    _fetch(url, tmp_path, fname="d.tar.gz", extract=True, force_download=True)
    assert sorted(p.name for p in (folder / "top").iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path / "datasets") == []
    assert not [n for n in os.listdir(tmp_path / "datasets") if n.endswith(".tree")]


def test_extraction_onto_a_full_disk_fails_naming_it_and_keeps_the_previous_one(
    server, route, tmp_path, small_fs
):
    url = server.add(route + "/d.tar.gz", _archive_bytes())
    folder = Path(_fetch(url, small_fs, fname="d.tar.gz", extract=True))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_file(tar, "top/zeros.bin", bytes(2 << 20))  # 2 MiB on a 1 MiB disk, 2 KiB packed
    server.add(route + "/d.tar.gz", buffer.getvalue())
    with pytest.raises(OSError) as info:
        _fetch(url, small_fs, fname="d.tar.gz", extract=True, force_download=True)
    assert info.value.errno == errno.ENOSPC and "ran out while writing" in str(info.value)
    assert (folder / "top" / "a.txt").read_bytes() == b"alpha"
    assert _leftovers(small_fs / "datasets") == []
    assert len([n for n in os.listdir(small_fs / "datasets") if n.endswith(".tree")]) == 1


def test_a_416_answer_to_a_resume_starts_over_from_byte_0(server, route, tmp_path, monkeypatch):
    _sleeps(monkeypatch)
    url = server.add(route, BODY, cut_after=300_000, cut_times=1, refuse_ranges=True)
    assert Path(_fetch(url, tmp_path, fname="x", max_retries=2)).read_bytes() == BODY
    assert [r.headers.get("Range") for r in server.requests(route)] == [
        None,
        "bytes=300000-",
        None,
    ]
