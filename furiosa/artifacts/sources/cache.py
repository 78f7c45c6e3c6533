"""The shared, content-addressed download cache.

Layout under :func:`cache_root` (``$FURIOSA_ARTIFACTS_HOME``, default ``~/.cache/furiosa-artifacts``)::

    blobs/sha256/<64 hex>              verified files, read-only, addressed by sha256
    blobs/sha256/<64 hex>.incomplete   a partial download being written or kept for resuming
    blobs/md5/<32 hex>                 the same for md5 (a DVC remote addresses files by md5)
    blobs/<algo>/<hex>.incomplete      a partial download pinned by a published sha384/md5 (source pins)
    aliases/<algo>/<hex>               the sha256 we computed for a file pinned by sha384/md5
    locks/<algo>/<hex>.lock            per-blob inter-process locks

An entry appears under its final name only after its bytes were hashed and matched, via an
fsynced ``*.incomplete`` file in the same directory and :func:`os.replace` (:mod:`furiosa.artifacts.atomic`); the cache never
holds a corrupt entry under a final name, and a hit never touches the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from furiosa.artifacts import atomic
from furiosa.artifacts.errors import ChecksumError, UnsafePathError
from furiosa.artifacts.sources import diskio

__all__ = [
    "BLOB_MODE",
    "ENV_HOME",
    "HASH_ALGORITHMS",
    "blob_lock",
    "cache_path",
    "cache_root",
    "hash_file",
    "insert",
    "lookup",
    "normalize_digest",
    "verify_file",
]

ENV_HOME = "FURIOSA_ARTIFACTS_HOME"
#: supported algorithms and the length of their hex digests
HASH_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha384": 96, "md5": 32}
#: the mode of every cache entry: read-only
BLOB_MODE = 0o444

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def cache_root() -> Path:
    """The cache directory: ``$FURIOSA_ARTIFACTS_HOME`` or ``~/.cache/furiosa-artifacts`` (not created)."""
    env = os.environ.get(ENV_HOME, "").strip()
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "furiosa-artifacts"
    return root.absolute()


def normalize_digest(algo: str, digest: str) -> str:
    """Return ``digest`` in canonical form (lower-case hex of the right length).

    Raises:
        UnsafePathError: unknown algorithm, or a digest that is not plain hex of the right
            length (so it can never carry ``/``, ``..`` or another path into the cache).
    """
    if algo not in HASH_ALGORITHMS:
        raise UnsafePathError(
            f"unknown hash algorithm {algo!r} for the download cache; use one of {sorted(HASH_ALGORITHMS)}"
        )
    length = HASH_ALGORITHMS[algo]
    if not isinstance(digest, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", digest):
        raise UnsafePathError(
            f"refusing {digest!r} as a {algo} cache key: expected exactly {length} hexadecimal "
            f"characters (compute it with `{algo}sum FILE`)"
        )
    return digest.lower()


def cache_path(algo: str, digest: str, *, root: Path | None = None) -> Path:
    """Where the blob with this digest lives (``<root>/blobs/<algo>/<hex>``); nothing is created.

    Raises:
        UnsafePathError: invalid algorithm or digest, or a path that would leave the cache.
    """
    digest = normalize_digest(algo, digest)
    base = (root if root is not None else cache_root()).absolute()
    path = base / "blobs" / algo / digest
    # belt and braces: the digest is validated above, but never trust a joined path
    if os.path.commonpath([os.path.normpath(base), os.path.normpath(path)]) != os.path.normpath(base):
        raise UnsafePathError(f"cache path {path} would escape the cache root {base}")
    return path


def hash_file(path: Path, algos: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Stream ``path`` once and return ``{algo: hexdigest}``.

    Raises:
        OSError: the file cannot be read.
    """
    hashers = {algo: hashlib.new(algo) for algo in algos}
    with open(path, "rb") as fh:
        while chunk := fh.read(diskio.CHUNK_SIZE):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {algo: hasher.hexdigest() for algo, hasher in hashers.items()}


def verify_file(path: Path, *, sha256: str | None = None, md5: str | None = None, size: int | None = None,
                sha384: str | None = None) -> None:
    """Check a file's size and hashes (streaming, one read).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ChecksumError: the size or a digest differs; the message names the file, the
            expected and the actual value.
        UnsafePathError: an expected digest is not valid hex (see :func:`normalize_digest`).
    """
    path = Path(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ChecksumError(f"{path}: size mismatch: expected {size} bytes, got {actual_size} bytes")
    expected = {
        algo: normalize_digest(algo, value)
        for algo, value in (("sha256", sha256), ("sha384", sha384), ("md5", md5))
        if value is not None
    }
    if not expected:
        return
    actual = hash_file(path, tuple(expected))
    for algo, want in expected.items():
        if actual[algo] != want:
            raise ChecksumError(f"{path}: {algo} mismatch: expected {want}, got {actual[algo]} ({actual_size} bytes)")


def lookup(algo: str, digest: str, *, size: int | None = None, verify: bool = True) -> Path | None:
    """The cached blob for this digest, or None; never touches the network.

    With ``verify`` (default) the blob is re-hashed; an entry that no longer matches
    (modified on disk behind our back) is deleted and reported as absent.

    Raises:
        UnsafePathError: invalid algorithm or digest.
    """
    path = cache_path(algo, digest)
    if not path.is_file():
        return None
    if verify:
        try:
            verify_file(path, size=size, **{algo: digest})
        except ChecksumError:
            atomic.remove_quietly(path)
            return None
    elif size is not None and path.stat().st_size != size:
        atomic.remove_quietly(path)
        return None
    return path


@contextlib.contextmanager
def blob_lock(algo: str, digest: str) -> Iterator[None]:
    """Hold an exclusive, inter-process and inter-thread lock on one cache entry.

    Raises:
        UnsafePathError: invalid algorithm or digest.
        OSError: the lock file cannot be created.
    """
    digest = normalize_digest(algo, digest)
    lock_path = cache_root() / "locks" / algo / f"{digest}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh open file description per call, so flock also excludes threads of one process
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows
            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            else:  # pragma: no cover - Windows
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


def insert(src: Path, algo: str, digest: str, *, size: int | None = None) -> Path:
    """Copy ``src`` into the cache under ``digest``, verified, atomically; return the entry.

    The bytes are hashed as they are copied, so what lands in the cache is what was checked.

    Raises:
        ChecksumError: ``src`` does not match ``digest``/``size`` (nothing is inserted).
        UnsafePathError: invalid algorithm or digest.
        OSError: reading ``src`` or writing the cache failed (nothing is inserted).
    """
    digest = normalize_digest(algo, digest)
    final = cache_path(algo, digest)
    with blob_lock(algo, digest):
        existing = lookup(algo, digest, size=size)
        if existing is not None:
            return existing
        with atomic.atomic_path(final, mode=BLOB_MODE) as tmp:
            hasher = hashlib.new(algo)
            copied = 0
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(diskio.CHUNK_SIZE):
                    hasher.update(chunk)
                    copied += len(chunk)
                    diskio.write_chunk(fout, chunk)
            if size is not None and copied != size:
                raise ChecksumError(f"{src}: size mismatch: expected {size} bytes, got {copied} bytes")
            if hasher.hexdigest() != digest:
                raise ChecksumError(
                    f"{src}: {algo} mismatch: expected {digest}, got {hasher.hexdigest()} ({copied} bytes)"
                )
    return final
