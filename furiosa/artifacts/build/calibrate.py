"""Calibration data for static quantization.

A calibration set is one ``.npz`` file holding

- ``data``: preprocessed float32 tensors, shape (N, C, H, W), exactly what the model's
  input receives;
- ``meta``: a JSON string: ``source`` (``images`` | ``array`` | ``synthetic``),
  ``synthetic`` (bool), ``count``, ``shape``, and ``seed`` / ``files`` where they apply.

It is built from a directory of images through the caller's preprocess function, from
an array (the small trained model's training data), or from seeded synthetic images for
offline builds (marked ``synthetic``, so nothing built from it passes as deployable).
:class:`NpzCalibrationReader` feeds it to ONNX Runtime in batches.

A preprocess function takes one RGB image as a uint8 array (H, W, 3) and returns a
float32 array (C, H', W') or (1, C, H', W'); wrap a ``model.preprocess`` returning
``(tensor, context)`` as ``lambda image: model.preprocess(image)[0]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from tqdm import tqdm

from furiosa.artifacts.atomic import atomic_path
from furiosa.artifacts.errors import BuildError, ImageError, SpecError

__all__ = [
    "IMAGE_EXTENSIONS",
    "CalibrationInfo",
    "NpzCalibrationReader",
    "Preprocess",
    "calibration_from_array",
    "calibration_from_images",
    "load_calibration",
    "synthetic_calibration",
]

log = logging.getLogger(__name__)

Preprocess = Callable[[np.ndarray], np.ndarray]
Source = Literal["images", "array", "synthetic"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class CalibrationInfo:
    """What a calibration ``.npz`` holds (its ``meta`` plus the path)."""

    path: Path
    source: Source
    synthetic: bool
    count: int
    shape: tuple[int, ...]  # (C, H, W) of one sample
    seed: int | None = None
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, without the (possibly long) file list."""
        return {"path": str(self.path), "source": self.source, "synthetic": self.synthetic,
                "count": self.count, "shape": list(self.shape), "seed": self.seed}


def calibration_from_images(
    directory: Path,
    *,
    preprocess: Preprocess,
    out: Path,
    names: Sequence[str] | None = None,
    limit: int | None = None,
) -> CalibrationInfo:
    """Decode images from ``directory`` (RGB, Pillow), preprocess them, write ``out``.

    ``names`` (e.g. an MLPerf calibration list) selects files relative to ``directory``;
    without it every file with an extension in :data:`IMAGE_EXTENSIONS` is used, sorted by
    name. ``limit`` keeps the first N. Raises BuildError when the directory, a listed file
    or every image is missing, ImageError when an image cannot be decoded or preprocesses
    to a wrong shape, SpecError for a bad ``limit``.
    """
    from PIL import Image, UnidentifiedImageError

    directory = Path(directory)
    if not directory.is_dir():
        raise BuildError(f"calibration image directory {directory} does not exist")
    if names is None:
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = [directory / n for n in names]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise BuildError(f"{len(missing)} listed calibration images are missing, e.g. {missing[:3]}")
    files = files[: _check_limit(limit)] if limit is not None else files
    if not files:
        raise BuildError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {directory}")

    data: np.ndarray | None = None
    for i, path in enumerate(tqdm(files, desc="calibration images", unit="img", disable=None)):
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise ImageError(f"cannot decode calibration image {path}: {exc}") from exc
        sample = _sample(preprocess(rgb), where=str(path))
        if data is None:
            data = np.empty((len(files), *sample.shape), dtype=np.float32)
        elif sample.shape != data.shape[1:]:
            raise ImageError(f"{path} preprocesses to {sample.shape}, earlier images to {data.shape[1:]}")
        data[i] = sample
    if data is None:  # unreachable: files is non-empty
        raise BuildError(f"no images read from {directory}")
    return _write(out, data, source="images", files=tuple(p.name for p in files))


def calibration_from_array(array: np.ndarray, *, out: Path, limit: int | None = None) -> CalibrationInfo:
    """Write preprocessed tensors (N, C, H, W) from memory to ``out``, the first ``limit`` of them.

    Raises SpecError when the array is not 4-D, empty, or not finite.
    """
    data = np.asarray(array)
    if data.ndim != 4 or data.shape[0] == 0:
        raise SpecError(f"calibration array must be (N, C, H, W) with N > 0, got shape {data.shape}")
    if limit is not None:
        data = data[: _check_limit(limit)]
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise SpecError("calibration array holds NaN or infinite values")
    return _write(out, data, source="array")


