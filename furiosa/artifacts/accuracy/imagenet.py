"""Top-1 / top-5 on an ImageNet-style folder (images + MLPerf ``val_map.txt``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from furiosa.artifacts.accuracy.datasets import (AccuracyReport, check_models, display, existing_dir,
                                                 read_val_map, select)
from furiosa.artifacts.errors import SpecError

log = logging.getLogger(__name__)


def evaluate_imagenet(models: Mapping[str, Any], images: Path, *, val_map: Optional[Path] = None,
                      limit: Optional[int] = None, offset: int = 0, batch_size: int = 8,
                      progress: bool = True) -> AccuracyReport:
    """Top-1 and top-5 accuracy of every model in ``models`` (precision -> :class:`~furiosa.artifacts.model.Model`
    of one classifier) on the images of ``val_map`` (default ``images/val_map.txt``), in file order.

    A prediction is the network's output index plus the spec's ``label_offset`` (0 for the 1000-class
    torchvision ResNet50: val_map labels 0..999 are its indices; -1 for a 1001-class graph with background).
    ``offset``/``limit`` take a slice of the val_map. Each batch is decoded and preprocessed once and run
    through every precision. Progress goes to stderr.

    Raises SpecError for a missing folder, val_map or listed image, a malformed val_map line or a
    non-classifier; ImageError for an unreadable image.
    """
    objects = check_models(models, "classification")
    spec = objects[0].spec
    images = existing_dir(images, what="ImageNet-style image folder")
    val_map = Path(val_map) if val_map is not None else images / "val_map.txt"
    entries = select(read_val_map(val_map), offset=offset, limit=limit, where=str(val_map))
    missing = [name for name, _ in entries if not (images / name).is_file()]
    if missing:
        raise SpecError(f"{val_map}: {len(missing)} listed image(s) are not in {images}, e.g. {missing[:3]}")
    labels = np.array([label for _, label in entries], dtype=np.int64)
    if labels.max() >= spec.num_classes + spec.label_offset:
        raise SpecError(f"{val_map}: label {int(labels.max())} is outside {spec.name}'s "
                        f"{spec.num_classes + spec.label_offset} classes")
    k = min(5, spec.num_classes)
    logits: dict[str, list[np.ndarray]] = {p: [] for p in models}
    bar = tqdm(total=len(entries), desc=f"{spec.name} imagenet", unit="img", file=sys.stderr,
               disable=not progress, mininterval=1.0)
    try:
        for start in range(0, len(entries), batch_size):
            chunk = [images / name for name, _ in entries[start:start + batch_size]]
            tensor, _ = objects[0].preprocess(chunk)
            for precision, model in models.items():
                (out,) = model.infer(tensor, batch_size=batch_size).values()
                logits[precision].append(np.asarray(out, dtype=np.float32))
            bar.update(len(chunk))
    finally:
        bar.close()
    metrics, outputs = {}, {}
    for precision, parts in logits.items():
        scores = np.concatenate(parts)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k] + spec.label_offset
        metrics[precision] = {"top1": float(np.mean(top[:, 0] == labels)),
                              "top5": float(np.mean((top == labels[:, None]).any(1)))}
        outputs[precision] = scores
    log.info("%s on %d images of %s: %s", spec.name, len(entries), images, metrics)
    return AccuracyReport(kind="imagenet", dataset={"kind": "imagenet", "images": display(images),
                                                    "val_map": display(val_map)},
                          count=len(entries), metrics=metrics, outputs=outputs)
