"""A detection dataset generated offline, in COCO format: scikit-learn's 8x8 digits on textured grounds.

Each image is a seeded texture (a linear gradient, smooth low-frequency noise and fine grain) with 1 to
``digits_per_image`` handwritten digits from scikit-learn's bundled copy of the UCI digits (1797 8x8
images), upscaled (bilinear) to a random size and pasted, without overlap, at random positions, lighter
or darker than the ground beneath them. The box of a digit is the box of its inked 8x8 cells, scaled.

The 1797 source digits are split first (``val_fraction``), so the train and val images show different
handwriting, then each split gets its own images::

    <out>/train/000001.png ...            RGB PNGs (COCO image id = file number)
    <out>/val/000001.png ...
    <out>/annotations/instances_train.json
    <out>/annotations/instances_val.json

The json files follow the COCO object detection format (``images``, ``annotations`` with ``bbox`` as
``[x, y, width, height]`` in pixels, ``categories``), readable by ``pycocotools.coco.COCO``. Category ids
are 1..10 for the digits 0..9 (named ``digit 0`` .. ``digit 9``); 0 is left to the background as in COCO.
Everything is a function of the parameters (params.yaml ``digits_detection``): same parameters, same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from furiosa.artifacts.atomic import atomic_directory
from furiosa.artifacts.errors import SpecError

SPLITS = ("train", "val")
KEYS = {"seed", "train_images", "val_images", "image_size", "digits_per_image", "digit_size", "val_fraction"}
CATEGORY_NAMES = tuple(f"digit {d}" for d in range(10))


@dataclass(frozen=True)
class DatasetParams:
    """params.yaml ``digits_detection``, validated."""

    seed: int
    train_images: int
    val_images: int
    image_size: Tuple[int, int]  # (h, w)
    digits_per_image: Tuple[int, int]  # inclusive range
    digit_size: Tuple[int, int]  # inclusive range of the pasted digit's height in pixels
    val_fraction: float

    @classmethod
    def from_params(cls, raw: Mapping[str, Any], *, where: str = "params.yaml: digits_detection") -> "DatasetParams":
        """Validate the params section. Raises SpecError naming the key and the fix."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: expected a mapping, got {type(raw).__name__}")
        unknown, missing = sorted(set(raw) - KEYS), sorted(KEYS - set(raw))
        if unknown or missing:
            raise SpecError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}; expected {sorted(KEYS)}")

        def pair(key: str, lo: int) -> Tuple[int, int]:
            value = raw[key]
            if (not isinstance(value, (list, tuple)) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in value)
                    or value[0] > value[1]):
                raise SpecError(f"{where}.{key}: expected [min, max] integers >= {lo} with min <= max, got {value!r}")
            return int(value[0]), int(value[1])

        for key in ("seed", "train_images", "val_images"):
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
                raise SpecError(f"{where}.{key}: expected a {'non-negative' if key == 'seed' else 'positive'} "
                                f"integer, got {value!r}")
        size, per_image, digit = pair("image_size", 16), pair("digits_per_image", 1), pair("digit_size", 8)
        if digit[1] * 2 > min(size):
            raise SpecError(f"{where}.digit_size: the largest digit ({digit[1]} px) must fit twice in the image "
                            f"{size}; lower digit_size or raise image_size")
        fraction = raw["val_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise SpecError(f"{where}.val_fraction: expected a number in (0, 1), got {fraction!r}")
        return cls(seed=int(raw["seed"]), train_images=int(raw["train_images"]), val_images=int(raw["val_images"]),
                   image_size=size, digits_per_image=per_image, digit_size=digit, val_fraction=float(fraction))


def annotation_path(root: Path, split: str) -> Path:
    """``<root>/annotations/instances_<split>.json``."""
    return Path(root) / "annotations" / f"instances_{split}.json"


def image_dir(root: Path, split: str) -> Path:
    """``<root>/<split>``: the split's PNG images."""
    return Path(root) / split


def _digit_pools(seed: int, val_fraction: float) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images.astype(np.float32) / 16.0  # (1797, 8, 8), ink high
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(len(images) * val_fraction))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return {"train": (images[train], data.target[train]), "val": (images[val], data.target[val])}


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A ground in [0, 1]: gradient + smooth noise + grain."""
    from PIL import Image

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    lo, hi = sorted(rng.uniform(0.05, 0.95, size=2))
    ground = lo + (hi - lo) * ramp
    cells = int(rng.integers(3, 9))
    coarse = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
    ground = ground + rng.uniform(0.0, 0.2) * smooth + rng.uniform(0.0, 0.06) * rng.standard_normal((h, w))
    return np.clip(ground, 0.0, 1.0).astype(np.float32)


def _place(rng: np.random.Generator, size: Tuple[int, int], boxes: List[List[float]], h: int, w: int,
           tries: int = 50) -> Tuple[int, int] | None:
    for _ in range(tries):
        top, left = int(rng.integers(0, size[0] - h + 1)), int(rng.integers(0, size[1] - w + 1))
        if all(left >= x + bw or left + w <= x or top >= y + bh or top + h <= y for x, y, bw, bh in boxes):
            return top, left
    return None


def _image(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray,
           p: DatasetParams) -> Tuple[np.ndarray, List[Tuple[List[float], int]]]:
    """One RGB uint8 image and its (bbox xywh, digit) objects."""
    from PIL import Image

    h, w = p.image_size
    gray = _texture(rng, h, w)
    objects: List[Tuple[List[float], int]] = []
    placed: List[List[float]] = []
    for _ in range(int(rng.integers(p.digits_per_image[0], p.digits_per_image[1] + 1))):
        index = int(rng.integers(len(digits)))
        glyph = digits[index]
        dh = int(rng.integers(p.digit_size[0], p.digit_size[1] + 1))
        dw = max(8, int(round(dh * rng.uniform(0.75, 1.0))))
        spot = _place(rng, (h, w), placed, dh, dw)
        if spot is None:
            continue
        top, left = spot
        alpha = np.asarray(Image.fromarray(glyph, mode="F").resize((dw, dh), Image.BILINEAR), dtype=np.float32)
        alpha = np.clip(alpha, 0.0, 1.0)
        under = gray[top:top + dh, left:left + dw]
        contrast = rng.uniform(0.35, 0.7)
        ink = float(under.mean()) + (contrast if under.mean() < 0.5 else -contrast)
        gray[top:top + dh, left:left + dw] = under * (1.0 - alpha) + np.clip(ink, 0.0, 1.0) * alpha
        rows, cols = np.flatnonzero(glyph.max(axis=1) > 0), np.flatnonzero(glyph.max(axis=0) > 0)
        x1, x2 = left + cols[0] * dw / 8.0, left + (cols[-1] + 1) * dw / 8.0
        y1, y2 = top + rows[0] * dh / 8.0, top + (rows[-1] + 1) * dh / 8.0
        placed.append([float(left), float(top), float(dw), float(dh)])
        objects.append(([round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], int(labels[index])))
    tint = rng.uniform(0.8, 1.0, size=3).astype(np.float32)
    rgb = np.clip(gray[:, :, None] * tint[None, None, :] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return rgb, objects


def categories() -> List[Dict[str, Any]]:
    """COCO ``categories``: ids 1..10 for the digits 0..9."""
    return [{"id": d + 1, "name": name, "supercategory": "digit"} for d, name in enumerate(CATEGORY_NAMES)]


def write_dataset(out: Path, params: DatasetParams) -> Dict[str, Any]:
    """Write the dataset as the directory ``out`` (both splits: PNG images + COCO json), replacing any tree
    there; returns a summary (counts per split).

    The tree is staged beside ``out`` and renamed into place whole (:func:`atomic_directory`), so ``out``
    never holds half a dataset; a rerun with the same parameters writes the same bytes.
    """
    out = Path(out)
    with atomic_directory(out, replace=True) as staging:
        return _write_splits(staging, params)


def _write_splits(out: Path, params: DatasetParams) -> Dict[str, Any]:
    """Write both splits into the fresh staging directory ``out`` (plain writes: it is renamed whole)."""
    from PIL import Image

    pools = _digit_pools(params.seed, params.val_fraction)
    summary: Dict[str, Any] = {}
    for split_index, split in enumerate(SPLITS):
        count = params.train_images if split == "train" else params.val_images
        rng = np.random.default_rng([params.seed, split_index])
        digits, labels = pools[split]
        folder = image_dir(out, split)
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            rgb, objects = _image(rng, digits, labels, params)
            name = f"{image_id:06d}.png"
            Image.fromarray(rgb, mode="RGB").save(folder / name, format="PNG", compress_level=1)
            images.append({"id": image_id, "file_name": name, "height": params.image_size[0],
                           "width": params.image_size[1]})
            for bbox, digit in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": digit + 1,
                                    "bbox": bbox, "area": round(bbox[2] * bbox[3], 2), "iscrowd": 0})
        coco = {"info": {"description": f"digits_detection {split}: scikit-learn digits on generated textures",
                         "version": "1.0", "year": 2026},
                "licenses": [], "images": images, "annotations": annotations, "categories": categories()}
        annotations_file = annotation_path(out, split)
        annotations_file.parent.mkdir(parents=True, exist_ok=True)
        annotations_file.write_text(json.dumps(coco, separators=(",", ":")) + "\n", encoding="utf-8")
        summary[split] = {"images": len(images), "objects": len(annotations), "source_digits": int(len(digits))}
    return summary


@dataclass(frozen=True)
class CocoSplit:
    """One split read back: image files in id order and, per image, boxes (K, 4) ``x1, y1, x2, y2`` and
    category ids (K,)."""

    annotations: Path
    images: Tuple[Path, ...]
    image_ids: Tuple[int, ...]
    boxes: Tuple[np.ndarray, ...]
    category_ids: Tuple[np.ndarray, ...]


def read_split(root: Path, split: str) -> CocoSplit:
    """Read ``<root>/annotations/instances_<split>.json`` and its image paths.

    Raises SpecError naming the file and the field when the json is missing or malformed.
    """
    path = annotation_path(root, split)
    try:
        coco = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file; run `dvc repro digits_detection` to generate the dataset") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: invalid JSON: {exc}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco, dict) or not isinstance(coco.get(key), list):
            raise SpecError(f"{path}: field '{key}' must be a list (COCO instances format)")
    folder = image_dir(root, split)
    by_image: Dict[int, List[Any]] = {}
    for i, ann in enumerate(coco["annotations"]):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            by_image.setdefault(int(ann["image_id"]), []).append((x, y, x + w, y + h, int(ann["category_id"])))
        except (KeyError, TypeError, ValueError):
            raise SpecError(f"{path}: annotations[{i}] needs image_id, category_id and bbox [x, y, w, h]") from None
    images, ids, boxes, cats = [], [], [], []
    for i, image in enumerate(sorted(coco["images"], key=lambda im: int(im["id"]))):
        if "file_name" not in image or "id" not in image:
            raise SpecError(f"{path}: images[{i}] needs id and file_name")
        objects = np.asarray(by_image.get(int(image["id"]), []), dtype=np.float64).reshape(-1, 5)
        images.append(folder / str(image["file_name"]))
        ids.append(int(image["id"]))
        boxes.append(objects[:, :4].astype(np.float32))
        cats.append(objects[:, 4].astype(np.int64))
    return CocoSplit(annotations=path, images=tuple(images), image_ids=tuple(ids), boxes=tuple(boxes),
                     category_ids=tuple(cats))


def split_files(root: Path, split: str, *, offset: int = 0, count: int | None = None) -> Sequence[Path]:
    """Image paths of ``split`` in image id order, ``count`` of them from ``offset``."""
    files = read_split(root, split).images
    return files[offset:None if count is None else offset + count]
