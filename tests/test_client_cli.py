"""``furiosa-artifacts list | show | predict`` run as a user would (the console script, in a subprocess).

Uses the binaries the main job built: the four seed models from synthetic weights, DigitsConvNet trained
(expectations about the synthetic flag follow each model's metrics.json, so an official build passes too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.catalog.entries import read_entries
from furiosa.artifacts.vision.draw import box_color
from furiosa.artifacts.layout import binary_relpath
from furiosa.artifacts.loader import is_synthetic
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.storage.lockfile import read_outputs

pytestmark = pytest.mark.slow  # needs the built binaries (the README's main command)

CODE_ENTRIES = [e.name for e in read_entries(REPO_ROOT) if e.format == "code"]
SYNTHETIC = {name: is_synthetic(REPO_ROOT, name) for name in CODE_ENTRIES}


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for name in CODE_ENTRIES:
        path = REPO_ROOT / binary_relpath(name, "int8")
        if not path.is_file():
            pytest.fail(f"{path} is not built: run the README's main command first")


def cli_json(*args: str, code: int = 0) -> dict:
    proc = run_cli([*args, "--json"])
    assert proc.returncode == code, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def scene(path: Path, size=(320, 240)) -> Path:
    """A drawn picture: sky, ground, a red box and a blue disc."""
    width, height = size
    image = Image.new("RGB", size, (135, 180, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height * 2 // 3, width, height], fill=(90, 140, 60))
    draw.rectangle([40, 60, 160, 200], fill=(200, 30, 30))
    draw.ellipse([180, 40, 300, 160], fill=(30, 60, 200))
    image.save(path)
    return path


def digit_one(path: Path) -> Path:
    """A light vertical stroke on black, like scikit-learn's digits (ink high)."""
    image = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(image).rectangle([14, 3, 18, 28], fill=255)
    image.save(path)
    return path


@pytest.mark.parametrize("command", ["list", "show", "verify", "predict", "evaluate"])
def test_every_client_command_has_help(command):
    proc = run_cli([command, "--help"])
    assert proc.returncode == 0 and f"usage: furiosa-artifacts {command}" in proc.stdout
    assert "--json" in proc.stdout and "--root" in proc.stdout


