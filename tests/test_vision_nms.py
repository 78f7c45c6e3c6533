"""Vectorised numpy NMS against the previous implementation (tests/nms_oracle.py), torchvision.ops.nms /
batched_nms, and the MLPerf reference code (tests/_mlperf_reference.py)."""

from __future__ import annotations

import _mlperf_reference as reference
import nms_oracle as oracle
import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from furiosa.artifacts.vision import nms as nms_module
from furiosa.artifacts.vision.anchors import generate_anchors
from furiosa.artifacts.vision.boxes import decode
from furiosa.artifacts.vision.nms import multiclass_nms, nms, order_desc
from furiosa.artifacts.vision.specs import load_spec

# every code path of nms._greedy, forced by its size limits: (_PAIRS_BUDGET, _ANCHOR_LIMIT)
PATHS = {"matrices": (1 << 40, 0), "bitmap": (0, 1 << 40), "chunked": (3000, 0), "one_by_one": (1, 0)}


@pytest.fixture(params=sorted(PATHS))
def path(request, monkeypatch):
    budget, limit = PATHS[request.param]
    monkeypatch.setattr(nms_module, "_PAIRS_BUDGET", budget)
    monkeypatch.setattr(nms_module, "_ANCHOR_LIMIT", limit)
    return request.param


def _random_boxes(rng: np.random.Generator, n: int, *, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.random((n, 2)) * spread
    wh = rng.random((n, 2)) * 0.3 + 0.01
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32)


def _same(new, old):
    for a, b in zip(new, old):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


@pytest.mark.parametrize("n,threshold", [(1, 0.5), (50, 0.3), (500, 0.5), (1500, 0.7), (3000, 0.45)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_equals_torchvision(n, threshold, seed):
    boxes, scores = _random_boxes(np.random.default_rng(seed), n, spread=1.0 + n / 500)
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
    kept = nms(boxes, scores, threshold)
    np.testing.assert_array_equal(kept, expected)
    assert 0 < len(kept) <= n


@pytest.mark.parametrize("top_k,cap", [(None, None), (40, 70), (5, None)])
def test_every_code_path_keeps_the_oracles_boxes(path, top_k, cap):
    rng = np.random.default_rng(7)
    boxes, _ = _random_boxes(rng, 600, spread=1.3)
    scores = rng.random((600, 7)).astype(np.float32)
    scores[::3, 2] = 0.75  # ties inside a class and at the top-k cut
    kwargs = dict(score_threshold=0.4, iou_threshold=0.5, eps=1e-5, per_class_top_k=top_k, max_detections=cap)
    new = multiclass_nms(boxes, scores, **kwargs)
    _same(new, oracle.multiclass_nms(boxes, scores, **kwargs))
    assert len(new[0]) > 20


def test_single_class_nms_on_every_path(path):
    boxes, scores = _random_boxes(np.random.default_rng(8), 900, spread=1.5)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), oracle.nms(boxes, scores, 0.5))


def test_bitmap_early_exit_when_everything_is_suppressed(monkeypatch):
    monkeypatch.setattr(nms_module, "_PAIRS_BUDGET", 0)
    boxes = np.tile(np.array([[0.1, 0.1, 0.4, 0.5]], np.float32), (1000, 1))  # one box, 1000 times
    boxes[500:] += 0.5  # and a second one
    scores = np.random.default_rng(9).random((1000, 3)).astype(np.float32)
    anchors, classes, _ = multiclass_nms(boxes, scores, score_threshold=0.0, iou_threshold=0.5)
    assert sorted(zip(classes.tolist(), (anchors >= 500).tolist())) == [(1, False), (1, True), (2, False), (2, True)]
    _same(multiclass_nms(boxes, scores, score_threshold=0.0, iou_threshold=0.5),
          oracle.multiclass_nms(boxes, scores, score_threshold=0.0, iou_threshold=0.5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), classes=st.integers(2, 6),
       levels=st.sampled_from([3, 20, 0]), threshold=st.sampled_from([0.0, 0.3, 0.5, 0.9]),
       iou=st.sampled_from([0.0, 0.3, 0.5, 0.6, 1.0]), eps=st.sampled_from([0.0, 1e-5]),
       top_k=st.sampled_from([None, 1, 7, 50]), cap=st.sampled_from([None, 1, 10]),
       budget=st.sampled_from(sorted(PATHS)))
