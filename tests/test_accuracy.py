"""Accuracy on ImageNet- and COCO-style datasets: pycocotools scoring with known answers, the `evaluate` CLI
as a user runs it on the built workspace (DigitsConvNet's held-out folder written by the pipeline, a hand-made
COCO set scored with SSD-MobileNet), and the dataset readers' errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.accuracy import read_image_list, read_val_map
from furiosa.artifacts.accuracy.coco import _coco_rows, coco_map, load_annotations
from furiosa.artifacts.errors import SpecError

DIGITS_HELDOUT = REPO_ROOT / "data" / "DigitsConvNet" / "heldout"
DATA = REPO_ROOT / "furiosa" / "artifacts" / "data"


def _built(*paths: Path) -> None:
    missing = [str(p.relative_to(REPO_ROOT)) for p in paths if not p.exists()]
    if missing:
        pytest.fail(f"not built: {missing}; run the README's main command (furiosa-artifacts build) first")


# --------------------------------------------------------------------------- pycocotools, known answers


def _ground_truth(tmp_path: Path) -> Path:
    """Two 100x100 images, one object each (category 1), and a category 3 without objects."""
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
                       {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 40, 40], "area": 1600,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "one"}, {"id": 3, "name": "three"}]}
    path = tmp_path / "instances_test.json"
    path.write_text(json.dumps(data))
    return path


def _det(image_id: int, box: list, score: float, category: int = 1) -> dict:
    return {"image_id": image_id, "category_id": category, "bbox": box, "score": score}


def test_coco_map_known_answers(tmp_path):
    truth = load_annotations(_ground_truth(tmp_path))
    perfect = [_det(1, [10, 10, 20, 20], 0.9), _det(2, [50, 50, 40, 40], 0.8)]
    assert coco_map(truth, perfect, [1, 2]) == {"map": 1.0, "map50": 1.0}
    # one hit (best score) and one false positive: precision 1 up to recall 0.5, then nothing found.
    # COCO's 101-point interpolation: recall points 0.00 .. 0.50 (51 of 101) have precision 1.
    half = [_det(1, [10, 10, 20, 20], 0.9), _det(2, [0, 0, 5, 5], 0.8)]
    assert coco_map(truth, half, [1, 2]) == pytest.approx({"map": 51 / 101, "map50": 51 / 101}, abs=1e-12)
    # the false positive ranked first: precision 1/2 at recall 0.5 -> interpolated 0.5 on 51 points
    worse = [_det(1, [10, 10, 20, 20], 0.7), _det(2, [0, 0, 5, 5], 0.8)]
    assert coco_map(truth, worse, [1, 2]) == pytest.approx({"map": 0.5 * 51 / 101, "map50": 0.5 * 51 / 101})
    # IoU 0.625 with the object of image 1 (20x12.5 inside 20x20): a hit at IoU .50, .55, .60 of the ten
    # thresholds .50:.05:.95 -> mAP = (3 / 10) * (51 / 101) with image 2's object missed, mAP@.5 = 51 / 101
    loose = [_det(1, [10, 10, 20, 12.5], 0.9)]
    assert coco_map(truth, loose, [1, 2]) == pytest.approx({"map": 0.3 * 51 / 101, "map50": 51 / 101})
    # scoring one image only: the other image's object does not count
    assert coco_map(truth, loose, [1]) == pytest.approx({"map": 0.3, "map50": 1.0})
    # a wrong category is no hit; no detections at all score 0
    assert coco_map(truth, [_det(1, [10, 10, 20, 20], 0.9, category=3)], [1]) == {"map": 0.0, "map50": 0.0}
    assert coco_map(truth, [], [1, 2]) == {"map": 0.0, "map50": 0.0}


def test_coco_rows_are_xywh_with_known_categories_only():
    rows = np.array([[10.0, 20.0, 40.0, 60.0, 0.9, 1], [0, 0, 1, 1, 0.5, 7]])
    assert _coco_rows(5, rows, {1}) == [{"image_id": 5, "category_id": 1, "bbox": [10.0, 20.0, 30.0, 40.0],
                                         "score": 0.9}]


def test_coco_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="no such annotation file"):
        load_annotations(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(SpecError, match=r"bad.json: field 'annotations'"):
        load_annotations(bad)
    truth = load_annotations(_ground_truth(tmp_path))
    truth.dataset["images"].append({"id": 9, "file_name": "c.jpg", "width": 10, "height": 10})
    truth.createIndex()
    with pytest.raises(SpecError, match="no annotated objects"):
        coco_map(truth, [_det(9, [0, 0, 1, 1], 0.5)], [9])


# --------------------------------------------------------------------------- dataset files


def test_mlperf_calibration_lists_are_shipped():
    imagenet = read_image_list(DATA / "cal_image_list_option_1.txt")
    coco = read_image_list(DATA / "coco_cal_images_list.txt")
    assert len(imagenet) == len(set(imagenet)) == 500 and all(n.startswith("ILSVRC2012_val_") for n in imagenet)
    assert len(coco) == len(set(coco)) == 500 and all(n.endswith(".jpg") and len(n) == 16 for n in coco)


def test_val_map_errors_name_file_and_line(tmp_path):
    path = tmp_path / "val_map.txt"
    path.write_text("ILSVRC2012_val_00000001.JPEG 65\n\nILSVRC2012_val_00000002.JPEG 970\n")
    assert read_val_map(path) == [("ILSVRC2012_val_00000001.JPEG", 65), ("ILSVRC2012_val_00000002.JPEG", 970)]
    path.write_text("a.JPEG 1\nb.JPEG dog\n")
    with pytest.raises(SpecError, match=r"val_map.txt:2: expected 'file label'"):
        read_val_map(path)
    with pytest.raises(SpecError, match="no such val_map file"):
        read_val_map(tmp_path / "absent.txt")


# --------------------------------------------------------------------------- the CLI on the built workspace


def _val_map_accuracy(model, folder: Path, limit: int | None = None) -> float:
    """top-1 computed independently: model.run on each file, compared with the val_map label."""
    entries = [line.split() for line in (folder / "val_map.txt").read_text().splitlines()][:limit]
    results = model.run([str(folder / name) for name, _ in entries])
    return float(np.mean([r[0].label_id == int(label) for r, (_, label) in zip(results, entries)]))


@pytest.mark.slow  # needs the built workspace (the README's main command)
def test_cli_evaluate_imagenet_folder_json():
    """DigitsConvNet's held-out set, written by the pipeline as an ImageNet-style folder: the CLI's figures
    equal an independent count over model.run and the evaluate stage's metrics.json."""
    import furiosa.artifacts as fa

    metrics_path = REPO_ROOT / "models" / "DigitsConvNet" / "metrics.json"
    _built(DIGITS_HELDOUT / "val_map.txt", metrics_path)
    proc = run_cli(["evaluate", "DigitsConvNet", "--imagenet", str(DIGITS_HELDOUT), "--json"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    count = len(read_val_map(DIGITS_HELDOUT / "val_map.txt"))
    assert report["count"] == count and report["dataset"]["kind"] == "imagenet"
    assert set(report) == {"fp32", "int8", "dataset", "count"}
    for precision in ("fp32", "int8"):
        expected = _val_map_accuracy(fa.load("DigitsConvNet", precision=precision, root=REPO_ROOT), DIGITS_HELDOUT)
        assert report[precision]["top1"] == pytest.approx(expected, abs=1e-12)
        assert report[precision]["top1"] <= report[precision]["top5"] <= 1.0
    assert report["fp32"]["top1"] > 0.95
    metrics = json.loads(metrics_path.read_text())
    assert metrics["fp32_top1"] == pytest.approx(report["fp32"]["top1"], abs=1e-6)
    assert metrics["int8_top1"] == pytest.approx(report["int8"]["top1"], abs=1e-6)
    limited = run_cli(["evaluate", "digits-convnet", "--imagenet", str(DIGITS_HELDOUT), "--precision", "int8",
                       "--limit", "20", "--json", "--val-map", str(DIGITS_HELDOUT / "val_map.txt")])
    assert limited.returncode == 0, limited.stderr
    small = json.loads(limited.stdout)
    assert small["count"] == 20 and set(small) == {"int8", "dataset", "count"}
    model = fa.load("DigitsConvNet", precision="int8", root=REPO_ROOT)
    assert small["int8"]["top1"] == pytest.approx(_val_map_accuracy(model, DIGITS_HELDOUT, 20), abs=1e-12)
    text = run_cli(["evaluate", "DigitsConvNet", "--imagenet", str(DIGITS_HELDOUT), "--limit", "8"])
    assert text.returncode == 0 and "int8/fp32 top1" in text.stdout and "fp32: top1" in text.stdout


@pytest.mark.slow  # needs the built workspace (the README's main command)
def test_cli_evaluate_bad_input(tmp_path):
    _built(DIGITS_HELDOUT / "val_map.txt")
    usage = run_cli(["evaluate", "DigitsConvNet"])
    assert usage.returncode == 2 and "--imagenet DIR" in usage.stderr
    folder = tmp_path / "images"
    shutil.copytree(DIGITS_HELDOUT, folder)
    (folder / "val_map.txt").unlink()
    missing = run_cli(["evaluate", "DigitsConvNet", "--imagenet", str(folder), "--json"])
    assert missing.returncode == 1 and "val_map.txt: no such val_map file" in json.loads(missing.stdout)["error"]
    (folder / "val_map.txt").write_text("not_there.png 3\n")
    absent = run_cli(["evaluate", "DigitsConvNet", "--imagenet", str(folder)])
    assert absent.returncode == 1 and "not_there.png" in absent.stderr
    wrong_task = run_cli(["evaluate", "DigitsConvNet", "--coco", str(folder), "--annotations", str(folder / "x.json")])
    assert wrong_task.returncode == 1 and "classification model" in wrong_task.stderr


def _coco_from_detections(model, images: list[Path], out: Path) -> Path:
    """A COCO instances file whose objects are ``model``'s own detections on ``images``: scoring that model
    on it must give mAP 1.0 (every detection is a perfect, unique hit)."""
    from PIL import Image

    results = model.run([str(p) for p in images])
    annotations, categories = [], set()
    for image_id, dets in enumerate(results, 1):
        for d in dets:
            x1, y1, x2, y2 = d.box
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": d.category_id,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
            categories.add(d.category_id)
    images_json = []
    for image_id, path in enumerate(images, 1):
        with Image.open(path) as img:
            images_json.append({"id": image_id, "file_name": path.name, "width": img.width, "height": img.height})
    data = {"images": images_json, "annotations": annotations,
            "categories": [{"id": c, "name": str(c)} for c in sorted(categories | {1})]}
    out.write_text(json.dumps(data))
    return out


@pytest.mark.slow  # needs the built workspace (the README's main command)
def test_cli_evaluate_coco_with_an_ssd(tmp_path):
    """The trained SSD (DigitsSSD) from the built workspace on a hand-made COCO set: fp32 scored against its own
    detections gives mAP 1.0, int8 gives what pycocotools computes from int8's own model.run detections.
    (The seed SSDs with synthetic weights keep tens of thousands of boxes per image uncapped, which makes a
    pycocotools run take many minutes: the trained detector is the one with meaningful detections here.)"""
    import furiosa.artifacts as fa
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    val = REPO_ROOT / "data" / "digits_detection" / "val"
    _built(val, REPO_ROOT / "models" / "DigitsSSD" / "int8.onnx")
    images = tmp_path / "val"
    images.mkdir()
    for path in sorted(val.glob("*.png"))[:6]:
        shutil.copy(path, images / path.name)
    files = sorted(images.glob("*.png"))
    fp32 = fa.load("DigitsSSD", precision="fp32", root=REPO_ROOT)
    annotations = _coco_from_detections(fp32, files, tmp_path / "instances_val.json")
    if not json.loads(annotations.read_text())["annotations"]:
        pytest.fail("DigitsSSD detected nothing on its val images: the known-answer set is empty")
    proc = run_cli(["evaluate", "DigitsSSD", "--coco", str(images), "--annotations", str(annotations),
                    "--json"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["count"] == 6 and report["dataset"]["kind"] == "coco"
    assert report["fp32"] == {"map": 1.0, "map50": 1.0}
    # independently: int8's detections from model.run, scored by pycocotools directly
    int8 = fa.load("DigitsSSD", precision="int8", root=REPO_ROOT)
    dets = [{"image_id": i, "category_id": d.category_id, "score": d.score,
             "bbox": [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]]}
            for i, result in enumerate(int8.run([str(p) for p in files]), 1) for d in result]
    truth = COCO(str(annotations))
    evaluator = COCOeval(truth, truth.loadRes(dets), iouType="bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert report["int8"]["map"] == pytest.approx(evaluator.stats[0], abs=1e-12)
    assert report["int8"]["map50"] == pytest.approx(evaluator.stats[1], abs=1e-12)


def test_accuracy_metrics_for_metrics_json_and_gates():
    from furiosa.artifacts.accuracy import AccuracyReport
    from furiosa.artifacts.build.evaluate import check_gates
    from furiosa.artifacts.errors import GateError
    from furiosa.artifacts.pipeline.stages import accuracy_metrics

    report = AccuracyReport(kind="coco", dataset={"kind": "coco", "images": "val", "annotations": "a.json"},
                            count=300, metrics={"fp32": {"map": 0.5, "map50": 0.8},
                                                "int8": {"map": 0.49, "map50": 0.8}})
    flat = accuracy_metrics(report, {"metric": "map", "value": 0.52, "source": "x"})
    assert flat["fp32_map50"] == 0.8 and flat["int8_map_ratio"] == pytest.approx(0.98)
    assert flat["int8_map50_ratio"] == 1.0 and flat["int8_accuracy_ratio"] == pytest.approx(0.98)
    assert flat["accuracy_drop"] == pytest.approx(0.01) and flat["fp32_published_gap"] == pytest.approx(0.02)
    assert flat["accuracy"]["count"] == 300 and flat["accuracy"]["metric"] == "map"
    check_gates("DigitsSSD", flat, {"fp32_map50_min": 0.8, "int8_map50_ratio_min": 0.99})
    with pytest.raises(GateError, match="int8_map_ratio 0.98 < gate int8_map_ratio_min 0.99"):
        check_gates("DigitsSSD", flat, {"int8_map_ratio_min": 0.99})
    assert "fp32_published_gap" not in accuracy_metrics(report, None)
