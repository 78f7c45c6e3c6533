"""dvc.yaml's `artifacts:` section: generated from the catalog, checked against it, read by DVC itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.layout import binary_relpath
from furiosa.artifacts.registries.dvc_artifacts import (
    GTO_CONFIG, GTO_CONFIG_TEXT, check_dvc_artifacts, expected_artifacts, updated_dvc_yaml, write_dvc_artifacts,
)
from furiosa.artifacts.registries.names import dvc_name
from furiosa.artifacts.vision.specs import load_spec
from test_registries_support import CODE_MODELS, run_block
from test_storage_support import tool_env

BLOCK = "generate"


def without_section(root):
    """``root``'s dvc.yaml and .gto as they were before the generator ran (the section cut off)."""
    path = root / "dvc.yaml"
    text = path.read_text()
    cut = text.find("\n# DVC model registry")
    if cut >= 0:
        path.write_text(text[:cut + 1].rstrip("\n") + "\n")
    (root / GTO_CONFIG).unlink(missing_ok=True)
    return path.read_text()


def test_this_checkout_is_up_to_date():
    assert check_dvc_artifacts(REPO_ROOT) == []


def test_every_built_binary_is_an_artifact_with_catalog_facts():
    got = expected_artifacts(REPO_ROOT)
    assert len(got) == 2 * len(CODE_MODELS)
    for entry in CODE_MODELS:
        for precision in ("int8", "fp32"):
            art = got[dvc_name(entry["name"], precision)].as_dict()
            assert art["path"] == binary_relpath(entry["name"], precision) and art["type"] == "model"
            assert " ".join(entry["metadata"]["description"].split()) in art["desc"]
            assert art["labels"] == [load_spec(entry["name"]).task, precision, entry["family"].lower()]
            assert art["meta"] == {"catalog": entry["name"], "version": entry["version"], "precision": precision}
            assert "synthetic" not in art["labels"]  # a build's property, not the artifact's


def test_generator_keeps_the_rest_of_dvc_yaml_byte_for_byte_and_is_idempotent(repo_copy):
    before = without_section(repo_copy)
    changed = write_dvc_artifacts(repo_copy)
    assert changed == [repo_copy / "dvc.yaml", repo_copy / GTO_CONFIG]
    after = (repo_copy / "dvc.yaml").read_text()
    assert after.startswith(before) and after[len(before):].startswith("\n# DVC model registry")
    assert (repo_copy / GTO_CONFIG).read_text() == GTO_CONFIG_TEXT
    assert write_dvc_artifacts(repo_copy) == []
    assert check_dvc_artifacts(repo_copy) == []
    data = yaml.safe_load(after)
    assert list(data["artifacts"]) == list(expected_artifacts(repo_copy))
    assert data["stages"] == yaml.safe_load(before)["stages"]


def test_replacing_a_section_in_the_middle_keeps_what_follows():
    text = "stages:\n  a:\n    cmd: x\n\nartifacts:\n  old:\n    path: p\n\n# about plots\nplots:\n  - p.json\n"
    new = updated_dvc_yaml(text, "artifacts:\n  new:\n    path: q\n")
    assert new == "stages:\n  a:\n    cmd: x\n\nartifacts:\n  new:\n    path: q\n\n# about plots\nplots:\n  - p.json\n"
    assert updated_dvc_yaml(new, "artifacts:\n  new:\n    path: q\n") == new


