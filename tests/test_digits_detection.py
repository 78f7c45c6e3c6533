"""The generated digits detection dataset (COCO format), its pycocotools scoring, and DigitsSSD's training parts.

Fast tests generate a few images into a temp dir; nothing here needs the built workspace.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pycocotools.coco import COCO

from conftest import REPO_ROOT
from _coco_oracle import coco_map, detection_results  # an independent pycocotools scorer (not the product's)
from furiosa.artifacts.build.train_detector import (anchor_corners, detection_targets, match_anchors,
                                                    multibox_loss, validate_detector_params)
from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.loader import load_from_repo
from furiosa.artifacts.pipeline.digits_detection import (DatasetParams, _digit_pools, annotation_path, read_split,
                                                         write_dataset)
from furiosa.artifacts.vision.anchors import generate_anchors
from furiosa.artifacts.vision.boxes import box_iou, decode
from furiosa.artifacts.vision.models import create_model
from furiosa.artifacts.vision.specs import load_spec

SMALL = dict(seed=3, train_images=12, val_images=6, image_size=[64, 64], digits_per_image=[1, 4],
             digit_size=[12, 28], val_fraction=0.25)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits") / "dd"
    write_dataset(root, DatasetParams.from_params(SMALL))
    return root


def test_annotations_load_in_pycocotools_with_boxes_inside_images(dataset):
    for split, count in (("train", 12), ("val", 6)):
        coco = COCO(str(annotation_path(dataset, split)))
        assert sorted(coco.getImgIds()) == list(range(1, count + 1))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [f"digit {d}" for d in range(10)]
        assert coco.getCatIds() == list(range(1, 11))
        anns = coco.loadAnns(coco.getAnnIds())
        assert len(anns) >= count and len({a["id"] for a in anns}) == len(anns)
        for image in coco.loadImgs(coco.getImgIds()):
            path = dataset / split / image["file_name"]
            with Image.open(path) as im:
                assert im.size == (image["width"], image["height"]) == (64, 64) and im.mode == "RGB"
            objects = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            assert 1 <= len(objects) <= 4
            for a in objects:
                x, y, w, h = a["bbox"]
                assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64 and w > 2 and h >= 8
                assert a["area"] == pytest.approx(w * h, abs=0.01) and a["iscrowd"] == 0
                assert 1 <= a["category_id"] <= 10


def test_digits_are_drawn_inside_their_boxes(dataset):
    # the ink differs from the ground: a box's pixels spread more than the ground's right around it
    coco = COCO(str(annotation_path(dataset, "val")))
    for image in coco.loadImgs(coco.getImgIds()):
        gray = np.asarray(Image.open(dataset / "val" / image["file_name"]).convert("L"), dtype=np.float32)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            x, y, w, h = (int(round(v)) for v in a["bbox"])
            assert np.ptp(gray[y:y + h, x:x + w]) > 40


def test_splits_use_disjoint_handwriting_and_are_reproducible(dataset, tmp_path):
    pools = _digit_pools(3, 0.25)
    train, val = (pools[split][0].reshape(len(pools[split][0]), -1) for split in ("train", "val"))
    assert len(train) + len(val) == 1797 and len(val) == 449
    assert not {r.tobytes() for r in train} & {r.tobytes() for r in val} - {np.zeros(64, np.float32).tobytes()}
    again = tmp_path / "again"
    write_dataset(again, DatasetParams.from_params(SMALL))
    files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((dataset / f).read_bytes() == (again / f).read_bytes() for f in files)
    other = tmp_path / "other"
    write_dataset(other, DatasetParams.from_params({**SMALL, "seed": 4}))
    assert annotation_path(other, "val").read_bytes() != annotation_path(dataset, "val").read_bytes()


def test_a_rewrite_replaces_the_whole_tree_and_a_failed_one_leaves_the_old_tree(dataset, tmp_path, monkeypatch):
    root = tmp_path / "dd"
    write_dataset(root, DatasetParams.from_params({**SMALL, "train_images": 3, "val_images": 2}))
    (root / "train" / "stale.png").write_bytes(b"left by an older run")
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    saved = []

    def fail_on_the_fourth_image(self, fp, *args, **kwargs):
        saved.append(fp)
        if len(saved) == 4:
            raise OSError(28, "No space left on device")
        return original(self, fp, *args, **kwargs)

    original = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", fail_on_the_fourth_image)
    with pytest.raises(OSError, match="No space left"):
        write_dataset(root, DatasetParams.from_params(SMALL))
    # the images went to a staging directory beside root, now removed; root is the old tree, byte for byte
    assert all(Path(fp).parent.parent.parent == tmp_path and Path(fp).parent.parent != root for fp in saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dd"]
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    monkeypatch.setattr(Image.Image, "save", original)
    write_dataset(root, DatasetParams.from_params(SMALL))
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())  # no stale.png
    assert all((root / f).read_bytes() == (dataset / f).read_bytes() for f in files)


@pytest.mark.parametrize("change, field", [
    ({"train_images": 0}, "train_images"),
    ({"digit_size": [30, 20]}, "digit_size"),
    ({"digit_size": [12, 40]}, "digit_size"),
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"colour": 1}, "unknown key"),
])
def test_bad_dataset_params_name_the_field(change, field):
    with pytest.raises(SpecError, match=field):
        DatasetParams.from_params({**SMALL, **change})


def test_read_split_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(SpecError, match="instances_val.json: no such file"):
        read_split(tmp_path, "val")
    path = annotation_path(tmp_path, "val")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"images": [], "annotations": {}, "categories": []}))
    with pytest.raises(SpecError, match="'annotations' must be a list"):
        read_split(tmp_path, "val")


def test_every_box_gets_an_anchor_and_targets_decode_back(dataset):
    spec = load_spec("DigitsSSD")
    anchors = generate_anchors(spec.postprocess.anchors)
    targets = detection_targets(dataset, "train", spec, threshold=0.5)
    data = read_split(dataset, "train")
    assert targets["images"].shape == (12, 1, 64, 64) and targets["classes"].shape == (12, len(anchors))
    for i, (boxes, cats) in enumerate(zip(data.boxes, data.category_ids)):
        positive = targets["classes"][i] > 0
        decoded = decode(targets["loc"][i][positive], anchors[positive], spec.postprocess.box_coder) * 64
        for box, cat in zip(boxes, cats):  # each box is recovered exactly by at least one anchor of its class
            hits = (np.abs(decoded - box).max(1) < 1e-3) & (targets["classes"][i][positive] == cat)
            assert hits.any()
    corners = anchor_corners(anchors, "cxcywh")
    matched, cls = match_anchors(np.array([[0.1, 0.1, 0.4, 0.5]], np.float32), np.array([3]), corners, threshold=0.5)
    iou = box_iou(np.array([[0.1, 0.1, 0.4, 0.5]], np.float32), corners)[0]
    assert set(np.flatnonzero(cls == 3)) == set(np.flatnonzero(iou >= 0.5)) | {int(iou.argmax())}


def test_multibox_loss_mines_three_negatives_per_positive():
    torch.manual_seed(0)
    cls_t = torch.zeros(1, 20, dtype=torch.long)
    cls_t[0, 3] = 2
    loc, conf = torch.zeros(1, 20, 4, requires_grad=True), torch.randn(1, 20, 11, requires_grad=True)
    box, cls = multibox_loss(loc, conf, torch.ones(1, 20, 4), cls_t, neg_pos_ratio=3)
    assert box.item() == pytest.approx(4 * 0.5)  # smooth L1 of 1.0 on 4 offsets of the one positive
    ce = torch.nn.functional.cross_entropy(conf[0], cls_t[0], reduction="none").detach()
    hardest = ce.clone()
    hardest[3] = -1
    assert cls.item() == pytest.approx((ce[3] + hardest.topk(3).values.sum()).item(), rel=1e-5)
    (box + cls).backward()
    assert (conf.grad[0].abs().sum(1) > 0).sum() == 4


def test_detector_train_params_are_checked():
    good = dict(dataset="digits-detection", epochs=1, batch_size=8, lr=0.01, weight_decay=0.0, match_iou=0.5,
                neg_pos_ratio=3, threads=1)
    assert validate_detector_params(good, where="w") == good
    with pytest.raises(SpecError, match="w.dataset"):
        validate_detector_params({**good, "dataset": "coco"}, where="w")
    with pytest.raises(SpecError, match="w.threads"):
        validate_detector_params({**good, "threads": 0}, where="w")
    with pytest.raises(SpecError, match="missing keys"):
        validate_detector_params({k: v for k, v in good.items() if k != "lr"}, where="w")


def test_network_heads_match_the_anchors():
    spec = load_spec("DigitsSSD")
    model = create_model("DigitsSSD")
    params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= params <= 300_000
    with torch.no_grad():
        loc, conf = model(torch.zeros(2, *spec.input.shape))
    assert loc.shape == (2, spec.postprocess.anchors.count, 4) and conf.shape == (2, 320, spec.num_classes)


# --------------------------------------------------------------------------- the built model (main job's build)

def _built(relpath: str) -> Path:
    path = REPO_ROOT / relpath
    if not path.exists():
        pytest.fail(f"{path} is not built: run the README's main command (or `dvc repro evaluate@DigitsSSD`) first")
    return path


def _recall(results, data, *, score: float = 0.3, iou: float = 0.5) -> float:
    found = total = 0
    for dets, boxes, cats in zip(results, data.boxes, data.category_ids):
        kept = [d for d in dets if d.score > score]
        total += len(boxes)
        for box, cat in zip(boxes, cats):
            same = [d.box for d in kept if d.category_id == cat]
            if same and box_iou(np.asarray([box]), np.asarray(same)).max() >= iou:
                found += 1
    return found / total


@pytest.mark.slow  # needs the built DigitsSSD (the README's main command)
def test_trained_detector_passed_its_accuracy_gates():
    metrics = json.loads(_built("models/DigitsSSD/metrics.json").read_text())
    assert metrics["weights"] == {"source": "train", "deployable": True}
    accuracy = metrics["accuracy"]  # the evaluate stage scores through furiosa.artifacts.accuracy.evaluate_coco
    assert accuracy["count"] == 300 and accuracy["dataset"]["annotations"].endswith("instances_val.json")
    assert metrics["fp32_map50"] >= 0.8 and metrics["int8_map50"] >= 0.99 * metrics["fp32_map50"]
    assert metrics["int8_map"] >= 0.99 * metrics["fp32_map"] and 0 < metrics["fp32_map"] < metrics["fp32_map50"]
    for gate in ("fp32_map50_min", "int8_map50_ratio_min", "int8_map_ratio_min"):
        assert metrics["gates"][gate]["status"] == "pass"
    assert metrics["int8_vs_fp32_detection_f1"] >= 0.9  # int8 boxes match fp32 boxes


@pytest.mark.slow  # needs the built DigitsSSD (the README's main command)
def test_int8_model_object_reproduces_the_stage_map_on_the_val_split():
    root = _built("data/digits_detection")
    metrics = json.loads(_built("models/DigitsSSD/metrics.json").read_text())
    data = read_split(root, "val")
    model = load_from_repo("DigitsSSD")
    results = model.run([Image.open(p) for p in data.images], batch_size=64)
    scores = coco_map(data.annotations, detection_results(data.image_ids, results))
    assert scores["map50"] == pytest.approx(metrics["int8_map50"], abs=1e-5)
    assert scores["map"] == pytest.approx(metrics["int8_map"], abs=1e-5)


@pytest.mark.slow  # needs the built DigitsSSD (the README's main command)
def test_model_object_finds_digits_in_freshly_generated_images(tmp_path):
    # the pipeline's parameters with 100 more val images: images 301..400 are new (textures, positions, sizes)
    # and their handwriting comes from the val pool the model never trained on
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["digits_detection"]
    count = params["val_images"]
    write_dataset(tmp_path, DatasetParams.from_params({**params, "train_images": 1, "val_images": count + 100}))
    full = read_split(tmp_path, "val")
    data = type(full)(full.annotations, *(getattr(full, f)[count:] for f in
                                          ("images", "image_ids", "boxes", "category_ids")))
    images = [Image.open(p) for p in data.images]
    _built("models/DigitsSSD/int8.onnx")
    for precision in ("fp32", "int8"):
        model = load_from_repo("DigitsSSD", precision=precision)
        results = model.run(images, batch_size=50)
        # the val split scores mAP@.5 ~0.9 (metrics.json); new images of the same kind score alike
        assert coco_map(data.annotations, detection_results(data.image_ids, results),
                        image_ids=data.image_ids)["map50"] >= 0.8, precision
        assert _recall(results, data) >= 0.7, precision  # most digits found with a confident, right box
        for dets, (h, w) in zip(results, [(im.height, im.width) for im in images]):
            assert all(d.category_name == f"digit {d.category_id - 1}" for d in dets)
            assert all(-8 <= d.box[0] < d.box[2] <= w + 8 and -8 <= d.box[1] < d.box[3] <= h + 8
                       for d in dets if d.score > 0.3)


def test_params_data_dir_and_dataset_section_are_validated(tmp_path):
    from furiosa.artifacts.pipeline.params import load_params

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.model("DigitsSSD").data == "data/digits_detection"
    assert params.model("MLCommonsResNet50").data == "data/samples"
    assert DatasetParams.from_params(params.digits_detection).train_images == raw["digits_detection"]["train_images"]
    for change, message in ((lambda r: r["models"]["DigitsSSD"].update(data="../elsewhere"), "models.DigitsSSD.data"),
                            (lambda r: r["digits_detection"].update(image_size=[64]), "digits_detection.image_size")):
        broken = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        change(broken)
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(SpecError, match=message):
            load_params(path)
