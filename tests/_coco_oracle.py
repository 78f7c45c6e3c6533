"""An independent COCO mAP scorer for tests (pycocotools ``COCOeval`` on an ``instances_*.json``), kept apart
from the product's ``furiosa.artifacts.accuracy.coco`` so the tests check the model's mAP with code that is not
the code under test. Returns mAP@[.5:.95] and mAP@.5.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Dict, Sequence

from furiosa.artifacts.errors import SpecError

__all__ = ["coco_map", "detection_results"]


def detection_results(image_ids: Sequence[int], detections: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """COCO results list (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``) from per-image
    detections (objects with ``box`` x1, y1, x2, y2 in image pixels, ``score``, ``category_id``)."""
    if len(image_ids) != len(detections):
        raise SpecError(f"{len(image_ids)} image ids but detections for {len(detections)} images")
    results = []
    for image_id, dets in zip(image_ids, detections):
        for d in dets:
            x1, y1, x2, y2 = (float(v) for v in d.box)
            results.append({"image_id": int(image_id), "category_id": int(d.category_id),
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(d.score)})
    return results


def coco_map(annotations: Path, results: list[dict[str, Any]], *,
             image_ids: Sequence[int] | None = None) -> Dict[str, float]:
    """``{"map": mAP@[.5:.95], "map50": mAP@.5}`` of ``results`` on ``annotations`` (pycocotools COCOeval).

    ``image_ids`` restricts scoring to those images (default: every image in the file). An empty result
    list scores 0. Raises SpecError when the annotation file cannot be read.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = Path(annotations)
    try:
        json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: cannot read COCO annotations: {exc}") from None
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        if not results:
            return {"map": 0.0, "map50": 0.0}
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = [int(i) for i in image_ids]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": float(evaluator.stats[0]), "map50": float(evaluator.stats[1])}
