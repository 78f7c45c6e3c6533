"""The real `pre-commit run --all-files` on a temporary git copy of the repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import BIN_DIR, copy_repo


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture()
def git_copy(tmp_path: Path) -> Path:
    repo = copy_repo(tmp_path / "repo")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "copy")
    return repo


def _pre_commit(repo: Path, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", PRE_COMMIT_HOME=str(home),
               HOME=str(home))
    return subprocess.run([str(BIN_DIR / "pre-commit"), "run", "--all-files", "--color", "never"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=300)


def test_hooks_pass_on_the_clean_catalog(git_copy, tmp_path):
    proc = _pre_commit(git_copy, tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check-jsonschema" in proc.stdout and "furiosa-artifacts lint" in proc.stdout
    assert proc.stdout.count("Passed") == 2


def test_hooks_fail_on_a_broken_entry(git_copy, tmp_path):
    catalog = git_copy / "artifacts.yaml"
    catalog.write_text(catalog.read_text().replace("format: code", "format: keras", 1))
    _git(git_copy, "add", "-A")
    proc = _pre_commit(git_copy, tmp_path / "home")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("Failed") == 2
    assert "artifacts.yaml:" in proc.stdout and "use one of: code, onnx, tflite" in proc.stdout
    assert "'keras' is not one of" in proc.stdout  # check-jsonschema's own wording


def test_semantic_lint_catches_what_the_schema_cannot(git_copy, tmp_path):
    catalog = git_copy / "artifacts.yaml"
    catalog.write_text(catalog.read_text().replace("name: EfficientNetV2_S", "name: EfficientNetV9", 1))
    _git(git_copy, "add", "-A")
    proc = _pre_commit(git_copy, tmp_path / "home")
    assert proc.returncode == 1
    assert proc.stdout.count("Passed") == 1 and proc.stdout.count("Failed") == 1
    assert "defines no callable named 'EfficientNetV9'" in proc.stdout
