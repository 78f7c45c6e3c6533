"""The README stays true: generated catalog table, and the two set-up commands CI runs."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.catalog.entries import read_entries
from furiosa.artifacts.docs import TABLE_END, TABLE_START, catalog_table


def readme_commands():
    text = (REPO_ROOT / "README.md").read_text()
    return dict(re.findall(r"<!-- command:(\w+) -->\n```sh\n(.+)\n```", text))


def test_catalog_table_matches_the_catalog():
    text = (REPO_ROOT / "README.md").read_text()
    block = text[text.index(TABLE_START) + len(TABLE_START):text.index(TABLE_END)].strip()
    assert block == catalog_table(read_entries(REPO_ROOT)), "stale table: run `furiosa-artifacts docs`"


@pytest.mark.slow
def test_generated_docs_match_the_built_workspace():
    """Model cards carry build results (metrics, dvc.lock hashes): they match only after the main command."""
    proc = run_cli(["docs", "--check", "--root", str(REPO_ROOT)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
def test_docs_check_detects_a_stale_table(repo_copy):
    catalog = repo_copy / "artifacts.yaml"
    catalog.write_text(catalog.read_text().replace("title: Deep Residual Learning for Image Recognition",
                                                   "title: Deep Residual Learning (CVPR 2016)", 1))
    proc = run_cli(["docs", "--check", "--root", str(repo_copy)])
    assert proc.returncode == 1 and "README.md: stale" in proc.stdout
    assert run_cli(["docs", "--root", str(repo_copy)]).returncode == 0
    assert "[Deep Residual Learning (CVPR 2016)](https://arxiv.org/abs/1512.03385)" in (repo_copy / "README.md").read_text()
    assert run_cli(["docs", "--check", "--root", str(repo_copy)]).returncode == 0


def test_exactly_two_setup_commands_and_ci_runs_them():
    commands = readme_commands()
    assert set(commands) == {"main", "test"}
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "command:main" in ci and "command:test" in ci, ".ci/run must take its commands from the README"
