"""Numpy NMS against torchvision.ops.nms / batched_nms and a literal greedy loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from furiosa.artifacts.vision import nms as nms_module
from furiosa.artifacts.vision.nms import multiclass_nms, nms


def _random_boxes(rng: np.random.Generator, n: int, *, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.random((n, 2)) * spread
    wh = rng.random((n, 2)) * 0.3 + 0.01
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32)


@pytest.mark.parametrize("n,threshold", [(1, 0.5), (50, 0.3), (500, 0.5), (1500, 0.7), (3000, 0.45)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_equals_torchvision(n, threshold, seed):
    boxes, scores = _random_boxes(np.random.default_rng(seed), n, spread=1.0 + n / 500)
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
    kept = nms(boxes, scores, threshold)
    np.testing.assert_array_equal(kept, expected)
    assert 0 < len(kept) <= n


def test_both_code_paths_agree(monkeypatch):
    boxes, scores = _random_boxes(np.random.default_rng(5), 800, spread=1.5)
    matrix = nms(boxes, scores, 0.5)
    monkeypatch.setattr(nms_module, "_MATRIX_LIMIT", 10)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), matrix)


def _greedy_with_eps(boxes: np.ndarray, scores: np.ndarray, threshold: float, eps: float) -> list[int]:
    """MLPerf models/utils.py nms, literally: keep while IoU (eps added to the union) <= threshold."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
        return inter / (area(a) + area(b) - inter + eps)

    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    picked = []
    while order:
        current, order = order[0], order[1:]
        picked.append(current)
        order = [i for i in order if iou(boxes[i].astype(float), boxes[current].astype(float)) <= threshold]
    return picked


def test_nms_eps_matches_the_mobilenet_reference_loop():
    rng = np.random.default_rng(3)
    boxes, scores = _random_boxes(rng, 300, spread=0.5)
    boxes = boxes * 0.05  # small normalised boxes, where eps = 1e-5 matters
    with_eps = nms(boxes, scores, 0.6, eps=1e-5)
    assert list(with_eps) == _greedy_with_eps(boxes, scores, 0.6, 1e-5)
    assert list(nms(boxes, scores, 0.6)) != list(with_eps)  # the eps changes the outcome here


def test_empty_and_invalid_inputs():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)
    with pytest.raises(ValueError):
        nms(np.zeros((3, 4), np.float32), np.zeros(2, np.float32), 0.5)


def test_multiclass_nms_equals_torchvision_batched_nms():
    rng = np.random.default_rng(4)
    boxes, _ = _random_boxes(rng, 400, spread=1.2)
    scores = rng.random((400, 6)).astype(np.float32)
    anchor_idx, class_idx, kept_scores = multiclass_nms(
        boxes, scores, score_threshold=0.5, iou_threshold=0.5, per_class_top_k=50, max_detections=60)
    # reference: per class (skipping 0) threshold, best 50, then NMS, then best 60 overall
    cand_a, cand_c = [], []
    for cls in range(1, 6):
        idx = np.flatnonzero(scores[:, cls] > 0.5)
        idx = idx[np.argsort(-scores[idx, cls], kind="stable")[:50]]
        cand_a.append(idx)
        cand_c.append(np.full(len(idx), cls))
    cand_a, cand_c = np.concatenate(cand_a), np.concatenate(cand_c)
    keep = torchvision.ops.batched_nms(torch.from_numpy(boxes[cand_a]), torch.from_numpy(scores[cand_a, cand_c]),
                                       torch.from_numpy(cand_c), 0.5).numpy()[:60]
    assert len(anchor_idx) == 60
    np.testing.assert_array_equal(anchor_idx, cand_a[keep])
    np.testing.assert_array_equal(class_idx, cand_c[keep])
    np.testing.assert_array_equal(kept_scores, scores[cand_a[keep], cand_c[keep]])
    assert np.all(np.diff(kept_scores) <= 0)
    assert 0 not in class_idx


def test_multiclass_nms_without_candidates():
    boxes, _ = _random_boxes(np.random.default_rng(6), 10)
    anchor_idx, class_idx, kept = multiclass_nms(boxes, np.zeros((10, 3), np.float32), score_threshold=0.1,
                                                 iou_threshold=0.5)
    assert anchor_idx.shape == class_idx.shape == kept.shape == (0,)
