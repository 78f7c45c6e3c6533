"""``furiosa-artifacts build --weights MODE`` never rewrites the tracked params.yaml: the mode goes to the
git-ignored ``params.local.yaml``, which the weights stage lists as a DVC parameter file."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import BIN_DIR, REPO_ROOT, copy_repo
from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.pipeline.build import set_weight_mode
from furiosa.artifacts.pipeline.params import LOCAL_PARAMS_FILE, PARAMS_FILE, load_params


@pytest.fixture()
def params_copy(tmp_path):
    for rel in (PARAMS_FILE, ".gitignore"):
        (tmp_path / rel).write_bytes((REPO_ROOT / rel).read_bytes())
    return tmp_path


def test_the_weight_mode_goes_to_the_ignored_local_file(params_copy):
    tracked = (params_copy / PARAMS_FILE).read_bytes()
    default = load_params(params_copy / PARAMS_FILE).weights
    assert set_weight_mode(params_copy, None)  # no override yet: written with params.yaml's own mode
    assert load_params(params_copy / PARAMS_FILE).weights == default
    other = "synthetic" if default == "official" else "official"
    assert set_weight_mode(params_copy, other) and not set_weight_mode(params_copy, other)
    assert load_params(params_copy / PARAMS_FILE).weights == other
    assert not set_weight_mode(params_copy, None)  # keeps the current override
    assert (params_copy / PARAMS_FILE).read_bytes() == tracked
    assert f"/{LOCAL_PARAMS_FILE}" in (params_copy / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("text, where", [("base: {weights: random}\n", "base.weights"),
                                         ("base: {weights: official, seed: 3}\n", "unknown key"),
                                         ("models: {}\n", "unknown key")])
def test_a_bad_local_file_is_named_with_the_field(params_copy, text, where):
    (params_copy / LOCAL_PARAMS_FILE).write_text(text)
    with pytest.raises(SpecError) as info:
        load_params(params_copy / PARAMS_FILE)
    assert LOCAL_PARAMS_FILE in str(info.value) and where in str(info.value)
    with pytest.raises(SpecError):
        set_weight_mode(params_copy, "mystery")


@pytest.mark.slow
def test_dvc_status_sees_a_change_of_mode(tmp_path):
    if not (REPO_ROOT / "dvc.lock").is_file() or LOCAL_PARAMS_FILE not in (REPO_ROOT / "dvc.lock").read_text():
        pytest.fail("dvc.lock does not record params.local.yaml: run the README's main command first")
    repo = copy_repo(tmp_path / "repo")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    current = load_params(repo / PARAMS_FILE).weights
    set_weight_mode(repo, "official" if current == "synthetic" else "synthetic")
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp_path / "site"))
    proc = subprocess.run([str(BIN_DIR / "dvc"), "status", "weights@MLCommonsSSDMobileNet"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and f"{LOCAL_PARAMS_FILE}" in proc.stdout and "modified" in proc.stdout, proc.stdout


@pytest.mark.parametrize("budget, ok", [("8", True), ("0.5", True), ("null", True), ("0", False), ("-1", False),
                                        ("true", False), ("'8'", False)])
def test_the_latency_budget_is_optional_and_positive(params_copy, budget, ok):
    path = params_copy / PARAMS_FILE
    text = path.read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith("latency: {"))
    path.write_text(text.replace(line, line.replace("budget_s: 8", f"budget_s: {budget}")))
    if ok:
        assert load_params(path).latency.get("budget_s") == (None if budget == "null" else float(budget))
    else:
        with pytest.raises(SpecError, match="base.latency.budget_s"):
            load_params(path)
    path.write_text(text.replace(line, line.replace(", budget_s: 8", "")))  # absent: no budget
    assert "budget_s" not in load_params(path).latency
