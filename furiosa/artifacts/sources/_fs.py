"""Small filesystem helpers shared by the sources modules: atomic writes, fsync, cleanup.

Every file this package produces is written under a ``*.incomplete`` name in the directory
of its final name, flushed and fsynced, then renamed with :func:`os.replace`, so a reader
never sees a partial file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1 << 20
INCOMPLETE_SUFFIX = ".incomplete"
DISK_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


def incomplete_path(final: Path) -> Path:
    """The stable partial-file name used for ``final`` (same directory, ``.incomplete`` suffix)."""
    return final.with_name(final.name + INCOMPLETE_SUFFIX)


def write_chunk(fh: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to ``fh``; the single place where bytes hit the disk (a test hook)."""
    fh.write(data)


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def remove_quietly(path: Path) -> None:
    """Remove a file if it exists; read-only files included; never raises for a missing file."""
    with contextlib.suppress(FileNotFoundError):
        try:
            os.remove(path)
        except PermissionError:
            os.chmod(path, 0o644)
            os.remove(path)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform supports it)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def finish_file(fh: BinaryIO) -> None:
    """Flush and fsync an open file before it is renamed into place."""
    fh.flush()
    os.fsync(fh.fileno())


def commit(tmp: Path, final: Path, *, readonly: bool = False) -> Path:
    """Atomically rename the already-fsynced ``tmp`` to ``final`` (same directory)."""
    if readonly:
        os.chmod(tmp, 0o444)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


def sibling_prefix(final: Path) -> str:
    """The name prefix of this process's temporary siblings of ``final``: ``.<name>.<pid>.``."""
    return f".{final.name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an absurd number): leave its files alone
    return True


def sweep_stale_siblings(final: Path) -> int:
    """Remove the temporary siblings of ``final`` (``.<name>.<pid>.<random>.incomplete`` files or staging
    directories) left by processes that no longer exist (SIGKILL, power loss); the count removed.

    Called before each new temporary sibling is made, so leftovers never accumulate: at most one per
    live writer remains. A stable partial download (``<name>.incomplete``) is not touched: it is resumed.
    """
    removed = 0
    prefix = f".{final.name}."
    try:
        candidates = [p for p in final.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(INCOMPLETE_SUFFIX)]
    except OSError:
        return 0
    for path in candidates:
        pid_text = path.name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                remove_quietly(path)
            removed += 1
    return removed


@contextlib.contextmanager
def temporary_sibling(final: Path) -> Iterator[Path]:
    """A unique ``.<final>.<pid>.<random>.incomplete`` path beside ``final``, removed unless committed.

    Unique names let several writers target the same ``final`` at once; the last
    :func:`os.replace` wins and every one of them is complete. Siblings left by killed
    processes are swept first (:func:`sweep_stale_siblings`).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_siblings(final)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=sibling_prefix(final), suffix=INCOMPLETE_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        remove_quietly(tmp)


def atomic_copy(src: Path, dest: Path, *, link: bool = False) -> Path:
    """Place a copy of ``src`` at ``dest`` atomically (hardlink when ``link`` and possible).

    Raises:
        OSError: the copy could not be written (nothing is left under ``dest``'s name).
    """
    with temporary_sibling(dest) as tmp:
        linked = False
        if link:
            remove_quietly(tmp)
            try:
                os.link(src, tmp)
                linked = True
            except OSError:
                linked = False
        if not linked:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, CHUNK_SIZE)
                finish_file(fout)
            # the cache stores blobs read-only; the copy belongs to the caller
            os.chmod(tmp, 0o644)
        commit(tmp, dest)
    return dest
