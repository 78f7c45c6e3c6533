"""Shared pieces of the registry tests (no tests here): the command blocks of docs/registries.md and a
released copy of the catalog repository.

The released repository is built once per module that asks for it, from the binaries already built in
this checkout (never rebuilt): the git-visible files plus ``dvc.lock`` are copied into ``publisher/``,
``git init`` + commit, and the ONNX binaries and metrics that ``dvc.lock`` records are copied into the
project's default DVC remote (the local directory ``.dvc-storage``) in DVC's layout, as ``dvc push``
leaves them. ``publisher/`` has neither a DVC cache nor the binaries in its workspace, so everything a
test fetches comes through that remote. Subprocesses get a temporary HOME, XDG directories,
``DVC_SITE_CACHE_DIR`` and ``FURIOSA_ARTIFACTS_HOME`` (``test_storage_support.tool_env``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from conftest import REPO_ROOT, copy_repo
from furiosa.artifacts.layout import PRECISIONS, binary_relpath, metrics_relpath
from furiosa.artifacts.storage.lockfile import LockedOutput, object_key, read_outputs
from test_storage_support import run, tool_env

DOC = REPO_ROOT / "docs" / "registries.md"
CATALOG = yaml.safe_load((REPO_ROOT / "artifacts.yaml").read_text())["artifacts"]
CODE_MODELS = [e for e in CATALOG if e["format"] == "code"]
_BLOCK = re.compile(r"^<!-- run:(?P<name>[\w.-]+) -->\n```sh\n(?P<body>.*?)^```$", re.M | re.S)


def doc_blocks() -> Dict[str, str]:
    """The ```sh blocks of docs/registries.md by the name in the ``<!-- run:NAME -->`` line above them."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(DOC.read_text("utf-8"))}


def run_block(name: str, cwd: Path, env: Dict[str, str], *, check: bool = True,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a docs block as written (``bash -eo pipefail``, so every line must succeed)."""
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", doc_blocks()[name]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docs block {name!r} exited {proc.returncode} in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def built_outputs() -> Dict[str, LockedOutput]:
    """The binaries and metrics of every code model, as this checkout's dvc.lock records them.

    Fails (with the command to run) when the models are not built here.
    """
    try:
        outputs = read_outputs(REPO_ROOT)
    except Exception as exc:  # noqa: BLE001 - turned into a test failure with the fix
        pytest.fail(f"no usable dvc.lock ({exc}): build the models first "
                    "(`furiosa-artifacts build --weights synthetic`)")
    wanted = [binary_relpath(e["name"], p) for e in CODE_MODELS for p in PRECISIONS]
    wanted += [metrics_relpath(e["name"]) for e in CODE_MODELS]
    missing = [r for r in wanted if r not in outputs or not (REPO_ROOT / r).is_file()]
    if missing:
        pytest.fail(f"not built: {missing}; run `furiosa-artifacts build --weights synthetic` or `dvc pull` first")
    return {r: outputs[r] for r in wanted}


def is_synthetic(name: str) -> bool:
    """Whether this checkout's build of ``name`` came from synthetic weights (its metrics.json)."""
    metrics = json.loads((REPO_ROOT / metrics_relpath(name)).read_text("utf-8"))
    return (metrics.get("weights") or {}).get("source") == "synthetic"


def fill_remote(storage: Path, outputs: Dict[str, LockedOutput]) -> None:
    """Copy the built files into ``storage`` in DVC's layout, checking each against dvc.lock."""
    for relpath, out in outputs.items():
        dest = storage / object_key(out.md5, legacy=out.legacy)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / relpath, dest)
        if md5_of(dest) != out.md5:
            pytest.fail(f"{relpath} does not match dvc.lock (a build running?): rebuild or wait, then rerun")


def make_publisher(base: Path) -> tuple[Path, Dict[str, str]]:
    """``base/publisher``: a committed copy of the catalog whose default DVC remote holds the binaries."""
    env = tool_env(base)
    repo = copy_repo(base / "publisher")
    if not (repo / "dvc.lock").is_file():
        shutil.copy2(REPO_ROOT / "dvc.lock", repo / "dvc.lock")
    fill_remote(repo / ".dvc-storage", built_outputs())
    from furiosa.artifacts.registries.dvc_artifacts import write_dvc_artifacts

    write_dvc_artifacts(repo)  # a no-op when this checkout's dvc.yaml is up to date (checked elsewhere)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "catalog with a built dvc.lock"], repo, env)
    origin = base / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], base, env)
    run(["git", "remote", "add", "origin", str(origin)], repo, env)
    run(["git", "push", "-q", "origin", "main"], repo, env)
    return repo, env


def copy_publisher(repo: Path, dest: Path) -> Path:
    """A copy of the publisher to mutate; its DVC remote is the publisher's (a symlink, read only)."""
    shutil.copytree(repo, dest, symlinks=True, ignore=shutil.ignore_patterns(".dvc-storage"))
    (dest / ".dvc-storage").symlink_to(repo / ".dvc-storage")
    return dest


def tags(repo: Path, env: Dict[str, str]) -> List[str]:
    return run(["git", "tag", "--list"], repo, env).stdout.split()
