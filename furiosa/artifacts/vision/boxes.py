"""SSD box coding and IoU in numpy (float32, like the references). No torch import.

Decoding (MLPerf ``models/utils.py`` ``decode_boxes`` for SSD-MobileNet, ``models/ssd_r34.py``
``scale_back_batch`` for SSD-ResNet34): with anchor center ``(cx_a, cy_a)`` and size ``(w_a, h_a)`` and
offsets ``t`` divided by the coder ``scales``::

    cx = tx / sx * w_a + cx_a      w = exp(tw / sw) * w_a      (same for y, h)

then corners ``x1, y1, x2, y2 = cx -/+ w / 2, cy -/+ h / 2`` (normalised to the network input).
The ResNet34 reference multiplies by ``scale_xy = 0.1`` / ``scale_wh = 0.2`` where we divide by 10 / 5:
results agree to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.vision.specs import BoxCoderSpec

_CODE_INDEX = {"yxhw": (1, 0, 3, 2), "xywh": (0, 1, 2, 3)}  # positions of (x, y, w, h) in loc


def anchor_centers(anchors: np.ndarray, anchor_format: str) -> tuple[np.ndarray, ...]:
    """(cx, cy, w, h) of anchors given as ``yxyx`` corners or ``cxcywh``; each (A,) float32."""
    anchors = np.asarray(anchors, dtype=np.float32)
    if anchor_format == "yxyx":
        y1, x1, y2, x2 = anchors.T
        w, h = x2 - x1, y2 - y1
        return x1 + np.float32(0.5) * w, y1 + np.float32(0.5) * h, w, h
    if anchor_format == "cxcywh":
        return tuple(anchors.T)
    raise SpecError(f"unknown anchor_format {anchor_format!r}; expected 'yxyx' or 'cxcywh'")


def decode(loc: np.ndarray, anchors: np.ndarray, coder: BoxCoderSpec) -> np.ndarray:
    """Raw offsets (..., A, 4) -> boxes (..., A, 4) as ``x1, y1, x2, y2`` normalised, float32.

    Raises SpecError for an unknown anchor format or code order.
    """
    if coder.code_order not in _CODE_INDEX:
        raise SpecError(f"unknown code_order {coder.code_order!r}; expected one of {list(_CODE_INDEX)}")
    loc = np.asarray(loc, dtype=np.float32)
    cx_a, cy_a, w_a, h_a = anchor_centers(anchors, coder.anchor_format)
    ix, iy, iw, ih = _CODE_INDEX[coder.code_order]
    sx, sy, sw, sh = (np.float32(coder.scales[i]) for i in (ix, iy, iw, ih))
    cx = loc[..., ix] / sx * w_a + cx_a
    cy = loc[..., iy] / sy * h_a + cy_a
    w = np.exp(loc[..., iw] / sw) * w_a
    h = np.exp(loc[..., ih] / sh) * h_a
    half_w, half_h = np.float32(0.5) * w, np.float32(0.5) * h
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)


def encode(boxes: np.ndarray, anchors: np.ndarray, coder: BoxCoderSpec) -> np.ndarray:
    """Inverse of ``decode``: boxes (..., A, 4) ``x1, y1, x2, y2`` -> offsets (..., A, 4) in code order.

    Boxes need positive width and height. Raises SpecError for an unknown anchor format or code order.
    """
    if coder.code_order not in _CODE_INDEX:
        raise SpecError(f"unknown code_order {coder.code_order!r}; expected one of {list(_CODE_INDEX)}")
    boxes = np.asarray(boxes, dtype=np.float64)
    cx_a, cy_a, w_a, h_a = (np.asarray(a, dtype=np.float64) for a in anchor_centers(anchors, coder.anchor_format))
    ix, iy, iw, ih = _CODE_INDEX[coder.code_order]
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    cx = boxes[..., 0] + 0.5 * w
    cy = boxes[..., 1] + 0.5 * h
    out = np.empty(boxes.shape, dtype=np.float64)
    out[..., ix] = (cx - cx_a) / w_a * coder.scales[ix]
    out[..., iy] = (cy - cy_a) / h_a * coder.scales[iy]
    out[..., iw] = np.log(w / w_a) * coder.scales[iw]
    out[..., ih] = np.log(h / h_a) * coder.scales[ih]
    return out.astype(np.float32)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray, *, eps: float = 0.0, clamped: bool = True) -> np.ndarray:
    """Pairwise IoU (..., N, M) of ``x1, y1, x2, y2`` boxes (..., N, 4) and (..., M, 4), float32.

    ``eps`` is added to the union (MLPerf ``models/utils.py`` ``box_iou``). ``clamped=False`` reproduces
    MLPerf ``models/ssd_r34.py`` ``calc_iou_tensor``, whose clamp of negative overlaps is a no-op
    (``delta.clone().masked_fill_`` result is discarded): the overlap width and height are not clamped at 0,
    so boxes apart in both axes get a positive "IoU". Leading dimensions broadcast.
    """
    a = np.asarray(boxes_a, dtype=np.float32)
    b = np.asarray(boxes_b, dtype=np.float32)
    ax1, ay1, ax2, ay2 = (a[..., :, None, k] for k in range(4))
    bx1, by1, bx2, by2 = (b[..., None, :, k] for k in range(4))
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    height = np.minimum(ay2, by2)
    height -= np.maximum(ay1, by1)
    if clamped:
        np.maximum(inter, 0.0, out=inter)
        np.maximum(height, 0.0, out=height)
        area_a = np.maximum(ax2 - ax1, 0.0) * np.maximum(ay2 - ay1, 0.0)
        area_b = np.maximum(bx2 - bx1, 0.0) * np.maximum(by2 - by1, 0.0)
    else:
        area_a = (ax2 - ax1) * (ay2 - ay1)
        area_b = (bx2 - bx1) * (by2 - by1)
    inter *= height
    union = area_a + area_b
    union -= inter
    if eps:
        union += np.float32(eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        union = np.divide(inter, union, out=union)
    return union
