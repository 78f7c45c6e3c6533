"""The DVC pipeline for real: `dvc repro` in a copy of the repository, push/pull through the default
local remote, and "editing one model rebuilds only that model".

The copy keeps two models so the suite stays fast: the trained DigitsConvNet (real data, real gates)
and MLCommonsSSDMobileNet from explicitly requested synthetic weights at full architecture, calibrated
and evaluated on a small COCO-style dataset outside the repository (real photos, hand-drawn boxes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import BIN_DIR, copy_repo
from furiosa.artifacts.layout import metrics_relpath

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

KEEP = ("DigitsConvNet", "MLCommonsSSDMobileNet")
STAGES = ("weights", "export", "calibrate", "quantize", "evaluate")


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               DVC_SITE_CACHE_DIR=str(repo.parent / "dvc-site"))
    proc = subprocess.run([str(BIN_DIR / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(repo: Path) -> dict:
    return {str(p.relative_to(repo)): digest(p) for p in sorted((repo / "models").rglob("*")) if p.is_file() and p.name != ".gitignore"}


def coco_dataset(root: Path) -> Path:
    """A COCO-style dataset: 4 real photos (crops of scikit-learn's samples) in val/ and instances json."""
    from furiosa.artifacts.pipeline.samples import write_samples

    files = write_samples(root / "val", count=4, size=[240, 320], seed=7)
    (root / "val" / "manifest.json").unlink()
    images = [{"id": i, "file_name": f.name, "width": 320, "height": 240} for i, f in enumerate(files, 1)]
    annotations = [{"id": n, "image_id": i, "category_id": c, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
                   for n, (i, c, box) in enumerate([(1, 1, [20, 30, 100, 150]), (2, 3, [150, 60, 120, 80]),
                                                    (3, 1, [40, 40, 60, 60]), (4, 64, [0, 0, 320, 240])], 1)]
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 64, "name": "potted plant"}]}))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    coco = coco_dataset(repo.parent / "coco")
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["models"] = {k: v for k, v in params["models"].items() if k in KEEP}
    ssd = params["models"]["MLCommonsSSDMobileNet"]
    ssd["calibration"] = {"data": "coco", "path": str(coco), "images": "val", "count": 4, "offset": 0}
    ssd["evaluation"] = {"data": "coco", "path": str(coco), "images": "val",
                         "annotations": "annotations/instances_val.json", "count": None, "offset": 0}
    params["base"]["latency"].update(repeats=2, rounds=1, warmup=1)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "params.local.yaml").write_text("base:\n  weights: synthetic\n")  # what `build --weights` writes
    (repo / "dvc.lock").unlink(missing_ok=True)  # this copy's own provenance starts empty
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    proc = dvc(repo, "repro")
    assert "Running stage 'weights@DigitsConvNet'" in proc.stdout
    return repo


def test_repro_builds_every_output_and_metrics(built):
    for name in KEEP:
        for rel in ("weights.pt", "fp32.onnx", "calibration.npz", "int8.onnx", "metrics.json"):
            assert (built / "models" / name / rel).is_file(), f"{name}/{rel} missing"
    digits = json.loads((built / metrics_relpath("DigitsConvNet")).read_text())
    assert digits["weights"] == {"source": "train", "deployable": True}
    assert digits["fp32_top1"] > 0.95, digits
    assert digits["int8_top1"] >= 0.99 * digits["fp32_top1"], digits  # MLPerf's rule, also a gate
    assert digits["accuracy"]["count"] == digits["evaluation_inputs"] == 449
    assert digits["gates"]["int8_accuracy_ratio_min"]["status"] == "pass"
    assert all(g["status"] == "pass" for g in digits["gates"].values())
    ssd = json.loads((built / metrics_relpath("MLCommonsSSDMobileNet")).read_text())
    assert ssd["weights"] == {"source": "synthetic", "deployable": False}
    # scored on the COCO-style dataset by pycocotools (random weights: the numbers exist, the gates do not bind)
    assert ssd["accuracy"]["count"] == 4 and ssd["accuracy"]["dataset"]["kind"] == "coco"
    assert 0.0 <= ssd["fp32_map"] <= ssd["fp32_map50"] <= 1.0 and "int8_vs_fp32_detection_f1" in ssd
    assert ssd["accuracy"]["published"]["value"] == 0.23 and "fp32_published_gap" in ssd
    assert ssd["provenance"]["synthetic"] is True
    assert all(g["status"] == "not_applicable" for g in ssd["gates"].values())
    assert ssd["size_ratio"] < 0.5 and ssd["parameters"] > 5_000_000
    shown = json.loads(dvc(built, "metrics", "show", "--json").stdout)
    assert "models/DigitsConvNet/metrics.json" in json.dumps(shown)
    status = dvc(built, "status")
    assert "up to date" in status.stdout.lower(), status.stdout


