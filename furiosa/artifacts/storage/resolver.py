"""Find a built binary's bytes without DVC: by its md5 from ``dvc.lock``, verified.

Places are tried in this order; the first whose bytes match the md5 and size wins:

1. ``workspace``: the file itself at ``<root>/<relpath>``;
2. ``dvc-cache``: the repository's DVC cache (``.dvc/cache/files/md5/xx/<rest>``);
3. ``cache``: the shared cache under ``$FURIOSA_ARTIFACTS_HOME`` (``blobs/md5/<hex>``);
4. ``remote``: the DVC remote from ``.dvc/config`` (the default one, or ``remote=NAME``): a local
   directory, an HTTP(S) server or S3-compatible object storage holding DVC's content-addressed
   layout ``files/md5/xx/<rest>``; ``$FURIOSA_ARTIFACTS_REMOTE`` (a URL) replaces the configured default.
   ``$FURIOSA_ARTIFACTS_OFFLINE=1`` forbids network remotes (a local directory is still read). What arrives is verified and stored in the shared cache
   (atomically; a corrupt object is never cached), so the next call works offline.

Each step's outcome (``hit``, ``miss``, ``verify-failed``, ``failed``) is kept in
:attr:`ResolvedFile.steps` and logged (INFO with ``verbose``, else DEBUG). A file inside a
directory output is found through the directory's ``.dir`` manifest, resolved the same way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from furiosa.artifacts.atomic import atomic_copy
from furiosa.artifacts.errors import (
    ArtifactsError,
    BinaryNotFoundError,
    ChecksumError,
    DownloadError,
    OfflineError,
    RemoteFailure,
)
from furiosa.artifacts.sources import cache
from furiosa.artifacts.storage._fetch import FAILURE_HINTS, S3Clients, fetch_object
from furiosa.artifacts.storage.lockfile import LockedOutput, object_key, read_outputs, safe_relpath
from furiosa.artifacts.storage.remote import Remote, dvc_cache_dir, read_config, read_remote

__all__ = ["SOURCES", "PullReport", "ResolvedFile", "Resolver", "checkout", "resolve_binaries", "resolve_binary"]

log = logging.getLogger("furiosa.artifacts.storage")

SOURCES = ("workspace", "dvc-cache", "cache", "remote")
ENV_OFFLINE = "FURIOSA_ARTIFACTS_OFFLINE"


def offline() -> bool:
    """Whether ``$FURIOSA_ARTIFACTS_OFFLINE`` forbids network access (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")
DEFAULT_JOBS = 4


@dataclass(frozen=True)
class ResolvedFile:
    """Where verified bytes of ``relpath`` are, and which place (:data:`SOURCES`) held them."""

    path: Path
    md5: str
    size: int | None
    source: str
    relpath: str = ""
    steps: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"relpath": self.relpath, "path": str(self.path), "md5": self.md5, "size": self.size,
                "source": self.source, "steps": list(self.steps)}