def test_property_same_kept_boxes_as_the_oracle(seed, n, classes, levels, threshold, iou, eps, top_k, cap, budget):
    rng = np.random.default_rng(seed)
    boxes, _ = _random_boxes(rng, n, spread=rng.choice([0.2, 1.0, 3.0]))
    boxes[rng.random(n) < 0.1] = boxes[0]  # exact duplicates
    flat = rng.random(n) < 0.05
    boxes[flat, 2] = boxes[flat, 0]  # zero-width boxes (IoU 0 / 0 with each other)
    scores = rng.random((n, classes)).astype(np.float32)
    if levels:  # few distinct values: many ties
        scores = (np.floor(scores * levels) / levels).astype(np.float32)
    kwargs = dict(score_threshold=threshold, iou_threshold=iou, eps=eps, per_class_top_k=top_k, max_detections=cap)
    old = oracle.multiclass_nms(boxes, scores, **kwargs)
    saved = nms_module._PAIRS_BUDGET, nms_module._ANCHOR_LIMIT
    nms_module._PAIRS_BUDGET, nms_module._ANCHOR_LIMIT = PATHS[budget]
    try:
        new = multiclass_nms(boxes, scores, **kwargs)
    finally:
        nms_module._PAIRS_BUDGET, nms_module._ANCHOR_LIMIT = saved
    _same(new, old)


def test_order_desc_is_a_stable_descending_argsort():
    rng = np.random.default_rng(10)
    values = np.concatenate([rng.normal(size=500), np.zeros(20), -np.zeros(20), [np.inf, -np.inf, 1e-45, -1e-45],
                             np.round(rng.normal(size=300), 1)]).astype(np.float32)
    rng.shuffle(values)
    np.testing.assert_array_equal(order_desc(values), np.argsort(-values, kind="stable"))
    rows = values.reshape(4, -1)
    np.testing.assert_array_equal(order_desc(rows), np.argsort(-rows, axis=1, kind="stable"))


def test_empty_and_invalid_inputs():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)
    with pytest.raises(ValueError):
        nms(np.zeros((3, 4), np.float32), np.zeros(2, np.float32), 0.5)
    with pytest.raises(ValueError, match="scores"):
        multiclass_nms(np.zeros((3, 4), np.float32), np.zeros((2, 5), np.float32), score_threshold=0.1,
                       iou_threshold=0.5)


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


def _resnet34_inputs(seed: int, *, crowded: bool) -> tuple[np.ndarray, np.ndarray]:
    """Decoded SSD-ResNet34 boxes and softmax scores; ``crowded``: 19 classes over 0.05 at every anchor."""
    spec = load_spec("MLCommonsSSDResNet34")
    rng = np.random.default_rng(seed)
    anchors = generate_anchors(spec.postprocess.anchors)
    loc = rng.normal(0, 1, (len(anchors), 4)).astype(np.float32)
    conf = rng.normal(0, 2, (len(anchors), 81)).astype(np.float32)
    if crowded:
        conf[:] = -20.0
        for a in range(len(anchors)):
            conf[a, rng.choice(np.arange(1, 81), 19, replace=False)] = 5 + rng.random(19).astype(np.float32)
    else:
        conf[:, 0] += 6.0
    probs = torch.softmax(torch.from_numpy(conf), dim=-1).numpy()
    return decode(loc, anchors, spec.postprocess.box_coder), probs


