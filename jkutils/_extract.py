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

Every member goes into a fresh temp folder beside the destination, which replaces the
destination only once everything is written: a failed extraction leaves the previous one alone.
A last pass removes any symbolic link that a later member made point outside.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import stat
import tarfile
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from typing import IO

ARCHIVE_FORMATS = ("tar", "zip")
"""Formats ``extract_into`` knows, in the order ``"auto"`` tries them."""

_COPY_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


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


def extract_into(archive: str, dest: str, fmt: str) -> None:
    """Extract ``archive`` (a ``fmt`` archive) so that ``dest`` holds exactly its safe members.

    The members are written into a temp folder beside ``dest``; then an existing ``dest`` is
    moved aside, the temp folder renamed to ``dest`` and the old one deleted. If anything fails
    the temp folder is removed and ``dest`` is left as it was.

    Example:
        >>> extract_into("data.tar.gz", "data_extracted", "tar")  # doctest: +SKIP
    """
    parent, name = os.path.split(os.path.abspath(dest))
    temp = os.path.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.extracting")
    os.mkdir(temp, 0o777)  # the umask applies, as for any folder the user creates
    try:
        with _members_of(archive, fmt) as members:
            _write_members(members, temp, archive)
        _swap_in(temp, dest)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


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
        link = zf.read(info).decode("utf-8", "surrogateescape") if kind == "symlink" else ""
        yield _Member(
            name=info.filename,
            kind=kind,
            link=link,
            executable=bool(mode & 0o100),
            mtime=None,
            open=(lambda info=info: zf.open(info)) if kind == "file" else None,
        )


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
    warnings.warn(
        f"Skipping archive member {name!r} of {archive}: {reason}.", UserWarning, stacklevel=4
    )


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


def _swap_in(temp: str, dest: str) -> None:
    old = None
    if os.path.lexists(dest):
        parent, name = os.path.split(os.path.abspath(dest))
        old = os.path.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.old")
        os.rename(dest, old)
    os.rename(temp, dest)
    if old is not None:
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.unlink(old)
