"""The real furiosa-registry 0.9.1 client (its own venv, pydantic<2, a fresh process per call) lists and
loads every catalog entry through the root-level artifacts.py; 0.5.2 keeps working beside it."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from clients.venvs import CLIENTS, call_client, client_python
from conftest import REPO_ROOT, copy_repo
from furiosa.artifacts.layout import binary_relpath, metrics_relpath
from furiosa.artifacts.registries.names import semver
from furiosa.artifacts.vision.specs import load_spec
from test_registries_support import CATALOG, doc_blocks
from test_storage_support import tool_env

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

BLOCK = "furiosa-registry-0.9"
SPECS_INPUT = {e["name"]: e["name"].removesuffix("_INT8") for e in CATALOG}


def binary_of(entry) -> str:
    return binary_relpath(entry["name"], "int8") if entry["format"] == "code" else entry["location"]


@pytest.fixture(scope="module")
def catalog_copy(tmp_path_factory) -> Path:
    """A clean copy of the catalog (git-visible files, root artifacts.py included) with the int8 binaries."""
    rels = sorted({binary_of(e) for e in CATALOG} | {metrics_relpath(SPECS_INPUT[e["name"]]) for e in CATALOG})
    missing = [r for r in rels if not (REPO_ROOT / r).is_file()]
    if missing:
        pytest.fail(f"binaries not built: {missing}; run `furiosa-artifacts build --weights synthetic` first")
    return copy_repo(tmp_path_factory.mktemp("catalog09") / "furiosa-artifacts", extra=rels)


def client(args, tmp_path, version="0.9.1"):
    return call_client(version, args, home=tmp_path / "home", cwd=tmp_path)


def test_list_is_every_catalog_entry(catalog_copy, tmp_path):
    proc = client(["list", f"file://{catalog_copy}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)) == sorted(e["name"] for e in CATALOG)


@pytest.mark.parametrize("entry", CATALOG, ids=[e["name"] for e in CATALOG])
def test_load_returns_a_registry_model_filled_from_the_catalog(entry, catalog_copy, tmp_path):
    version = entry["version"] if entry["format"] == "code" else semver(entry["version"])  # both forms accepted
    proc = client(["load", f"file://{catalog_copy}", entry["name"], version], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads(proc.stdout)
    assert model["is_registry_model"] and model["type"].endswith(".CatalogModel")
    assert (model["name"], model["version"], model["family"], model["format"]) == (
        entry["name"], entry["version"], entry["family"], "onnx")
    meta, pub = model["metadata"], entry["metadata"]["publication"]
    assert meta["description"] == entry["metadata"]["description"]
    assert meta["publication"] == {**pub, "date": str(pub["date"])}
    expected = catalog_copy / binary_of(entry)
    assert model["bytes"] == expected.stat().st_size
    assert model["sha256"] == hashlib.sha256(expected.read_bytes()).hexdigest()
    spec = load_spec(SPECS_INPUT[entry["name"]])
    tensor = model["tensors"]["inputs"][0]
    assert tensor["name"] == spec.input.name and tensor["datatype"] == "float32"
    assert tensor["shape"][1:] == list(spec.input.shape)
    assert model["has_preprocess"] and not model["torch_imported"]


def test_help_and_version_mismatch(catalog_copy, tmp_path):
    proc = client(["help", f"file://{catalog_copy}", "MLCommonsSSDMobileNet", "v1.1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout).startswith("SSD object detector with a MobileNet-v1 backbone")
    bad = client(["load", f"file://{catalog_copy}", "DigitsConvNet", "v9.0"], tmp_path)
    assert bad.returncode != 0 and "DigitsConvNet is version 'v1.0' in this catalog, not 'v9.0'" in bad.stderr


def test_the_descriptor_holds_no_list_of_models(tmp_path):
    source = (REPO_ROOT / "artifacts.py").read_text("utf-8")
    tree = ast.parse(source)
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & {e["name"] for e in CATALOG}
    assert "from __future__" not in source  # the client calls issubclass() on return annotations


def test_a_catalog_entry_appears_without_touching_the_descriptor(tmp_path):
    copy = copy_repo(tmp_path / "furiosa-artifacts")
    text = (copy / "artifacts.yaml").read_text()
    start = text.index("  - name: DigitsConvNet_INT8\n")
    (copy / "artifacts.yaml").write_text(text.rstrip("\n") + "\n\n" + text[start:].replace(
        "name: DigitsConvNet_INT8", "name: DigitsConvNet_INT8_Copy").rstrip("\n") + "\n")
    proc = client(["list", f"file://{copy}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "DigitsConvNet_INT8_Copy" in json.loads(proc.stdout)


def test_the_0_5_2_client_still_reads_artifacts_yaml_beside_the_descriptor(catalog_copy, tmp_path):
    assert (catalog_copy / "artifacts.py").is_file()
    listed = client(["list", f"file://{catalog_copy}"], tmp_path, version="0.5.2")
    assert listed.returncode == 0, listed.stderr
    assert [a["name"] for a in json.loads(listed.stdout)] == [e["name"] for e in CATALOG]
    loaded = client(["load", f"file://{catalog_copy}", "MLCommonsResNet50", "v1.5"], tmp_path, version="0.5.2")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["type"] == "furiosa.artifacts.model.Model"


def test_docs_block(catalog_copy, tmp_path):
    """The docs' commands, in the client's venv (created by `pip install` of the same requirements)."""
    lines = doc_blocks()[BLOCK].splitlines()
    installs = [line for line in lines if line.startswith("pip install ")]
    wanted = {req.strip('"') for line in installs for req in line.split()[2:]}
    assert installs and wanted == set(CLIENTS["0.9.1"])
    script = "\n".join(line for line in lines if line not in installs)
    env = tool_env(tmp_path / "env")
    env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{client_python('0.9.1').parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=catalog_copy, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed, loaded = proc.stdout.splitlines()
    assert sorted(re.findall(r"'(\w+)'", listed)) == sorted(e["name"] for e in CATALOG)
    size = (catalog_copy / binary_relpath("MLCommonsResNet50", "int8")).stat().st_size
    assert loaded == f"MLCommonsResNet50 v1.5 onnx ResNet {size} [-1, 3, 224, 224]"
