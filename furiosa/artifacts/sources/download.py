"""Verified, resumable downloads into the shared cache.

Order in which sources are tried (first success wins):

1. the cache (``blobs/sha256/<hex>``, re-hashed): a hit never touches the network;
2. ``dest`` itself when it already holds the right bytes;
3. the mirrors in ``$FURIOSA_ARTIFACTS_MIRRORS`` (the user set them explicitly), in order;
4. the ``mirrors`` argument, in order;
5. the ``urls`` argument, in order (the official sources from params.yaml).

A mirror is a base URL (``http(s)://``, ``file://``) or a local directory; the file is looked
up there under its basename (``filename`` or the last path segment of the first URL).
``$FURIOSA_ARTIFACTS_MIRRORS`` separates entries by whitespace or :data:`os.pathsep` (URLs with
a ``:port`` are recognised, so ``http://host:8080/w:/srv/weights`` is two entries).

HTTP transfers stream into ``blobs/sha256/<hex>.incomplete``. Connection errors, timeouts,
truncated bodies, 408/429 and 5xx are retried on the same URL with exponential backoff,
resuming with ``Range: bytes=<have>-`` (a 206 must carry a matching ``Content-Range``; a 200
restarts from zero). 4xx statuses (404, 403, ...) and failed name resolution move on to the
next source without retrying. Each completed file is checked against ``size`` and ``sha256``;
a mismatch deletes the partial and moves on. After a transient failure of every source, the
partial is kept so that the next call resumes it; a full disk deletes it and stops at once.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from furiosa.artifacts import atomic
from furiosa.artifacts.errors import (
    ChecksumError,
    DeadlineExceeded,
    DownloadError,
    GaveUp,
    LocalWriteError,
    Permanent,
    SpecError,
)
from furiosa.artifacts.sources import cache, diskio
from furiosa.artifacts.sources.transfer import http_attempt, local_attempt, with_retries

__all__ = ["DEFAULT_DEADLINE_S", "ENV_DEADLINE", "ENV_MIRRORS", "Candidate", "download", "parse_mirrors", "plan_candidates"]

log = logging.getLogger(__name__)

ENV_MIRRORS = "FURIOSA_ARTIFACTS_MIRRORS"
#: Environment variable overriding the default overall deadline of one download, in seconds.
ENV_DEADLINE = "FURIOSA_ARTIFACTS_DOWNLOAD_DEADLINE"
#: Default overall deadline of one download (all sources, retries and backoff together), in seconds.
DEFAULT_DEADLINE_S = 3600.0
_HTTP_SCHEMES = ("http", "https")
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Candidate:
    """One place to fetch the file from: ``kind`` is ``"http"``, ``"local"`` or ``"invalid"``."""

    kind: str
    location: str
    origin: str  # "env mirror", "mirror" or "url"
    note: str = ""  # why an invalid candidate cannot be used


# --------------------------------------------------------------------------- candidates

_MIRROR_TOKEN = re.compile(
    rf"(?P<url>[A-Za-z][A-Za-z0-9+.\-]*://(?:\[[^\]\s]*\]|[^\s:/]*)(?::\d+)?(?:/[^\s{re.escape(os.pathsep)}]*)?)"
    rf"|(?P<path>[^\s{re.escape(os.pathsep)}]+)"
)


def parse_mirrors(value: str | None) -> list[str]:
    """Split a ``$FURIOSA_ARTIFACTS_MIRRORS`` value into entries (see the module docstring)."""
    if not value:
        return []
    return [m.group(0) for m in _MIRROR_TOKEN.finditer(value)]


def _basename(urls: Sequence[str], filename: str | None) -> str | None:
    if filename is not None:
        name = filename
    elif urls:
        first = urls[0]
        if "://" in first:
            name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(first).path))
        else:
            name = Path(first).name
    else:
        return None
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


def _classify(location: str, origin: str) -> Candidate:
    scheme = urllib.parse.urlsplit(location).scheme.lower() if "://" in location else ""
    if scheme in _HTTP_SCHEMES:
        return Candidate("http", location, origin)
    if scheme == "file":
        return Candidate("local", urllib.request.url2pathname(urllib.parse.urlsplit(location).path), origin)
    if scheme:
        return Candidate("invalid", location, origin, f"unsupported URL scheme {scheme!r}")
    return Candidate("local", str(Path(location).expanduser()), origin)


def _mirror_candidate(base: str, name: str | None, origin: str) -> Candidate:
    if name is None:
        return Candidate("invalid", base, origin, "no file name to look up (pass filename=...)")
    if "://" in base and urllib.parse.urlsplit(base).scheme.lower() in _HTTP_SCHEMES:
        return Candidate("http", base.rstrip("/") + "/" + urllib.parse.quote(name), origin)
    directory = _classify(base, origin)
    if directory.kind != "local":
        return directory
    if not Path(directory.location).is_dir():
        return Candidate("invalid", base, origin, "mirror directory does not exist")
    return Candidate("local", str(Path(directory.location) / name), origin)


def plan_candidates(
    urls: Sequence[str], *, mirrors: Sequence[str] = (), filename: str | None = None
) -> list[Candidate]:
    """The sources :func:`download` would try, in order (env mirrors, ``mirrors``, ``urls``)."""
    name = _basename(urls, filename)
    planned = [_mirror_candidate(m, name, "env mirror") for m in parse_mirrors(os.environ.get(ENV_MIRRORS))]
    planned += [_mirror_candidate(m, name, "mirror") for m in mirrors]
    planned += [_classify(u, "url") for u in urls]
    seen: set[tuple[str, str]] = set()
    unique = []
    for cand in planned:
        if (cand.kind, cand.location) not in seen:
            seen.add((cand.kind, cand.location))
            unique.append(cand)
    return unique


# --------------------------------------------------------------------------- transfers


def _fetch_candidate(
    cand: Candidate,
    partial: Path,
    *,
    expected: dict[str, str],
    size: int | None,
    retries: int,
    timeout: float,
    backoff: float,
    bar: tqdm,
    deadline_at: float | None = None,
) -> str | None:
    """Fill ``partial`` with verified bytes from ``cand``; return None or why it failed."""
    if cand.kind == "invalid":
        return cand.note
    clean_restart_done = False
    while True:
        resumed = partial.exists() and partial.stat().st_size > 0 and cand.kind == "http"
        try:
            with_retries(
                (lambda: http_attempt(cand.location, partial, size=size, timeout=timeout, bar=bar,
                                      deadline_at=deadline_at))
                if cand.kind == "http" else (lambda: local_attempt(cand.location, partial, size=size, bar=bar)),
                partial, retries=retries, timeout=timeout, backoff=backoff, where=cand.location, log=log,
                deadline_at=deadline_at)
        except (Permanent, GaveUp) as exc:
            return str(exc)
        try:
            cache.verify_file(partial, size=size, **expected)
        except ChecksumError as exc:
            atomic.remove_quietly(partial)
            if resumed and not clean_restart_done:
                # the kept prefix may be what is wrong: download this source once from zero
                clean_restart_done = True
                log.warning("%s: %s after resuming; downloading again from zero", cand.location, exc)
                continue
            return str(exc).replace(f"{partial}: ", "")
        return None


def _disk_full_error(path: Path, needed: int | None, error: OSError | None) -> DownloadError:
    need = f"at least {needed} bytes " if needed else ""
    err = DownloadError(
        f"no space left on device for {path}: free {need}on that file system, or set "
        f"{cache.ENV_HOME} to a directory on a larger disk, then run again"
    )
    err.errno = error.errno if error is not None else 28  # ENOSPC
    return err


def _failure_message(
    name: str, pin: str, size: int | None, tried: list[tuple[Candidate, str]], partial: Path
) -> str:
    what = f"{name or 'file'} ({pin}" + (f", {size} bytes)" if size is not None else ")")
    lines = [f"could not download {what}; tried:"]
    lines += [f"  - {cand.location} [{cand.origin}]: {reason}" for cand, reason in tried]
    if not tried:
        lines.append("  (no URL or mirror given)")
    if partial.exists():
        lines.append(
            f"A partial download ({partial.stat().st_size} bytes) is kept at {partial}; running again resumes it."
        )
    holder = name or f"the file with {pin}"
    lines.append(
        f"To fix: check the network or proxy settings and the URLs, or set {ENV_MIRRORS} to a "
        f"directory (or base URL) holding {holder}, or explicitly request synthetic weights "
        "(seeded random init, marked not deployable) for an offline test build."
    )
    return "\n".join(lines)


def _alias_path(algo: str, digest: str) -> Path:
    return cache.cache_root() / "aliases" / algo / cache.normalize_digest(algo, digest)


def _alias_lookup(algo: str, digest: str, size: int | None) -> Path | None:
    """The sha256-keyed blob recorded for a file pinned by ``algo``/``digest``, re-verified against the pin."""
    alias = _alias_path(algo, digest)
    try:
        sha256 = alias.read_text("ascii").strip()
        blob = cache.cache_path("sha256", sha256)
    except (OSError, ValueError):
        return None
    if not blob.is_file():
        return None
    try:
        cache.verify_file(blob, size=size, **{algo: digest})
    except ChecksumError:
        return None
    return blob


def _commit_pinned(partial: Path, algo: str, digest: str) -> Path:
    """Move a verified partial pinned by sha384/md5 to ``blobs/sha256/<the sha256 we compute>``; record the alias."""
    sha256 = cache.hash_file(partial)["sha256"]
    blob = cache.cache_path("sha256", sha256)
    with cache.blob_lock("sha256", sha256):
        if cache.lookup("sha256", sha256) is not None:
            atomic.remove_quietly(partial)
        else:
            blob.parent.mkdir(parents=True, exist_ok=True)
            atomic.commit(partial, blob, mode=cache.BLOB_MODE)
    atomic.atomic_write_text(_alias_path(algo, digest), sha256 + "\n")
    return blob


def _pin(sha256: str | None, pin: tuple[str, str] | None) -> tuple[str, str]:
    if (sha256 is None) == (pin is None):
        raise SpecError("give exactly one of sha256=... or pin=(algorithm, digest)")
    algo, digest = ("sha256", sha256) if pin is None else pin
    if algo not in cache.HASH_ALGORITHMS:
        raise SpecError(f"pin algorithm must be one of {sorted(cache.HASH_ALGORITHMS)}, got {algo!r}")
    length = cache.HASH_ALGORITHMS[algo]
    if not isinstance(digest, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", digest):
        raise SpecError(f"{algo} must be {length} hexadecimal characters, got {digest!r}")
    return algo, digest.lower()


def _deadline_s(value: float | None) -> float:
    """The overall deadline in seconds: ``value``, else the environment's, else the default."""
    where = "deadline"
    if value is None:
        text = os.environ.get(ENV_DEADLINE, "").strip()
        if not text:
            return DEFAULT_DEADLINE_S
        where = ENV_DEADLINE
        try:
            value = float(text)
        except ValueError:
            raise SpecError(f"{ENV_DEADLINE}={text!r}: expected a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise SpecError(f"{where} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def download(
    urls: Sequence[str],
    *,
    sha256: str | None = None,
    size: int | None,
    pin: tuple[str, str] | None = None,
    dest: Path | None = None,
    mirrors: Sequence[str] = (),
    filename: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    progress: bool = True,
    link: bool = False,
    deadline: float | None = None,
) -> Path:
    """Fetch a file by its sha256 (or by ``pin``: a published ``("sha384"|"md5", hex)``) through the cache,
    from the first source that works. The cache is keyed by sha256 either way: a file pinned by another
    algorithm is verified against its pin, then stored under the sha256 we compute (``aliases/`` records it).

    The order of sources and the retry rules are in the module docstring. Returns ``dest``
    (written atomically: a copy, or a hardlink to the read-only cache entry with ``link``)
    or, without ``dest``, the cache entry itself. ``retries`` counts extra attempts per
    source; ``timeout`` bounds each connect and each read; ``backoff`` is the first delay
    in seconds (doubling, capped at 30 s); ``progress`` shows a tqdm bar on stderr. ``deadline`` bounds
    the whole download, every source, retry and backoff together, in wall seconds (default
    ``$FURIOSA_ARTIFACTS_DOWNLOAD_DEADLINE``, else :data:`DEFAULT_DEADLINE_S`), so a server dripping bytes
    just inside ``timeout`` cannot hold it forever; past it the partial is kept and a rerun resumes it.

    Raises:
        SpecError: ``sha256``/``size``/``retries`` is malformed.
        DownloadError: every source failed (the message lists each source and why, and
            what to do), or the disk is full (``errno`` ENOSPC; the partial is removed).
    """
    algo, digest = _pin(sha256, pin)
    expected = {algo: digest}
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise SpecError(f"size must be a non-negative integer or None, got {size!r}")
    if isinstance(urls, (str, bytes)):
        raise SpecError("urls must be a list of URLs, not a single string")
    if retries < 0:
        raise SpecError(f"retries must be >= 0, got {retries!r}")
    deadline = _deadline_s(deadline)
    dest = Path(dest) if dest is not None else None

    def cached() -> Path | None:
        if algo == "sha256":
            return cache.lookup("sha256", digest, size=size)
        return _alias_lookup(algo, digest, size)

    def commit(partial: Path, blob: Path) -> Path:
        if algo == "sha256":
            atomic.commit(partial, blob, mode=cache.BLOB_MODE)
            return blob
        return _commit_pinned(partial, algo, digest)

    def deliver(blob: Path) -> Path:
        if dest is None:
            return blob
        try:
            return atomic.atomic_copy(blob, dest, link=link)
        except OSError as exc:
            if diskio.is_disk_full(exc):
                raise _disk_full_error(dest, size, exc) from exc
            raise DownloadError(f"cannot write {dest}: {exc.strerror or exc}") from exc

    hit = cached()
    if hit is not None:
        return deliver(hit)
    if dest is not None and dest.is_file():
        try:
            cache.verify_file(dest, size=size, **expected)
            return dest
        except ChecksumError:
            pass  # replaced below, atomically
    candidates = plan_candidates(urls, mirrors=mirrors, filename=filename)
    name = _basename(urls, filename) or ""
    blob = cache.cache_path(algo, digest)
    partial = diskio.incomplete_path(blob)
    with cache.blob_lock(algo, digest):
        hit = cached()  # another process may have finished it
        if hit is not None:
            return deliver(hit)
        blob.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists() and size is not None and partial.stat().st_size > size:
            atomic.remove_quietly(partial)
        have = partial.stat().st_size if partial.exists() else 0
        if size is not None and have == size:  # finished earlier but never committed
            try:
                cache.verify_file(partial, size=size, **expected)
                return deliver(commit(partial, blob))
            except ChecksumError:
                atomic.remove_quietly(partial)
                have = 0
        if size is not None and shutil.disk_usage(blob.parent).free < size - have:
            raise _disk_full_error(partial, size - have, None)
        tried: list[tuple[Candidate, str]] = []
        deadline_at = time.monotonic() + deadline
        with tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name or digest[:12],
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ) as bar:
            for cand in candidates:
                try:
                    reason = _fetch_candidate(
                        cand,
                        partial,
                        expected=expected,
                        size=size,
                        retries=retries,
                        timeout=timeout,
                        backoff=backoff,
                        bar=bar,
                        deadline_at=deadline_at,
                    )
                except DeadlineExceeded as exc:
                    tried.append((cand, f"{exc} ({deadline:g} s; set {ENV_DEADLINE} or deadline= to allow more)"))
                    break
                except LocalWriteError as exc:
                    atomic.remove_quietly(partial)
                    if diskio.is_disk_full(exc.error):
                        raise _disk_full_error(exc.path, size, exc.error) from exc.error
                    raise DownloadError(
                        f"cannot write {exc.path}: {exc.error.strerror or exc.error}; check the "
                        f"permissions there or set {cache.ENV_HOME} to a writable directory"
                    ) from exc.error
                if reason is None:
                    return deliver(commit(partial, blob))
                log.info("%s: %s", cand.location, reason)
                tried.append((cand, reason))
        error = DownloadError(_failure_message(name, f"{algo} {digest}", size, tried, partial))
        error.attempts = tried  # type: ignore[attr-defined]
        raise error
