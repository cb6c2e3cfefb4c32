"""Archive extraction that never writes outside its destination, on every Python version.

Tar (plain, gz, bz2, xz) and zip members are read into one neutral form (:class:`_Member`) and
written by one routine that checks each of them against the destination as it stands at that
moment. It does not rely on :mod:`tarfile`'s extraction filters, which exist only on some
Python versions: the same rules hold everywhere.

Refused (a ``UserWarning`` names the member and the reason; the rest is extracted):

* absolute names (``/x``, ``\\x``, ``C:x``) and names with a ``..`` component;
* members whose parent folder resolves, through links already extracted, outside the
  destination;
* symbolic links with an absolute target or a target that resolves outside the destination,
  and hard links whose target is not a regular file already extracted inside it;
* device files, FIFOs and any other special member.

Every member goes into a fresh temp folder beside the destination; a last pass removes any
symbolic link that a later member made point outside. Only then is the tree published, in two
atomic renames that never touch a tree another caller may be reading:

1. the temp folder is renamed to ``.<dest>.<archive digest>.<random>.tree``, a name no other
   caller uses, which is never renamed again;
2. a symbolic link to it, made under a temp name, is renamed over ``dest`` (``os.replace`` of a
   link is atomic), so ``dest`` always names a complete tree, the old one or the new one.

The digest in the tree's name tells later calls, without any other record, which archive
``dest`` holds. Two callers extracting the same archive at once (a lock that the file system
ignores) both succeed; the tree that lost the race is left for :func:`remove_stale_work`, an
hour later, since its caller may still be reading it. A tree of another archive is deleted once
it is replaced. Where symbolic links cannot be made (Windows without the privilege), ``dest``
becomes the tree itself, moved in with a rename and recorded in ``.<dest>.extracted.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from typing import IO

from jkutils._download import (
    STALE_PARTIAL_S,
    companion,
    companion_pattern,
    disk_full_error,
    read_json,
    remove_stale_partials,
    unique_token,
    write_json,
)
from jkutils._user_warnings import warn_user

ARCHIVE_FORMATS = ("tar", "zip")
"""Formats ``extract_into`` knows, in the order ``"auto"`` tries them."""

PATH_MAX = 4096
"""Longest symbolic-link target accepted (Linux's ``PATH_MAX``); longer ones are never read."""

_COPY_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_TREE_DIGEST = r"([0-9a-f]{32}|[0-9a-f]{64})\.[0-9a-f]+"  # then ".tree"


@dataclasses.dataclass(frozen=True)
class _Member:
    """One archive entry, whatever the archive format."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    link: str = ""
    executable: bool = False
    mtime: float | None = None
    open: Callable[[], IO[bytes]] | None = None


def detect_format(path: str, formats: tuple[str, ...]) -> str | None:
    """The first of ``formats`` that ``path`` is an archive of, or None.

    Example:
        >>> detect_format("data.tar.gz", ("tar", "zip"))  # doctest: +SKIP
        'tar'
    """
    tests = {"tar": tarfile.is_tarfile, "zip": zipfile.is_zipfile}
    return next((fmt for fmt in formats if tests[fmt](path)), None)


def extract_into(archive: str, dest: str, fmt: str, digest: str) -> None:
    """Extract ``archive`` (a ``fmt`` archive) so that ``dest`` names exactly its safe members.

    ``digest`` (the archive's hex digest) goes into the tree's name, where
    :func:`extracted_digest` reads it back. If anything fails the temp folder is removed and
    ``dest`` is left as it was.

    Raises:
        OSError: writing failed; a full disk, quota or file-size limit is named as such.

    Example:
        >>> extract_into("data.tar.gz", "data_extracted", "tar", "ab12...")  # doctest: +SKIP
    """
    dest = os.path.abspath(dest)
    token = unique_token()
    temp = companion(dest, f"{token}.extracting")
    try:
        os.mkdir(temp, 0o777)  # the umask applies, as for any folder the user creates
        with _members_of(archive, fmt) as members:
            _write_members(members, temp, archive)
        tree = companion(dest, f"{digest}.{token}.tree")
        os.rename(temp, tree)
    except BaseException as err:
        shutil.rmtree(temp, ignore_errors=True)
        full = disk_full_error(err, dest)
        if full is not None:
            raise full from err
        raise
    _publish(tree, dest, digest)


def extracted_digest(dest: str) -> str | None:
    """Digest of the archive whose tree ``dest`` names, or None (missing, or not made here).

    Example:
        >>> extracted_digest("/nowhere/data_extracted") is None
        True
    """
    target = _link_target(dest)
    if target is None:  # missing, or a folder: the fallback without symbolic links, or foreign
        marker = read_json(companion(dest, "extracted.json"))
        return marker.get("digest") if os.path.isdir(dest) and _is_marked(dest, marker) else None
    return _tree_digest(dest, target) if os.path.isdir(dest) else None


def _tree_digest(dest: str, tree_name: str) -> str | None:
    """The archive digest in the name of one of ``dest``'s trees, or None for other names."""
    match = companion_pattern(os.path.basename(dest), _TREE_DIGEST + r"\.tree").fullmatch(tree_name)
    return match.group(1) if match else None


def remove_stale_work(dest: str, max_age_s: float = STALE_PARTIAL_S) -> None:
    """Delete what killed or superseded extractions into ``dest`` left, once ``max_age_s`` old.

    Temp folders, links and trees that ``dest`` does not name; the tree it names is kept.
    """
    remove_stale_partials(dest, max_age_s, suffixes=(".extracting", ".link", ".old"))
    remove_stale_partials(
        dest, max_age_s, suffixes=(".tree",), middle=_TREE_DIGEST, keep=_link_target(dest)
    )


@contextlib.contextmanager
def _members_of(archive: str, fmt: str) -> Iterator[Iterator[_Member]]:
    if fmt == "tar":
        with tarfile.open(archive, "r:*") as tar:
            yield _tar_members(tar)
    else:
        with zipfile.ZipFile(archive) as zf:
            yield _zip_members(zf)


def _tar_members(tar: tarfile.TarFile) -> Iterator[_Member]:
    for info in tar:
        yield _Member(
            name=info.name,
            kind=_tar_kind(info),
            link=info.linkname,
            executable=bool(info.mode & 0o100),
            mtime=info.mtime,
            open=(lambda info=info: tar.extractfile(info)) if info.isreg() else None,
        )


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "special"


def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = _zip_kind(info, mode)
        link = _zip_link_target(zf, info) if kind == "symlink" else ""
        yield _Member(
            name=info.filename,
            kind=kind,
            link=link,
            executable=bool(mode & 0o100),
            mtime=None,
            open=(lambda info=info: zf.open(info)) if kind == "file" else None,
        )


def _zip_link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The target of a zip symlink entry, read no further than one byte past ``PATH_MAX``."""
    with zf.open(info) as entry:
        return entry.read(PATH_MAX + 1).decode("utf-8", "surrogateescape")


def _zip_kind(info: zipfile.ZipInfo, mode: int) -> str:
    if info.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if mode == 0 or stat.S_ISREG(mode) or not stat.S_IFMT(mode):
        return "file"
    return "special"


# --------------------------------------------------------------------------- writing


def _write_members(members: Iterator[_Member], root: str, archive: str) -> None:
    root = os.path.realpath(root)
    symlinks: list[str] = []
    for member in members:
        reason = _write_member(member, root, symlinks)
        if reason:
            _skip(archive, member.name, reason)
    for link in symlinks:  # a later member may have re-pointed a folder a link passes through
        if os.path.islink(link) and not _inside(os.path.realpath(link), root):
            os.unlink(link)
            _skip(archive, os.path.relpath(link, root), "its target now resolves outside")


def _skip(archive: str, name: str, reason: str) -> None:
    warn_user(f"Skipping archive member {name!r} of {archive}: {reason}.", UserWarning)


def _write_member(member: _Member, root: str, symlinks: list[str]) -> str | None:
    """Write one member under ``root``; return why it was refused, or None when written."""
    parts, reason = _relative_parts(member.name)
    if reason:
        return reason
    if not parts:  # the archive's own root ("./")
        return None
    if member.kind == "special":
        return "device files, FIFOs and other special files are not extracted"
    parent = os.path.realpath(os.path.join(root, *parts[:-1]))
    if not _inside(parent, root):
        return "its folder resolves outside the destination"
    path = os.path.join(parent, parts[-1])
    if member.kind == "dir":
        return _make_dir(path, root)
    if not _made_dirs(parent):
        return "one of its folders was already extracted as a file or link"
    if os.path.isdir(path) and not os.path.islink(path):
        return "a folder of that name was already extracted"
    if member.kind == "file":
        _write_file(member, path)
        return None
    if member.kind == "symlink":
        return _make_symlink(member.link, path, parent, root, symlinks)
    return _make_hardlink(member.link, path, root)


def _relative_parts(name: str) -> tuple[list[str], str | None]:
    """The path components of a member name, or why the name is unsafe."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return [], "absolute paths are not extracted"
    if "\0" in name:
        return [], "the name contains a NUL byte"
    parts = [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]
    if ".." in parts:
        return [], "names with '..' are not extracted"
    return parts, None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _make_dir(path: str, root: str) -> str | None:
    if not _inside(os.path.realpath(path), root):
        return "it resolves outside the destination"
    if os.path.lexists(path) and not os.path.isdir(path):
        return "a file of that name was already extracted"
    if not _made_dirs(path):
        return "one of its folders was already extracted as a file or link"
    return None


def _made_dirs(path: str) -> bool:
    """Create the folder ``path`` and its parents; False where a file (or link) is in the way."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        return False
    return os.path.isdir(path)


def _write_file(member: _Member, path: str) -> None:
    _remove_existing(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o777 if member.executable else 0o666)
    with os.fdopen(fd, "wb") as out, member.open() as source:
        shutil.copyfileobj(source, out, _COPY_CHUNK)
    if member.mtime is not None:
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(path, (member.mtime, member.mtime))


def _make_symlink(
    target: str, path: str, parent: str, root: str, symlinks: list[str]
) -> str | None:
    if len(os.fsencode(target)) > PATH_MAX:
        return f"symbolic link whose target is longer than {PATH_MAX} bytes"
    if not target or target.startswith(("/", "\\")) or _DRIVE.match(target):
        return f"symbolic link to the absolute or empty target {target!r}"
    if not _inside(os.path.realpath(os.path.join(parent, target)), root):
        return f"symbolic link whose target {target!r} resolves outside the destination"
    _remove_existing(path)
    try:
        os.symlink(target, path)
    except OSError as err:  # e.g. Windows without the symlink privilege
        return f"symbolic link could not be created ({err})"
    symlinks.append(path)
    return None


def _make_hardlink(target: str, path: str, root: str) -> str | None:
    parts, reason = _relative_parts(target)
    if reason or not parts:
        return f"hard link to {target!r}: {reason or 'empty target'}"
    source = os.path.realpath(os.path.join(root, *parts))
    if not _inside(source, root):
        return f"hard link whose target {target!r} resolves outside the destination"
    if not os.path.isfile(source):
        return f"hard link to {target!r}, which is not a file extracted before it"
    if os.path.lexists(path) and os.path.samefile(source, path):
        return None  # a link named like its own target (tar writes these): already in place
    _remove_existing(path)
    try:
        os.link(source, path, follow_symlinks=False)
    except OSError:  # file systems without hard links: a copy has the same content
        shutil.copyfile(source, path, follow_symlinks=False)
    return None


def _remove_existing(path: str) -> None:
    """Unlink a file or link at ``path`` (never following it) so a member can take its place."""
    if os.path.lexists(path):
        os.unlink(path)


# --------------------------------------------------------------------------- publishing


def _publish(tree: str, dest: str, digest: str) -> None:
    """Make ``dest`` name ``tree`` atomically (see the module docstring)."""
    if extracted_digest(dest) == digest:  # another caller published this content meanwhile
        shutil.rmtree(tree, ignore_errors=True)  # ours was never handed out
        return
    link = companion(dest, f"{unique_token()}.link")
    try:
        os.symlink(os.path.basename(tree), link, target_is_directory=True)
    except (OSError, NotImplementedError):
        _move_in(tree, dest, digest)
        return
    previous = _link_target(dest)
    try:
        _replace_with_link(link, dest)
    except BaseException:
        os.unlink(link)
        shutil.rmtree(tree, ignore_errors=True)  # never published
        raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(companion(dest, "extracted.json"))  # a record of the fallback, now wrong
    if previous is not None and _tree_digest(dest, previous) not in (None, digest):
        # the tree of another archive: delete it now
        shutil.rmtree(os.path.join(os.path.dirname(tree), previous), ignore_errors=True)


def _replace_with_link(link: str, dest: str) -> None:
    """``os.replace(link, dest)``, first moving aside a real folder at ``dest`` (an extraction
    by Keras or by an older version), which no rename can replace atomically."""
    for _ in range(100):
        try:
            os.replace(link, dest)
            return
        except OSError as err:
            if err.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise
        _discard(dest)
    raise OSError(errno.EBUSY, "Could not put the extraction in place (contended)", dest)


def _move_in(tree: str, dest: str, digest: str) -> None:
    """Without symbolic links: rename ``tree`` to ``dest``, replacing what was there."""
    marker = companion(dest, "extracted.json")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)
    if os.path.lexists(dest):
        _discard(dest)
    os.rename(tree, dest)
    write_json(marker, {"digest": digest, "inode": os.stat(dest).st_ino})


def _is_marked(dest: str, marker: dict) -> bool:
    return marker.get("inode") == os.stat(dest).st_ino and isinstance(marker.get("digest"), str)


def _discard(path: str) -> None:
    """Move ``path`` aside under a unique name, then delete it (gone already is fine)."""
    old = companion(path, f"{unique_token()}.old")
    try:
        os.rename(path, old)
    except FileNotFoundError:
        return
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.unlink(old)


def _link_target(dest: str) -> str | None:
    try:
        return os.readlink(dest)
    except OSError:
        return None
