"""benchmarks/run.py: a quick smoke run on DigitsConvNet and SSD-MobileNet writes results that match the schema."""

from __future__ import annotations

import json
import subprocess
import sys

from pathlib import Path

import jsonschema
import pytest

from conftest import REPO_ROOT

RUN = REPO_ROOT / "benchmarks" / "run.py"
SCHEMA = REPO_ROOT / "benchmarks" / "results.schema.json"
MODELS = ["DigitsConvNet", "MLCommonsSSDMobileNet"]


def _cpu_flags() -> set:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _built(name: str) -> bool:
    return all((REPO_ROOT / "models" / name / f).is_file() for f in ("fp32.onnx", "int8.onnx", "calibration.npz"))


def test_help_names_the_options():
    proc = subprocess.run([sys.executable, str(RUN), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--quick", "--models", "--write-docs", "--requantize", "--out"):
        assert option in proc.stdout


def test_unknown_model_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--models", "NoSuchNet", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "NoSuchNet" in proc.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(not all(_built(m) for m in MODELS) or not (REPO_ROOT / "data" / "samples").is_dir(),
                    reason="models not built: run `furiosa-artifacts build --weights synthetic` or `dvc pull`")
def test_quick_run_writes_schema_valid_results(tmp_path):
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--models", ",".join(MODELS), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)  # a hang guard, not a target
    assert proc.returncode == 0, proc.stdout + proc.stderr

    results = json.loads((tmp_path / "results.json").read_text())
    jsonschema.validate(results, json.loads(SCHEMA.read_text()))
    assert (tmp_path / "results.png").stat().st_size > 10_000
    assert results["mode"] == "quick" and list(results["models"]) == MODELS
    machine = results["machine"]
    cpu_flags = _cpu_flags()  # what this machine has, read here independently of the benchmark
    assert machine["cpu_model"] and isinstance(machine["amx"], bool)
    assert machine["flags"]["avx512_vnni"] == ("avx512_vnni" in cpu_flags)
    assert machine["amx"] == any(f.startswith("amx") for f in cpu_flags)
    for name in MODELS:
        model = results["models"][name]
        assert model["status"] == "ok"
        assert model["size_ratio"] == pytest.approx(model["int8_bytes"] / model["fp32_bytes"])
        assert set(model["latency"]["wall"]) == {"1", "8"}
        for comparison in [*model["latency"]["wall"].values(), model["latency"]["cpu"]]:
            assert comparison["ratio"] == pytest.approx(comparison["int8"]["median_ms"]
                                                        / comparison["fp32"]["median_ms"])
        assert model["memory"]["fp32_b1"]["peak_rss_mb"] >= model["memory"]["fp32_b1"]["baseline_rss_mb"] > 0
    assert set(results["preprocessing"]["specs"]) == {"MLCommonsResNet50", "MLCommonsSSDMobileNet"}
    for entry in results["preprocessing"]["specs"].values():
        assert entry["max_abs_diff"] < 1e-3  # the same preprocessing as torchvision's, so a fair comparison
        # fast=True is measured beside it, with its deviation from the exact path (pixel units, 0..255)
        assert entry["files"]["fast_speedup"] == pytest.approx(entry["files"]["ours_fast_images_per_s"]
                                                               / entry["files"]["torchvision_images_per_s"])
        assert 0 < entry["fast_deviation"]["mean"] <= entry["fast_deviation"]["max"] <= 255
    assert results["tools"]["lint"]["median_seconds"] > 0
    assert results["tools"]["dvc"]["status"] == "skipped"
    ids = {t["id"] for t in results["targets"]}
    assert {"latency:MLCommonsSSDMobileNet", "size:MLCommonsSSDMobileNet", "lint",
            "preprocess:MLCommonsResNet50", "preprocess-fast:MLCommonsResNet50"} <= ids
    assert "MLCommonsSSDMobileNet" in proc.stdout and machine["cpu_model"] in proc.stdout
