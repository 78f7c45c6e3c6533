"""Greedy non-maximum suppression in numpy (same keeps as ``torchvision.ops.nms``). No torch import."""

from __future__ import annotations

from typing import Optional

import numpy as np

from furiosa.artifacts.vision.boxes import box_iou

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
