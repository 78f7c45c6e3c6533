"""``furiosa-artifacts release``: register HEAD's build of a catalog model as a GTO version (and stage).

The tags are GTO's own (``name@vX.Y.Z``, ``name#stage#N``), made through GTO's API after checks that a
tag would otherwise skip: the DVC artifacts are declared as the catalog says, the tagged commit holds
the ``dvc.lock`` of the build, the binaries resolve, the version keeps the catalog's ``vMAJOR.MINOR``,
and a build from synthetic weights is refused unless asked for (then the tag message says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from furiosa.artifacts.catalog.entries import find_entry, read_entries
from furiosa.artifacts.errors import ArtifactsError, BinaryNotFoundError, ModelNotFoundError, ReleaseError
from furiosa.artifacts.registries.dvc_artifacts import DVC_FILE, GTO_CONFIG, check_dvc_artifacts
from furiosa.artifacts.registries.gto import (
    run_git, artifact_names, artifact_path, find_release, list_tags, outputs_of, registered, resolver_at, show,
    synthetic_build,
)
from furiosa.artifacts.registries.names import semver
from furiosa.artifacts.storage.lockfile import LOCK_FILE

__all__ = ["ReleaseStep", "release"]


@dataclass(frozen=True)
class ReleaseStep:
    """One tag :func:`release` created (or found already there)."""

    artifact: str
    tag: str
    commit: str
    created: bool
    version: str
    stage: Optional[str] = None
    synthetic: bool = False

    def as_dict(self) -> dict:
        return {"artifact": self.artifact, "tag": self.tag, "commit": self.commit, "created": self.created,
                "version": self.version, "stage": self.stage, "synthetic": self.synthetic}


def _gto_api():
    try:
        from gto import api
        from gto.exceptions import GTOException
    except ImportError:
        raise ReleaseError("GTO is not installed: `pip install gto` (DVC's model registry tool)") from None
    return api, GTOException


def _check_version(version: Optional[str], catalog_version: Optional[str], model: str) -> str:
    base = semver(catalog_version) if catalog_version else None
    if version is None:
        if base is None:
            raise ReleaseError(f"{model} has no version in artifacts.yaml: pass --version vX.Y.Z")
        return base
    try:
        wanted = semver(version)  # v1.5.1, or v1.5 for v1.5.0
    except ValueError as exc:
        raise ReleaseError(str(exc)) from None
    if base is not None and wanted.split(".")[:2] != base.split(".")[:2]:
        major_minor = ".".join(base.split(".")[:2])
        raise ReleaseError(f"{model} is {catalog_version} in artifacts.yaml: release it as {major_minor}.N "
                           f"({base}, {major_minor}.1, ...) or change its version in the catalog first")
    return wanted


def _committed(root: Path, path: str) -> str:
    """Why ``path`` differs from HEAD's (empty when committed as is)."""
    proc = run_git(root, "status", "--porcelain", "--ignored=no", "--", path, check=False)
    return proc.stdout.strip()


def release(root: Path, name: str, *, version: Optional[str] = None, stage: Optional[str] = None,
            precision: Optional[str] = "all", allow_synthetic: bool = False,
            remote: Optional[str] = None) -> List[ReleaseStep]:
    """Register HEAD's build of ``name`` as ``version`` (default: the catalog version as semver) and
    optionally assign ``stage``, with GTO; ``precision`` ``"all"`` releases int8 and fp32 together.

    Checks first, and creates no tag when any fails: dvc.yaml's ``artifacts:`` and ``.gto`` agree with
    the catalog; dvc.yaml and dvc.lock are committed (the tag names HEAD); HEAD's dvc.lock records
    the binary and its bytes resolve (workspace, cache or remote); the version keeps the catalog's
    ``vMAJOR.MINOR``; the build is not from synthetic weights unless ``allow_synthetic`` (then the
    tag message says so). Re-running with the same version and commit creates nothing.

    Raises:
        ReleaseError: a check failed, or GTO refused (e.g. the version is taken by another commit).
        ModelNotFoundError: unknown name.
    """
    root = Path(root)
    targets = artifact_names(root, name, precision)
    mine = tuple(f"{DVC_FILE}:/artifacts/{artifact}" for artifact, _, _ in targets)
    problems = [f"{where}: {msg}" for where, msg in check_dvc_artifacts(root)
                if where.startswith((GTO_CONFIG, *mine)) or where == DVC_FILE]
    if problems:
        raise ReleaseError("dvc.yaml's artifacts do not match the catalog:\n  " + "\n  ".join(problems))
    for path in (DVC_FILE, LOCK_FILE, GTO_CONFIG):
        dirty = _committed(root, path)
        if dirty:
            raise ReleaseError(f"{path} has changes not committed ({dirty}): the release tags HEAD, so commit "
                               f"{path} first")
    head = run_git(root, "rev-parse", "HEAD").stdout.strip()
    lock_text = show(root, head, LOCK_FILE)
    outputs = outputs_of(lock_text)
    try:
        resolver = resolver_at(root, outputs, remote=remote)
    except BinaryNotFoundError as exc:
        raise ReleaseError(str(exc)) from None
    entries = read_entries(root, validate=False)
    plan = []
    for artifact, model, prec in targets:
        relpath = artifact_path(root, head, artifact)
        if relpath not in outputs:
            raise ReleaseError(f"HEAD's dvc.lock records no {relpath}: build {model} and commit dvc.lock")
        try:
            resolver.resolve(relpath)
        except ArtifactsError as exc:
            raise ReleaseError(f"the bytes of {relpath} (HEAD's dvc.lock) are not available: {exc}") from None
        synthetic = synthetic_build(resolver, lock_text, model)
        if synthetic and not allow_synthetic:
            raise ReleaseError(f"{model} at HEAD was built from synthetic (random) weights: not deployable. Build it "
                               "from official weights, or pass --allow-synthetic to register it marked as such")
        wanted = _check_version(version, find_entry(entries, model).version, model)
        existing = registered(list_tags(root, artifact)).get(wanted)
        if existing is not None and existing.commit != head:
            raise ReleaseError(f"{artifact}@{wanted} is already registered at {existing.commit[:12]}, not HEAD "
                               f"{head[:12]}: bump the patch version")
        plan.append((artifact, model, prec, relpath, synthetic, wanted, existing))
    api, gto_error = _gto_api()
    steps = []
    for artifact, model, prec, relpath, synthetic, wanted, existing in plan:
        mark = "; SYNTHETIC weights, not for deployment" if synthetic else ""
        message = f"{model} {prec} {relpath} md5 {outputs[relpath].md5}{mark}"
        try:
            if existing is None:
                api.register(str(root), artifact, "HEAD", version=wanted, message=message)
            steps.append(ReleaseStep(artifact, f"{artifact}@{wanted}", head, existing is None, wanted,
                                     synthetic=synthetic))
            if stage:
                try:
                    current = find_release(root, artifact, stage=stage)
                except ModelNotFoundError:
                    current = None
                if current is not None and current.version == wanted:
                    steps.append(ReleaseStep(artifact, current.tag, head, False, wanted, stage, synthetic))
                    continue
                api.assign(str(root), artifact, stage, version=wanted, message=f"{stage}: {message}")
                latest = find_release(root, artifact, stage=stage)
                steps.append(ReleaseStep(artifact, latest.tag, head, True, wanted, stage, synthetic))
        except gto_error as exc:
            raise ReleaseError(f"GTO refused {artifact} {wanted}: {exc}") from None
    return steps
