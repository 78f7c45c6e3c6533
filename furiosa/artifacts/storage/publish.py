"""Publish the catalog to a Git LFS-backed repository.

The published branch holds the repository's git-tracked files that match ``include`` (the
catalog, the package, the docs and the build recipe) plus the binaries that ``dvc.lock``
records under ``models/`` (their bytes come from :func:`~furiosa.artifacts.storage.resolver.resolve_binaries`:
workspace, DVC cache, shared cache or DVC remote, each verified). A generated ``.gitattributes``
tracks ``models/**`` with Git LFS, so ``git clone`` + ``git lfs pull`` give real bytes. Each publish
is one commit on ``branch`` whose tree mirrors the selection exactly (files gone from the
catalog disappear); publishing unchanged content makes no commit.

Needs ``git`` and ``git-lfs`` on PATH. The LFS objects go where git-lfs sends them for ``git_url``:
the server's LFS endpoint, a bare repository given as a path or ``file://`` URL (standalone
transfer), or ``lfs_url`` (written to ``.lfsconfig`` so that clones use it too).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from furiosa.artifacts.errors import PublishError, UnsafePathError
from furiosa.artifacts.storage.lockfile import read_outputs, safe_relpath
from furiosa.artifacts.storage.resolver import DEFAULT_JOBS, resolve_binaries

__all__ = ["DEFAULT_BINARIES", "DEFAULT_INCLUDE", "LFS_ATTRIBUTES", "PublishReport", "publish_lfs"]

#: git-tracked files published (fnmatch patterns; ``*`` crosses ``/``)
DEFAULT_INCLUDE = (
    "artifacts.yaml", "artifacts.py", "README.md", "LICENSE*", "pyproject.toml", ".gitattributes",
    "schema/*", "furiosa/*", "docs/*", "dvc.yaml", "dvc.lock", "params.yaml", "stages/*",
)
#: dvc.lock outputs published as LFS objects (must lie under ``models/``): the ONNX binaries and the
#: JSON records beside them (metrics, reports); not the source weights or calibration data
DEFAULT_BINARIES = ("models/*/*.onnx", "models/*/*.json")
LFS_ATTRIBUTES = "models/** filter=lfs diff=lfs merge=lfs -text"
_IDENTITY = ("-c", "user.name=furiosa-artifacts", "-c", "user.email=furiosa-artifacts@localhost")


@dataclass
class PublishReport:
    """What :func:`publish_lfs` pushed."""

    git_url: str
    branch: str
    commit: str
    changed: bool  # False: the branch already held exactly this content
    files: list[str] = field(default_factory=list)  # plain git files
    lfs_files: list[str] = field(default_factory=list)  # binaries stored as LFS objects

    def as_dict(self) -> dict:
        return {"git_url": _redact(self.git_url), "branch": self.branch, "commit": self.commit,
                "changed": self.changed, "files": self.files, "lfs_files": self.lfs_files}


def _redact(text: str) -> str:
    """Hide ``user:password@`` in URLs inside ``text``."""
    from furiosa.artifacts.storage.remote import redact

    return redact(text)


def _git(args: Sequence[str], cwd: Path, env: dict, *, what: str = "") -> str:
    """Run git; on failure raise PublishError starting with ``what`` (default: the command line)."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise PublishError("git is not installed or not on PATH") from None
    if proc.returncode != 0:
        what = what or f"`git {' '.join(args)}` failed in {cwd}"
        raise PublishError(_redact(f"{what} (git exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}"))
    return proc.stdout


def _absolute_if_path(git_url: str) -> str:
    """A local path (not ``scheme://`` nor scp-like ``host:path``) made absolute, since git runs elsewhere."""
    if "://" in git_url or ":" in git_url.split("/", 1)[0]:
        return git_url
    return str(Path(git_url).expanduser().absolute())


def _tracked_files(root: Path, include: Sequence[str], env: dict) -> list[str]:
    listing = _git(["ls-files", "-z"], root, env, what=f"cannot list the files of {root} (is it a git repository?)")
    listing = listing.split("\0")
    return [p for p in listing if p and not p.startswith("models/") and any(fnmatch.fnmatch(p, pat) for pat in include)]


def _copy_tracked(root: Path, relpath: str, work: Path) -> bool:
    """Copy one tracked file (or in-repo symlink) into ``work``; False if it is not a file now."""
    clean = safe_relpath(root, relpath, what="tracked file")  # refuses symlinks leading outside, too
    src, dest = root / clean, work / clean
    if src.is_symlink():
        target = os.readlink(src)
        if os.path.isabs(target):
            raise UnsafePathError(f"refusing to publish {clean}: a symlink to the absolute path {target}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest)
        return True
    if not src.is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return True


def _checkout_branch(work: Path, git_url: str, branch: str, env: dict) -> Path:
    """A fresh repository at ``work`` on ``branch`` (its published history, if any), work tree emptied."""
    work.mkdir(parents=True)
    _git(["init", "-q"], work, env)
    _git(["remote", "add", "origin", git_url], work, env)
    heads = _git(["ls-remote", "--heads", "origin", f"refs/heads/{branch}"], work, env,
                 what=f"cannot reach the git repository {git_url}")
    if heads.strip():  # LFS smudging is off (GIT_LFS_SKIP_SMUDGE): old binaries are not downloaded
        _git(["fetch", "-q", "origin", f"refs/heads/{branch}"], work, env)
        _git(["checkout", "-q", "-B", branch, "FETCH_HEAD"], work, env)
    else:
        _git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], work, env)
    for child in work.iterdir():
        if child.name == ".git":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return work


