"""Test oracle: the per-class, Python-loop NMS that furiosa/artifacts/vision/nms.py shipped before the
vectorised rewrite (commit dfce6c2), kept verbatim so property tests can prove the new code keeps exactly
the same boxes. Not imported by the package."""

from __future__ import annotations

from typing import Optional

import numpy as np


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray, *, eps: float = 0.0) -> np.ndarray:
    """Pairwise IoU (N, M) of ``x1, y1, x2, y2`` boxes; ``eps`` is added to the union (MLPerf utils.box_iou)."""
    ax1, ay1, ax2, ay2 = (c[:, None] for c in np.asarray(boxes_a, dtype=np.float32).T)
    bx1, by1, bx2, by2 = (c[None, :] for c in np.asarray(boxes_b, dtype=np.float32).T)
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    np.maximum(inter, 0.0, out=inter)
    height = np.minimum(ay2, by2)
    height -= np.maximum(ay1, by1)
    np.maximum(height, 0.0, out=height)
    inter *= height
    area_a = np.maximum(ax2 - ax1, 0.0) * np.maximum(ay2 - ay1, 0.0)
    area_b = np.maximum(bx2 - bx1, 0.0) * np.maximum(by2 - by1, 0.0)
    union = area_a + area_b
    union -= inter
    if eps:
        union += np.float32(eps)
    return inter / union


_MATRIX_LIMIT = 2048  # boxes per call below which the IoU matrix (n * n) is built at once


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, *, eps: float = 0.0) -> np.ndarray:
    """Indices of the boxes kept, best score first.

    Boxes are (N, 4) ``x1, y1, x2, y2``. A box is suppressed when its IoU with a kept, higher-scoring box is
    greater than ``iou_threshold``; ``eps`` is added to the IoU union as in MLPerf ``models/utils.py``.
    Ties in score keep the lower index first. Raises ValueError for mismatched shapes.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms needs boxes (N, 4) and scores (N,), got {boxes.shape} and {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    with np.errstate(invalid="ignore", divide="ignore"):
        if order.size <= _MATRIX_LIMIT:
            return order[_greedy_matrix(boxes[order], iou_threshold, eps)]
        return _greedy_iterative(boxes, order, iou_threshold, eps)


def _greedy_matrix(boxes: np.ndarray, iou_threshold: float, eps: float) -> np.ndarray:
    """Greedy NMS over boxes sorted best first, with the whole IoU matrix at once (n <= _MATRIX_LIMIT)."""
    overlaps = box_iou(boxes, boxes, eps=eps) > iou_threshold
    keep = np.ones(len(boxes), dtype=bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1:] &= ~overlaps[i, i + 1:]
    return np.flatnonzero(keep)


def _greedy_iterative(boxes: np.ndarray, order: np.ndarray, iou_threshold: float, eps: float) -> np.ndarray:
    """Greedy NMS one kept box at a time (memory O(n))."""
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        if not rest.size:
            break
        iou = box_iou(boxes[best][None], boxes[rest], eps=eps)[0]
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def multiclass_nms(boxes: np.ndarray, scores: np.ndarray, *, score_threshold: float, iou_threshold: float,
                   eps: float = 0.0, per_class_top_k: Optional[int] = None, max_detections: Optional[int] = None,
                   skip_classes: tuple[int, ...] = (0,)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class NMS as the SSD references do it, for one image.

    ``boxes`` (A, 4), ``scores`` (A, C). For each class not in ``skip_classes``: candidates with
    score > ``score_threshold``, the best ``per_class_top_k`` of them, then ``nms``. The survivors of all
    classes are sorted by score (best first) and cut to ``max_detections``.
    Returns (anchor indices, class indices, scores).
    """
    picked_anchor, picked_class = [], []
    for cls in range(scores.shape[1]):
        if cls in skip_classes:
            continue
        candidates = np.flatnonzero(scores[:, cls] > np.float32(score_threshold))
        if not candidates.size:
            continue
        if per_class_top_k is not None and candidates.size > per_class_top_k:
            best = np.argsort(-scores[candidates, cls], kind="stable")[:per_class_top_k]
            candidates = candidates[best]
        kept = candidates[nms(boxes[candidates], scores[candidates, cls], iou_threshold, eps=eps)]
        picked_anchor.append(kept)
        picked_class.append(np.full(kept.shape, cls, dtype=np.int64))
    if not picked_anchor:
        empty = np.zeros((0,), dtype=np.int64)
        return empty, empty.copy(), np.zeros((0,), dtype=np.float32)
    anchor_idx = np.concatenate(picked_anchor)
    class_idx = np.concatenate(picked_class)
    picked_scores = scores[anchor_idx, class_idx]
    order = np.argsort(-picked_scores, kind="stable")
    if max_detections is not None:
        order = order[:max_detections]
    return anchor_idx[order], class_idx[order], picked_scores[order].astype(np.float32)
