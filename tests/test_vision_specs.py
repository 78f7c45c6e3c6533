"""specs.yaml loading and validation, label sets, and the no-torch import contract."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from furiosa.artifacts.errors import ModelNotFoundError, SpecError
from furiosa.artifacts.vision.labels import label_set
from furiosa.artifacts.vision.specs import SPECS_PATH, DefaultBoxSpec, list_specs, load_spec, read_specs

CATALOG = ["MLCommonsResNet50", "EfficientNetV2_S", "MLCommonsSSDResNet34", "MLCommonsSSDMobileNet", "DigitsConvNet",
           "DigitsSSD"]
# COCO 2017 category ids in instances_val2017.json order (the 80 used of 1..90)
COCO80_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
              31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56,
              57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86,
              87, 88, 89, 90]


def test_catalog_specs_load():
    assert list_specs() == CATALOG
    for name in CATALOG:
        spec = load_spec(name)
        assert spec.name == name
        assert spec.input.layout == "NCHW" and spec.input.dtype == "float32"


@pytest.mark.parametrize("name,size,classes,outputs", [
    ("MLCommonsResNet50", (224, 224), 1000, ("logits",)),
    ("EfficientNetV2_S", (384, 384), 1000, ("logits",)),
    ("MLCommonsSSDResNet34", (1200, 1200), 81, ("loc", "conf")),
    ("MLCommonsSSDMobileNet", (300, 300), 91, ("loc", "conf")),
    ("DigitsConvNet", (8, 8), 10, ("logits",)),
])
def test_published_facts(name, size, classes, outputs):
    spec = load_spec(name)
    assert spec.input.size == size
    assert spec.num_classes == classes
    assert spec.output_names == outputs


def test_resnet34_default_box_parameters_follow_the_reference_formula():
    # models/ssd_r34.py dboxes_R34_coco: steps int(fig / f), scales int(s * fig / 300)
    anchors = load_spec("MLCommonsSSDResNet34").postprocess.anchors
    assert isinstance(anchors, DefaultBoxSpec)
    feature_maps = [50, 25, 13, 7, 3, 3]
    assert [h for h, _ in anchors.feature_maps] == feature_maps
    assert list(anchors.steps) == [int(1200 / f) for f in feature_maps]
    assert list(anchors.scales) == [int(s * 1200 / 300) for s in [21, 45, 99, 153, 207, 261, 315]]
    assert [list(r) for r in anchors.aspect_ratios] == [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelNotFoundError, match="MLCommonsResNet50"):
        load_spec("ResNet51")


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(SPECS_PATH.read_text())
    mutate(data)
    path = tmp_path / "specs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["MLCommonsResNet50"].pop("num_classes"), "num_classes"),
    (lambda d: d["MLCommonsResNet50"]["preprocess"].update(crop=[200, 200]), "preprocess.crop"),
    (lambda d: d["MLCommonsResNet50"]["preprocess"]["resize"].update(interpolation="area"),
     "preprocess.resize.interpolation"),
    (lambda d: d["EfficientNetV2_S"].update(task="segmentation"), "task"),
    (lambda d: d["EfficientNetV2_S"]["input"].update(shape=[2, 384, 384]), "input.shape"),
    (lambda d: d["EfficientNetV2_S"]["input"].update(shape=[1, 384, 384]), "preprocess.color"),
    (lambda d: d["EfficientNetV2_S"]["preprocess"].update(std=[0.5, 0.0, 0.5]), "preprocess.std[1]"),
    (lambda d: d["MLCommonsSSDMobileNet"].update(num_classes=81), "num_classes"),
    (lambda d: d["DigitsConvNet"]["preprocess"].update(color="RGB"), "preprocess.color"),
    (lambda d: d["DigitsConvNet"]["preprocess"].update(mean=[0.0, 0.0, 0.0]), "preprocess.mean"),
    (lambda d: d["MLCommonsSSDMobileNet"]["postprocess"].update(nms_iou=1.5), "postprocess.nms_iou"),
    (lambda d: d["MLCommonsSSDMobileNet"]["postprocess"].update(extra=1), "postprocess"),
    (lambda d: d["MLCommonsSSDResNet34"]["postprocess"].update(nms_iou_mode="reference"),
     "postprocess.nms_iou_mode"),
    (lambda d: d["MLCommonsSSDResNet34"]["postprocess"].update(nms_suppress_ge="yes"),
     "postprocess.nms_suppress_ge"),
    (lambda d: d["MLCommonsSSDResNet34"]["postprocess"]["anchors"].update(steps=[24]),
     "postprocess.anchors.steps"),
    (lambda d: d["MLCommonsSSDResNet34"]["postprocess"]["box_coder"].update(scales=[10, 10, 5]),
     "postprocess.box_coder.scales"),
])
def test_invalid_specs_name_file_model_and_field(tmp_path, mutate, field):
    path = _write(tmp_path, mutate)
    with pytest.raises(SpecError) as info:
        read_specs(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and "model '" in message


def test_unreadable_specs(tmp_path):
    path = tmp_path / "specs.yaml"
    path.write_text("a: [unclosed")
    with pytest.raises(SpecError, match="cannot read"):
        read_specs(path)
    with pytest.raises(SpecError, match="cannot read"):
        read_specs(tmp_path / "missing.yaml")


def test_label_sets():
    imagenet = label_set("imagenet")
    assert len(imagenet.names) == 1000 and imagenet.names[0] == "tench" and imagenet.names[999] == "toilet tissue"
    coco91 = label_set("coco91")
    assert len(coco91.names) == 91 and coco91.names[1] == "person" and coco91.names[90] == "toothbrush"
    coco80 = label_set("coco80")
    assert len(coco80.names) == 81 and coco80.names[0] == "__background__"
    assert list(coco80.category_ids[1:]) == COCO80_IDS
    assert [coco91.names[i] for i in coco80.category_ids] == list(coco80.names)
    assert label_set("digits").names == tuple("0123456789")
    with pytest.raises(SpecError):
        label_set("voc")


def test_numpy_side_does_not_import_torch():
    code = textwrap.dedent("""
        import sys
        import furiosa.artifacts.vision.preprocess, furiosa.artifacts.vision.postprocess
        import furiosa.artifacts.vision.specs, furiosa.artifacts.vision.anchors, furiosa.artifacts.vision.nms
        import furiosa.artifacts.vision.labels
        from furiosa.artifacts.vision.postprocess import postprocess
        from furiosa.artifacts.vision.preprocess import preprocess
        import numpy as np
        x, ctx = preprocess(np.zeros((20, 30, 3), np.uint8), "MLCommonsSSDMobileNet")
        postprocess({"loc": np.zeros((1, 1917, 4), np.float32), "conf": np.zeros((1, 1917, 91), np.float32)},
                    ctx, "MLCommonsSSDMobileNet")
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm"))
        print(bad)
        sys.exit(1 if bad else 0)
    """)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
