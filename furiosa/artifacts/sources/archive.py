"""Safe extraction from tar archives (``.tar``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``).

Every member is checked before anything is written: no absolute names, no ``..``, no
symlink or hardlink whose target leaves the destination, no device files or FIFOs.
Where Python offers it (3.12, and 3.8.17+/3.9.17+/3.10.12+/3.11.4+), the stdlib ``data``
extraction filter is applied as well. Output appears atomically.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from furiosa.artifacts.errors import SpecError, UnsafePathError
from furiosa.artifacts.sources import _fs

__all__ = ["check_member", "extract_member", "safe_extract"]

_FILTER_ERROR: type[BaseException] | tuple[()] = getattr(tarfile, "FilterError", ())


def _normalized(name: str, *, what: str, archive: Path) -> str:
    """A member name as a clean relative POSIX path, or UnsafePathError."""
    if "\0" in name:
        raise UnsafePathError(f"{archive}: {what} {name!r} contains a NUL byte; refusing to extract")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UnsafePathError(f"{archive}: {what} {name!r} is an absolute path; refusing to extract")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{archive}: {what} {name!r} contains '..'; refusing to extract")
    return "/".join(parts)


def check_member(member: tarfile.TarInfo, *, archive: Path) -> None:
    """Refuse a member that could write outside the destination or create a special file.

    Raises:
        UnsafePathError: absolute path, ``..``, link pointing out, device/FIFO/unknown type.
    """
    name = _normalized(member.name, what="member", archive=archive)
    if member.isdev():
        raise UnsafePathError(f"{archive}: member {member.name!r} is a device file or FIFO; refusing to extract")
    if member.issym():
        target = member.linkname.replace("\\", "/")
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


def safe_extract(tar_path: Path, dest: Path) -> Path:
    """Extract the whole archive into the directory ``dest`` after checking every member.

    The archive is unpacked into a temporary sibling directory that is renamed to ``dest``,
    so ``dest`` never holds half an archive. ``dest`` must not exist or be empty.

    Raises:
        UnsafePathError: a member is unsafe (see :func:`check_member`); nothing is written.
        FileExistsError: ``dest`` exists and is not an empty directory.
        tarfile.TarError: the archive is corrupt.
    """
    tar_path, dest = Path(tar_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not an empty directory; remove it or choose another")
    with _open(tar_path) as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member, archive=tar_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_fs.INCOMPLETE_SUFFIX))
        try:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            try:
                tar.extractall(staging, members=members, **kwargs)
            except _FILTER_ERROR as exc:
                raise UnsafePathError(f"{tar_path}: {exc}; refusing to extract") from exc
            os.chmod(staging, 0o755)
            os.replace(staging, dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    _fs.fsync_dir(dest.parent)
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
        with source, _fs.temporary_sibling(dest) as tmp:
            with open(tmp, "wb") as out:
                while chunk := source.read(_fs.CHUNK_SIZE):
                    _fs.write_chunk(out, chunk)
                _fs.finish_file(out)
            os.chmod(tmp, 0o644)
            _fs.commit(tmp, dest)
    return dest


def _clean_or_none(name: str) -> str | None:
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        return None
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    return None if ".." in parts else "/".join(parts)
