"""furiosa.artifacts.build.evaluate: agreement, latency, size, gates, metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from furiosa.artifacts.build.calibrate import synthetic_calibration
from furiosa.artifacts.build.evaluate import (
    agreement_classification,
    agreement_detection,
    apply_gates,
    budget_repeats,
    check_gates,
    count_onnx_params,
    file_size,
    latency_ratio,
    measure_latency,
    onnx_param_counts,
    write_metrics,
)
from furiosa.artifacts.build.export import export_onnx
from furiosa.artifacts.build.quantize import QuantSettings, quantize_model
from furiosa.artifacts.errors import BuildError, GateError, SpecError

GATES = {"int8_vs_fp32_top1_agreement_min": 0.9, "accuracy_drop_max": 0.01, "int8_latency_ratio_max": 0.5,
         "size_ratio_max": 0.27}
GOOD = {"int8_vs_fp32_top1_agreement": 0.95, "accuracy_drop": 0.004, "int8_latency_ratio": 0.4, "size_ratio": 0.26}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    export_onnx(net, input_shape=(1, 3, 16, 16), input_name="input", output_names=["logits"],
                out=root / "fp32.onnx", opset=17)
    synthetic_calibration(count=4, image_size=(16, 16), seed=0, out=root / "cal.npz")
    settings = QuantSettings(method="MinMax", per_channel=True, activation_type="QUInt8", weight_type="QInt8",
                             quant_format="QDQ")
    quantize_model(root / "fp32.onnx", calibration=root / "cal.npz", out=root / "int8.onnx", settings=settings)
    return {"fp32": root / "fp32.onnx", "int8": root / "int8.onnx", "torch_params": sum(p.numel() for p in
                                                                                          net.parameters())}


# ---------------------------------------------------------------------------- agreement


def test_classification_identical_and_known_mismatch() -> None:
    logits = np.random.default_rng(0).normal(size=(8, 10))
    same = agreement_classification(logits, logits.copy())
    assert same == {"int8_vs_fp32_top1_agreement": 1.0, "int8_vs_fp32_top5_overlap": 1.0, "num_samples": 8}

    changed = logits.copy()
    for row in (1, 5):  # move the top-1 of two rows to a class outside their top-5
        changed[row, np.argsort(logits[row])[0]] = logits[row].max() + 1.0
    result = agreement_classification(logits, changed)
    assert result["int8_vs_fp32_top1_agreement"] == pytest.approx(6 / 8)
    assert result["int8_vs_fp32_top5_overlap"] == pytest.approx((6 + 2 * 4 / 5) / 8)


def test_classification_few_classes_and_bad_shapes() -> None:
    assert "int8_vs_fp32_top5_overlap" not in agreement_classification(np.eye(3), np.eye(3))
    swapped = agreement_classification(np.eye(3), np.eye(3)[[0, 2, 1]])
    assert swapped["int8_vs_fp32_top1_agreement"] == pytest.approx(1 / 3)
    with pytest.raises(SpecError):
        agreement_classification(np.zeros((2, 5)), np.zeros((3, 5)))


def test_detection_identical() -> None:
    dets = [np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 40, 40, 0.8, 2]]), np.zeros((0, 6))]
    result = agreement_detection(dets, [d.copy() for d in dets])
    assert result["int8_vs_fp32_detection_f1"] == result["int8_vs_fp32_detection_precision"] == 1.0
    assert result["int8_vs_fp32_detection_recall"] == 1.0
    assert result["int8_vs_fp32_mean_iou"] == pytest.approx(1.0) and result["num_matched"] == 2


def test_detection_known_mismatches() -> None:
    fp32 = [np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 40, 40, 0.8, 2], [50, 50, 60, 60, 0.7, 3]])]
    int8 = [[
        ((0, 0, 10, 8), 0.85, 1),    # IoU 0.8 with the first: match
        ((0, 0, 10, 10), 0.5, 1),    # duplicate of the first: unmatched
        ((20, 20, 40, 40), 0.8, 7),  # right box, wrong class: unmatched
        ((50, 50, 55, 60), 0.7, 3),  # IoU 0.5 exactly: match at the threshold
    ]]
    result = agreement_detection(fp32, int8, iou=0.5)
    assert result["num_matched"] == 2 and result["num_int8_detections"] == 4 and result["num_fp32_detections"] == 3
    assert result["int8_vs_fp32_detection_precision"] == pytest.approx(2 / 4)
    assert result["int8_vs_fp32_detection_recall"] == pytest.approx(2 / 3)
    assert result["int8_vs_fp32_detection_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert result["int8_vs_fp32_mean_iou"] == pytest.approx((0.8 + 0.5) / 2)


def test_detection_input_forms_and_empty_cases() -> None:
    boxes, scores, classes = np.array([[0, 0, 4, 4.0]]), np.array([0.9]), np.array([1])
    forms = [(boxes, scores, classes), {"boxes": boxes, "scores": scores, "labels": classes},
             [((0, 0, 4, 4), 0.9, 1)], np.array([[0, 0, 4, 4, 0.9, 1]])]
    for form in forms:
        assert agreement_detection([forms[0]], [form])["int8_vs_fp32_detection_f1"] == 1.0
    empty = agreement_detection([np.zeros((0, 6))], [[]])
    assert empty["int8_vs_fp32_detection_f1"] == 1.0 and empty["int8_vs_fp32_mean_iou"] == 1.0
    missed = agreement_detection([forms[0]], [[]])
    assert missed["int8_vs_fp32_detection_recall"] == missed["int8_vs_fp32_detection_f1"] == 0.0
    assert missed["int8_vs_fp32_mean_iou"] == 0.0
    with pytest.raises(SpecError, match="images"):
        agreement_detection([forms[0]], [])
    with pytest.raises(SpecError, match="int8 image 0"):
        agreement_detection([forms[0]], [np.zeros((1, 5))])


# ---------------------------------------------------------------------------- speed and size


def test_latency_is_positive_and_reports_threads(models: dict[str, Path]) -> None:
    feed = {"input": np.zeros((1, 3, 16, 16), np.float32)}
    result = measure_latency(models["fp32"], feed, batch=3, warmup=1, repeats=5, threads=1)
    assert result["median_ms"] > 0 and result["p90_ms"] >= result["median_ms"] >= result["min_ms"] > 0
    assert result["threads"] == 1 and result["batch"] == 3 and result["repeats"] == 5
    with pytest.raises(SpecError, match="repeats"):
        measure_latency(models["fp32"], feed, batch=1, warmup=0, repeats=0, threads=1)
    with pytest.raises(SpecError, match="threads"):
        measure_latency(models["fp32"], feed, batch=1, warmup=0, repeats=1, threads=0)


def test_latency_ratio_head_to_head(models: dict[str, Path]) -> None:
    feed = {"input": np.zeros((2, 3, 16, 16), np.float32)}
    result = latency_ratio(models["fp32"], models["int8"], feed, batch=1, warmup=1, repeats=3, threads=2, rounds=2)
    assert result["fp32"]["repeats"] == result["int8"]["repeats"] == 6
    assert result["int8_latency_ratio"] == pytest.approx(result["int8"]["median_ms"] / result["fp32"]["median_ms"])
    assert result["int8"]["threads"] == 2


@pytest.mark.parametrize("repeats, rounds, pair_s, budget_s, expected", [
    (5, 2, 1.6, None, 5),     # no budget: every repeat
    (5, 2, 0.05, 8.0, 5),     # small model: the budget is more than enough
    (5, 2, 1.6, 8.0, 2),      # SSD-ResNet34 at 1200x1200: 8 // 3.2 = 2
    (5, 2, 3.0, 8.0, 2),      # 8 // 6 = 1, floored at 2 per round
    (1, 2, 3.0, 8.0, 1),      # the floor never exceeds what params ask for
    (5, 1, 2.0, 7.0, 3),
    (5, 2, 0.0, 8.0, 5),      # no warmup, no estimate: every repeat
])
def test_a_latency_budget_cuts_repeats_but_never_below_two(repeats, rounds, pair_s, budget_s, expected):
    assert budget_repeats(repeats, rounds, pair_s, budget_s) == expected


def test_latency_ratio_under_a_budget_reports_the_runs_it_made(models: dict[str, Path]) -> None:
    feed = {"input": np.zeros((1, 3, 16, 16), np.float32)}
    # a budget far below one pair's time: 2 runs per side and round; a generous one: all of them
    tight = latency_ratio(models["fp32"], models["int8"], feed, batch=1, warmup=1, repeats=4, threads=1, rounds=3,
                          budget_s=1e-9)
    assert tight["fp32"]["repeats"] == tight["int8"]["repeats"] == 6 and tight["budget_s"] == 1e-9
    loose = latency_ratio(models["fp32"], models["int8"], feed, batch=1, warmup=1, repeats=4, threads=1, rounds=3,
                          budget_s=1e9)
    assert loose["fp32"]["repeats"] == loose["int8"]["repeats"] == 12 and loose["rounds"] == 3


def test_sizes_and_param_counts(models: dict[str, Path]) -> None:
    assert file_size(models["int8"]) == models["int8"].stat().st_size > 0
    fp32, int8 = onnx_param_counts(models["fp32"]), onnx_param_counts(models["int8"])
    assert fp32["quantization_params"] == 0 and int8["quantization_params"] > 0
    assert int8["params"] == fp32["params"] == count_onnx_params(models["int8"])
    assert fp32["params"] == models["torch_params"] - 2 * 8  # BatchNorm folded into the conv (bias kept)
    with pytest.raises(FileNotFoundError):
        file_size(models["fp32"].with_name("absent.onnx"))


# ---------------------------------------------------------------------------- gates


def test_gates_pass() -> None:
    check_gates("TinyNet", GOOD, GATES)
    check_gates("TinyNet", {**GOOD, "int8_vs_fp32_top1_agreement": 0.9}, GATES)  # boundary passes


def test_gate_failure_names_model_metric_value_and_gate() -> None:
    with pytest.raises(GateError) as info:
        check_gates("TinyNet", {**GOOD, "int8_vs_fp32_top1_agreement": 0.8125, "size_ratio": 0.3}, GATES)
    message = str(info.value)
    assert message.startswith("TinyNet:")
    assert "int8_vs_fp32_top1_agreement 0.8125 < gate int8_vs_fp32_top1_agreement_min 0.9" in message
    assert "size_ratio 0.3 > gate size_ratio_max 0.27" in message


def test_gate_with_unmeasured_metric_fails() -> None:
    with pytest.raises(GateError, match="accuracy_drop was not measured"):
        check_gates("TinyNet", {k: v for k, v in GOOD.items() if k != "accuracy_drop"}, GATES)


def test_non_numeric_metric_is_a_build_error() -> None:
    with pytest.raises(BuildError, match="size_ratio"):
        check_gates("TinyNet", {**GOOD, "size_ratio": "0.26"}, GATES)


def test_unknown_or_bad_gate_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="'top1_agrement_min'"):
        check_gates("TinyNet", GOOD, {**GATES, "top1_agrement_min": 0.9})
    with pytest.raises(SpecError, match="size_ratio_max"):
        check_gates("TinyNet", GOOD, {"size_ratio_max": "0.27"})


def test_apply_gates_enforces_for_real_weights() -> None:
    metrics = apply_gates("TinyNet", GOOD, GATES, weights_source="train")
    assert metrics["weights"] == {"source": "train", "deployable": True}
    assert metrics["gates"]["size_ratio_max"] == {"status": "pass", "threshold": 0.27, "value": 0.26}
    with pytest.raises(GateError, match="TinyNet"):
        apply_gates("TinyNet", {**GOOD, "int8_latency_ratio": 0.9}, GATES, weights_source="url")


def test_apply_gates_synthetic_is_not_applicable() -> None:
    bad = {**GOOD, "int8_vs_fp32_top1_agreement": 0.1}
    metrics = apply_gates("TinyNet", bad, GATES, weights_source="synthetic")
    assert metrics["weights"] == {"source": "synthetic", "deployable": False}
    assert {g["status"] for g in metrics["gates"].values()} == {"not_applicable"}
    assert metrics["gates"]["int8_vs_fp32_top1_agreement_min"]["value"] == 0.1
    assert metrics["int8_vs_fp32_top1_agreement"] == 0.1
    with pytest.raises(SpecError, match="'bogus_min'"):  # keys still validated offline
        apply_gates("TinyNet", bad, {"bogus_min": 1}, weights_source="synthetic")
    with pytest.raises(SpecError, match="'random'"):
        apply_gates("TinyNet", bad, GATES, weights_source="random")


def test_dataset_gates_bind_only_with_a_real_dataset() -> None:
    """MLPerf's rule (int8 >= 0.99 x fp32) and the published-figure gate bind on a labelled dataset only."""
    gates = {"int8_accuracy_ratio_min": 0.99, "fp32_published_gap_max": 0.005, "size_ratio_max": 0.27}
    low = {"int8_accuracy_ratio": 0.985, "fp32_published_gap": 0.001, "size_ratio": 0.26}
    with pytest.raises(GateError, match="int8_accuracy_ratio 0.985 < gate int8_accuracy_ratio_min 0.99"):
        apply_gates("TinyNet", low, gates, weights_source="url", real_dataset=True)
    offline = apply_gates("TinyNet", {"size_ratio": 0.26}, gates, weights_source="url", real_dataset=False)
    assert offline["gates"]["int8_accuracy_ratio_min"]["status"] == "not_applicable"
    assert "sample photos" in offline["gates"]["fp32_published_gap_max"]["reason"]
    assert offline["gates"]["size_ratio_max"]["status"] == "pass"  # the others still bind
    with pytest.raises(GateError, match="size_ratio"):
        apply_gates("TinyNet", {"size_ratio": 0.3}, gates, weights_source="url", real_dataset=False)
    far = {**low, "int8_accuracy_ratio": 1.0, "fp32_published_gap": 0.02}
    with pytest.raises(GateError, match="fp32_published_gap 0.02 > gate fp32_published_gap_max 0.005"):
        apply_gates("TinyNet", far, gates, weights_source="url", real_dataset=True)
    unpublished = apply_gates("TinyNet", {k: v for k, v in far.items() if k != "fp32_published_gap"}, gates,
                              weights_source="train", real_dataset=True)
    assert unpublished["gates"]["fp32_published_gap_max"]["reason"] == "no published accuracy to compare with"
    assert unpublished["gates"]["int8_accuracy_ratio_min"]["status"] == "pass"


# ---------------------------------------------------------------------------- metrics.json


def test_write_metrics_sorted_rounded_and_converted(tmp_path: Path) -> None:
    path = tmp_path / "m" / "metrics.json"
    write_metrics(path, {"z": np.float32(0.1), "a": 1 / 3, "n": np.int64(3), "nested": {"b": (1.0, 2)},
                         "path": Path("x/y"), "flag": True, "none": None})
    text = path.read_text()
    assert text.endswith("\n")
    assert list(json.loads(text)) == ["a", "flag", "n", "nested", "none", "path", "z"]
    assert json.loads(text) == {"a": 0.333333, "flag": True, "n": 3, "nested": {"b": [1.0, 2]}, "none": None,
                                "path": "x/y", "z": 0.1}


def test_write_metrics_refuses_nan_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_metrics(path, {"a": 1})
    with pytest.raises(BuildError, match=r"metrics\.nested\.bad"):
        write_metrics(path, {"a": 2, "nested": {"bad": float("nan")}})
    with pytest.raises(BuildError, match="object"):
        write_metrics(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
