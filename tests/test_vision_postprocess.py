"""Postprocessing: classification top-k, and SSD detection against torch re-statements of the MLPerf algorithms."""

from __future__ import annotations

import dataclasses

import _mlperf_reference as reference
import numpy as np
import pytest
import torch

from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.vision.anchors import generate_anchors
from furiosa.artifacts.vision.postprocess import Classification, Detection, classify, postprocess
from furiosa.artifacts.vision.preprocess import ImageContext
from furiosa.artifacts.vision.specs import load_spec

MOBILENET = load_spec("MLCommonsSSDMobileNet")
RESNET34 = load_spec("MLCommonsSSDResNet34")


def _context(height: int, width: int, side: int) -> ImageContext:
    return ImageContext(original_size=(height, width), resized_size=(side, side), crop_offset=(0, 0),
                        input_size=(side, side))


def test_classification_top_k_with_names():
    spec = load_spec("MLCommonsResNet50")
    logits = np.zeros((2, 1000), np.float32)
    logits[0, [0, 207, 281]] = [5.0, 7.0, 6.0]  # tench, golden retriever, tabby
    logits[1, 999] = 3.0
    results = postprocess([logits], None, spec)
    assert [c.label_id for c in results[0][:3]] == [207, 281, 0]
    assert [c.label for c in results[0][:3]] == ["golden retriever", "tabby", "tench"]
    assert len(results[0]) == 5 and results[1][0].label == "toilet tissue"
    probs = np.exp(logits[0] - logits[0].max())
    probs /= probs.sum()
    assert results[0][0].score == pytest.approx(float(probs[207]), rel=1e-5)
    assert postprocess({"logits": logits}, None, spec) == results
    assert isinstance(results[0][0], Classification)


def test_classification_label_offset_for_1001_class_graphs():
    spec = dataclasses.replace(load_spec("MLCommonsResNet50"), num_classes=1001, label_offset=-1)
    logits = np.zeros((1, 1001), np.float32)
    logits[0, 1] = 9.0  # index 1 of a background-first graph is ImageNet class 0
    logits[0, 0] = 8.0
    top = classify(logits, spec, top_k=2)[0]
    assert (top[0].label_id, top[0].label) == (0, "tench")
    assert (top[1].label_id, top[1].label) == (-1, "__background__")


def test_classification_shape_errors():
    spec = load_spec("EfficientNetV2_S")
    with pytest.raises(SpecError, match="1000"):
        postprocess([np.zeros((1, 10), np.float32)], None, spec)
    with pytest.raises(SpecError, match="outputs"):
        postprocess([np.zeros((1, 1000)), np.zeros((1, 1000))], None, spec)
    with pytest.raises(SpecError, match="lack"):
        postprocess({"probs": np.zeros((1, 1000))}, None, spec)


def test_single_mobilenet_detection_maps_to_original_pixels():
    anchors = generate_anchors(MOBILENET.postprocess.anchors)
    conf = np.full((1, 1917, 91), -10.0, np.float32)
    conf[0, 1500, 18] = 10.0  # COCO id 18 = dog, used directly
    loc = np.zeros((1, 1917, 4), np.float32)
    (dets,) = postprocess({"loc": loc, "conf": conf}, [_context(480, 640, 300)], MOBILENET)
    assert len(dets) == 1 and isinstance(dets[0], Detection)
    y1, x1, y2, x2 = anchors[1500]
    np.testing.assert_allclose(dets[0].box, [x1 * 640, y1 * 480, x2 * 640, y2 * 480], rtol=1e-5)
    assert (dets[0].category_id, dets[0].category_name) == (18, "dog")
    assert dets[0].score == pytest.approx(1 / (1 + np.exp(-10.0)))


def test_single_resnet34_detection_uses_coco_ids():
    dboxes = generate_anchors(RESNET34.postprocess.anchors)
    conf = np.zeros((1, 15130, 81), np.float32)
    conf[0, 3000, 12] = 10.0  # contiguous class 12 = stop sign = COCO id 13
    conf[0, 4000, 80] = 10.0  # contiguous class 80 = toothbrush = COCO id 90
    loc = np.zeros((1, 15130, 4), np.float32)
    (dets,) = postprocess([loc, conf], [_context(400, 600, 1200)], RESNET34)
    dets = sorted(dets, key=lambda d: d.category_id)  # equal scores: order not specified
    assert [(d.category_id, d.category_name) for d in dets] == [(13, "stop sign"), (90, "toothbrush")]
    cx, cy, w, h = dboxes[3000]
    np.testing.assert_allclose(dets[0].box, [(cx - w / 2) * 600, (cy - h / 2) * 400, (cx + w / 2) * 600,
                                             (cy + h / 2) * 400], rtol=1e-5)


def _reference_resnet34(loc: torch.Tensor, conf: torch.Tensor, dboxes: torch.Tensor):
    """models/ssd_r34.py scale_back_batch + Encoder.decode_single (vendored, unclamped IoU), one image."""
    xy = 0.1 * loc[:, :2] * dboxes[:, 2:] + dboxes[:, :2]
    wh = torch.exp(0.2 * loc[:, 2:]) * dboxes[:, 2:]
    boxes = torch.cat([xy - 0.5 * wh, xy + 0.5 * wh], 1)
    probs = torch.softmax(conf, dim=-1)
    return reference.decode_single(boxes, probs, criteria=0.5, max_output=200)


