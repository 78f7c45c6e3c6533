"""SSD anchors and box coding against values computed by hand from the MLPerf reference formulas."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.vision.anchors import anchors_per_location, generate_anchors
from furiosa.artifacts.vision.boxes import box_iou, decode, encode
from furiosa.artifacts.vision.specs import load_spec

MOBILENET = load_spec("MLCommonsSSDMobileNet").postprocess
RESNET34 = load_spec("MLCommonsSSDResNet34").postprocess


def test_anchor_counts():
    assert generate_anchors(MOBILENET.anchors).shape == (1917, 4)
    assert generate_anchors(RESNET34.anchors).shape == (15130, 4)
    assert generate_anchors(MOBILENET.anchors).dtype == np.float32
    assert anchors_per_location(MOBILENET.anchors) == [3, 6, 6, 6, 6, 6]
    assert anchors_per_location(RESNET34.anchors) == [4, 6, 6, 6, 4, 4]
    assert 19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6 == 1917
    assert 2500 * 4 + 625 * 6 + 169 * 6 + 49 * 6 + 9 * 4 + 9 * 4 == 15130


def test_wrong_count_in_spec_is_refused():
    bad = dataclasses.replace(MOBILENET.anchors, count=1916)
    with pytest.raises(SpecError, match="1917"):
        generate_anchors(bad)


@pytest.mark.parametrize("index,expected", [
    # layer 0 (19x19), cell (0, 0): (0.1, 1.0), then scale 0.2 with aspect 2 and 0.5; centre 0.5 / 19
    (0, (0.5 / 19 - 0.05, 0.5 / 19 - 0.05, 0.5 / 19 + 0.05, 0.5 / 19 + 0.05)),
    (1, (0.5 / 19 - 0.1 / math.sqrt(2), 0.5 / 19 - 0.1 * math.sqrt(2),
         0.5 / 19 + 0.1 / math.sqrt(2), 0.5 / 19 + 0.1 * math.sqrt(2))),
    (2, (0.5 / 19 - 0.1 * math.sqrt(2), 0.5 / 19 - 0.1 / math.sqrt(2),
         0.5 / 19 + 0.1 * math.sqrt(2), 0.5 / 19 + 0.1 / math.sqrt(2))),
    # cell (0, 1) of layer 0: x moves by 1 / 19, y stays (box spec fastest, then column)
    (3, (0.5 / 19 - 0.05, 1.5 / 19 - 0.05, 0.5 / 19 + 0.05, 1.5 / 19 + 0.05)),
    # first anchor of layer 1 (10x10): scale 0.2 + 0.75 / 5 = 0.35, aspect 1, centre 0.05
    (1083, (0.05 - 0.175, 0.05 - 0.175, 0.05 + 0.175, 0.05 + 0.175)),
    # layer 1, cell (0, 0), 6th box: sqrt(0.35 * 0.5), aspect 1
    (1088, (0.05 - math.sqrt(0.35 * 0.5) / 2,) * 2 + (0.05 + math.sqrt(0.35 * 0.5) / 2,) * 2),
    # last anchor: layer 5 (1x1), interpolated scale sqrt(0.95 * 1.0), centre 0.5
    (1916, (0.5 - math.sqrt(0.95) / 2,) * 2 + (0.5 + math.sqrt(0.95) / 2,) * 2),
])
def test_mobilenet_anchors_by_hand(index, expected):
    np.testing.assert_allclose(generate_anchors(MOBILENET.anchors)[index], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("index,expected", [
    # layer 0 (50x50, fk = 1200 // 24 = 50), first size sk1 = 84 / 1200, x fastest
    (0, (0.01, 0.01, 0.07, 0.07)),
    (1, (0.03, 0.01, 0.07, 0.07)),
    (50, (0.01, 0.03, 0.07, 0.07)),
    (2499, (0.99, 0.99, 0.07, 0.07)),
    # second size sqrt(sk1 * sk2), sk2 = 180 / 1200
    (2500, (0.01, 0.01, math.sqrt(0.07 * 0.15), math.sqrt(0.07 * 0.15))),
    # aspect 2: (w, h) = (sk1 * sqrt 2, sk1 / sqrt 2), then swapped
    (5000, (0.01, 0.01, 0.07 * math.sqrt(2), 0.07 / math.sqrt(2))),
    (7500, (0.01, 0.01, 0.07 / math.sqrt(2), 0.07 * math.sqrt(2))),
    # layer 1 (25x25, fk = 1200 // 48 = 25), sk1 = 180 / 1200
    (10000, (0.02, 0.02, 0.15, 0.15)),
    # last box: layer 5 (3x3, fk = 3), swapped aspect 2: w = 0.87 / sqrt 2, h = 0.87 * sqrt 2 clamped to 1
    (15129, (2.5 / 3, 2.5 / 3, 0.87 / math.sqrt(2), 1.0)),
])
def test_resnet34_default_boxes_by_hand(index, expected):
    np.testing.assert_allclose(generate_anchors(RESNET34.anchors)[index], expected, rtol=0, atol=1e-6)


def _mobilenet_anchors_loop() -> np.ndarray:
    """create_ssd_anchors + tile_anchors written out as plain loops (float64)."""
    scales = [0.2 + 0.75 * i / 5 for i in range(6)] + [1.0]
    out = []
    for layer, grid in enumerate([19, 10, 5, 3, 2, 1]):
        if layer == 0:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[layer], r) for r in (1.0, 2.0, 0.5, 3.0, 1.0 / 3)]
            specs.append((math.sqrt(scales[layer] * scales[layer + 1]), 1.0))
        for row, col, (scale, ratio) in itertools.product(range(grid), range(grid), specs):
            cy, cx = (row + 0.5) / grid, (col + 0.5) / grid
            h, w = scale / math.sqrt(ratio), scale * math.sqrt(ratio)
            out.append((cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2))
    return np.array(out)


def _resnet34_boxes_loop() -> np.ndarray:
    scales = [21 * 4, 45 * 4, 99 * 4, 153 * 4, 207 * 4, 261 * 4, 315 * 4]
    ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    out = []
    for k, grid in enumerate([50, 25, 13, 7, 3, 3]):
        fk = 1200 // int(1200 / grid)
        sk1, sk2 = scales[k] / 1200, scales[k + 1] / 1200
        sizes = [(sk1, sk1), (math.sqrt(sk1 * sk2),) * 2]
        for a in ratios[k]:
            sizes += [(sk1 * math.sqrt(a), sk1 / math.sqrt(a)), (sk1 / math.sqrt(a), sk1 * math.sqrt(a))]
        for (w, h), row, col in itertools.product(sizes, range(grid), range(grid)):
            out.append([min(max(v, 0.0), 1.0) for v in ((col + 0.5) / fk, (row + 0.5) / fk, w, h)])
    return np.array(out)


def test_all_anchors_match_an_independent_loop():
    np.testing.assert_allclose(generate_anchors(MOBILENET.anchors), _mobilenet_anchors_loop(), atol=1e-6)
    np.testing.assert_allclose(generate_anchors(RESNET34.anchors), _resnet34_boxes_loop(), atol=1e-6)


@pytest.mark.parametrize("post", [MOBILENET, RESNET34], ids=["mobilenet", "resnet34"])
def test_decode_of_zero_offsets_is_the_anchor(post):
    anchors = generate_anchors(post.anchors)
    boxes = decode(np.zeros((1, len(anchors), 4), np.float32), anchors, post.box_coder)[0]
    if post.box_coder.anchor_format == "yxyx":
        expected = anchors[:, [1, 0, 3, 2]]
    else:
        expected = np.concatenate([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1)
    np.testing.assert_allclose(boxes, expected, atol=1e-6)


@pytest.mark.parametrize("post", [MOBILENET, RESNET34], ids=["mobilenet", "resnet34"])
def test_encode_decode_round_trip(post):
    rng = np.random.default_rng(0)
    anchors = generate_anchors(post.anchors)
    anchors = anchors[np.all(anchors[:, 2:] > (anchors[:, :2] if post.box_coder.anchor_format == "yxyx" else 0), 1)]
    offsets = rng.normal(0, 1, (2, len(anchors), 4)).astype(np.float32)
    boxes = decode(offsets, anchors, post.box_coder)
    np.testing.assert_allclose(encode(boxes, anchors, post.box_coder), offsets, atol=2e-3, rtol=1e-4)
    np.testing.assert_allclose(decode(encode(boxes, anchors, post.box_coder), anchors, post.box_coder), boxes,
                               atol=1e-5)


def test_mobilenet_decode_matches_the_reference_formula_in_torch():
    # models/utils.py decode_boxes: codes (ty, tx, th, tw) / (10, 10, 5, 5) against (y1, x1, y2, x2) priors
    rng = np.random.default_rng(1)
    anchors = torch.from_numpy(generate_anchors(MOBILENET.anchors).copy())
    codes = torch.from_numpy(rng.normal(0, 2, (2, 1917, 4)).astype(np.float32))
    widths, heights = anchors[:, 3] - anchors[:, 1], anchors[:, 2] - anchors[:, 0]
    ctr_x, ctr_y = anchors[:, 1] + 0.5 * widths, anchors[:, 0] + 0.5 * heights
    px = codes[..., 1] / 10 * widths + ctr_x
    py = codes[..., 0] / 10 * heights + ctr_y
    pw = torch.exp(codes[..., 3] / 5) * widths
    ph = torch.exp(codes[..., 2] / 5) * heights
    expected = torch.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], -1).numpy()
    np.testing.assert_allclose(decode(codes.numpy(), anchors.numpy(), MOBILENET.box_coder), expected,
                               rtol=1e-6, atol=1e-6)


def test_resnet34_decode_matches_the_reference_formula_in_torch():
    # models/ssd_r34.py scale_back_batch: xy = 0.1 t * wh_d + xy_d, wh = exp(0.2 t) * wh_d, then ltrb
    rng = np.random.default_rng(2)
    dboxes = torch.from_numpy(generate_anchors(RESNET34.anchors).copy())
    loc = torch.from_numpy(rng.normal(0, 2, (1, 15130, 4)).astype(np.float32))
    xy = 0.1 * loc[..., :2] * dboxes[:, 2:] + dboxes[:, :2]
    wh = torch.exp(0.2 * loc[..., 2:]) * dboxes[:, 2:]
    expected = torch.cat([xy - 0.5 * wh, xy + 0.5 * wh], -1).numpy()
    np.testing.assert_allclose(decode(loc.numpy(), dboxes.numpy(), RESNET34.box_coder), expected,
                               rtol=1e-5, atol=1e-6)


def test_box_iou_with_eps_and_disjoint_boxes():
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [1 / 7, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(box_iou(a, b, eps=1.0)[0], [1 / 8, 0.0, 4 / 5], rtol=1e-6)