@dataclass
class PullReport:
    """What :func:`resolve_binaries` found (in the order asked) and what failed, with why."""

    resolved: list[ResolvedFile] = field(default_factory=list)
    failed: dict[str, ArtifactsError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _credentials_hint(remote: Remote) -> str:
    if remote.kind == "s3":
        return (
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, or store them "
            f"with `dvc remote modify --local {remote.name} access_key_id ...` and "
            f"`dvc remote modify --local {remote.name} secret_access_key ...`"
        )
    return "check that the URL serves the DVC remote without authentication on your network"


class Resolver:
    """Shared state of one resolve call (thread-safe): the lock file, config, remote, options; also what
    :func:`furiosa.artifacts.registries.gto.resolver_at` returns for a commit's dvc.lock."""

    def __init__(self, root: Path, *, remote: str | None, verbose: bool, progress: bool, retries: int,
                 timeout: float, backoff: float):
        self.root = Path(root)
        self.outputs = read_outputs(self.root)
        self.dvc_cache = dvc_cache_dir(self.root, read_config(self.root))
        self.remote_name, self.verbose, self.progress = remote, verbose, progress
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self._remote: Remote | None = None
        self._remote_read = False
        self._lock = threading.Lock()
        self._s3 = S3Clients()
        if verbose and not logging.getLogger().hasHandlers() and not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)

    def remote(self) -> Remote | None:
        with self._lock:
            if not self._remote_read:
                self._remote = read_remote(self.root, self.remote_name)
                self._remote_read = True
            return self._remote

    def _note(self, steps: list[str], relpath: str, step: str) -> None:
        steps.append(step)
        log.log(logging.INFO if self.verbose else logging.DEBUG, "%s: %s", relpath, step)

    # ------------------------------------------------------------------ one path

    def resolve(self, relpath: str) -> ResolvedFile:
        relpath = safe_relpath(self.root, relpath, what="binary path", inside=[self.dvc_cache])
        out = self.outputs.get(relpath)
        if out is None:
            parent = next((o for o in self.outputs.values() if o.is_dir and relpath.startswith(o.path + "/")), None)
            if parent is None:
                built = sorted(p for p in self.outputs if p.endswith(".onnx")) or sorted(self.outputs)
                raise BinaryNotFoundError(
                    f"{relpath} is not an output recorded in {self.root / 'dvc.lock'}; recorded binaries: "
                    f"{', '.join(built) or 'none'}; build it with `dvc repro` (or `furiosa-artifacts build`)"
                )
            out = self._member(parent, relpath[len(parent.path) + 1:])
        elif out.is_dir:
            raise BinaryNotFoundError(f"{relpath} is a directory output; ask for a file inside it")
        return self._object(relpath, out, workspace=True)

    def _member(self, parent: LockedOutput, member: str) -> LockedOutput:
        manifest = self._object(parent.path, LockedOutput(parent.path, parent.md5, None, True, parent.legacy),
                                workspace=False)
        try:
            entries = json.loads(manifest.path.read_text("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ChecksumError(f"{manifest.path}: unreadable directory manifest of {parent.path}: {exc}") from None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("relpath") == member and entry.get("md5"):
                return LockedOutput(f"{parent.path}/{member}", str(entry["md5"]), None, legacy=parent.legacy)
        raise BinaryNotFoundError(f"{parent.path}/{member} is not listed in the manifest of the output {parent.path}")

    def _object(self, relpath: str, out: LockedOutput, *, workspace: bool) -> ResolvedFile:
        steps: list[str] = []
        md5, size = out.md5, out.size

        def found(path: Path, source: str, where: str = "") -> ResolvedFile:
            self._note(steps, relpath, f"{source}: hit ({where or path})")
            return ResolvedFile(path=path, md5=md5, size=size, source=source, relpath=relpath, steps=tuple(steps))

        key = object_key(md5, is_dir=out.is_dir, legacy=out.legacy)
        places = [("dvc-cache", self.dvc_cache / key)]
        if workspace:
            places.insert(0, ("workspace", self.root / relpath))
        for source, path in places:
            if not path.is_file():
                self._note(steps, relpath, f"{source}: miss (no {path})")
                continue
            try:
                cache.verify_file(path, md5=md5, size=size)
            except (ChecksumError, OSError) as exc:
                self._note(steps, relpath, f"{source}: verify-failed ({exc})")
                continue
            return found(path, source)
        blob = cache.cache_path("md5", md5)
        existed = blob.is_file()
        hit = cache.lookup("md5", md5, size=size)
        if hit is not None:
            return found(hit, "cache")
        self._note(steps, relpath, f"cache: {'verify-failed (entry removed)' if existed else 'miss'} ({blob})")
        return self._from_remote(relpath, out, key, steps, found)

    def _from_remote(self, relpath: str, out: LockedOutput, key: str, steps: list[str], found) -> ResolvedFile:
        remote = self.remote()
        what = f"{relpath} (md5 {out.md5}{', %d bytes' % out.size if out.size is not None else ''})"
        if remote is None:
            self._note(steps, relpath, "remote: none configured")
            raise BinaryNotFoundError(
                f"{what} is in neither the workspace, the DVC cache ({self.dvc_cache}) nor {cache.cache_root()}, "
                "and no default DVC remote is configured: add one with `dvc remote add -d NAME URL`, pass a remote "
                "name, or build the binary with `dvc repro`"
            )
        location = remote.location(key)
        if remote.kind != "local" and offline():
            self._note(steps, relpath, f"remote: skipped (${ENV_OFFLINE} is set) {location}")
            raise OfflineError(
                f"{what} is not in the workspace, the DVC cache ({self.dvc_cache}) or {cache.cache_root()}, and "
                f"${ENV_OFFLINE}={os.environ.get(ENV_OFFLINE)} forbids fetching it from {remote.describe()}: "
                f"unset it (or run `furiosa-artifacts pull` once with network access) to fetch {location}"
            )
        with tqdm(total=out.size, unit="B", unit_scale=True, unit_divisor=1024, desc=relpath.rsplit("/", 1)[-1],
                  file=sys.stderr, disable=not self.progress, leave=False) as bar:
            try:
                path = fetch_object(remote, key, out.md5, size=out.size, bar=bar, retries=self.retries,
                                    timeout=self.timeout, backoff=self.backoff, clients=self._s3)
            except RemoteFailure as exc:
                self._note(steps, relpath, f"remote: failed ({exc.kind}: {exc.reason}) {location}")
                raise DownloadError(self._failure(remote, what, location, exc)) from None
            except ChecksumError as exc:
                self._note(steps, relpath, f"remote: verify-failed ({exc}) {location}")
                raise ChecksumError(
                    f"{remote.describe()}: the object {location} for {what} is corrupt ({exc}); it was not cached. "
                    f"Push a good copy with `dvc push` from a repository whose cache has it"
                ) from None
        return found(path, "remote", f"{remote.describe()}: {location} -> {path}")

    @staticmethod
    def _failure(remote: Remote, what: str, location: str, exc: RemoteFailure) -> str:
        if exc.kind == "unreachable":
            return (f"cannot fetch {what}: {remote.describe()} is unreachable: {exc.reason}; object {location}. "
                    f"{FAILURE_HINTS['unreachable']}")
        if exc.kind == "forbidden":
            return (f"cannot fetch {what}: {remote.describe()} refused the credentials ({exc.reason}) for the object "
                    f"{location}; {_credentials_hint(remote)}")
        if exc.kind == "missing":
            return f"cannot fetch {what}: {location} is missing on {remote.describe()} ({exc.reason}); " + (
                FAILURE_HINTS["missing"])
        return f"cannot fetch {what} from {remote.describe()}: {exc.reason}; object {location}"


def resolve_binary(
    root: Path,
    relpath: str,
    *,
    remote: str | None = None,
    verbose: bool = False,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> ResolvedFile:
    """Verified bytes of the output ``relpath`` recorded in ``root/dvc.lock`` (order in the module docstring).

    ``remote`` names a DVC remote (default: ``core.remote``); it is read only when nothing local
    has the file, so a cached binary resolves offline. ``retries``/``timeout``/``backoff`` bound
    each remote transfer (extra attempts, seconds per connect/read, first delay in seconds).

    Raises:
        UnsafePathError: ``relpath`` or a path in dvc.lock escapes the repository.
        BinaryNotFoundError: ``relpath`` is not a recorded output, or no place has it and no
            remote is configured.
        DownloadError: the remote is unreachable, refuses the credentials (401/403), lacks the
            object, or is misconfigured; the message names the remote URL and the object.
        ChecksumError: the remote's object does not match dvc.lock (it is not cached).
    """
    resolver = Resolver(root, remote=remote, verbose=verbose, progress=progress, retries=retries,
                         timeout=timeout, backoff=backoff)
    return resolver.resolve(relpath)


def resolve_binaries(
    root: Path,
    relpaths: Sequence[str],
    *,
    remote: str | None = None,
    jobs: int = DEFAULT_JOBS,
    verbose: bool = False,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> PullReport:
    """:func:`resolve_binary` for several paths, ``jobs`` at a time, with a progress bar on stderr.

    Every path is tried; failures are collected in :attr:`PullReport.failed` (path -> error).

    Raises:
        BinaryNotFoundError / UnsafePathError: dvc.lock is missing or unsafe (nothing is tried).
    """
    resolver = Resolver(root, remote=remote, verbose=verbose, progress=progress, retries=retries,
                         timeout=timeout, backoff=backoff)
    unique = list(dict.fromkeys(relpaths))
    results: dict[str, ResolvedFile | ArtifactsError] = {}
    with tqdm(total=len(unique), unit="file", desc="pull", file=sys.stderr, disable=not progress or len(unique) < 2,
              leave=False) as bar, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        def one(relpath: str) -> None:
            try:
                results[relpath] = resolver.resolve(relpath)
            except ArtifactsError as exc:
                results[relpath] = exc
            bar.update(1)

        list(pool.map(one, unique))
    report = PullReport()
    for relpath in unique:
        outcome = results[relpath]
        if isinstance(outcome, ResolvedFile):
            report.resolved.append(outcome)
        else:
            report.failed[relpath] = outcome
    return report


def checkout(root: Path, resolved: ResolvedFile) -> Path:
    """Put the resolved bytes at ``root/relpath`` (an atomic, writable copy); return that path.

    Raises:
        UnsafePathError: the path escapes ``root``.
        DownloadError: the file could not be written.
    """
    relpath = safe_relpath(Path(root), resolved.relpath, what="binary path")
    dest = Path(root) / relpath
    if resolved.source == "workspace" and resolved.path == dest:
        return dest
    try:
        return atomic_copy(resolved.path, dest)
    except OSError as exc:
        raise DownloadError(f"cannot write {dest}: {exc.strerror or exc}") from exc
