"""Greedy non-maximum suppression in numpy, all classes at once. No torch import.

Every class's candidates are sorted once (score descending, ties: lower anchor index first), then one
vectorised greedy pass runs over all classes together, in one of two forms:

* per-class IoU matrices (classes x k x k) when they fit ``_PAIRS_BUDGET`` entries (SSD-ResNet34 after its
  top 200 per class: 80 x 200 x 200), then one loop over the k candidate ranks;
* a shared anchor-by-anchor suppression bitmap (the boxes are the same for every class, only the order
  differs) when there are at most ``_ANCHOR_LIMIT`` boxes (SSD-MobileNet: 1917 anchors, every candidate
  kept), then one loop over ranks that ORs the kept box's bitmap row into each class's suppressed set, with
  an early exit once no class has a live candidate left.

Both keep exactly the boxes the classic one-box-at-a-time greedy loop keeps (tests/nms_oracle.py, and
``torchvision.ops.batched_nms`` for the default rule). The rule: with ``suppress_ge=False`` a box is
suppressed when its IoU with a kept, higher-scoring box of its class is > ``iou_threshold`` (torchvision,
MLPerf ``utils.nms``); with ``suppress_ge=True`` when it is not < ``iou_threshold`` (MLPerf ``ssd_r34.py``
``decode_single``: ``score_idx_sorted[iou_sorted < criteria]``). ``eps`` is added to the union and
``clamped=False`` selects the reference's unclamped overlap (``boxes.box_iou``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from furiosa.artifacts.vision.boxes import box_iou

_PAIRS_BUDGET = 1 << 22  # classes x k x k up to which the per-class pass runs (its IoU rows are k long)
_ANCHOR_LIMIT = 4096  # boxes up to which the shared (A, A) suppression bitmap is built
_ROW_BLOCK = 128  # bitmap rows computed at once


def order_desc(values: np.ndarray) -> np.ndarray:
    """Indices sorting each row of float32 ``values`` best first, ties: lower index first.

    The same order as ``np.argsort(-values, kind="stable")`` for non-NaN values, computed as one unstable
    integer sort of (monotone bit pattern of the score, index) keys, several times faster.
    """
    keys = _descending_bits(values) << 31
    keys |= np.arange(values.shape[-1], dtype=np.int64)
    keys.sort(axis=-1)
    keys &= 0x7FFFFFFF
    return keys


def _descending_bits(values: np.ndarray) -> np.ndarray:
    """int64 keys in [0, 2**32) whose ascending order is the float32 values' descending order (no NaN)."""
    values = np.asarray(values, dtype=np.float32) + np.float32(0.0)  # -0.0 -> 0.0: they compare equal
    bits = values.view(np.int32).astype(np.int64)
    bits ^= (bits >> 31) & 0x7FFFFFFF  # float order as signed integers
    return np.int64(0x7FFFFFFF) - bits


