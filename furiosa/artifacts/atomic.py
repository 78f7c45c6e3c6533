"""Atomic file output: write beside the target, fsync, rename into place with :func:`os.replace`.

A reader (or DVC) never sees a half-written file under the final name: either the old file (or nothing)
is there, or the complete new one. Every file and directory this package writes atomically goes through
here. Temporaries are hidden siblings named ``.<name>.<pid>.<random>.incomplete<suffix>`` (``suffix`` is
the final name's, so numpy's savers do not append theirs); they are removed on any error, and those left
by a killed process are swept by the next write to the same name.

Standard library only: ``setup.py`` loads :mod:`furiosa.artifacts.catalog.bundle`, which uses this module,
inside pip's isolated build environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from furiosa.artifacts.errors import FileWriteError

__all__ = [
    "TEMP_SUFFIX",
    "atomic_copy",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit",
    "file_holds",
    "fsync_dir",
    "remove_quietly",
    "sweep_stale_temporaries",
    "temp_prefix",
    "temporary_sibling",
    "update_file",
]

#: What every temporary name ends with (before the final name's suffix).
TEMP_SUFFIX = ".incomplete"
_COPY_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it
#: The mode ``open()`` gives a new file: what an atomic write gives by default (mkstemp makes 0600).
DEFAULT_MODE = 0o666 & ~_UMASK


def temp_prefix(final: Path) -> str:
    """The name prefix of this process's temporaries for ``final``: ``.<name>.<pid>.``."""
    return f".{Path(final).name}.{os.getpid()}."


def _temp_suffix(final: Path) -> str:
    return TEMP_SUFFIX + Path(final).suffix


def remove_quietly(path: Path) -> None:
    """Remove a file if it exists, read-only files included; never raises for a missing file."""
    with contextlib.suppress(FileNotFoundError):
        try:
            os.remove(path)
        except PermissionError:
            os.chmod(path, 0o644)
            os.remove(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform supports it)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        _fsync(directory)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an absurd number): leave its files alone
    return True


def sweep_stale_temporaries(final: Path) -> int:
    """Remove the temporaries of ``final`` (files or staging directories) left by processes that no longer
    exist (SIGKILL, power loss); the count removed.

    Called before each new temporary is made, so leftovers never accumulate: at most one per live writer
    remains. A stable partial download (``<name>.incomplete``, no leading dot) is not touched: it is resumed.
    """
    final = Path(final)
    prefix, suffix = f".{final.name}.", _temp_suffix(final)
    try:
        candidates = [p for p in final.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return 0
    removed = 0
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


def _prepare(final: Path) -> None:
    """Create ``final``'s directory and sweep stale temporaries of ``final``."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(final, exc) from exc
    sweep_stale_temporaries(final)


def _write_error(final: Path, exc: OSError) -> FileWriteError:
    return FileWriteError(exc.errno, exc.strerror or str(exc), str(final))


@contextlib.contextmanager
def temporary_sibling(final: Path) -> Iterator[Path]:
    """A new empty file beside ``final`` with a unique temporary name, removed on exit unless committed.

    Unique names let several writers target the same ``final`` at once; the last :func:`commit` wins and
    every one of them is complete. The directory is created if missing; stale temporaries are swept first.
    Most callers want :func:`atomic_path`, which also commits.

    Raises:
        FileWriteError: no file can be created beside ``final``.
    """
    final = Path(final)
    _prepare(final)
    try:
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=temp_prefix(final), suffix=_temp_suffix(final))
    except OSError as exc:
        raise _write_error(final, exc) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        remove_quietly(tmp)  # after a commit it no longer exists


def commit(tmp: Path, final: Path, *, mode: int | None = None) -> Path:
    """Rename the complete, fsynced file ``tmp`` to ``final`` (same file system) and make that durable.

    ``mode``, when given, is set on the file first (``0o444`` for read-only cache entries).
    """
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)
    return Path(final)


@contextlib.contextmanager
def atomic_path(final: Path | str, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; when the body returns, fsync it and rename it to ``final``.

    The temporary file exists (empty) when yielded; the writer may also replace it (``np.savez``,
    ``onnx.save``): its name ends with ``final``'s suffix. ``mode`` is the new file's permission bits
    (default :data:`DEFAULT_MODE`, what ``open`` would give). If the body raises, the temporary is removed
    and ``final`` is untouched. The parent directory is created if missing.

    Raises:
        FileWriteError: no temporary file can be created beside ``final``.
        FileNotFoundError: the body removed the temporary file and wrote nothing.
    """
    final = Path(final)
    with temporary_sibling(final) as tmp:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the writer did not produce {tmp} for {final}")
        _fsync(tmp)
        commit(tmp, final, mode=DEFAULT_MODE if mode is None else mode)


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path` for ``mode`` and what it raises)."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path | str, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def file_holds(path: Path, content: str | bytes) -> bool:
    """Whether the file ``path`` exists and holds exactly ``content`` (text as UTF-8)."""
    path = Path(path)
    if not path.is_file():
        return False
    return path.read_bytes() == (content.encode("utf-8") if isinstance(content, str) else content)


def update_file(path: Path | str, content: str | bytes) -> bool:
    """Write ``content`` (text as UTF-8) to ``path`` atomically unless it already holds exactly that; an
    existing file keeps its mode. Returns whether the file changed (generated files: docs, local params).

    Raises:
        FileWriteError: no temporary file can be created beside ``path``.
    """
    path = Path(path)
    if file_holds(path, content):
        return False
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    atomic_write_bytes(path, content.encode("utf-8") if isinstance(content, str) else content, mode=mode)
    return True


def atomic_copy(src: Path, dest: Path, *, link: bool = False) -> Path:
    """Place a copy of ``src`` at ``dest`` atomically (a hardlink when ``link`` and possible); ``dest``.

    A copy gets mode 0644 (the cache stores blobs read-only; the copy belongs to the caller); a hardlink
    shares ``src``'s inode and mode.

    Raises:
        OSError: the copy could not be written (nothing is left under ``dest``'s name);
            FileWriteError when no temporary file can be made beside ``dest``.
    """
    dest = Path(dest)
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
                shutil.copyfileobj(fin, fout, _COPY_CHUNK)
                fout.flush()
                os.fsync(fout.fileno())
            os.chmod(tmp, 0o644)
        commit(tmp, dest)
    return dest


@contextlib.contextmanager
def atomic_directory(final: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new empty staging directory beside ``final``; when the body returns, rename it to ``final``.

    ``final`` never holds half a tree. It must not exist or be an empty directory, unless ``replace``:
    then an existing tree is removed just before the rename (a reader may see no ``final`` for that
    moment). The staged directory gets mode 0755. On any error the staging directory is removed.

    Raises:
        FileWriteError: no directory can be created beside ``final``.
        OSError: ``final`` is not empty (without ``replace``) or cannot be replaced.
    """
    final = Path(final)
    _prepare(final)
    try:
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=temp_prefix(final), suffix=_temp_suffix(final)))
    except OSError as exc:
        raise _write_error(final, exc) from exc
    try:
        yield staging
        os.chmod(staging, 0o755)
        if final.is_dir() and not final.is_symlink():
            if replace:
                shutil.rmtree(final)
            else:
                final.rmdir()  # os.replace onto a directory needs it gone
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(final.parent)