@pytest.mark.parametrize("seed,crowded", [(0, False), (2, True)])
def test_reference_mode_equals_mlperf_decode_single(seed, crowded):
    """specs.yaml's SSD-ResNet34 NMS (unclamped IoU, suppress at >= 0.5, top 200, best 200) = decode_single."""
    post = load_spec("MLCommonsSSDResNet34").postprocess
    assert (post.nms_iou_mode, post.nms_suppress_ge, post.per_class_top_k, post.max_detections) == (
        "unclamped", True, 200, 200)
    boxes, probs = _resnet34_inputs(seed, crowded=crowded)
    ref_boxes, ref_labels, ref_scores = reference.decode_single(torch.from_numpy(boxes), torch.from_numpy(probs),
                                                                criteria=0.5, max_output=200)
    kwargs = dict(score_threshold=post.score_threshold, iou_threshold=post.nms_iou,
                  per_class_top_k=post.per_class_top_k, max_detections=post.max_detections)
    anchors, labels, scores = multiclass_nms(boxes, probs, clamped=False, suppress_ge=True, **kwargs)
    # the reference returns the best 200 in ascending score order; we return them best first
    np.testing.assert_array_equal(scores, ref_scores.numpy()[::-1])
    assert sorted(zip(scores.tolist(), labels.tolist(), map(tuple, boxes[anchors].tolist()))) == sorted(
        zip(ref_scores.tolist(), ref_labels.tolist(), map(tuple, ref_boxes.numpy().tolist())))
    # the reference's unclamped IoU and >= are not the textbook NMS: they keep other boxes on these inputs
    textbook = multiclass_nms(boxes, probs, **kwargs)
    assert {(int(a), int(c)) for a, c in zip(textbook[0], textbook[1])} != set(zip(anchors.tolist(), labels.tolist()))


def test_mobilenet_mode_equals_mlperf_utils_nms():
    """specs.yaml's SSD-MobileNet NMS (clamped IoU + eps, suppress at > 0.6, no cap) = utils.nms per class."""
    spec = load_spec("MLCommonsSSDMobileNet")
    post = spec.postprocess
    assert (post.nms_iou_mode, post.nms_suppress_ge, post.max_detections) == ("clamped", False, None)
    rng = np.random.default_rng(11)
    anchors = generate_anchors(post.anchors)
    boxes = decode(rng.normal(0, 1, (len(anchors), 4)).astype(np.float32), anchors, post.box_coder)
    scores = torch.sigmoid(torch.from_numpy(rng.normal(-3, 1, (len(anchors), 91)).astype(np.float32))).numpy()
    got_a, got_c, got_s = multiclass_nms(boxes, scores, score_threshold=post.score_threshold,
                                         iou_threshold=post.nms_iou, eps=post.nms_eps)
    expected = []
    for cls in range(1, 91):
        mask = scores[:, cls] > post.score_threshold
        box_probs = torch.cat([torch.from_numpy(boxes[mask]), torch.from_numpy(scores[mask, cls])[:, None]], 1)
        picked = reference.nms(box_probs, post.nms_iou)
        expected += [(float(s), cls, tuple(b)) for *b, s in picked.tolist()]
    assert len(expected) > 1000  # far more than the old cap of 100
    ours = [(float(s), int(c), tuple(b)) for s, c, b in zip(got_s, got_c, boxes[got_a].tolist())]
    assert sorted(ours) == sorted(expected)


@pytest.mark.parametrize("name", ["MLCommonsSSDMobileNet", "MLCommonsSSDResNet34"])
def test_worst_case_anchors_all_over_threshold_keep_the_oracles_boxes(name):
    """Every anchor over the threshold (the benchmark's worst case), for a few classes to keep the oracle quick."""
    post = load_spec(name).postprocess
    rng = np.random.default_rng(12)
    anchors = generate_anchors(post.anchors)
    boxes = decode(rng.normal(0, 0.5, (len(anchors), 4)).astype(np.float32), anchors, post.box_coder)
    scores = np.zeros((len(anchors), 4), np.float32)
    scores[:, 1:] = (post.score_threshold + rng.random((len(anchors), 3)) * 0.1).astype(np.float32)
    kwargs = dict(score_threshold=post.score_threshold, iou_threshold=post.nms_iou, eps=post.nms_eps,
                  per_class_top_k=post.per_class_top_k, max_detections=post.max_detections)
    _same(multiclass_nms(boxes, scores, **kwargs), oracle.multiclass_nms(boxes, scores, **kwargs))
