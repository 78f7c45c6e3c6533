"""Training of DigitsSSD on the generated COCO-format digits dataset (SSD MultiBox loss, seeded, CPU).

Targets come from the model's own specs.yaml entry through the run-time code: images through
``vision.preprocess`` (what inference feeds the network), anchors through ``vision.anchors``, offsets through
``vision.boxes.encode`` (the inverse of the decoder the postprocessing uses). Matching is SSD's: an anchor is
positive for the ground-truth box it overlaps most when that IoU >= ``match_iou``, and every ground-truth box
claims its best anchor. Loss: smooth L1 on positive offsets plus softmax cross-entropy with hard negative
mining (``neg_pos_ratio`` negatives per positive), both divided by the number of positives.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

from furiosa.artifacts.errors import SpecError

log = logging.getLogger(__name__)

DATASET = "digits-detection"
TRAIN_KEYS = {"dataset", "epochs", "batch_size", "lr", "weight_decay", "match_iou", "neg_pos_ratio", "threads"}


def validate_detector_params(params: Mapping[str, Any], *, where: str) -> Dict[str, Any]:
    """Check the ``train`` mapping of DigitsSSD's source; returns it as a plain dict.

    Raises:
        SpecError: unknown or missing keys, or values out of range.
    """
    unknown, missing = set(params) - TRAIN_KEYS, TRAIN_KEYS - set(params)
    if unknown or missing:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
                        f"expected exactly {sorted(TRAIN_KEYS)}")
    if params["dataset"] != DATASET:
        raise SpecError(f"{where}.dataset: {params['dataset']!r} is not supported; use {DATASET!r}")
    for key in ("epochs", "batch_size", "threads"):
        if isinstance(params[key], bool) or not isinstance(params[key], int) or params[key] < 1:
            raise SpecError(f"{where}.{key}: expected a positive integer, got {params[key]!r}")
    if float(params["lr"]) <= 0 or float(params["weight_decay"]) < 0 or float(params["neg_pos_ratio"]) <= 0:
        raise SpecError(f"{where}: lr and neg_pos_ratio must be positive, weight_decay >= 0")
    if not 0.0 < float(params["match_iou"]) < 1.0:
        raise SpecError(f"{where}.match_iou: expected a number in (0, 1), got {params['match_iou']!r}")
    return dict(params)


def anchor_corners(anchors: np.ndarray, anchor_format: str) -> np.ndarray:
    """Anchors as ``x1, y1, x2, y2`` (normalised), whatever their spec format."""
    from furiosa.artifacts.vision.boxes import anchor_centers

    cx, cy, w, h = anchor_centers(anchors, anchor_format)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


def match_anchors(boxes: np.ndarray, labels: np.ndarray, anchors_xyxy: np.ndarray, *,
                  threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """SSD matching for one image: (matched box per anchor (A, 4), class per anchor (A,), 0 = background).

    ``boxes`` (K, 4) normalised ``x1, y1, x2, y2``, ``labels`` (K,) class indices >= 1.
    """
    from furiosa.artifacts.vision.boxes import box_iou

    count = len(anchors_xyxy)
    if not len(boxes):
        return np.tile(anchors_xyxy[:1], (count, 1)), np.zeros(count, dtype=np.int64)
    iou = box_iou(boxes, anchors_xyxy)  # (K, A)
    best_gt = iou.argmax(0)
    best_iou = iou.max(0)
    for k, anchor in enumerate(iou.argmax(1)):  # every box claims its best anchor
        best_gt[anchor], best_iou[anchor] = k, 2.0
    classes = np.where(best_iou >= threshold, labels[best_gt], 0).astype(np.int64)
    return boxes[best_gt].astype(np.float32), classes


def detection_targets(root: Path, split: str, spec: Any, *, threshold: float) -> Dict[str, np.ndarray]:
    """Preprocessed images and SSD targets of one split: ``images``, ``loc`` (N, A, 4), ``classes`` (N, A)."""
    from furiosa.artifacts.pipeline.digits_detection import read_split
    from furiosa.artifacts.vision.anchors import generate_anchors
    from furiosa.artifacts.vision.boxes import encode
    from furiosa.artifacts.vision.preprocess import preprocess

    data = read_split(root, split)
    images, contexts = preprocess(list(data.images), spec)
    anchors = generate_anchors(spec.postprocess.anchors)
    coder = spec.postprocess.box_coder
    corners = anchor_corners(anchors, coder.anchor_format)
    category_to_class = {cid: i for i, cid in enumerate(_category_ids(spec))}
    locs, classes = [], []
    for boxes, cats, context in zip(data.boxes, data.category_ids, contexts):
        h, w = context.original_size
        normalised = boxes / np.array([w, h, w, h], dtype=np.float32)
        labels = np.array([category_to_class[int(c)] for c in cats], dtype=np.int64)
        matched, cls = match_anchors(normalised, labels, corners, threshold=threshold)
        locs.append(encode(matched, anchors, coder))
        classes.append(cls)
    return {"images": images, "loc": np.stack(locs), "classes": np.stack(classes),
            "objects": np.array(sum(len(b) for b in data.boxes))}


def _category_ids(spec: Any) -> Sequence[int]:
    from furiosa.artifacts.vision.labels import label_set

    return label_set(spec.labels).category_ids[spec.label_offset:spec.label_offset + spec.num_classes]


def multibox_loss(loc: Any, conf: Any, loc_t: Any, cls_t: Any, *, neg_pos_ratio: float) -> Tuple[Any, Any]:
    """SSD loss terms (box, class), each summed and divided by the number of positive anchors."""
    import torch
    import torch.nn.functional as F

    positive = cls_t > 0
    num_pos = positive.sum(1, keepdim=True)
    box = F.smooth_l1_loss(loc[positive], loc_t[positive], reduction="sum")
    ce = F.cross_entropy(conf.reshape(-1, conf.shape[-1]), cls_t.reshape(-1), reduction="none").view_as(cls_t)
    background = ce.detach().clone()
    background[positive] = -1.0  # never mined as negatives
    rank = background.argsort(1, descending=True).argsort(1)
    negative = rank < (neg_pos_ratio * num_pos).clamp(min=1, max=cls_t.shape[1] - 1)
    cls = ce[positive | negative].sum()
    total = num_pos.sum().clamp(min=1).float()
    return box / total, cls / total


def train_detector(params: Mapping[str, Any], *, data: Path, seed: int,
                   name: str = "DigitsSSD") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train catalog detector ``name`` on ``<data>/train``; returns (state_dict, report).

    Seeded and deterministic: ``torch.manual_seed``, a seeded shuffling generator, deterministic algorithms,
    a fixed thread count (``threads``).
    """
    import torch

    from furiosa.artifacts.vision.models import create_model
    from furiosa.artifacts.vision.specs import load_spec

    spec = load_spec(name)
    start, cpu_start = time.perf_counter(), time.process_time()
    targets = detection_targets(Path(data), "train", spec, threshold=float(params["match_iou"]))
    prepared = time.perf_counter() - start
    threads = torch.get_num_threads()
    torch.set_num_threads(int(params["threads"]))
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = create_model(name).train()
        images = torch.from_numpy(targets["images"])
        loc_t = torch.from_numpy(targets["loc"])
        cls_t = torch.from_numpy(targets["classes"])
        epochs, batch = int(params["epochs"]), int(params["batch_size"])
        steps = epochs * ((len(images) + batch - 1) // batch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=float(params["lr"]),
                                      weight_decay=float(params["weight_decay"]))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=float(params["lr"]), total_steps=steps,
                                                       pct_start=0.15)
        generator = torch.Generator().manual_seed(seed)
        history = []
        for epoch in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            sums = np.zeros(2)
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                loc, conf = model(images[idx])
                box, cls = multibox_loss(loc, conf, loc_t[idx], cls_t[idx],
                                         neg_pos_ratio=float(params["neg_pos_ratio"]))
                optimizer.zero_grad()
                (box + cls).backward()
                optimizer.step()
                schedule.step()
                sums += (float(box.detach()) * len(idx), float(cls.detach()) * len(idx))
            history.append([round(float(v), 5) for v in sums / len(order)])
            log.info("epoch %d/%d box loss %.4f class loss %.4f", epoch + 1, epochs, *history[-1])
        model.eval()
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    report = {"train_images": int(len(images)), "train_objects": int(targets["objects"]),
              "positive_anchors": int((cls_t > 0).sum()), "loss_history": history,
              "final_box_loss": history[-1][0], "final_class_loss": history[-1][1],
              "prepare_seconds": round(prepared, 3), "train_seconds": round(time.perf_counter() - start, 3),
              "train_cpu_seconds": round(time.process_time() - cpu_start, 3)}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, report