def test_check_names_missing_extra_and_wrong_entries(repo_copy):
    write_dvc_artifacts(repo_copy)
    path = repo_copy / "dvc.yaml"
    data = yaml.safe_load(path.read_text())
    del data["artifacts"]["digits-convnet-fp32"]
    data["artifacts"]["resnet50"] = dict(data["artifacts"]["mlcommons-resnet50"])
    data["artifacts"]["efficientnetv2-s"]["path"] = "models/EfficientNetV2_S/fp32.onnx"
    data["artifacts"]["mlcommons-ssd-mobilenet"]["labels"] = ["detection", "int8", "synthetic"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = dict(check_dvc_artifacts(repo_copy))
    assert "missing artifact 'digits-convnet-fp32' for DigitsConvNet fp32" in \
        problems["dvc.yaml:/artifacts/digits-convnet-fp32"]
    assert "extra artifact 'resnet50'" in problems["dvc.yaml:/artifacts/resnet50"]
    assert "mlcommons-resnet50, MLCommonsResNet50" in problems["dvc.yaml:/artifacts/resnet50"]
    assert "wrong path for EfficientNetV2_S int8" in problems["dvc.yaml:/artifacts/efficientnetv2-s/path"]
    labels = problems["dvc.yaml:/artifacts/mlcommons-ssd-mobilenet/labels"]
    assert "stale labels for MLCommonsSSDMobileNet int8" in labels
    assert len(problems) == 4


def test_check_flags_a_missing_section_and_a_gto_config_that_reads_the_catalog(repo_copy):
    without_section(repo_copy)
    (repo_copy / GTO_CONFIG).write_text("INDEX: artifacts.yaml\n")
    problems = check_dvc_artifacts(repo_copy)
    assert ("dvc.yaml", "no `artifacts:` section (the DVC model registry): run `furiosa-artifacts dvc-artifacts`") \
        in problems
    assert any(where == ".gto:/INDEX" for where, _ in problems)
    with pytest.raises(ValueError, match="INDEX"):
        write_dvc_artifacts(repo_copy)


def add_model(root, name):
    """A copy of DigitsConvNet named ``name`` in the catalog, params.yaml and specs.yaml of ``root``."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["models"][name] = params["models"]["DigitsConvNet"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    catalog = (root / "artifacts.yaml").read_text()
    start = catalog.index("  - name: DigitsConvNet\n")
    block = catalog[start:catalog.index("\n\n", start) + 1].replace("name: DigitsConvNet", f"name: {name}")
    (root / "artifacts.yaml").write_text(catalog.rstrip("\n") + "\n\n" + block)
    specs = root / "furiosa" / "artifacts" / "vision" / "specs.yaml"
    spec = yaml.safe_load(specs.read_text())
    spec[name] = spec["DigitsConvNet"]
    specs.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_new_catalog_model_is_missing_until_regenerated(repo_copy):
    write_dvc_artifacts(repo_copy)
    add_model(repo_copy, "DigitsConvNetSmall")
    where = {w for w, _ in check_dvc_artifacts(repo_copy)}
    assert where == {"dvc.yaml:/artifacts/digits-convnet-small", "dvc.yaml:/artifacts/digits-convnet-small-fp32"}
    write_dvc_artifacts(repo_copy)
    assert check_dvc_artifacts(repo_copy) == []


def test_colliding_names_are_reported(repo_copy):
    add_model(repo_copy, "DigitsConvNet_FP32")  # its int8 artifact would be DigitsConvNet's fp32 one
    problems = check_dvc_artifacts(repo_copy)
    assert len(problems) == 1 and "both get the DVC artifact name 'digits-convnet-fp32'" in problems[0][1]


def test_docs_generate_block_and_cli(repo_copy, tmp_path):
    env = tool_env(tmp_path / "env")
    without_section(repo_copy)
    stale = run_cli(["dvc-artifacts", "--check", "--json"], cwd=repo_copy)
    assert stale.returncode == 1 and not json.loads(stale.stdout)["ok"]
    proc = run_block(BLOCK, repo_copy, env)
    assert "updated" in proc.stdout
    assert run_cli(["dvc-artifacts"], cwd=repo_copy, check=True).stdout.strip() == "dvc.yaml artifacts are up to date"


def test_dvc_reads_the_generated_section(repo_copy, tmp_path):
    """DVC itself (its dvc.yaml schema and `Repo.artifacts.read`) accepts what we generate."""
    write_dvc_artifacts(repo_copy)
    code = ("import json, sys; from dvc.repo import Repo; r = Repo(sys.argv[1]); "
            "print(json.dumps({n: {'path': a.path, 'type': a.type, 'labels': a.labels, 'desc': a.desc} "
            "for n, a in r.artifacts.read()['dvc.yaml'].items()}))")
    env = tool_env(tmp_path / "env")
    subprocess.run(["git", "init", "-q"], cwd=repo_copy, check=True, env=env)
    proc = subprocess.run([sys.executable, "-c", code, str(repo_copy)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    read = json.loads(proc.stdout)
    assert {n: a["path"] for n, a in read.items()} == {n: a.path for n, a in expected_artifacts(repo_copy).items()}
    assert all(a["type"] == "model" and a["labels"] and a["desc"] for a in read.values())
