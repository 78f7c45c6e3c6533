"""Postprocessing in numpy: classification top-k and SSD decoding + per-class NMS. No torch import.

Detection follows the MLPerf reference for each model (settings from specs.yaml):

* SSD-MobileNet (``models/ssd_mobilenet_v1.py`` ``SSD.filter_results``): sigmoid scores, TF box coder,
  per class (1..90) score > 0.3, NMS IoU 0.6 with eps 1e-5 in the union; class index = COCO id.
* SSD-ResNet34 (``models/ssd_r34.py`` ``Encoder.decode_single``): softmax over 81 classes, per class (1..80)
  score > 0.05, best 200, NMS suppressing at IoU >= 0.5, best 200 over all classes; contiguous class -> COCO
  id as the reference's ``inv_map``. The reference IoU (``calc_iou_tensor``) fails to clamp negative overlaps
  (``delta.clone().masked_fill_`` result is discarded), so boxes apart in both axes can suppress each other;
  specs.yaml reproduces that (``nms_iou_mode: unclamped``), as MLPerf scores it.

``max_detections`` (specs.yaml; None for both SSDs, as their references) can be overridden per call.

Boxes come back as ``x1, y1, x2, y2`` in original image pixels (the references multiply the normalised box
by the original width/height), not clipped; detections are sorted by score, best first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.vision.anchors import generate_anchors
from furiosa.artifacts.vision.boxes import decode
from furiosa.artifacts.vision.labels import label_set
from furiosa.artifacts.vision.nms import multiclass_nms
from furiosa.artifacts.vision.preprocess import ImageContext
from furiosa.artifacts.vision.specs import ModelSpec, load_spec

Outputs = Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True)
class Classification:
    label_id: int  # class index in the label set (network output index + label_offset)
    label: str
    score: float  # softmax probability


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original image pixels
    score: float
    category_id: int  # COCO category id
    category_name: str


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def class_scores(logits: np.ndarray, kind: str) -> np.ndarray:
    """Per-class scores (float32) from raw logits: ``kind`` ``sigmoid`` per element, anything else a softmax
    over the last axis (specs.yaml ``postprocess.score``)."""
    logits = np.asarray(logits, dtype=np.float32)
    if kind == "sigmoid":
        return np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))
    return _softmax(logits)


def _named(outputs: Outputs, spec: ModelSpec) -> dict[str, np.ndarray]:
    if isinstance(outputs, Mapping):
        missing = [n for n in spec.output_names if n not in outputs]
        if missing:
            raise SpecError(f"{spec.name}: outputs lack {missing}; got {sorted(outputs)}")
        return {n: np.asarray(outputs[n]) for n in spec.output_names}
    if len(outputs) != len(spec.output_names):
        raise SpecError(f"{spec.name}: expected {len(spec.output_names)} outputs {list(spec.output_names)}, "
                        f"got {len(outputs)}")
    return {n: np.asarray(o) for n, o in zip(spec.output_names, outputs)}


def classify(logits: np.ndarray, spec: ModelSpec, *, top_k: Optional[int] = None) -> list[list[Classification]]:
    """Logits (N, num_classes) -> per image the ``top_k`` (default from the spec) classes, best first.

    Raises SpecError when the logits do not have the spec's shape.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or logits.shape[1] != spec.num_classes:
        raise SpecError(f"{spec.name}: expected logits (N, {spec.num_classes}), got {logits.shape}")
    k = min(top_k or spec.postprocess.top_k or 1, spec.num_classes)
    labels = label_set(spec.labels)
    probs = class_scores(logits, spec.postprocess.score)
    results = []
    for row in probs:
        best = np.argsort(-row, kind="stable")[:k]
        out = []
        for index in best:
            label_id = int(index) + spec.label_offset
            name = labels.names[label_id] if label_id >= 0 else "__background__"
            out.append(Classification(label_id=label_id, label=name, score=float(row[index])))
        results.append(out)
    return results


FROM_SPEC = "spec"  # max_detections default: the spec's value


