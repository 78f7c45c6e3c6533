"""Shared fixtures: the repository root, a clean copy of it, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, List, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent


def repo_files(root: Path = REPO_ROOT) -> List[str]:
    """Files git would ship (tracked + untracked-not-ignored), relative to the root."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    return [p for p in out.split("\0") if p and (root / p).is_file()]


def copy_repo(dest: Path, *, extra: Iterable[str] = ()) -> Path:
    """Copy the repository's shippable files (plus ``extra`` relative paths) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    local = [p for p in ("params.local.yaml",) if (REPO_ROOT / p).is_file()]  # this workspace's (ignored) build mode
    for rel in list(repo_files()) + local + list(extra):
        src = REPO_ROOT / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        elif src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
    # the copy keeps its remote inside itself (../.dvc-storage from .dvc), never the per-user default remote
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config.local").write_text("['remote \"local\"']\n    url = ../.dvc-storage\n")
    return dest


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    """A throw-away copy of the repository's shippable files."""
    return copy_repo(tmp_path / "repo")


def run_cli(args: Sequence[str], *, cwd: Path = REPO_ROOT, check: bool = False,
            env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``furiosa-artifacts ARGS`` as a user would (a subprocess of the installed console script)."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PATH"] = f"{BIN_DIR}{os.pathsep}{full_env.get('PATH', '')}"
    proc = subprocess.run([str(BIN_DIR / "furiosa-artifacts"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"furiosa-artifacts {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
