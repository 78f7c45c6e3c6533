"""Weight sources: verified downloads, the shared cache, safe archive extraction.

:func:`fetch_weights` turns a ``source:`` mapping from params.yaml into a verified file:

``{type: url, urls: [...], sha256|sha384|md5: <hex>, size: <bytes>, filename: <name>, member: <path>}``
    downloaded through the cache (:func:`download`) and verified against the checksum its publisher gives
    (exactly one of ``sha256``, ``sha384``, ``md5``; the cache is keyed by the sha256 we compute either way);
    ``size``, ``filename`` (basename looked up on mirrors) and ``member`` (extract this file from a tar
    archive, e.g. a TF tarball's ``frozen_inference_graph.pb``) are optional. A source without a checksum
    is refused: nothing unpinned is ever downloaded.
``{type: file, path: <path>, sha256: <hex>, size: <bytes>}``
    a local file (relative paths are resolved against the repository and must stay inside
    it), copied after its hash is checked.

``synthetic`` and ``train`` sources are built by their own stages, never fetched; nothing
falls back from one source type to another.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from furiosa.artifacts import atomic
from furiosa.artifacts.errors import ChecksumError, DownloadError, SpecError, UnsafePathError
from furiosa.artifacts.sources import diskio
from furiosa.artifacts.sources.archive import extract_member, safe_extract
from furiosa.artifacts.sources.cache import cache_path, cache_root, hash_file, verify_file
from furiosa.artifacts.sources.download import ENV_MIRRORS, download

__all__ = [
    "ENV_MIRRORS",
    "cache_path",
    "cache_root",
    "check_pins",
    "check_source",
    "download",
    "extract_member",
    "fetch_weights",
    "hash_file",
    "safe_extract",
    "source_pin",
    "verify_file",
]

_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # type: (required, optional)
    "url": (frozenset({"type", "urls"}),
            frozenset({"sha256", "sha384", "md5", "size", "filename", "member", "publisher"})),
    "file": (frozenset({"type", "path", "sha256"}), frozenset({"size", "publisher"})),
}
_NOT_FETCHED = {
    "synthetic": "synthetic weights are a seeded random initialisation made by the build stage",
    "train": "trained weights are produced by the repository's train stage",
}


def _check_keys(source: Mapping[str, Any], kind: str, where: str) -> None:
    required, optional = _KEYS[kind]
    problems = [
        f"missing key {key!r} (required for type {kind!r}: {sorted(required)})"
        for key in sorted(required - set(source))
    ]
    for key in sorted(map(str, set(source) - required - optional)):
        close = difflib.get_close_matches(key, sorted(required | optional), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(f"unknown key {key!r} for type {kind!r}; {hint}allowed keys: {sorted(required | optional)}")
    if problems:
        raise SpecError(f"{where}: " + "; ".join(problems))


#: published checksum algorithms a url source may be pinned by, in order of preference
PIN_ALGORITHMS = ("sha256", "sha384", "md5")


def source_pin(source: Mapping[str, Any], where: str) -> tuple[str, str]:
    """The ``(algorithm, hex digest)`` a url source is pinned by.

    Raises:
        SpecError: no checksum, more than one, or a malformed one; the message names the field and the fix.
    """
    given = [algo for algo in PIN_ALGORITHMS if source.get(algo) is not None]
    if not given:
        raise SpecError(
            f"{where}: no published checksum pinned, so the download is refused (an unpinned file could be "
            f"anything). Fix: add the checksum its publisher gives as one of {', '.join(PIN_ALGORITHMS)} "
            "(plus `size:` where known), e.g. `sha256: <64 hex>`; or put a copy you verified in a mirror "
            "directory (FURIOSA_ARTIFACTS_MIRRORS) and pin its `sha256sum`; or build with `--weights synthetic` "
            "(seeded random weights, marked not deployable)"
        )
    if len(given) > 1:
        raise SpecError(f"{where}: pin one checksum, not {' and '.join(given)}: keep the one the publisher gives")
    algo = given[0]
    value, length = source[algo], {"sha256": 64, "sha384": 96, "md5": 32}[algo]
    if not isinstance(value, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value):
        raise SpecError(f"{where}.{algo}: expected {length} hexadecimal characters, got {value!r} "
                        f"(compute it with `{algo}sum FILE`, or copy it from the publisher)")
    return algo, value.lower()


def _check_sha256(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise SpecError(
            f"{where}.sha256: expected 64 hexadecimal characters, got {value!r} (compute it with `sha256sum FILE`)"
        )
    return value.lower()


def _check_size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{where}.size: expected a byte count (non-negative integer), got {value!r}")
    return value


def _check_urls(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        raise SpecError(f"{where}.urls: expected a list of URLs, got a single string; write `urls: [{value}]`")
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"{where}.urls: expected a non-empty list of http(s):// or file:// URLs, got {value!r}")
    for i, url in enumerate(value):
        if not isinstance(url, str) or not re.match(r"(?i)(https?|file)://", url):
            raise SpecError(
                f"{where}.urls[{i}]: expected an http(s):// or file:// URL, got {url!r} "
                "(for a local file use `type: file` with `path:`)"
            )
    return list(value)


def _check_relative(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.{field}: expected a non-empty string, got {value!r}")
    return value


def _resolve_file(path: str, repo_root: Path, where: str) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    root = Path(repo_root).resolve()
    resolved = (root / candidate).resolve()
    if os.path.commonpath([root, resolved]) != str(root):
        raise UnsafePathError(
            f"{where}.path: {path!r} resolves to {resolved}, outside the repository {root}; "
            "use a path inside the repository or an absolute path"
        )
    return resolved


def _copy_verified(src: Path, dest: Path, *, sha256: str, size: int | None, where: str) -> Path:
    """Copy ``src`` to ``dest`` atomically, hashing the bytes as they are copied."""
    if not src.is_file():
        error = DownloadError(
            f"{where}.path: {src} does not exist or is not a file; put the weights there or fix `path`"
        )
        error.errno = errno.ENOENT
        raise error
    with atomic.atomic_path(dest, mode=0o644) as tmp:
        hasher, copied = hashlib.sha256(), 0
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(diskio.CHUNK_SIZE):
                    hasher.update(chunk)
                    copied += len(chunk)
                    diskio.write_chunk(fout, chunk)
                diskio.finish_file(fout)
        except OSError as exc:
            if not diskio.is_disk_full(exc):
                raise
            needed = size if size is not None else src.stat().st_size
            error = DownloadError(
                f"no space left on device writing {dest}: free at least {needed} bytes on that file system"
            )
            error.errno = exc.errno
            raise error from exc
        if size is not None and copied != size:
            raise ChecksumError(f"{src}: size mismatch: expected {size} bytes, got {copied} bytes")
        if hasher.hexdigest() != sha256:
            raise ChecksumError(
                f"{src}: sha256 mismatch: expected {sha256}, got {hasher.hexdigest()} ({copied} bytes); "
                f"if the file is right, update {where}.sha256"
            )
    return dest


def check_pins(source: Mapping[str, Any], where: str = "source") -> None:
    """Validate the ``sha256`` and ``size`` pins a source carries (an absent pin is the fetch's business).

    Run when params.yaml is read, so that a malformed pin (``size: -1``, ``size: "83367"``, a short
    sha256) is an error even in a synthetic-weights build that never downloads: a pin is never silently
    disabled.

    Raises:
        SpecError: a pin is malformed; the message names the field.
    """
    if "sha256" in source:
        _check_sha256(source["sha256"], where)
    if "size" in source:
        _check_size(source["size"], where)


def check_source(source: Any, where: str = "source") -> str:
    """Validate a ``url``/``file`` source mapping without fetching anything; its type.

    Raises:
        SpecError: the mapping is invalid; the message names the field and the fix.
    """
    if not isinstance(source, Mapping):
        raise SpecError(f"{where}: expected a mapping with a 'type' key, got {type(source).__name__}")
    kind = source.get("type")
    if kind in _NOT_FETCHED:
        raise SpecError(
            f"{where}.type: {kind!r} sources are not fetched ({_NOT_FETCHED[kind]}); "
            "fetch_weights handles only 'url' and 'file'"
        )
    if kind not in _KEYS:
        raise SpecError(f"{where}.type: expected one of {sorted([*_KEYS, *_NOT_FETCHED])}, got {kind!r}")
    if "convert" in source:
        raise SpecError(f"{where}.convert: no longer used: the weights format is detected from the file's bytes "
                        "(furiosa.artifacts.weights_io); remove the key")
    _check_keys(source, kind, where)
    _check_size(source.get("size"), where)
    if kind == "file":
        _check_sha256(source["sha256"], where)
        _check_relative(source["path"], "path", where)
    else:
        source_pin(source, where)
        _check_urls(source["urls"], where)
        for key in ("filename", "member"):
            if source.get(key) is not None:
                _check_relative(source[key], key, where)
    return str(kind)


def fetch_weights(
    source: Mapping[str, Any],
    *,
    dest: Path,
    repo_root: Path,
    progress: bool = True,
    where: str = "source",
) -> Path:
    """Materialise the weights described by a params.yaml ``source`` mapping at ``dest``.

    ``where`` names the mapping in error messages (e.g. ``params.yaml:models.resnet50.source``).

    Raises:
        SpecError: the mapping is invalid (missing/unknown key, bad sha256, ...) or its type is
            ``synthetic``/``train`` (not fetched) or unknown; the message names the field.
        UnsafePathError: a ``file`` path escapes ``repo_root``, or an archive member is unsafe.
        ChecksumError: a ``file`` source does not match its sha256/size.
        DownloadError: a ``url`` source could not be fetched from anywhere, a ``file`` source
            does not exist, or the disk is full.
    """
    kind = check_source(source, where)
    size = _check_size(source.get("size"), where)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        sha256 = _check_sha256(source["sha256"], where)
        path = _check_relative(source["path"], "path", where)
        return _copy_verified(_resolve_file(path, repo_root, where), dest, sha256=sha256, size=size, where=where)
    algo, digest = source_pin(source, where)
    urls = _check_urls(source["urls"], where)
    filename = source.get("filename")
    if filename is not None:
        filename = _check_relative(filename, "filename", where)
        if "/" in filename or "\\" in filename or filename in {".", ".."}:
            raise SpecError(f"{where}.filename: expected a plain file name without directories, got {filename!r}")
    member = source.get("member")
    if member is None:
        return download(urls, pin=(algo, digest), size=size, dest=dest, filename=filename, progress=progress)
    member = _check_relative(member, "member", where)
    archive = download(urls, pin=(algo, digest), size=size, filename=filename, progress=progress)
    return extract_member(archive, member, dest)