def test_list_prints_a_table_with_built_and_weights_columns():
    proc = run_cli(["list"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["name", "family", "version", "task", "input", "int8", "weights"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == CODE_ENTRIES
    assert not SYNTHETIC["DigitsConvNet"] and rows["DigitsConvNet"].split()[-2:] == ["local", "train"]
    for name, synthetic in SYNTHETIC.items():  # what each binary's provenance says; never shown as real unless so
        assert rows[name].split()[-2] == "local"
        assert (rows[name].split()[-1] in ("official", "train")) is not synthetic
    assert "3x224x224" in rows["MLCommonsResNet50"] and "classification" in rows["MLCommonsResNet50"]


def test_list_filters_by_loose_wildcard_and_task():
    rows = cli_json("list", "*SSD*")
    assert [r["name"] for r in rows] == ["MLCommonsSSDResNet34", "MLCommonsSSDMobileNet", "DigitsSSD"]
    assert {r["task"] for r in rows} == {"detection"} and all(r["int8"] for r in rows)
    assert [r["synthetic"] for r in rows] == [SYNTHETIC[r["name"]] for r in rows]
    assert [r["name"] for r in cli_json("list", "mlcommons-ssd-mobile*")] == ["MLCommonsSSDMobileNet"]
    classifiers = cli_json("list", "--task", "classification")
    assert [r["name"] for r in classifiers] == ["MLCommonsResNet50", "EfficientNetV2_S", "DigitsConvNet"]
    assert [r["name"] for r in cli_json("list", "*net*", "--task", "detection")] == [
        "MLCommonsSSDResNet34", "MLCommonsSSDMobileNet"]


def test_list_exit_codes_for_no_match_and_bad_usage():
    proc = run_cli(["list", "no-such-model*"])
    assert proc.returncode == 1 and "no model matches pattern 'no-such-model*'" in proc.stderr
    assert run_cli(["list", "--task", "segmentation"]).returncode == 2


def test_show_json_carries_recipe_hashes_metrics_and_tensors():
    facts = cli_json("show", "mlcommons_resnet50")
    assert facts["name"] == "MLCommonsResNet50"
    assert facts["synthetic"] is SYNTHETIC["MLCommonsResNet50"] and facts["deployable"] is not facts["synthetic"]
    source = load_params(REPO_ROOT / "params.yaml").model("MLCommonsResNet50").source
    assert facts["weights"]["source"]["sha256"] == source["sha256"]
    assert facts["weights"]["source"]["urls"] == source["urls"]
    lock = read_outputs(REPO_ROOT)
    shown = {b["path"]: b for b in facts["binaries"]}
    for precision in ("fp32", "int8"):
        rel = binary_relpath("MLCommonsResNet50", precision)
        assert (shown[rel]["md5"], shown[rel]["size"]) == (lock[rel].md5, lock[rel].size)
    metrics = json.loads((REPO_ROOT / "models/MLCommonsResNet50/metrics.json").read_text())
    assert facts["metrics"]["sizes"]["int8_bytes"] == metrics["int8_bytes"]
    assert facts["metrics"]["latency"]["int8_ms"] == metrics["int8_latency_ms"]
    assert (facts["metrics"]["agreement"]["int8_vs_fp32_top1_agreement"]
            == metrics["int8_vs_fp32_top1_agreement"])
    assert set(facts["metrics"]["gates"]) == set(metrics["gates"])
    assert facts["tensors"]["from"] == "models/MLCommonsResNet50/int8.onnx"
    (tensor,) = facts["tensors"]["inputs"]
    assert tensor["name"] == "input" and tensor["shape"][1:] == [3, 224, 224]
    assert facts["preprocess"]["resize"]["size"] == [256, 256] and facts["preprocess"]["crop"] == [224, 224]
    assert facts["license"].startswith("see the publication/source")
    assert facts["publication"]["url"] == "https://arxiv.org/abs/1512.03385"


def test_show_text_flags_synthetic_weights_loudly():
    if not SYNTHETIC["MLCommonsSSDMobileNet"]:
        pytest.skip("MLCommonsSSDMobileNet is built from its official weights here")
    proc = run_cli(["show", "MLCommonsSSDMobilenet"])  # the alias spelling
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC WEIGHTS" in proc.stdout.splitlines()[2] and "not for deployment" in proc.stdout
    assert "warning: SYNTHETIC WEIGHTS" in proc.stderr
    assert "sha256     8788f89108519fd1102b8a5c2ac861cf6d86603571b6ce5bbd1c245b7fe005e3" in proc.stdout
    assert "member     ssd_mobilenet_v1_coco_2018_01_28/frozen_inference_graph.pb" in proc.stdout
    assert "md5 " in proc.stdout and "tensors (from models/MLCommonsSSDMobileNet/int8.onnx)" in proc.stdout
    assert "license    see the publication/source" in proc.stdout
    digits = run_cli(["show", "DigitsConvNet_INT8"])
    assert digits.returncode == 0 and digits.stdout.startswith("DigitsConvNet v1.0")
    assert "SYNTHETIC" not in digits.stdout + digits.stderr and "int8_vs_fp32_top1_agreement" in digits.stdout
    assert "accuracy   on 449 images of imagenet data/DigitsConvNet/heldout: fp32 top1" in digits.stdout


def test_show_unknown_name_fails_with_the_known_names():
    proc = run_cli(["show", "ResNet9000"])
    assert proc.returncode == 1 and "no catalog entry 'ResNet9000'" in proc.stderr and "DigitsConvNet" in proc.stderr
    assert cli_json("show", "ResNet9000", code=1)["ok"] is False


def _edge_colour_fraction(image: Image.Image, box, colour) -> float:
    """Share of the rows along the box's (clipped) left edge where a pixel near it has ``colour``."""
    width, height = image.size
    x1 = min(max(0, round(box[0])), width - 1)
    y1, y2 = min(max(0, round(box[1])), height - 1), min(max(0, round(box[3])), height - 1)
    rows = range(y1 + 1, y2)
    hits = sum(any(image.getpixel((x, y)) == colour for x in range(max(0, x1 - 1), min(width, x1 + 3))) for y in rows)
    return hits / max(1, len(rows))


def test_predict_detector_draws_clipped_boxes(tmp_path):
    picture = scene(tmp_path / "scene.png")
    out = tmp_path / "annotated.png"
    result = cli_json("predict", "MLCommonsSSDMobilenet", str(picture), "--top-k", "3", "--out", str(out))
    assert result["ok"] and result["model"] == "MLCommonsSSDMobileNet" and result["precision"] == "int8"
    assert result["synthetic"] is SYNTHETIC["MLCommonsSSDMobileNet"] and result["task"] == "detection"
    (row,) = result["results"]
    assert row["out"] == str(out) and len(row["detections"]) <= 3
    if not row["detections"]:  # random weights always find something; official ones may not in a drawing
        pytest.skip("no detection on the drawn scene with these weights")
    scores = [d["score"] for d in row["detections"]]
    assert scores == sorted(scores, reverse=True)
    original, drawn = Image.open(picture).convert("RGB"), Image.open(out).convert("RGB")
    assert drawn.size == original.size and ImageChops.difference(original, drawn).getbbox() is not None
    best = row["detections"][0]  # drawn last, so on top of the others
    assert _edge_colour_fraction(drawn, best["box"], box_color(best["category_id"])) > 0.9
    assert _edge_colour_fraction(original, best["box"], box_color(best["category_id"])) == 0


def test_predict_warns_that_synthetic_predictions_are_meaningless(tmp_path):
    if not SYNTHETIC["MLCommonsSSDMobileNet"]:
        pytest.skip("MLCommonsSSDMobileNet is built from its official weights here")
    proc = run_cli(["predict", "mlcommons-ssd-mobilenet", str(scene(tmp_path / "s.png")), "--top-k", "2"])
    assert proc.returncode == 0, proc.stderr
    assert "warning: SYNTHETIC WEIGHTS" in proc.stderr and "meaningless" in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("s.png: 2 detection(s)") and len(lines) == 3 and lines[1].rstrip().endswith("]")


def test_predict_classifier_several_images_into_a_directory(tmp_path):
    images = [str(scene(tmp_path / "a.png")), str(scene(tmp_path / "b.jpg", size=(200, 300)))]
    outdir = tmp_path / "out"
    proc = run_cli(["predict", "MLCommonsResNet50", *images, "--top-k", "2", "--precision", "fp32",
                    "--out", str(outdir)])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["a.png", "b.png"]
    assert Image.open(outdir / "b.png").size == (200, 300)
    assert [line for line in proc.stdout.splitlines() if not line.startswith("  ")] == [
        f"{images[0]}: -> {outdir / 'a.png'}", f"{images[1]}: -> {outdir / 'b.png'}"]
    assert sum(line.startswith("  1. ") for line in proc.stdout.splitlines()) == 2


def test_predict_trained_digits_without_warning(tmp_path):
    result = run_cli(["predict", "digits-conv-net", str(digit_one(tmp_path / "one.png")), "--json"])
    assert result.returncode == 0 and "warning" not in result.stderr
    data = json.loads(result.stdout)
    assert data["synthetic"] is False and data["model"] == "DigitsConvNet"
    labels = data["results"][0]["classifications"]
    assert len(labels) == 3 and labels[0]["label"] == "1" and labels[0]["score"] > 0.5  # spec top_k 3


def test_predict_failures_and_usage_errors(tmp_path):
    good = str(digit_one(tmp_path / "one.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    proc = run_cli(["predict", "DigitsConvNet", good, str(broken)])
    assert proc.returncode == 1 and f"error: {broken}: cannot read image" in proc.stderr
    assert proc.stdout.startswith(f"{good}:")  # the good image still got its answer
    assert run_cli(["predict", "DigitsConvNet", good, "--top-k", "0"]).returncode == 2
    assert run_cli(["predict", "DigitsConvNet"]).returncode == 2
    wrong = run_cli(["predict", "DigitsConvNet_INT8", good, "--precision", "fp32"])
    assert wrong.returncode == 2 and "int8 binary only" in wrong.stderr
    existing = tmp_path / "file.png"
    existing.write_bytes(b"")
    several = run_cli(["predict", "DigitsConvNet", good, good, "--out", str(existing)])
    assert several.returncode == 2 and "--out" in several.stderr
    assert run_cli(["predict", "NoSuchNet", good]).returncode == 1