def _write_lfs_config(work: Path, lfs_url: str | None, env: dict) -> None:
    """``.gitattributes`` tracking ``models/**`` (kept lines from the catalog's own), ``.lfsconfig``, hooks."""
    attributes = work / ".gitattributes"
    existing = attributes.read_text("utf-8") if attributes.is_file() else ""
    if LFS_ATTRIBUTES not in existing.splitlines():
        separator = "\n" if existing and not existing.endswith("\n") else ""
        attributes.write_text(f"{existing}{separator}{LFS_ATTRIBUTES}\n", "utf-8")
    if lfs_url:
        _git(["config", "-f", ".lfsconfig", "lfs.url", lfs_url], work, env)
    _git(["lfs", "install", "--local"], work, env)


def _commit(work: Path, message: str, env: dict) -> bool:
    """Stage everything and commit; False (no commit) when the branch already holds this tree."""
    _git(["add", "-A", "--force"], work, env)
    quiet = {"cwd": work, "env": env, "capture_output": True}
    has_head = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], **quiet).returncode == 0
    if has_head and subprocess.run(["git", "diff", "--cached", "--quiet"], **quiet).returncode == 0:
        return False
    configured = subprocess.run(["git", "config", "--get", "user.email"], **quiet).returncode == 0
    _git([*(() if configured else _IDENTITY), "commit", "-q", "-m", message], work, env)
    return True


def publish_lfs(
    root: Path,
    git_url: str,
    *,
    branch: str = "main",
    message: str | None = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    binaries: Sequence[str] = DEFAULT_BINARIES,
    lfs_url: str | None = None,
    remote: str | None = None,
    jobs: int = DEFAULT_JOBS,
    progress: bool = True,
) -> PublishReport:
    """Commit the catalog and its binaries to ``branch`` of ``git_url`` (binaries as LFS objects) and push.

    ``include`` selects git-tracked files and ``binaries`` selects dvc.lock outputs (fnmatch
    patterns); ``remote`` is the DVC remote used for binaries found nowhere locally; ``lfs_url``
    is an LFS server separate from the git host (written to ``.lfsconfig``).

    Raises:
        UnsafePathError: a tracked path or dvc.lock output escapes the repository, or a tracked
            symlink points outside it.
        PublishError: git or git-lfs is missing, ``root`` is not a git repository, nothing to
            publish, a binary could not be resolved, or the push failed (the message says why).
    """
    root = Path(root).resolve()
    git_url = _absolute_if_path(git_url)
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_LFS_SKIP_SMUDGE="1")
    try:
        version = subprocess.run(["git", "lfs", "version"], capture_output=True, text=True, env=env)
    except FileNotFoundError:
        version = None
    if version is None or version.returncode != 0:
        raise PublishError("git-lfs is not installed: install it (`apt-get install git-lfs`, `brew install git-lfs`)")
    files = _tracked_files(root, include, env)
    outputs = read_outputs(root)
    chosen = sorted(p for p, out in outputs.items() if not out.is_dir and p.startswith("models/")
                    and any(fnmatch.fnmatch(p, pat) for pat in binaries))
    if not chosen:
        raise PublishError(f"dvc.lock in {root} records no file output matching {list(binaries)} under models/: "
                           "build the binaries first (`furiosa-artifacts build`)")
    pulled = resolve_binaries(root, chosen, remote=remote, jobs=jobs, progress=progress)
    if not pulled.ok:
        problems = "\n".join(f"  {path}: {exc}" for path, exc in pulled.failed.items())
        raise PublishError(f"cannot publish: {len(pulled.failed)} binar{'ies' if len(pulled.failed) > 1 else 'y'} "
                           f"could not be resolved:\n{problems}")
    with tempfile.TemporaryDirectory(prefix="furiosa-publish-") as tmp:
        work = _checkout_branch(Path(tmp) / "work", git_url, branch, env)
        published = [p for p in files if _copy_tracked(root, p, work)]
        for resolved in pulled.resolved:
            dest = work / resolved.relpath
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolved.path, dest)
        _write_lfs_config(work, lfs_url, env)
        text = message or f"Publish the furiosa-artifacts catalog ({len(published)} files, {len(chosen)} binaries)"
        changed = _commit(work, text, env)
        stored = set(_git(["lfs", "ls-files", "-n", "HEAD"], work, env).splitlines())
        missing = [p for p in chosen if p not in stored]
        if missing:
            raise PublishError(f"git-lfs did not store {', '.join(missing)} as LFS objects; check .gitattributes")
        _git(["lfs", "push", "origin", branch], work, env,
             what=f"uploading the LFS objects for {git_url} failed (check the LFS server and its credentials)")
        _git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], work, env,
             what=f"pushing {branch} to {git_url} failed")
        commit = _git(["rev-parse", "HEAD"], work, env).strip()
    files_out = sorted({*published, ".gitattributes", *([".lfsconfig"] if lfs_url else [])})
    return PublishReport(git_url=git_url, branch=branch, commit=commit, changed=changed, files=files_out,
                         lfs_files=chosen)
