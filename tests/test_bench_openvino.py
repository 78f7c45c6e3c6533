"""benchmarks/bench_openvino.py: ISA naming, the worst-case NMS inputs, and the README table (no timing)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import bench_openvino  # noqa: E402

from furiosa.artifacts.vision.postprocess import class_scores  # noqa: E402
from furiosa.artifacts.vision.specs import load_spec  # noqa: E402


def test_isa_from_cpu_flags():
    assert bench_openvino.isa({"avx2": True, "avx512_vnni": True}) == "vnni"
    assert bench_openvino.isa({"avx2": True, "avx_vnni": True}) == "vnni"
    assert bench_openvino.isa({"avx2": True, "avx512f": True}) == "avx2"


@pytest.mark.parametrize("name", ["MLCommonsSSDMobileNet", "MLCommonsSSDResNet34"])
def test_worst_case_puts_every_anchor_over_the_threshold(name):
    spec = load_spec(name)
    loc, conf = bench_openvino.worst_case_inputs(name)
    scores = class_scores(conf[0], spec.postprocess.score)[:, 1:]
    over = scores > spec.postprocess.score_threshold
    assert over.any(axis=1).all()  # every anchor
    assert over.sum(axis=1).min() == (91 - 1 if spec.postprocess.score == "sigmoid" else 19)


def test_table_has_a_row_per_model_per_isa_and_names_misses():
    def run(cpu, amx, ratio, ov):
        return {"created": "2026-12-03T00:00:00+00:00", "threads": 2, "load_average": [1.0, 2.0],
                "machine": {"cpu_model": cpu, "amx": amx},
                "targets": {"int8_latency_ratio_max": {"MLCommonsResNet50": 0.33}, "int8_vs_openvino_int8_max": 1.0,
                            "nms_worst_case_ms_max": 50},
                "models": {"MLCommonsResNet50": {"float_ops_in_int8": {"Softmax": 2}, "batches": {"1": {
                    "median_ms": {"ort_fp32": 10.0, "ort_int8": 10 * ratio, "ov_fp32": 11.0, "ov_int8": ov},
                    "ort_int8_over_fp32": ratio, "ort_int8_over_ov_int8": 10 * ratio / ov}}}},
                "nms": {"MLCommonsSSDMobileNet": {"median_ms": 12.0, "candidates": 172530, "detections": 900,
                                                  "with_detection_objects_ms": 80.0}}}
    table = bench_openvino.markdown({"runs": {"vnni": run("Xeon", True, 0.3, 4.0),
                                              "avx2": run("EPYC", False, 0.5, 4.0)}})
    rows = [line for line in table.splitlines() if line.startswith("| MLCommonsResNet50")]
    assert len(rows) == 2
    assert any("(vnni, AMX)" in r and "| met |" in r for r in rows)
    assert any("(avx2)" in r and "missed: int8/fp32, vs OpenVINO" in r and "Softmax 2" in r for r in rows)
    assert "172530 candidates" in table and "Missed targets" in table
