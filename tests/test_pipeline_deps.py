"""Stage dependencies are derived from the code: editing any module a stage runs makes `dvc status` report
exactly the stages that run it, in a real DVC repository (the real dvc.yaml, outputs faked with `dvc commit`).

Plus the generator's own behaviour: lazy imports count, new stages are covered without configuration,
drift is a lint error, and rewriting keeps the hand-written parts of dvc.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Dict, Set

import pytest
import yaml

from conftest import BIN_DIR, REPO_ROOT, copy_repo, run_cli
from furiosa.artifacts.catalog.lint import lint_catalog
from furiosa.artifacts.catalog.stage_deps import (NETWORK_DEP, check_stage_deps, expected_stage_deps, import_closure,
                                                  write_stage_deps)


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               DVC_SITE_CACHE_DIR=str(repo.parent / "dvc-site"))
    proc = subprocess.run([str(BIN_DIR / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def instances(root: Path) -> Dict[str, Set[str]]:
    """``stage@model`` (or ``stage``) -> the files it depends on, ``${item.network}`` expanded."""
    params = yaml.safe_load((root / "params.yaml").read_text("utf-8"))
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text("utf-8"))
    out = {}
    for name, stage in pipeline["stages"].items():
        if "foreach" not in stage:
            out[name] = set(stage["deps"])
            continue
        for key, item in params["models"].items():
            out[f"{name}@{key}"] = {d.replace("${key}", key).replace(NETWORK_DEP, item["network"])
                                    for d in stage["do"]["deps"]}
    return out


def dirty(repo: Path) -> Set[str]:
    return set(json.loads(dvc(repo, "status", "--json").stdout or "{}"))


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    """A copy of the repository whose every stage is recorded in dvc.lock with placeholder outputs."""
    repo = copy_repo(tmp_path_factory.mktemp("deps") / "repo")
    (repo / "dvc.lock").unlink(missing_ok=True)
    (repo / "params.local.yaml").write_text("base:\n  weights: synthetic\n")  # what `build --weights` writes
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text("utf-8"))
    params = yaml.safe_load((repo / "params.yaml").read_text("utf-8"))
    for name, stage in pipeline["stages"].items():
        body = stage.get("do", stage)
        keys = list(params["models"]) if "foreach" in stage else [None]
        for key in keys:
            for out in body.get("outs", []) + body.get("metrics", []):
                path = repo / (out.replace("${key}", key) if key else out)
                if "." in path.name:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(f"placeholder {path.name}\n")
                else:  # a directory output (data/samples)
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "placeholder.txt").write_text("placeholder\n")
    for model in params["models"].values():  # dataset paths inside directory outputs (data/DigitsConvNet/heldout)
        for section in ("calibration", "evaluation"):
            path = repo / model[section]["path"]
            if not path.exists():
                path.mkdir(parents=True)
                (path / "placeholder.txt").write_text("placeholder\n")
    dvc(repo, "commit", "--force")
    assert dirty(repo) == set(), "freshly committed pipeline is not up to date"
    return repo


def _probe(deps: Dict[str, Set[str]], stage: str, networks: Set[str]) -> str:
    """The library module of ``stage``'s closure run by the fewest stage instances, deepest first (the most
    telling edit; stage scripts and network files have tests of their own)."""
    code = [d for d in deps[stage] if d.startswith("furiosa/") and d.endswith(".py") and d not in networks]
    return min(code, key=lambda d: (sum(d in v for v in deps.values()), -d.count("/"), d))


def _edit_and_status(repo: Path, module: str) -> Set[str]:
    path = repo / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# edited by test_pipeline_deps\n")
        return dirty(repo)
    finally:
        path.write_bytes(original)


STAGES = sorted(yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text("utf-8"))["stages"])


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_editing_code_a_stage_runs_dirties_exactly_the_stages_that_run_it(committed, stage):
    deps = instances(committed)
    target = next(s for s in deps if s == stage or s.startswith(stage + "@"))
    models = yaml.safe_load((committed / "params.yaml").read_text("utf-8"))["models"]
    module = _probe(deps, target, {m["network"] for m in models.values()})
    expected = {s for s, files in deps.items() if module in files}
    assert target in expected
    assert _edit_and_status(committed, module) == expected, module


@pytest.mark.slow
def test_editing_a_deep_lazy_import_dirties_every_stage_that_reaches_it(committed):
    """sources/transfer.py is reached only through imports inside functions (weights -> download)."""
    module = "furiosa/artifacts/sources/transfer.py"
    got = _edit_and_status(committed, module)
    models = yaml.safe_load((committed / "params.yaml").read_text("utf-8"))["models"]
    assert got == {s for s, files in instances(committed).items() if module in files}
    assert {f"weights@{m}" for m in models} <= got


@pytest.mark.slow
def test_editing_a_stage_script_dirties_only_that_stage(committed):
    models = yaml.safe_load((committed / "params.yaml").read_text("utf-8"))["models"]
    assert _edit_and_status(committed, "stages/quantize.py") == {f"quantize@{m}" for m in models}


@pytest.mark.slow
def test_editing_one_network_file_dirties_only_its_model(committed):
    network = yaml.safe_load((committed / "params.yaml").read_text("utf-8"))["models"]["MLCommonsResNet50"]["network"]
    assert _edit_and_status(committed, network) == {
        f"{s}@MLCommonsResNet50" for s in ("weights", "export", "calibrate", "quantize", "evaluate")}


def test_shipped_dvc_yaml_is_up_to_date():
    assert check_stage_deps(REPO_ROOT) == []
    proc = run_cli(["dvc-deps", "--check", "--root", str(REPO_ROOT)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lazy_imports_count(tmp_path):
    (tmp_path / "furiosa/artifacts/sub").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    (tmp_path / "furiosa/artifacts/__init__.py").write_text("")
    (tmp_path / "furiosa/artifacts/sub/__init__.py").write_text("")
    (tmp_path / "furiosa/artifacts/sub/deep.py").write_text("X = 'table.txt'\n")
    (tmp_path / "furiosa/artifacts/sub/table.txt").write_text("1\n")
    (tmp_path / "furiosa/artifacts/sub/mid.py").write_text(textwrap.dedent("""\
        def f():
            if True:
                from . import deep
            return deep
        """))
    (tmp_path / "furiosa/artifacts/unused.py").write_text("")
    (tmp_path / "stages/go.py").write_text("def main():\n    import furiosa.artifacts.sub.mid\n")
    assert import_closure(tmp_path, "stages/go.py") == [
        "stages/go.py", "furiosa/artifacts/__init__.py", "furiosa/artifacts/sub/__init__.py",
        "furiosa/artifacts/sub/deep.py", "furiosa/artifacts/sub/mid.py"]
    (tmp_path / "params.yaml").write_text("models: {}\n")
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent("""\
        # top comment
        stages:
          go:
            cmd: python stages/go.py --out out.txt   # a new stage nobody configured
            deps:
              - furiosa/artifacts/unused.py
              - inputs/raw.csv
            outs:
              - out.txt
        artifacts: {}
        """))
    problems = check_stage_deps(tmp_path)
    assert any("furiosa/artifacts/sub/deep.py" in m and "does not depend on" in m for _, m in problems)
    assert any("furiosa/artifacts/unused.py" in m and "never imports" in m for _, m in problems)
    assert write_stage_deps(tmp_path) == [tmp_path / "dvc.yaml"]
    text = (tmp_path / "dvc.yaml").read_text()
    assert text.startswith("# top comment\n") and "# a new stage nobody configured" in text
    assert text.endswith("artifacts: {}\n")
    assert yaml.safe_load(text)["stages"]["go"]["deps"] == [
        "stages/go.py", "furiosa/artifacts/__init__.py", "furiosa/artifacts/sub/__init__.py",
        "furiosa/artifacts/sub/deep.py", "furiosa/artifacts/sub/mid.py", "furiosa/artifacts/sub/table.txt",
        "inputs/raw.csv"]
    assert check_stage_deps(tmp_path) == [] and write_stage_deps(tmp_path) == []


def test_lint_fails_on_drift(repo_copy):
    path = repo_copy / "dvc.yaml"
    path.write_text(path.read_text().replace("      - furiosa/artifacts/pipeline/samples.py\n", "", 1))
    problems = [str(p) for p in lint_catalog(repo_copy)]
    assert problems == [f"{path}:1:1: stage 'samples' runs code it does not depend on: "
                        "furiosa/artifacts/pipeline/samples.py; run `furiosa-artifacts dvc-deps` [/stages/samples/deps]"]
    assert write_stage_deps(repo_copy) == [path]
    assert lint_catalog(repo_copy) == []


def test_a_dep_on_a_deleted_module_is_drift_and_regenerating_drops_it(repo_copy):
    """Renaming a module must not leave dvc.yaml depending on a file that no longer exists (dvc repro would fail)."""
    path = repo_copy / "dvc.yaml"
    line = "      - furiosa/artifacts/pipeline/samples.py\n"
    path.write_text(path.read_text().replace(line, line + "      - furiosa/artifacts/pipeline/renamed_away.py\n", 1))
    problems = [str(p) for p in lint_catalog(repo_copy)]
    assert len(problems) == 1 and "renamed_away.py" in problems[0] and "/stages/samples/deps" in problems[0]
    assert write_stage_deps(repo_copy) == [path]
    assert "renamed_away.py" not in path.read_text() and lint_catalog(repo_copy) == []


def test_specs_yaml_is_tracked_per_model_where_read():
    want = expected_stage_deps(REPO_ROOT)
    pipeline = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text("utf-8"))
    for name, stage in pipeline["stages"].items():
        if "foreach" in stage:
            assert want[name].keyed_params == ("furiosa/artifacts/vision/specs.yaml",)
            assert {"furiosa/artifacts/vision/specs.yaml": ["${key}"]} in stage["do"]["params"]
            assert "furiosa/artifacts/vision/specs.yaml" not in stage["do"]["deps"]


def test_stage_commands_are_recognised(tmp_path):
    from furiosa.artifacts.catalog.stage_deps import stage_script

    (tmp_path / "furiosa/artifacts/tool").mkdir(parents=True)
    (tmp_path / "furiosa/artifacts/tool/__main__.py").write_text("")
    assert stage_script({"cmd": "python stages/x.py --a b"}) == "stages/x.py"
    assert stage_script({"cmd": ["python3 -u stages/y.py", "echo done"]}) == "stages/y.py"
    assert stage_script({"cmd": "python  stages/z.py\n  --out o"}) == "stages/z.py"
    assert stage_script({"cmd": "python -m furiosa.artifacts.tool --x"}, tmp_path) == "furiosa/artifacts/tool/__main__.py"
    assert stage_script({"cmd": "cp a b"}) is None