def _checked_anchors(loc: np.ndarray, conf: np.ndarray, spec: ModelSpec) -> np.ndarray:
    post = spec.postprocess
    if post.anchors is None or post.box_coder is None:
        raise SpecError(f"{spec.name}: the spec has no anchors/box_coder: not a detection model")
    anchors = generate_anchors(post.anchors)
    n, a = loc.shape[0] if loc.ndim == 3 else -1, len(anchors)
    if loc.shape != (n, a, 4) or conf.shape != (n, a, spec.num_classes):
        raise SpecError(f"{spec.name}: expected loc (N, {a}, 4) and conf (N, {a}, {spec.num_classes}), "
                        f"got {loc.shape} and {conf.shape}")
    return anchors


def detect_arrays(loc: np.ndarray, conf: np.ndarray, spec: ModelSpec, *,
                  max_detections: Union[int, None, str] = FROM_SPEC,
                  ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Raw SSD heads loc (N, A, 4), conf (N, A, C) -> per image (boxes (K, 4) ``x1, y1, x2, y2`` normalised to
    the network input, scores (K,), class indices (K,)), best score first; no Python object per box.

    Raises SpecError when the shapes do not match the spec's anchors and classes.
    """
    post = spec.postprocess
    loc = np.asarray(loc, dtype=np.float32)
    conf = np.asarray(conf, dtype=np.float32)
    anchors = _checked_anchors(loc, conf, spec)
    cap = post.max_detections if max_detections == FROM_SPEC else max_detections
    boxes = decode(loc, anchors, post.box_coder)
    results = []
    for b in range(len(loc)):
        anchor_idx, class_idx, kept_scores = multiclass_nms(
            boxes[b], class_scores(conf[b], post.score), score_threshold=post.score_threshold,
            iou_threshold=post.nms_iou, eps=post.nms_eps, clamped=post.nms_iou_mode == "clamped",
            suppress_ge=post.nms_suppress_ge, per_class_top_k=post.per_class_top_k, max_detections=cap)
        results.append((boxes[b][anchor_idx], kept_scores, class_idx))
    return results


def detect(loc: np.ndarray, conf: np.ndarray, contexts: Sequence[ImageContext], spec: ModelSpec, *,
           max_detections: Union[int, None, str] = FROM_SPEC) -> list[list[Detection]]:
    """Raw SSD heads loc (N, A, 4) and conf (N, A, C) -> per image detections in original pixels.

    ``max_detections``: the spec's cap by default; an int or None (keep all) overrides it.

    Raises SpecError when the shapes do not match the spec's anchors and classes or the number of contexts.
    """
    loc = np.asarray(loc, dtype=np.float32)
    conf = np.asarray(conf, dtype=np.float32)
    _checked_anchors(loc, conf, spec)
    if len(contexts) != len(loc):
        raise SpecError(f"{spec.name}: {len(loc)} images in the outputs but {len(contexts)} contexts")
    labels = label_set(spec.labels)
    results = []
    for context, (boxes, scores, classes) in zip(contexts, detect_arrays(loc, conf, spec,
                                                                          max_detections=max_detections)):
        label_ids = (classes + spec.label_offset).tolist()
        results.append([
            Detection(box=tuple(box), score=score, category_id=labels.category_ids[label],
                      category_name=labels.names[label])
            for box, score, label in zip(context.to_original(boxes).tolist(), scores.tolist(), label_ids)])
    return results


def postprocess(outputs: Outputs, contexts: Optional[Sequence[ImageContext]], spec: Union[ModelSpec, str], *,
                max_detections: Union[int, None, str] = FROM_SPEC,
                ) -> Union[list[list[Classification]], list[list[Detection]]]:
    """Network outputs (a dict by output name, or a list in ``spec.output_names`` order) -> results per image.

    Classification ignores ``contexts`` (may be None); detection needs one context per image and takes
    ``max_detections`` (default: the spec's; an int or None overrides it).
    Raises SpecError when outputs do not match the spec, ModelNotFoundError for an unknown spec name.
    """
    spec = load_spec(spec) if isinstance(spec, str) else spec
    named = _named(outputs, spec)
    if spec.task == "classification":
        (logits,) = named.values()
        return classify(logits, spec)
    if contexts is None:
        raise SpecError(f"{spec.name}: detection postprocessing needs the contexts preprocess returned")
    loc, conf = named.values()
    return detect(loc, conf, contexts, spec, max_detections=max_detections)
