"""GTO versions and stages of the catalog's DVC artifacts: read with plain git, written with GTO.

GTO keeps the registry in annotated git tags (https://dvc.org/doc/gto)::

    mlcommons-resnet50@v1.5.0        register version v1.5.0 (the tagged commit's dvc.lock is that version)
    mlcommons-resnet50@v1.5.0!#3     deregister it
    mlcommons-resnet50#prod#2        assign stage prod to the tagged commit's version
    mlcommons-resnet50#prod!#4       unassign it
    mlcommons-resnet50@deprecated#5  deprecate the artifact

Catalog versions are ``vMAJOR.MINOR`` (``v1.5``); a registered version is the semver ``v1.5.0`` and
rebuilds of the same catalog version bump the patch (``v1.5.1``). Resolving a version or a stage
(:func:`find_release`) needs only git; the binary is then found by its md5 in ``dvc.lock`` *at the
tagged commit* (``git show TAG:dvc.lock``), through the same places and checks as
:func:`furiosa.artifacts.storage.resolve_binary` (workspace, DVC cache, shared cache, DVC remote).
Writing tags (:func:`release`) uses GTO itself (``pip install gto``).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from furiosa.artifacts.catalog.yaml_io import parse_yaml

from furiosa.artifacts.catalog.entries import built_binary, find_entry, read_entries
from furiosa.artifacts.errors import ArtifactsError, BinaryNotFoundError, ModelNotFoundError
from furiosa.artifacts.layout import PRECISIONS, metrics_relpath
from furiosa.artifacts.registries.dvc_artifacts import DVC_FILE
from furiosa.artifacts.registries.names import (
    DEFAULT_PRECISION, LOOSE_VERSION, SEMVER, catalog_name, dvc_name, semver,
)
from furiosa.artifacts.storage.lockfile import LOCK_FILE, LockedOutput, read_outputs
from furiosa.artifacts.storage.resolver import ResolvedFile, Resolver

__all__ = [
    "RegistryTag", "Release", "ResolvedRelease", "artifact_names", "artifact_path", "find_release", "list_tags", "load",
    "lock_at", "outputs_of", "registered", "resolve", "resolver_at", "run_git", "semver", "show", "synthetic_build",
    "version_key",
]

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9-/_=]*[a-zA-Z0-9])?"
_TAG = re.compile(
    rf"^(?P<artifact>{_NAME})(?:(?:#(?P<stage>{_NAME})|@(?P<version>{SEMVER}))(?P<cancel>!?)"
    rf"|@(?P<deprecated>deprecated)|@(?P<created>created))(?:#(?P<counter>\d+))?$"
)


def version_key(version: str) -> Tuple[int, int, int, int, str]:
    """Sort key of a GTO version; a pre-release sorts before its release (``v1.0.0-rc1 < v1.0.0``)."""
    m = re.fullmatch(SEMVER, version)
    if m is None:
        return (-1, -1, -1, -1, version)
    suffix = version[m.end("patch"):]
    return int(m["major"]), int(m["minor"]), int(m["patch"]), 0 if suffix.startswith("-") else 1, suffix


@dataclass(frozen=True)
class RegistryTag:
    """One GTO event (an annotated tag)."""

    tag: str
    artifact: str
    action: str  # register | deregister | assign | unassign | deprecate | create
    commit: str
    time: int
    version: Optional[str] = None
    stage: Optional[str] = None
    counter: int = 0


@dataclass(frozen=True)
class Release:
    """What a version or stage of an artifact resolves to."""

    artifact: str
    commit: str
    tag: str
    version: Optional[str] = None  # the registered version on that commit, if any
    stage: Optional[str] = None


@dataclass(frozen=True)
class ResolvedRelease:
    """A release plus its verified binary (and the catalog model and precision it stands for)."""

    release: Release
    file: ResolvedFile
    catalog: str
    precision: str
    synthetic: bool = False
    outputs: Dict[str, LockedOutput] = field(default_factory=dict, repr=False, compare=False)


def run_git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`git ARGS` in ``root``. Raises ModelNotFoundError (with git's message) when it fails and ``check``."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise ModelNotFoundError("git is not installed: GTO versions and stages are git tags") from None
    if check and proc.returncode != 0:
        raise ModelNotFoundError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.strip()}")
    return proc


def _parse(name: str, commit: str, when: int) -> Optional[RegistryTag]:
    m = _TAG.match(name)
    if not m:
        return None
    cancel = bool(m["cancel"])
    if m["version"]:
        action = "deregister" if cancel else "register"
    elif m["stage"]:
        action = "unassign" if cancel else "assign"
    else:
        action = "deprecate" if m["deprecated"] else "create"
    return RegistryTag(tag=name, artifact=m["artifact"], action=action, commit=commit, time=when,
                       version=m["version"], stage=m["stage"], counter=int(m["counter"] or 0))


def list_tags(root: Path, artifact: Optional[str] = None) -> List[RegistryTag]:
    """Every GTO event in the repository at ``root`` (annotated tags only, as GTO and DVC read them).

    Raises:
        ModelNotFoundError: ``root`` is not a git repository.
    """
    fmt = "%(refname:strip=2)%00%(objecttype)%00%(*objectname)%00%(creatordate:unix)"
    out = run_git(Path(root), "for-each-ref", f"--format={fmt}", "refs/tags").stdout
    tags = []
    for line in out.splitlines():
        name, kind, commit, when = (line.split("\0") + ["", "", "", ""])[:4]
        if kind != "tag" or not commit:
            continue  # lightweight tags are not GTO events
        parsed = _parse(name, commit, int(when or 0))
        if parsed and (artifact is None or parsed.artifact == artifact):
            tags.append(parsed)
    return tags


def registered(tags: Sequence[RegistryTag]) -> Dict[str, RegistryTag]:
    """The versions registered and not deregistered among ``tags`` (one artifact's), by version."""
    versions: Dict[str, RegistryTag] = {}
    for t in sorted(tags, key=lambda t: (t.counter, t.time)):
        if t.action == "register":
            versions[t.version] = t  # type: ignore[index]
        elif t.action == "deregister":
            versions.pop(t.version, None)  # type: ignore[arg-type]
    return versions


def find_release(root: Path, artifact: str, *, version: Optional[str] = None,
                 stage: Optional[str] = None) -> Release:
    """The commit holding ``artifact``'s ``version`` (``v1.5`` or ``v1.5.0``), ``stage``, or greatest version.

    Follows GTO's events in order (their ``#N`` counter): a deregistered version, an unassigned
    stage and a deprecated artifact are gone. A stage names the commit of its latest assignment.

    Raises:
        ValueError: both ``version`` and ``stage``, or a malformed version.
        ModelNotFoundError: no such registered version, stage, or no version at all; the message
            lists what is registered.
    """
    if version and stage:
        raise ValueError("give a version or a stage, not both")
    root = Path(root)
    tags = list_tags(root, artifact)
    latest = max(tags, key=lambda t: (t.counter, t.time), default=None)
    if latest is not None and latest.action == "deprecate":
        raise ModelNotFoundError(f"{artifact!r} is deprecated in {root} (tag {latest.tag})")
    versions = registered(tags)
    known = ", ".join(sorted(versions, key=version_key)) or "none"
    if stage:
        events = sorted((t for t in tags if t.stage == stage), key=lambda t: (t.counter, t.time))
        if not events or events[-1].action == "unassign":
            staged = sorted({t.stage for t in tags if t.stage})
            raise ModelNotFoundError(f"no version of {artifact!r} is in stage {stage!r} in {root} (stages assigned: "
                                     f"{', '.join(staged) or 'none'}); assign one with "
                                     f"`furiosa-artifacts release {artifact} --version vX.Y.Z --stage {stage}`")
        last = events[-1]
        on_commit = sorted((v for v, t in versions.items() if t.commit == last.commit), key=version_key)
        return Release(artifact, last.commit, last.tag, on_commit[-1] if on_commit else None, stage)
    if version:
        wanted = semver(version)
        if wanted not in versions:
            raise ModelNotFoundError(f"{artifact!r} has no registered version {wanted} in {root}; registered: {known}")
        t = versions[wanted]
        return Release(artifact, t.commit, t.tag, wanted)
    if not versions:
        raise ModelNotFoundError(f"{artifact!r} has no registered version in {root}; register one with "
                                 f"`furiosa-artifacts release {artifact} --version vX.Y.Z`")
    greatest = max(versions, key=version_key)
    return Release(artifact, versions[greatest].commit, versions[greatest].tag, greatest)


def show(root: Path, commit: str, path: str) -> str:
    """The text of ``path`` at ``commit`` (``git show COMMIT:PATH``). Raises BinaryNotFoundError if absent."""
    proc = run_git(root, "show", f"{commit}:{path}", check=False)
    if proc.returncode != 0:
        raise BinaryNotFoundError(f"{path} is not committed at {commit[:12]} in {root}: "
                                  f"{proc.stderr.strip() or 'git show failed'}")
    return proc.stdout


def lock_at(root: Path, commit: str) -> Dict[str, LockedOutput]:
    """The outputs dvc.lock records at ``commit`` (``git show COMMIT:dvc.lock``), keyed by path.

    Raises:
        BinaryNotFoundError: no dvc.lock at that commit, or it is not YAML.
        UnsafePathError: an output path escapes the repository.
    """
    return outputs_of(show(Path(root), commit, LOCK_FILE))


def outputs_of(text: str) -> Dict[str, LockedOutput]:
    """The outputs of a dvc.lock given as text (validated as :func:`~furiosa.artifacts.storage.read_outputs`)."""
    with tempfile.TemporaryDirectory(prefix="furiosa-lock-") as tmp:
        (Path(tmp) / LOCK_FILE).write_text(text, "utf-8")
        return read_outputs(Path(tmp))


def resolver_at(root: Path, outputs: Dict[str, LockedOutput], *, remote: Optional[str] = None,
                verbose: bool = False, progress: bool = False) -> Resolver:
    """The storage resolver of ``root`` (workspace, DVC cache, shared cache, remote) over ``outputs``,
    the dvc.lock of another commit than the workspace's.

    Raises:
        BinaryNotFoundError: the workspace has no dvc.lock (the resolver reads it first).
    """
    try:
        resolver = Resolver(root, remote=remote, verbose=verbose, progress=progress, retries=3, timeout=30.0,
                             backoff=1.0)
    except BinaryNotFoundError as exc:
        raise BinaryNotFoundError(f"{exc} (the checkout at {root} needs a committed dvc.lock, e.g. "
                                  "`git checkout main`, to resolve a tagged version)") from None
    resolver.outputs = outputs
    return resolver


def artifact_path(root: Path, commit: str, artifact: str) -> str:
    """The ``path`` dvc.yaml declares for ``artifact`` at ``commit`` (what ``dvc artifacts get`` fetches).

    Raises:
        ModelNotFoundError: dvc.yaml at that commit declares no such artifact.
        BinaryNotFoundError: no (valid) dvc.yaml at that commit.
    """
    try:
        data = parse_yaml(show(root, commit, DVC_FILE), source=f"{DVC_FILE} at {commit[:12]}",
                          error=BinaryNotFoundError) or {}
    except BinaryNotFoundError:
        raise
    declared = data.get("artifacts") if isinstance(data, dict) else None
    declared = declared if isinstance(declared, dict) else {}
    body = declared.get(artifact)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise ModelNotFoundError(f"{DVC_FILE} at {commit[:12]} declares no artifact {artifact!r} "
                                 f"(declared: {', '.join(sorted(map(str, declared))) or 'none'})")
    return body["path"]


def artifact_names(root: Path, name: str, precision: Optional[str] = None) -> List[Tuple[str, str, str]]:
    """``(dvc artifact, catalog name, precision)`` for a catalog or DVC ``name``.

    A DVC name carries its precision (``mlcommons-resnet50-fp32``); a catalog name takes
    ``precision`` (``None``: int8, ``"all"``: both). A ``<Name>_INT8`` entry is its model's int8.

    Raises:
        ModelNotFoundError: no catalog entry matches; or a precision contradicts the name.
    """
    entries = read_entries(Path(root), validate=False)
    code = [e.name for e in entries if e.format == "code"]
    try:
        model, own = catalog_name(name, code)
        from_dvc = model != name
    except ModelNotFoundError:
        entry = find_entry(entries, name)  # catalog name, loosely; raises with the known names
        model, own, from_dvc = entry.name, DEFAULT_PRECISION, False
        if entry.format != "code":
            built = built_binary(entries, entry)
            if built is None:
                raise ModelNotFoundError(f"catalog entry {entry.name!r} ({entry.location}) is no built binary of a "
                                         "code entry, so it has no DVC artifact") from None
            (model, own), from_dvc = (built[0].name, built[1]), True
    if from_dvc and precision not in (None, "all", own):
        raise ModelNotFoundError(f"{name!r} is the {own} binary of {model}; drop --precision or name the model")
    precisions = (own,) if from_dvc else PRECISIONS if precision == "all" else (precision or own,)
    return [(dvc_name(model, p), model, p) for p in precisions]


def synthetic_build(resolver: Resolver, lock_text: str, model: str) -> bool:
    """Whether the build at that commit used synthetic weights.

    Its metrics.json says so (``weights.source``); when that file cannot be had, dvc.lock's
    ``base.weights`` param of the model's weights stage decides (erring towards "synthetic").
    """
    try:
        metrics = json.loads(resolver.resolve(metrics_relpath(model)).path.read_text("utf-8"))
        return (metrics.get("weights") or {}).get("source") == "synthetic"
    except (ArtifactsError, OSError, ValueError, RecursionError):
        pass
    try:
        stage = (parse_yaml(lock_text, source="dvc.lock") or {}).get("stages", {}).get(f"weights@{model}") or {}
        params = stage.get("params") or {}
        local = (params.get("params.local.yaml") or {}).get("base.weights")  # the override wins
        return (local or (params.get("params.yaml") or {}).get("base.weights")) == "synthetic"
    except (AttributeError, ArtifactsError):
        return True


def resolve(root: Path, name: str, *, version: Optional[str] = None, stage: Optional[str] = None,
            rev: Optional[str] = None, precision: Optional[str] = None, remote: Optional[str] = None,
            verbose: bool = False, progress: bool = False) -> ResolvedRelease:
    """The verified binary of ``name`` (catalog or DVC name) at a GTO version, stage or git ``rev``.

    ``rev`` that looks like a version (``v1.5.0``) is one; any other ``rev`` is a git revision.
    With none of them: the greatest registered version.

    Raises:
        ValueError: more than one of version/stage/rev.
        ModelNotFoundError: unknown name, version or stage.
        BinaryNotFoundError / DownloadError / ChecksumError: as :func:`~furiosa.artifacts.storage.resolve_binary`.
    """
    root = Path(root)
    if sum(x is not None for x in (version, stage, rev)) > 1:
        raise ValueError("give one of version, stage or rev")
    (artifact, model, prec), = artifact_names(root, name, precision)
    if rev is not None and LOOSE_VERSION.match(rev) is None and not re.fullmatch(SEMVER, rev):
        commit = run_git(root, "rev-parse", "--verify", f"{rev}^{{commit}}").stdout.strip()
        found = Release(artifact, commit, rev)
    else:
        found = find_release(root, artifact, version=version or rev, stage=stage)
    relpath = artifact_path(root, found.commit, artifact)
    lock_text = show(root, found.commit, LOCK_FILE)
    outputs = outputs_of(lock_text)
    resolver = resolver_at(root, outputs, remote=remote, verbose=verbose, progress=progress)
    file = resolver.resolve(relpath)
    return ResolvedRelease(found, file, model, prec, synthetic_build(resolver, lock_text, model), outputs)


def load(name: str, *, version: Optional[str] = None, stage: Optional[str] = None, rev: Optional[str] = None,
         precision: Optional[str] = None, root: Optional[Path] = None, remote: Optional[str] = None):
    """:func:`furiosa.artifacts.load` for a GTO version or stage: ``load("mlcommons-resnet50", version="v1.5.0")``.

    The model's ``version`` is the registered version (``v1.5.0``). Raises as :func:`resolve`.
    """
    from furiosa.artifacts.layout import package_repo_root
    from furiosa.artifacts.model import Model

    root = Path(root) if root is not None else package_repo_root()
    got = resolve(root, name, version=version, stage=stage, rev=rev, precision=precision, remote=remote)
    entry = find_entry(read_entries(root, validate=False), got.catalog)
    return Model(name=entry.name, family=entry.family, version=got.release.version or entry.version,
                 description=entry.description, source=got.file.path.read_bytes(), precision=got.precision,
                 path=got.file.path, synthetic=got.synthetic)
