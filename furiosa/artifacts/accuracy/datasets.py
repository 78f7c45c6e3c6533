"""Dataset files in their published formats: MLPerf ``val_map.txt``, MLPerf calibration lists, and the
report both evaluators return."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from furiosa.artifacts.errors import SpecError

#: The MLPerf calibration lists shipped with the package (mlcommons/inference calibration/).
CALIBRATION_LISTS = {"imagenet": "cal_image_list_option_1.txt", "coco": "coco_cal_images_list.txt"}


@dataclass
class AccuracyReport:
    """Accuracy of one or more precisions of a model on the same images.

    ``metrics`` maps a precision to ``{"top1", "top5"}`` (classifiers) or ``{"map", "map50"}`` (detectors);
    ``outputs`` keeps what agreement needs per precision (logits, or detections as (K, 6) arrays
    ``x1, y1, x2, y2, score, category_id``).
    """

    kind: str  # "imagenet" | "coco"
    dataset: dict[str, str]  # kind and the paths read
    count: int
    metrics: dict[str, dict[str, float]]
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"<precision>": {...}, "dataset": {...}, "count": N}`` (what ``evaluate --json`` prints)."""
        return {**{p: dict(m) for p, m in self.metrics.items()}, "dataset": dict(self.dataset),
                "count": self.count}


def read_val_map(path: Path) -> list[tuple[str, int]]:
    """An MLPerf ``val_map.txt``: one ``file label`` per line (label an integer class index).

    Raises SpecError naming the file and line for a missing file, a malformed line or a negative label.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such val_map file (one 'file label' per line, as MLPerf's val_map.txt); "
                        "pass --val-map FILE or put val_map.txt in the image folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the val_map: {exc}") from exc
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise SpecError(f"{path}:{number}: expected 'file label' with an integer label >= 0, got {line!r}")
        entries.append((parts[0], int(parts[1])))
    if not entries:
        raise SpecError(f"{path}: the val_map lists no images")
    return entries


def read_image_list(path: Path) -> list[str]:
    """A calibration list (MLPerf ``cal_image_list_option_1.txt`` / ``coco_cal_images_list.txt``): one file
    name per line. Raises SpecError for a missing or empty file."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the image list: {exc}") from exc
    if not names:
        raise SpecError(f"{path}: the image list is empty")
    return names


def select(items: Sequence[Any], *, offset: int = 0, limit: int | None = None, where: str) -> list[Any]:
    """``items[offset:offset + limit]``; raises SpecError for a negative offset, a limit < 1 or nothing left."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise SpecError(f"{where}: offset must be an integer >= 0, got {offset!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpecError(f"{where}: limit must be a positive integer, got {limit!r}")
    chosen = list(items)[offset:None if limit is None else offset + limit]
    if not chosen:
        raise SpecError(f"{where}: no images left after offset {offset} (the dataset has {len(items)})")
    return chosen


def existing_dir(path: Path, *, what: str) -> Path:
    """``path`` if it is a directory, else SpecError naming it and ``what`` it should hold."""
    path = Path(path)
    if not path.is_dir():
        raise SpecError(f"{path}: no such directory ({what})")
    return path


def check_models(models: Mapping[str, Any], task: str) -> tuple[Any, ...]:
    """The model objects of ``models`` (precision -> Model), all of one catalog name and of ``task``."""
    if not models:
        raise SpecError("no model to evaluate: pass at least one precision")
    objects = tuple(models.values())
    names = {m.name for m in objects}
    if len(names) != 1:
        raise SpecError(f"the precisions to compare must be one catalog model, got {sorted(names)}")
    if objects[0].spec.task != task:
        raise SpecError(f"{objects[0].name} is a {objects[0].spec.task} model; this dataset scores {task} models")
    return objects


def write_imagenet_folder(out: Path, images: np.ndarray, labels: Sequence[int], *, prefix: str = "img",
                          val_map: str = "val_map.txt") -> Path:
    """Write uint8 images (N, H, W) or (N, H, W, 3) as PNGs plus an MLPerf ``val_map.txt`` into ``out``.

    File names are ``<prefix>_<index:05d>.png``; every file is written atomically. Returns the val_map path.
    Raises SpecError for a non-uint8 array or a label count that differs from the image count.
    """
    from PIL import Image

    from furiosa.artifacts.atomic import atomic_path, atomic_write_text

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != len(labels):
        raise SpecError(f"expected uint8 (N, H, W[, 3]) images and N labels, got {images.dtype} {images.shape} "
                        f"and {len(labels)} labels")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (image, label) in enumerate(zip(images, labels)):
        name = f"{prefix}_{index:05d}.png"
        with atomic_path(out / name) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
        lines.append(f"{name} {int(label)}")
    path = out / val_map
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def display(path: Path) -> str:
    """A path as the user gave it (for reports)."""
    return os.fspath(path)
