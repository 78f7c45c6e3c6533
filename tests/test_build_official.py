"""The official build, for real: a DVC repository copy pointed at a mirror directory that holds faithful
replicas of the official files under their real names, with the pins overridden for the test (the replicas'
sha256 and size). The weights stage downloads them through the verified cache, reads each real format with its
safe reader, and the pipeline builds int8 binaries that carry no synthetic mark.

Every model with a replica builder in ``tests/replicas`` (``REPLICAS``) is converted by its weights stage;
``QUANTIZED`` (two models, to keep CI short) go on through export, calibrate and quantize. Set
``FURIOSA_TEST_OFFICIAL_QUANTIZE=all`` to take every replica model to int8.

The refusal test runs the ``build --weights official`` CLI on an unpinned and an unreachable model: each is
reported with its fix and the command exits 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import BIN_DIR, copy_repo, run_cli

torch = pytest.importorskip("torch")

from replicas import REPLICAS  # noqa: E402
from replicas import resnet50_legacy_tar as legacy  # noqa: E402

OFFICIAL = ("MLCommonsResNet50", "EfficientNetV2_S", "MLCommonsSSDResNet34", "MLCommonsSSDMobileNet")
QUANTIZED = ("MLCommonsResNet50", "EfficientNetV2_S")
PINS = ("sha256", "sha384", "md5", "size")


def _dvc(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN_DIR / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=1500)
    if proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def _marks(data: object, key: str) -> list:
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(data, dict):
        return [v for k, v in data.items() if k == key] + [m for v in data.values() for m in _marks(v, key)]
    if isinstance(data, list):
        return [m for v in data for m in _marks(v, key)]
    return []


def _prepare(repo: Path, keep: dict) -> None:
    """params.yaml of the copy: ``keep`` (name -> source overrides) applied, official weights, short latency.
    Every model stays in params (the catalog lists them all); only the targets named are built."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text("utf-8"))
    for name, overrides in keep.items():
        source = params["models"][name]["source"]
        for key in PINS:
            source.pop(key, None)
        source.update(overrides)
    params["base"]["weights"] = "official"
    params["base"]["latency"].update(repeats=1, rounds=1, warmup=0)
    path.write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    (repo / "params.local.yaml").write_text("base:\n  weights: official\n", "utf-8")  # what `build --weights` writes
    (repo / "dvc.lock").unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)


@pytest.mark.slow
@pytest.mark.skipif(not legacy.HEAD.is_file(), reason=f"needs the real header fixture {legacy.HEAD}")
def test_official_build_from_replicas_in_a_mirror(tmp_path: Path):
    names = [name for name in OFFICIAL if name in REPLICAS]
    quantized = names if os.environ.get("FURIOSA_TEST_OFFICIAL_QUANTIZE") == "all" else \
        [n for n in names if n in QUANTIZED]
    repo = copy_repo(tmp_path / "repo")
    real = yaml.safe_load((repo / "params.yaml").read_text("utf-8"))["models"]
    mirror = tmp_path / "mirror"
    replicas, keep = {}, {}
    for name in names:
        replica = REPLICAS[name](mirror, seed=0)
        assert replica.path.parent == mirror and replica.path.name == real[name]["source"]["filename"], name
        assert replica.member == real[name]["source"].get("member"), name
        overrides = {"sha256": hashlib.sha256(replica.path.read_bytes()).hexdigest()}
        if "size" in real[name]["source"]:
            overrides["size"] = replica.path.stat().st_size
        replicas[name], keep[name] = replica, overrides
    _prepare(repo, keep)
    env = dict(os.environ, PATH=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               DVC_SITE_CACHE_DIR=str(tmp_path / "dvc-site"), FURIOSA_ARTIFACTS_MIRRORS=str(mirror),
               FURIOSA_ARTIFACTS_HOME=str(tmp_path / "home"))
    targets = [f"quantize@{n}" for n in quantized] + [f"weights@{n}" for n in names if n not in quantized]
    proc = _dvc(repo, env, "repro", *targets)
    for name in names:
        assert f"Running stage 'weights@{name}'" in proc.stdout
        record = json.loads((repo / "models" / name / "weights.json").read_text("utf-8"))
        assert record["source"] == "url" and record["synthetic"] is False and "deployable" not in record, record
        assert record["sha256"] == keep[name]["sha256"]  # the pin it was downloaded and verified by
        if replicas[name].member is None:  # else the stage converted the member it took out of the archive
            assert record["conversion"]["sha256"] == keep[name]["sha256"]
        else:
            assert record["member"] == replicas[name].member and record["conversion"]["format"] == "tf_graphdef"
        state = torch.load(repo / "models" / name / "weights.pt", map_location="cpu", weights_only=True)
        expected = {k: torch.as_tensor(v) for k, v in replicas[name].expected.items() if k in state}
        assert len(expected) >= min(50, len(replicas[name].expected)), name
        for key, value in expected.items():  # the stage's output is the replica's tensors
            assert torch.allclose(state[key].double(), value.double(), rtol=1e-5, atol=1e-6), (name, key)
    assert json.loads((repo / "models" / "MLCommonsResNet50" / "weights.json").read_text())["conversion"]["format"] \
        == "torch_legacy_tar"
    import onnxruntime as ort

    from furiosa.artifacts.vision.specs import load_spec

    for name in quantized:
        int8 = repo / "models" / name / "int8.onnx"
        session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((1, *load_spec(name).input.shape)).astype(np.float32)
        outputs = session.run(None, {session.get_inputs()[0].name: x})
        assert all(np.isfinite(o).all() for o in outputs)
        report = json.loads((repo / "models" / name / "quantize.json").read_text("utf-8"))
        assert all(m is False for m in _marks(report, "synthetic")), report
    assert not list((tmp_path / "home" / "blobs").glob("*/*.incomplete"))


@pytest.mark.slow
def test_official_build_reports_each_model_and_the_fix(tmp_path: Path):
    """One model unpinned (refused before anything runs), one pinned but unreachable (its stage fails):
    both reported with their fix, exit 1."""
    repo = copy_repo(tmp_path / "repo")
    _prepare(repo, {"EfficientNetV2_S": {},
                    "MLCommonsResNet50": {"sha256": "0" * 64, "urls": ["file:///nonexistent/resnet50-19c8e357.pth"]}})
    env = {"FURIOSA_ARTIFACTS_HOME": str(tmp_path / "home"), "FURIOSA_ARTIFACTS_MIRRORS": "",
           "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site")}
    proc = run_cli(["build", "--weights", "official", "--no-push", "--root", str(repo), "--json",
                    "--model", "EfficientNetV2_S", "--model", "MLCommonsResNet50"], env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    outcomes = {o["model"]: o for o in json.loads(proc.stdout)["models"]}
    refused, failed = outcomes["EfficientNetV2_S"], outcomes["MLCommonsResNet50"]
    assert refused["status"] == "refused"
    assert "params.yaml: models.EfficientNetV2_S.source: no published checksum pinned" in refused["error"]
    assert "--weights synthetic" in refused["error"] and "FURIOSA_ARTIFACTS_MIRRORS" in refused["error"]
    assert failed["status"] == "failed" and "could not download resnet50-19c8e357.pth" in failed["error"]
    assert "To fix" in failed["error"] and "synthetic" in failed["error"]
    assert "Running stage 'weights@EfficientNetV2_S'" not in proc.stdout + proc.stderr