def _reference_mobilenet(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor):
    """models/ssd_mobilenet_v1.py decode + filter_results with utils.nms (eps 1e-5, keep IoU <= 0.6)."""
    w, h = priors[:, 3] - priors[:, 1], priors[:, 2] - priors[:, 0]
    cx, cy = priors[:, 1] + 0.5 * w, priors[:, 0] + 0.5 * h
    px, py = loc[:, 1] / 10 * w + cx, loc[:, 0] / 10 * h + cy
    pw, ph = torch.exp(loc[:, 3] / 5) * w, torch.exp(loc[:, 2] / 5) * h
    boxes = torch.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], 1)
    scores = torch.sigmoid(conf)
    out_boxes, out_scores, out_labels = [], [], []
    for label in range(1, scores.shape[1]):
        mask = scores[:, label] > 0.3
        cand_boxes, cand_scores = boxes[mask], scores[mask, label]
        indexes = cand_scores.sort(descending=True).indices
        picked = []
        while len(indexes):
            current, indexes = indexes[0], indexes[1:]
            picked.append(int(current))
            lt = torch.max(cand_boxes[indexes, :2], cand_boxes[current, :2])
            rb = torch.min(cand_boxes[indexes, 2:], cand_boxes[current, 2:])
            inter = (rb - lt).clamp(min=0).prod(1)
            area = lambda b: (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
            iou = inter / (area(cand_boxes[indexes]) + area(cand_boxes[current]) - inter + 1e-5)
            indexes = indexes[iou <= 0.6]
        out_boxes.append(cand_boxes[picked])
        out_scores.append(cand_scores[picked])
        out_labels += [label] * len(picked)
    return torch.cat(out_boxes), torch.tensor(out_labels), torch.cat(out_scores)


def _as_rows(boxes, labels, scores, width, height) -> np.ndarray:
    rows = np.column_stack([np.asarray(scores, np.float64), labels,
                            np.asarray(boxes, np.float64) * [width, height, width, height]])
    return rows[np.lexsort((-rows[:, 0], rows[:, 1]))]  # by class, then best score first


def test_resnet34_detections_equal_the_reference_algorithm():
    rng = np.random.default_rng(0)
    dboxes = generate_anchors(RESNET34.postprocess.anchors)
    loc = rng.normal(0, 1, (2, 15130, 4)).astype(np.float32)
    conf = rng.normal(0, 2, (2, 15130, 81)).astype(np.float32)
    conf[..., 0] += 6.0  # mostly background, as a trained model
    contexts = [_context(480, 640, 1200), _context(427, 500, 1200)]
    results = postprocess({"conf": conf, "loc": loc}, contexts, RESNET34)
    label_to_coco = {i: c for i, c in enumerate(
        [0] + [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)])}
    for b, (height, width) in enumerate([(480, 640), (427, 500)]):
        boxes, labels, scores = _reference_resnet34(torch.from_numpy(loc[b]), torch.from_numpy(conf[b]),
                                                    torch.from_numpy(dboxes.copy()))
        assert len(results[b]) == len(scores) == 200
        expected = _as_rows(boxes.numpy(), [label_to_coco[int(x)] for x in labels], scores.numpy(), width, height)
        ours = _as_rows(np.array([d.box for d in results[b]]) / [width, height, width, height],
                        [d.category_id for d in results[b]], [d.score for d in results[b]], width, height)
        np.testing.assert_array_equal(ours[:, 1], expected[:, 1])
        np.testing.assert_allclose(ours[:, 0], expected[:, 0], rtol=1e-6)
        np.testing.assert_allclose(ours[:, 2:], expected[:, 2:], rtol=1e-5, atol=1e-3)
        assert all(results[b][i].score >= results[b][i + 1].score for i in range(199))


def test_mobilenet_detections_equal_the_reference_algorithm():
    rng = np.random.default_rng(1)
    priors = generate_anchors(MOBILENET.postprocess.anchors)
    loc = rng.normal(0, 1, (1, 1917, 4)).astype(np.float32)
    conf = rng.normal(-3, 1, (1, 1917, 91)).astype(np.float32)
    (dets,) = postprocess([loc, conf], [_context(480, 640, 300)], MOBILENET)
    boxes, labels, scores = _reference_mobilenet(torch.from_numpy(loc[0]), torch.from_numpy(conf[0]),
                                                 torch.from_numpy(priors.copy()))
    expected = _as_rows(boxes.numpy(), labels.numpy(), scores.numpy(), 640, 480)
    assert len(dets) == len(scores) > 100  # reference-exact: no cap
    ours = _as_rows(np.array([d.box for d in dets]) / [640, 480, 640, 480], [d.category_id for d in dets],
                    [d.score for d in dets], 640, 480)
    np.testing.assert_array_equal(ours[:, 1], expected[:, 1])
    np.testing.assert_allclose(ours[:, 0], expected[:, 0], rtol=1e-6)
    np.testing.assert_allclose(ours[:, 2:], expected[:, 2:], rtol=1e-5, atol=1e-3)
    capped = postprocess([loc, conf], [_context(480, 640, 300)], MOBILENET, max_detections=100)[0]
    assert capped == dets[:100]  # the cap is an option; detections come best first


def test_detection_shape_and_context_errors():
    loc, conf = np.zeros((1, 1917, 4), np.float32), np.zeros((1, 1917, 91), np.float32)
    with pytest.raises(SpecError, match="1917"):
        postprocess([loc[:, :100], conf], [_context(10, 10, 300)], MOBILENET)
    with pytest.raises(SpecError, match="contexts"):
        postprocess([loc, conf], [], MOBILENET)
    with pytest.raises(SpecError, match="contexts"):
        postprocess([loc, conf], None, MOBILENET)
    with pytest.raises(SpecError, match="81"):
        postprocess([np.zeros((1, 15130, 4)), np.zeros((1, 15130, 91))], [_context(10, 10, 1200)], RESNET34)