def synthetic_calibration(
    *,
    count: int,
    image_size: tuple[int, int],
    seed: int,
    out: Path,
    preprocess: Preprocess | None = None,
) -> CalibrationInfo:
    """Write ``count`` seeded synthetic RGB images (H, W = ``image_size``) through ``preprocess``.

    Images are smooth random colour fields (a 7x7 random grid resized bilinearly) plus
    pixel noise, so activations see image-like local structure. Without ``preprocess``
    pixels are scaled to [0, 1] in CHW. The set is marked synthetic. Raises SpecError for
    a bad count or size, ImageError when preprocess returns a wrong shape.
    """
    from PIL import Image

    count = _check_limit(count)
    if len(image_size) != 2 or not all(isinstance(s, int) and s > 0 for s in image_size):
        raise SpecError(f"image_size must be (height, width) positive integers, got {image_size!r}")
    height, width = image_size
    rng = np.random.default_rng(seed)
    prep = preprocess or _to_unit_chw
    data: np.ndarray | None = None
    for i in range(count):
        grid = rng.integers(0, 256, size=(7, 7, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BILINEAR), np.float32)
        noisy = np.clip(field + rng.normal(0.0, 16.0, size=field.shape), 0, 255).astype(np.uint8)
        sample = _sample(prep(noisy), where=f"synthetic image {i}")
        if data is None:
            data = np.empty((count, *sample.shape), dtype=np.float32)
        elif sample.shape != data.shape[1:]:
            raise ImageError(f"synthetic image {i} preprocesses to {sample.shape}, earlier ones to {data.shape[1:]}")
        data[i] = sample
    if data is None:  # unreachable: count > 0
        raise BuildError("no synthetic images generated")
    return _write(out, data, source="synthetic", seed=seed)


def load_calibration(path: Path) -> tuple[np.ndarray, CalibrationInfo]:
    """Read a calibration ``.npz``: the (N, C, H, W) float32 data and its info.

    Raises BuildError when the file is missing or not a calibration set.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = npz["data"]
            meta = json.loads(str(npz["meta"]))
    except FileNotFoundError as exc:
        raise BuildError(f"calibration data {path} does not exist; run the calibrate stage") from exc
    except (KeyError, ValueError, OSError) as exc:
        raise BuildError(f"{path} is not a calibration set (needs 'data' and 'meta' arrays): {exc}") from exc
    if data.dtype != np.float32 or data.ndim != 4:
        raise BuildError(f"{path}: calibration data must be float32 (N, C, H, W), got {data.dtype} {data.shape}")
    info = CalibrationInfo(path=path, source=meta["source"], synthetic=bool(meta["synthetic"]),
                           count=int(data.shape[0]), shape=tuple(data.shape[1:]), seed=meta.get("seed"),
                           files=tuple(meta.get("files", ())))
    return data, info


class NpzCalibrationReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over a calibration ``.npz``, ``batch_size`` samples at a time.

    ``len()`` and ``set_range()`` count batches (what ``CalibStridedMinMax`` strides over);
    the last batch may be smaller. A progress bar (stderr, only on a terminal) and a log
    line per pass report calibration progress.
    """

    def __init__(self, path: Path, *, input_name: str, batch_size: int = 1) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise SpecError(f"calibration batch_size must be a positive integer, got {batch_size!r}")
        self.data, self.info = load_calibration(path)
        self.input_name = input_name
        self.batch_size = batch_size
        self._batches = -(-len(self.data) // batch_size)
        self._start, self._end, self._next = 0, self._batches, 0
        self._bar: tqdm | None = None

    def __len__(self) -> int:
        return self._batches

    def set_range(self, start_index: int, end_index: int) -> None:
        """Limit the next pass to batches ``start_index`` .. ``end_index - 1``."""
        self._start, self._end = max(0, start_index), min(end_index, self._batches)
        self._next = self._start
        self._close()

    def rewind(self) -> None:
        """Start again over the whole set."""
        self.set_range(0, self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as an input feed, or None at the end of the range."""
        if self._next >= self._end:
            self._close()
            return None
        if self._bar is None:
            log.info("calibrating on batches %d-%d of %d (batch size %d, %s data)", self._start, self._end - 1,
                     self._batches, self.batch_size, self.info.source)
            self._bar = tqdm(total=self._end - self._start, desc="calibration", unit="batch", disable=None)
        lo = self._next * self.batch_size
        batch = self.data[lo: lo + self.batch_size]
        self._next += 1
        self._bar.update(1)
        return {self.input_name: batch}

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _check_limit(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"calibration count/limit must be a positive integer, got {value!r}")
    return value


def _to_unit_chw(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) / 255.0).transpose(2, 0, 1)


def _sample(value: Any, *, where: str) -> np.ndarray:
    sample = np.asarray(value, dtype=np.float32)
    if sample.ndim == 4 and sample.shape[0] == 1:
        sample = sample[0]
    if sample.ndim != 3:
        raise ImageError(f"{where}: preprocess must return (C, H, W) or (1, C, H, W), got shape {sample.shape}")
    if not np.all(np.isfinite(sample)):
        raise ImageError(f"{where}: preprocess returned NaN or infinite values")
    return sample


def _write(out: Path, data: np.ndarray, *, source: Source, seed: int | None = None,
           files: tuple[str, ...] = ()) -> CalibrationInfo:
    meta: dict[str, Any] = {"source": source, "synthetic": source == "synthetic", "count": int(data.shape[0]),
                            "shape": list(data.shape[1:])}
    if seed is not None:
        meta["seed"] = seed
    if files:
        meta["files"] = list(files)
    out = Path(out)
    with atomic_path(out) as tmp:
        np.savez(tmp, data=data, meta=np.array(json.dumps(meta, sort_keys=True)))
    log.info("wrote %d %s calibration samples %s to %s", data.shape[0], source, data.shape[1:], out)
    return CalibrationInfo(path=out, source=source, synthetic=source == "synthetic", count=int(data.shape[0]),
                           shape=tuple(data.shape[1:]), seed=seed, files=files)
