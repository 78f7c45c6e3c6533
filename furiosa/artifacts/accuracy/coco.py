"""COCO mAP@[.5:.95] and mAP@.5 on a COCO-style folder (images + ``instances_*.json``), scored by the official
COCO API (``pycocotools``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from furiosa.artifacts.accuracy.datasets import AccuracyReport, check_models, display, existing_dir, select
from furiosa.artifacts.errors import SpecError

log = logging.getLogger(__name__)


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise SpecError("COCO scoring needs pycocotools: pip install 'furiosa-artifacts[eval]'") from None
    return COCO, COCOeval


def load_annotations(path: Path) -> Any:
    """The COCO ground truth of ``path`` (an ``instances_*.json``) as a ``pycocotools.coco.COCO``.

    Raises SpecError naming the file when it is missing, not JSON, or lacks ``images``/``annotations``/
    ``categories``.
    """
    COCO, _ = _pycocotools()
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such annotation file (COCO instances_*.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: not a readable COCO annotation file: {exc}") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise SpecError(f"{path}: field '{key}' (a list) is missing: not a COCO instances file")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # the COCO API prints progress to stdout
        coco.createIndex()
    return coco


def coco_map(ground_truth: Any, detections: list[dict[str, Any]], image_ids: list[int]) -> dict[str, float]:
    """``{"map": mAP@[.5:.95], "map50": mAP@.5}`` of COCO-format ``detections`` (``image_id``, ``category_id``,
    ``bbox`` xywh in pixels, ``score``) on ``image_ids`` of ``ground_truth``, by ``COCOeval`` (bbox).

    No detections at all score 0.0. Raises SpecError when the images hold no ground-truth object
    (COCOeval's -1: mAP is undefined there).
    """
    _, COCOeval = _pycocotools()
    if not ground_truth.getAnnIds(imgIds=image_ids):
        raise SpecError("the evaluated images have no annotated objects: mAP is undefined")
    if not detections:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        results = ground_truth.loadRes(detections)
        evaluator = COCOeval(ground_truth, results, iouType="bbox")
        evaluator.params.imgIds = list(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.debug("COCOeval:\n%s", printed.getvalue())
    return {"map": float(evaluator.stats[0]), "map50": float(evaluator.stats[1])}


def evaluate_coco(models: Mapping[str, Any], images: Path, annotations: Path, *, limit: Optional[int] = None,
                  offset: int = 0, skip_empty: bool = False, batch_size: int = 8,
                  progress: bool = True) -> AccuracyReport:
    """COCO mAP@[.5:.95] and mAP@.5 of every model in ``models`` (precision -> Model of one detector) on the
    images of ``annotations`` found in ``images``, in ascending image id order.

    Detections come from the model's own postprocessing: boxes in original image pixels (converted to COCO
    ``xywh``), class indices mapped to COCO category ids by the spec's label set (SSD-ResNet34's 81
    contiguous classes through the inverse label map; SSD-MobileNet's indices are COCO ids).
    ``skip_empty`` drops images without annotations (MLPerf's SSD-ResNet34 loader does: 4952 of val2017's
    5000). ``offset``/``limit`` slice the image ids. Each batch is decoded once and run through every
    precision. Progress goes to stderr.

    Raises SpecError for a missing folder, annotation file or listed image, a non-detector, or images with
    no annotated object; ImageError for an unreadable image.
    """
    objects = check_models(models, "detection")
    spec = objects[0].spec
    images = existing_dir(images, what="COCO image folder")
    truth = load_annotations(annotations)
    ids = sorted(truth.getImgIds())
    if skip_empty:
        ids = [i for i in ids if truth.getAnnIds(imgIds=[i])]
    ids = select(ids, offset=offset, limit=limit, where=str(annotations))
    files = [images / truth.imgs[i]["file_name"] for i in ids]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SpecError(f"{annotations}: {len(missing)} image(s) it lists are not in {images}, e.g. {missing[:3]}")
    known = set(truth.getCatIds())
    detections: dict[str, list[dict[str, Any]]] = {p: [] for p in models}
    per_image: dict[str, list[np.ndarray]] = {p: [] for p in models}
    bar = tqdm(total=len(ids), desc=f"{spec.name} coco", unit="img", file=sys.stderr, disable=not progress,
               mininterval=1.0)
    try:
        for start in range(0, len(ids), batch_size):
            chunk_ids, chunk = ids[start:start + batch_size], files[start:start + batch_size]
            tensor, contexts = objects[0].preprocess(chunk)
            for precision, model in models.items():
                results = model.postprocess(model.infer(tensor, batch_size=batch_size), contexts)
                for image_id, dets in zip(chunk_ids, results):
                    rows = np.array([[*d.box, d.score, d.category_id] for d in dets], np.float64).reshape(-1, 6)
                    per_image[precision].append(rows)
                    detections[precision].extend(_coco_rows(image_id, rows, known))
            bar.update(len(chunk))
    finally:
        bar.close()
    metrics = {p: coco_map(truth, detections[p], ids) for p in models}
    log.info("%s on %d images of %s: %s", spec.name, len(ids), images, metrics)
    return AccuracyReport(kind="coco", dataset={"kind": "coco", "images": display(images),
                                                "annotations": display(annotations)},
                          count=len(ids), metrics=metrics, outputs=per_image)


def _coco_rows(image_id: int, rows: np.ndarray, known: set[int]) -> list[dict[str, Any]]:
    """(K, 6) ``x1, y1, x2, y2, score, category_id`` -> COCO result dicts (xywh); categories the annotation
    file does not define are left out (COCOeval would reject them)."""
    out = []
    for x1, y1, x2, y2, score, category in rows.tolist():
        if int(category) in known:
            out.append({"image_id": int(image_id), "category_id": int(category),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    return out
