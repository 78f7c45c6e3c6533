"""The default DVC remote is per user, outside the clone: ``dvc push`` in one clone, ``dvc pull`` in another,
with zero set-up; and a build leaves the tracked files as they were: params.yaml untouched (the weight
mode goes to the git-ignored params.local.yaml), only dvc.lock -- the build record a release commits with
the binaries it pushed -- appears.

Real git clones of a temporary origin, real ``dvc repro``/``push``/``pull`` (one cheap stage: ``samples``); HOME, DVC's site cache and the shared cache are redirected under the test's
temporary directory (``test_storage_support.tool_env``), so ``~`` in ``.dvc/config`` lands there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import REPO_ROOT, copy_repo
from furiosa.artifacts.pipeline.build import set_weight_mode
from test_storage_support import dvc, run, tool_env

pytestmark = pytest.mark.slow

STAGE = "samples"  # the cheapest real stage: seeded crops of scikit-learn's bundled photographs
OUT = "data/samples"


def digests(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_push_from_one_clone_pull_into_another_with_zero_set_up(tmp_path):
    env = tool_env(tmp_path)
    seed = copy_repo(tmp_path / "seed")
    for rel in (".dvc/config.local", "dvc.lock", "params.local.yaml"):  # a fresh checkout has none of these
        (seed / rel).unlink(missing_ok=True)
    run(["git", "init", "-q", "-b", "main"], seed, env)
    run(["git", "add", "-A"], seed, env)
    run(["git", "commit", "-q", "-m", "catalog"], seed, env)
    origin = tmp_path / "origin.git"
    run(["git", "clone", "-q", "--bare", str(seed), str(origin)], tmp_path, env)

    first = tmp_path / "first"
    run(["git", "clone", "-q", str(origin), str(first)], tmp_path, env)
    assert set_weight_mode(first, None)  # what `furiosa-artifacts build` does first: params.local.yaml
    dvc(["repro", "-q", STAGE], first, env, timeout=900)
    # the build's only trace in git: the new build record (DVC refuses a git-ignored dvc.lock)
    assert run(["git", "status", "--porcelain"], first, env).stdout.splitlines() == ["?? dvc.lock"]
    dvc(["push", "-q", STAGE], first, env)
    remote = Path(env["HOME"]) / ".cache" / "furiosa-artifacts" / "dvc-remote"
    pushed = sorted(p for p in remote.rglob("*") if p.is_file())
    built = digests(first / OUT)
    assert len(pushed) == len(built) + 1 and built  # every file plus the directory's .dir manifest
    # the release: commit the dvc.lock that matches what was pushed
    run(["git", "add", "dvc.lock"], first, env)
    run(["git", "commit", "-q", "-m", "release: the samples"], first, env)
    run(["git", "push", "-q", "origin", "main"], first, env)

    second = tmp_path / "second"
    run(["git", "clone", "-q", str(origin), str(second)], tmp_path, env)
    assert not (second / ".dvc" / "config.local").exists()
    dvc(["pull", "-q", STAGE], second, env)
    assert digests(second / OUT) == built
    assert run(["git", "status", "--porcelain"], second, env).stdout == ""
    assert (REPO_ROOT / ".dvc" / "config").read_text() == (second / ".dvc" / "config").read_text()
