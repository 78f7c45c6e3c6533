"""Safe extraction from tar archives (``.tar``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``).

Every member is checked before anything is written: no absolute names, no ``..``, no name longer
than :data:`MAX_NAME_BYTES` (or a component over 255 bytes), no device files or FIFOs, no symlink or
hardlink whose target leaves the destination, at most :data:`MAX_MEMBERS` members and
:data:`MAX_TOTAL_BYTES` bytes in all. Then the archive is written by this module, not by
``tarfile.extractall``: each directory component is opened with ``O_NOFOLLOW`` relative to its parent
(``openat``-style) and each file created with ``O_NOFOLLOW``, so no path can travel through a link; symlinks
are created last, after every file, and each must then resolve (``os.path.realpath``, the real
filesystem) inside the destination. This defeats the CVE-2025-4517 class (a symlink to ``.`` followed by
``link/..`` members and PATH_MAX-long names) on every Python version, whatever its ``data`` filter does.
Hardlinks become copies of the archived file. Output appears atomically.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path

from furiosa.artifacts import atomic
from furiosa.artifacts.errors import SpecError, UnsafePathError
from furiosa.artifacts.sources import diskio

__all__ = ["MAX_MEMBERS", "MAX_NAME_BYTES", "MAX_TOTAL_BYTES", "check_member", "extract_member", "safe_extract"]

#: Most members an archive may hold (weight archives hold a handful of files).
MAX_MEMBERS = 10_000
#: Most bytes (sum of the regular files, hardlinks counted again) an archive may unpack to.
MAX_TOTAL_BYTES = 16 << 30
#: Longest member or link name, in UTF-8 bytes (far below PATH_MAX = 4096).
MAX_NAME_BYTES = 1024
#: Longest path component (NAME_MAX).
MAX_COMPONENT_BYTES = 255

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _normalized(name: str, *, what: str, archive: Path) -> str:
    """A member name as a clean relative POSIX path, or UnsafePathError."""
    if "\0" in name:
        raise UnsafePathError(f"{archive}: {what} {name!r} contains a NUL byte; refusing to extract")
    shown = name if len(name) <= 120 else name[:117] + "..."
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise UnsafePathError(f"{archive}: {what} {shown!r} is longer than {MAX_NAME_BYTES} bytes; "
                              "refusing to extract")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UnsafePathError(f"{archive}: {what} {shown!r} is an absolute path; refusing to extract")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{archive}: {what} {shown!r} contains '..'; refusing to extract")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES for p in parts):
        raise UnsafePathError(f"{archive}: {what} {shown!r} has a component longer than "
                              f"{MAX_COMPONENT_BYTES} bytes; refusing to extract")
    return "/".join(parts)


def check_member(member: tarfile.TarInfo, *, archive: Path) -> None:
    """Refuse a member that could write outside the destination or create a special file.

    Raises:
        UnsafePathError: absolute path, ``..``, over-long name, link pointing out, device/FIFO/unknown type.
    """
    name = _normalized(member.name, what="member", archive=archive)
    if member.isdev():
        raise UnsafePathError(f"{archive}: member {member.name!r} is a device file or FIFO; refusing to extract")
    if member.issym():
        if not name:
            raise UnsafePathError(f"{archive}: symlink {member.name!r} would replace the destination itself; "
                                  "refusing to extract")
        target = member.linkname.replace("\\", "/")
        if "\0" in target or len(target.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UnsafePathError(f"{archive}: symlink {member.name!r} has a NUL or over-long target; "
                                  "refusing to extract")
        if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
            raise UnsafePathError(
                f"{archive}: symlink {member.name!r} points to the absolute path {member.linkname!r}; "
                "refusing to extract"
            )
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            raise UnsafePathError(
                f"{archive}: symlink {member.name!r} -> {member.linkname!r} points outside the "
                "destination; refusing to extract"
            )
    elif member.islnk():
        _normalized(member.linkname, what=f"hardlink {member.name!r} target", archive=archive)
    elif not (member.isfile() or member.isdir()):
        raise UnsafePathError(f"{archive}: member {member.name!r} has an unsupported type; refusing to extract")


def _open(tar_path: Path) -> tarfile.TarFile:
    return tarfile.open(tar_path, mode="r:*")


def _checked_members(tar: tarfile.TarFile, tar_path: Path, max_members: int,
                     max_bytes: int) -> list[tarfile.TarInfo]:
    """Every member, each checked, within the count and size bounds (read lazily: a 20,000-member
    archive is refused at member ``max_members + 1``, before the rest of its index is read)."""
    members: list[tarfile.TarInfo] = []
    sizes: dict[str, int] = {}
    total = 0
    for member in tar:
        if len(members) >= max_members:
            raise UnsafePathError(f"{tar_path}: more than {max_members} members; refusing to extract "
                                  "(weight archives hold a few files)")
        check_member(member, archive=tar_path)
        name = _normalized(member.name, what="member", archive=tar_path)
        if member.isfile():
            sizes[name] = member.size
            total += member.size
        elif member.islnk():
            target = _normalized(member.linkname, what="hardlink target", archive=tar_path)
            if target not in sizes:
                raise UnsafePathError(f"{tar_path}: hardlink {member.name!r} -> {member.linkname!r} does not "
                                      "name an earlier regular file of the archive; refusing to extract")
            sizes[name] = sizes[target]
            total += sizes[target]
        if total > max_bytes:
            raise UnsafePathError(f"{tar_path}: unpacks to more than {max_bytes} bytes; refusing to extract "
                                  "(raise max_bytes if this archive is genuine)")
        members.append(member)
    return members


def _open_dir(parent_fd: int, part: str, *, create: bool) -> int:
    """``part`` inside the directory ``parent_fd`` as a directory fd, never through a link."""
    if create:
        try:
            os.mkdir(part, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            pass
    return os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=parent_fd)


def _write_tree(tar: tarfile.TarFile, members: list[tarfile.TarInfo], staging: Path, tar_path: Path) -> None:
    """Write directories and files component by component (openat-style), then symlinks, then check
    that every symlink resolves inside ``staging`` on the real filesystem."""
    root_fd = os.open(staging, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW)
    links: list[tuple[str, str]] = []
    try:
        for member in members:
            name = _normalized(member.name, what="member", archive=tar_path)
            if member.issym():
                links.append((name, member.linkname.replace("\\", "/")))
                continue
            parts = name.split("/") if name else []
            dirs = parts if member.isdir() else parts[:-1]
            fds = [root_fd]
            try:
                for part in dirs:
                    fds.append(_open_dir(fds[-1], part, create=True))
                if member.isdir():
                    continue
                source = tar.extractfile(member)  # a hardlink reads its archived target's data
                if source is None:  # pragma: no cover - files and hardlinks always have data
                    raise SpecError(f"{tar_path}: member {member.name!r} has no data")
                mode = 0o755 if member.mode & 0o111 else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
                out_fd = os.open(parts[-1], flags, mode, dir_fd=fds[-1])
                with source, os.fdopen(out_fd, "wb") as out:
                    while chunk := source.read(diskio.CHUNK_SIZE):
                        diskio.write_chunk(out, chunk)
                    os.fchmod(out.fileno(), mode)
            finally:
                for fd in fds[1:]:
                    os.close(fd)
        real_root = os.path.realpath(staging)
        for name, target in links:
            parent, _, leaf = name.rpartition("/")
            fds = [root_fd]
            try:
                for part in parent.split("/") if parent else []:
                    fds.append(_open_dir(fds[-1], part, create=True))
                os.symlink(target, leaf, dir_fd=fds[-1])
            finally:
                for fd in fds[1:]:
                    os.close(fd)
        for name, target in links:
            real = os.path.realpath(os.path.join(staging, name))
            if os.path.commonpath([real_root, real]) != real_root:
                raise UnsafePathError(f"{tar_path}: symlink {name!r} -> {target!r} resolves to {real}, outside "
                                      "the destination; refusing to extract")
    except OSError as exc:
        if diskio.is_disk_full(exc):
            raise
        raise UnsafePathError(f"{tar_path}: cannot extract safely ({exc.strerror or exc}: a member would go "
                              "through a link or replace a file of another type); refusing to extract") from None
    finally:
        os.close(root_fd)


def safe_extract(tar_path: Path, dest: Path, *, max_members: int = MAX_MEMBERS,
                 max_bytes: int = MAX_TOTAL_BYTES) -> Path:
    """Extract the whole archive into the directory ``dest`` after checking every member.

    The archive is unpacked into a temporary sibling directory that is renamed to ``dest``,
    so ``dest`` never holds half an archive. ``dest`` must not exist or be empty. Nothing is
    ever written outside that temporary directory (see the module docstring for how).

    Raises:
        UnsafePathError: a member is unsafe (see :func:`check_member`), a symlink resolves out, or the
            archive has more than ``max_members`` members or ``max_bytes`` bytes; nothing is left behind.
        FileExistsError: ``dest`` exists and is not an empty directory.
        tarfile.TarError: the archive is corrupt.
    """
    tar_path, dest = Path(tar_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not an empty directory; remove it or choose another")
    with _open(tar_path) as tar:
        members = _checked_members(tar, tar_path, max_members, max_bytes)
        with atomic.atomic_directory(dest) as staging:  # dest: absent or empty (checked above)
            _write_tree(tar, members, staging, tar_path)
    return dest


def extract_member(tar_path: Path, member_name: str, dest: Path) -> Path:
    """Extract one regular file of the archive to the file path ``dest``, atomically.

    Raises:
        UnsafePathError: ``member_name`` is absolute or contains ``..``.
        SpecError: no such member, or it is not a regular file (the message lists candidates).
        tarfile.TarError: the archive is corrupt.
        OSError: ``dest`` cannot be written (nothing is left under its name).
    """
    tar_path, dest = Path(tar_path), Path(dest)
    wanted = _normalized(member_name, what="requested member", archive=tar_path)
    with _open(tar_path) as tar:
        members = [m for m in tar.getmembers() if _clean_or_none(m.name) == wanted]
        if not members:
            files = [m.name for m in tar.getmembers() if m.isfile()]
            hint = ", ".join(files[:10]) + (" ..." if len(files) > 10 else "")
            raise SpecError(f"{tar_path}: no member named {member_name!r}; regular files in it: {hint}")
        member = members[-1]  # tar semantics: the last entry of a name wins
        if not member.isfile():
            raise SpecError(f"{tar_path}: member {member_name!r} is not a regular file")
        check_member(member, archive=tar_path)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isfile() members always have data
            raise SpecError(f"{tar_path}: member {member_name!r} has no data")
        with source, atomic.atomic_path(dest, mode=0o644) as tmp:
            with open(tmp, "wb") as out:
                while chunk := source.read(diskio.CHUNK_SIZE):
                    diskio.write_chunk(out, chunk)
    return dest


def _clean_or_none(name: str) -> str | None:
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        return None
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    return None if ".." in parts else "/".join(parts)
