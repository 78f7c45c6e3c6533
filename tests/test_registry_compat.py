"""The real furiosa-registry 0.5.2 client (its own venv, pydantic<2) lists and loads every entry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clients.venvs import call_client
from conftest import REPO_ROOT, copy_repo
from furiosa.artifacts.catalog.schema import load_schema
from furiosa.artifacts.layout import binary_relpath

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

CATALOG = yaml.safe_load((REPO_ROOT / "artifacts.yaml").read_text())["artifacts"]
SPECS = yaml.safe_load((REPO_ROOT / "furiosa" / "artifacts" / "vision" / "specs.yaml").read_text())


def built_binaries() -> list:
    """Every int8 binary the catalog needs, built by the main job (`furiosa-artifacts build`)."""
    rels = [binary_relpath(e["name"], "int8") if e["format"] == "code" else e["location"] for e in CATALOG]
    missing = [r for r in rels if not (REPO_ROOT / r).is_file()]
    if missing:
        pytest.fail(f"binaries not built: {missing}; run the README's main command "
                    "(`furiosa-artifacts build --weights synthetic`) or `dvc pull` first")
    return sorted(set(rels) | {str(Path(r).parent / "metrics.json") for r in rels})


@pytest.fixture(scope="module")
def registry_repo(tmp_path_factory) -> Path:
    """A clean copy of the catalog repository (git-visible files plus the built binaries)."""
    return copy_repo(tmp_path_factory.mktemp("catalog") / "furiosa-artifacts", extra=built_binaries())


def test_list_returns_every_entry(registry_repo, tmp_path):
    proc = call_client("0.5.2", ["list", f"file://{registry_repo}"], home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [(a["name"], a["version"], a["format"]) for a in listed] == [
        (e["name"], e.get("version"), e["format"]) for e in CATALOG]
    for got, want in zip(listed, CATALOG):
        assert got["family"] == want["family"]
        assert got["metadata"]["description"] == want["metadata"]["description"]
        assert got["metadata"]["publication"]["date"] == str(want["metadata"]["publication"]["date"])


@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_load_returns_valid_onnx(entry, registry_repo, tmp_path):
    proc = call_client("0.5.2", ["load", f"file://{registry_repo}", entry["name"], entry.get("version") or "-"],
                       home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads(proc.stdout)
    assert model["name"] == entry["name"] and model["version"] == entry.get("version")
    assert model["description"] == entry["metadata"]["description"]
    expected = (registry_repo / (binary_relpath(entry["name"], "int8") if entry["format"] == "code"
                                 else entry["location"])).read_bytes()
    assert model["bytes"] == len(expected)
    assert model["inputs"][0] == SPECS[entry["name"].removesuffix("_INT8")]["input"]["name"]
    if entry["format"] == "code":
        assert model["type"] == "furiosa.artifacts.model.Model"


def test_unknown_key_is_rejected_by_the_client_too(registry_repo, tmp_path):
    bad = copy_repo(tmp_path / "bad")
    text = (bad / "artifacts.yaml").read_text().replace("    family: ResNet\n", "    family: ResNet\n    sha256: x\n", 1)
    (bad / "artifacts.yaml").write_text(text)
    proc = call_client("0.5.2", ["list", f"file://{bad}"], home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode != 0 and "extra fields not permitted" in proc.stderr


def test_schema_mirrors_the_registry_artifact_model(tmp_path):
    proc = call_client("0.5.2", ["schema"], home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    registry = json.loads(proc.stdout)
    schema = load_schema()
    defs = schema["$defs"]

    def compare(fields, definition, where):
        assert set(definition["properties"]) == set(fields), where
        assert set(definition.get("required", [])) == {k for k, v in fields.items() if v["required"]}, where
        assert definition["additionalProperties"] is False, where
        for key, value in fields.items():
            if value["fields"]:
                ref = definition["properties"][key]["$ref"].rsplit("/", 1)[-1]
                compare(value["fields"], defs[ref], f"{where}.{key}")

    compare(registry["artifact"], defs["Artifact"], "Artifact")
    assert sorted(defs["Artifact"]["properties"]["format"]["enum"]) == registry["formats"]


def test_code_entry_points_import_without_torch():
    code = ("import sys, furiosa.artifacts.artifacts as a, furiosa.artifacts.loader;"
            "assert 'torch' not in sys.modules, 'torch imported';"
            "print(sorted(n for n in dir(a) if n[0].isupper() and n not in ('Model',)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    names = {e["name"] for e in CATALOG if e["format"] == "code"}
    assert names <= set(eval(proc.stdout))  # noqa: S307 - our own printed list literal


def test_no_furiosa_init_keeps_the_namespace_open():
    assert not (REPO_ROOT / "furiosa" / "__init__.py").exists()