def _suppresses(iou: np.ndarray, iou_threshold: float, suppress_ge: bool) -> np.ndarray:
    threshold = np.float32(iou_threshold)
    return ~(iou < threshold) if suppress_ge else iou > threshold


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, *, eps: float = 0.0,
        clamped: bool = True, suppress_ge: bool = False) -> np.ndarray:
    """Indices of the boxes kept, best score first.

    Boxes are (N, 4) ``x1, y1, x2, y2``; the suppression rule is the module's (``iou_threshold``, ``eps``,
    ``clamped``, ``suppress_ge``). Ties in score keep the lower index first. Raises ValueError for
    mismatched shapes.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms needs boxes (N, 4) and scores (N,), got {boxes.shape} and {scores.shape}")
    order = order_desc(scores)[None]
    keep = _greedy(boxes, order, np.ones(order.shape, dtype=bool), iou_threshold, eps, clamped, suppress_ge)
    return order[keep]


def multiclass_nms(boxes: np.ndarray, scores: np.ndarray, *, score_threshold: float, iou_threshold: float,
                   eps: float = 0.0, clamped: bool = True, suppress_ge: bool = False,
                   per_class_top_k: Optional[int] = None, max_detections: Optional[int] = None,
                   skip_classes: tuple[int, ...] = (0,)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class NMS as the SSD references do it, for one image, all classes at once.

    ``boxes`` (A, 4) shared by every class, ``scores`` (A, C). For each class not in ``skip_classes``:
    candidates with score > ``score_threshold``, the best ``per_class_top_k`` of them (ties: lower anchor
    first), then greedy NMS with the module's rule. The survivors of all classes are sorted by score (best
    first; ties: lower class, then earlier kept) and cut to ``max_detections``.
    Returns (anchor indices, class indices, scores). Raises ValueError for mismatched shapes.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"multiclass_nms needs boxes (A, 4) and scores (A, C), got {boxes.shape} and "
                         f"{scores.shape}")
    mask = scores > np.float32(score_threshold)
    mask[:, [c for c in skip_classes if 0 <= c < scores.shape[1]]] = False
    cls, anchors = np.nonzero(mask.T)  # class-major, anchors ascending within a class
    if not cls.size:
        empty = np.zeros((0,), dtype=np.int64)
        return empty, empty.copy(), np.zeros((0,), dtype=np.float32)
    counts = np.bincount(cls, minlength=scores.shape[1])
    classes = np.flatnonzero(counts)
    counts = counts[classes]
    cand = _ranked_candidates(cls, anchors, scores[anchors, cls], counts, scores.shape, per_class_top_k)
    if per_class_top_k is not None:
        counts = np.minimum(counts, per_class_top_k)
    valid = np.arange(cand.shape[1])[None, :] < counts[:, None]
    keep = _greedy(boxes, cand, valid, iou_threshold, eps, clamped, suppress_ge)
    rows, kept_ranks = np.nonzero(keep)  # class-major, best first within a class
    anchor_idx = cand[rows, kept_ranks]
    picked_scores = scores[anchor_idx, classes[rows]]
    order = order_desc(picked_scores)
    if max_detections is not None:
        order = order[:max_detections]
    return anchor_idx[order], classes[rows[order]], picked_scores[order]


def _ranked_candidates(cls: np.ndarray, anchors: np.ndarray, cand_scores: np.ndarray, counts: np.ndarray,
                       shape: tuple[int, int], top_k: Optional[int]) -> np.ndarray:
    """(C', K) anchor indices per present class, best score first (ties: lower anchor), cut to ``top_k``.

    Candidates come class-major with anchors ascending. One integer sort of (class, descending score bits,
    anchor) keys orders them all when the widths fit in an int64, else each class is ordered on its own.
    """
    k = int(counts.max()) if top_k is None else min(int(counts.max()), top_k)
    cand = np.zeros((len(counts), k), dtype=np.int64)
    starts = np.cumsum(counts) - counts
    anchor_bits = max(1, (shape[0] - 1).bit_length())
    class_bits = max(1, (shape[1] - 1).bit_length())
    if class_bits + 32 + anchor_bits <= 63:
        keys = (cls.astype(np.int64) << (32 + anchor_bits)) | (_descending_bits(cand_scores) << anchor_bits)
        keys |= anchors
        keys.sort()  # unique keys: any sort is the stable one; classes stay in their runs
        row = np.repeat(np.arange(len(counts)), counts)
        rank = np.arange(cls.size) - starts[row]
        take = rank < k
        cand[row[take], rank[take]] = keys[take] & ((1 << anchor_bits) - 1)
        return cand
    for r, (start, count) in enumerate(zip(starts, counts)):
        best = order_desc(cand_scores[start:start + count])[:k]
        cand[r, :len(best)] = anchors[start:start + count][best]
    return cand


def _greedy(boxes: np.ndarray, cand: np.ndarray, valid: np.ndarray, iou_threshold: float, eps: float,
            clamped: bool, suppress_ge: bool) -> np.ndarray:
    """Greedy NMS of each row of ``cand`` (anchor indices, best first) over shared ``boxes``; kept (C', K)."""
    rule = (iou_threshold, eps, clamped, suppress_ge)
    n_classes, k = cand.shape
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if n_classes * k * k <= _PAIRS_BUDGET:
            return _greedy_matrices(boxes, cand, valid, *rule)
        if len(boxes) <= _ANCHOR_LIMIT:
            return _greedy_bitmap(boxes, cand, valid, *rule)
        if k * k <= _PAIRS_BUDGET:
            step = max(1, _PAIRS_BUDGET // (k * k))
            return np.concatenate([_greedy_matrices(boxes, cand[i:i + step], valid[i:i + step], *rule)
                                   for i in range(0, n_classes, step)])
        return np.stack([_greedy_one_by_one(boxes, cand[i], valid[i], *rule) for i in range(n_classes)])


def _greedy_matrices(boxes: np.ndarray, cand: np.ndarray, valid: np.ndarray, iou_threshold: float, eps: float,
                     clamped: bool, suppress_ge: bool) -> np.ndarray:
    """One pass over the ranks: each class's box at rank i, if still kept, suppresses its later candidates."""
    ranked = boxes[cand]  # (C', K, 4)
    keep = valid.copy()
    last = int(np.count_nonzero(valid, axis=1).max())
    for i in range(last - 1):
        alive = np.flatnonzero(keep[:, i])
        if not alive.size:
            continue
        rest = ranked[alive, i + 1:last]
        iou = box_iou(ranked[alive, i, None], rest, eps=eps, clamped=clamped)[:, 0]
        keep[alive, i + 1:last] &= ~_suppresses(iou, iou_threshold, suppress_ge)
    return keep


def _greedy_bitmap(boxes: np.ndarray, cand: np.ndarray, valid: np.ndarray, iou_threshold: float, eps: float,
                   clamped: bool, suppress_ge: bool) -> np.ndarray:
    """A shared (U, U) suppression bitmap over the U candidate anchors, then one pass over the ranks."""
    used = np.zeros(len(boxes), dtype=bool)
    used[cand[valid]] = True
    used = np.flatnonzero(used)
    local = np.zeros(len(boxes), dtype=np.int64)
    local[used] = np.arange(len(used))
    sentinel = len(used)  # padding slot: marked suppressed from the start, its bitmap row is empty
    words = sentinel // 64 + 1
    packed = np.zeros((sentinel + 1, words * 8), dtype=np.uint8)
    sup = np.zeros((sentinel, sentinel), dtype=bool)
    for start in range(0, sentinel, _ROW_BLOCK):  # upper block triangle only: the rule is symmetric
        block = boxes[used[start:start + _ROW_BLOCK]]
        sup[start:start + len(block), start:] = _suppresses(
            box_iou(block, boxes[used[start:]], eps=eps, clamped=clamped), iou_threshold, suppress_ge)
    sup |= sup.T
    bits = np.packbits(sup, axis=1, bitorder="little")
    packed[:sentinel, :bits.shape[1]] = bits
    packed = packed.view("<u8")  # bit i of word w = slot 64 w + i
    slots = np.full(cand.shape, sentinel, dtype=np.int64)
    slots[valid] = local[cand[valid]]
    slots = np.ascontiguousarray(slots.T)  # (K, C'): one rank per row
    n_classes = cand.shape[0]
    bit = np.left_shift(np.uint64(1), (slots & 63).astype(np.uint64))
    flat = (slots >> 6) + np.arange(n_classes, dtype=np.int64) * words  # each slot's word in `suppressed`
    suppressed = np.zeros((n_classes, words), dtype="<u8")
    suppressed[:, sentinel >> 6] = np.uint64(1) << np.uint64(sentinel & 63)
    flat_suppressed = suppressed.reshape(-1)  # a view: the loop reads words through it
    keep = np.zeros(slots.shape, dtype=bool)
    word_bits = np.empty(n_classes, dtype="<u8")  # buffers reused by every rank (no allocation in the loop)
    sources = np.empty(n_classes, dtype=np.int64)
    rows = np.empty((n_classes, words), dtype="<u8")
    for r in range(slots.shape[0]):
        if r % 256 == 255 and not np.any((flat_suppressed.take(flat[r:]) & bit[r:]) == 0):
            break  # early exit: every remaining candidate of every class is suppressed
        np.bitwise_and(flat_suppressed.take(flat[r]), bit[r], out=word_bits)
        alive = np.equal(word_bits, 0, out=keep[r])
        sources.fill(sentinel)  # a suppressed candidate ORs in the sentinel's empty row
        np.copyto(sources, slots[r], where=alive)
        packed.take(sources, axis=0, out=rows)
        suppressed |= rows
    return keep.T


def _greedy_one_by_one(boxes: np.ndarray, cand: np.ndarray, valid: np.ndarray, iou_threshold: float,
                       eps: float, clamped: bool, suppress_ge: bool) -> np.ndarray:
    """Greedy NMS of one class, one kept box at a time (memory O(K)); for inputs too large for the others."""
    keep = np.zeros(cand.shape, dtype=bool)
    rest = np.flatnonzero(valid)
    while rest.size:
        best = rest[0]
        keep[best] = True
        rest = rest[1:]
        if rest.size:
            iou = box_iou(boxes[cand[best]][None], boxes[cand[rest]], eps=eps, clamped=clamped)[0]
            rest = rest[~_suppresses(iou, iou_threshold, suppress_ge)]
    return keep