def test_push_then_pull_restores_byte_identical(built):
    before = outputs(built)
    dvc(built, "push")
    assert any((built / ".dvc-storage").rglob("*")), "default local remote received nothing"
    shutil.rmtree(built / "models")
    shutil.rmtree(built / ".dvc" / "cache")
    assert "deleted" in dvc(built, "status").stdout
    dvc(built, "pull")
    assert outputs(built) == before
    assert "up to date" in dvc(built, "status").stdout.lower()


def test_editing_one_model_rebuilds_only_that_model(built):
    params_path = built / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["models"]["DigitsConvNet"]["quantization"]["method"] = "Percentile"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    untouched = {k: v for k, v in outputs(built).items() if "MLCommonsSSDMobileNet" in k}
    proc = dvc(built, "repro")
    ran = {line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"quantize@DigitsConvNet", "evaluate@DigitsConvNet"}, proc.stdout
    assert {k: v for k, v in outputs(built).items() if "MLCommonsSSDMobileNet" in k} == untouched
    quant = json.loads((built / "models" / "DigitsConvNet" / "quantize.json").read_text())
    assert quant["settings"]["method"] == "Percentile"


def _changed(repo: Path) -> set:
    return set(json.loads(dvc(repo, "status", "--json").stdout))


def test_a_changed_dataset_reruns_calibrate_and_evaluate(built):
    """Dataset paths in params.yaml are DVC dependencies: new or edited files there, params untouched, make
    `dvc status` report that model's calibrate and evaluate (and nothing else) changed."""
    assert _changed(built) == set()
    coco = built.parent / "coco"
    extra = coco / "val" / "sample_0099.jpg"
    shutil.copy(coco / "val" / "sample_0000.jpg", extra)
    assert _changed(built) == {"calibrate@MLCommonsSSDMobileNet", "evaluate@MLCommonsSSDMobileNet"}
    extra.unlink()
    assert _changed(built) == set()
    val_map = built / "data" / "DigitsConvNet" / "heldout" / "val_map.txt"
    original = val_map.read_text()
    val_map.write_text(original.replace(" 0\n", " 1\n", 1))
    try:  # the held-out folder is the digits_data stage's output and evaluate@DigitsConvNet's input
        assert _changed(built) == {"digits_data", "evaluate@DigitsConvNet"}
    finally:
        val_map.write_text(original)
    assert _changed(built) == set()


def test_main_job_left_the_workspace_up_to_date():
    """After the README's main command, `dvc status` is clean: outputs match dvc.lock, params and code."""
    from conftest import REPO_ROOT

    if not (REPO_ROOT / "dvc.lock").is_file():
        pytest.fail("no dvc.lock: run the README's main command (furiosa-artifacts build) first")
    env = dict(os.environ, PATH=f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    proc = subprocess.run([str(BIN_DIR / "dvc"), "status"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "up to date" in proc.stdout.lower(), proc.stdout + proc.stderr
