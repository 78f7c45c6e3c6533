"""Image preprocessing in numpy (Pillow or OpenCV for decode/resize), exactly as each model's reference does.

What each spec's ``preprocess`` block means, and the reference function it reproduces:

* ``backend: pil`` (MLPerf ``pre_process_imagenet_pytorch``; timm eval transforms): ``Image.resize`` with the
  size torchvision's ``F.resize`` computes (short side to ``size``, long side ``int(size * long / short)``),
  torchvision's center crop (offsets ``int(round((H - h) / 2))``), ``x / 255``, ``(x - mean) / std``.
* ``backend: cv2`` (MLPerf ``maybe_resize`` + ``pre_process_coco_resnet34`` / ``pre_process_coco_pt_mobilenet``):
  the uint8 image becomes float32 first and ``cv2.resize`` interpolates in float32 (no rounding to uint8).

Inputs: a path (``str`` / ``os.PathLike``), a PIL image, an HWC or HW uint8 numpy array, a 4-D NHWC uint8
batch, or a list/tuple of those. Grayscale is replicated to three channels, alpha is dropped (as
``cv2.imread`` does), and the EXIF orientation of files and PIL images is applied or ignored as the model's
reference loader does (spec ``preprocess.exif``: ``transpose`` as ``cv2.imread`` in MLPerf's loaders, ``ignore``
as PIL/timm). Numpy arrays are taken as RGB unless ``array_order="BGR"``. No torch import.

Untrusted input: one size guard, :func:`check_pixels`, bounds every intermediate array by
:data:`MAX_IMAGE_PIXELS` (100 megapixels): the decoded image (files judged from their header before any
pixel is decoded; PIL images; arrays, before any copy) and the resized image (computed before the resize
allocates it, so a 1x20000 PNG that "short side to 256" would make 256x5,120,000 is refused at once).
Oversized images raise ImageError, as do
truncated or corrupt files, paths that are not regular files (directories, devices, FIFOs), 16-bit
single-channel (``I;16``, ``I``) and float (``F``) images (convert them to 8 bits with the scaling you
want), and every decode or mode-conversion failure (PNG text or ICC chunks that inflate past Pillow's
limits, zTXt/iCCP "bombs", included). Conversions that are applied: palette (``P``,
``PA``) through RGBA, ``LA``/``La``/``RGBA``/``RGBa`` drop alpha, ``1``/``L`` are replicated,
``CMYK`` (Adobe-inverted JPEGs included, as Pillow decodes them), ``YCbCr``, ``LAB`` and ``HSV`` use
Pillow's ``convert("RGB")`` (no ICC colour management). A 16-bit-per-channel RGB PNG is read by Pillow
as 8-bit RGB (the high byte of each sample).

Batches: :func:`preprocess` returns one stacked tensor, so it is all or nothing: the first bad image raises
ImageError naming it (its path, or its index in the list) and nothing is returned. To keep the good
images of a batch, preprocess them one at a time (``furiosa-artifacts predict`` does: a bad image is
reported and the others are still predicted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from furiosa.artifacts.errors import ImageError
from furiosa.artifacts.vision.specs import ModelSpec, PreprocessSpec, load_spec

ImageInput = Union[str, "os.PathLike[str]", Image.Image, np.ndarray]
Images = Union[ImageInput, Sequence[ImageInput]]

_PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
_CV2_FLAGS = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC",
              "area": "INTER_AREA", "lanczos": "INTER_LANCZOS4"}
_CONVERTIBLE_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_EXIF_ORIENTATION = 0x0112
#: Largest image (width x height) accepted, from a file, a PIL image or an array.
MAX_IMAGE_PIXELS = 100_000_000


@dataclass(frozen=True)
class ImageContext:
    """Where one image went during preprocessing, to map network coordinates back to its pixels."""

    original_size: tuple[int, int]  # (h, w) of the decoded image
    resized_size: tuple[int, int]  # (h, w) after the resize
    crop_offset: tuple[int, int]  # (top, left) of the crop inside the resized image
    input_size: tuple[int, int]  # (h, w) of the network input

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """(K, 4) boxes ``x1, y1, x2, y2`` normalised to the network input -> original image pixels (float32).

        Coordinates are not clipped to the image, as in the MLPerf reference (COCO scoring sees the same
        boxes); clip them yourself for drawing.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        in_h, in_w = self.input_size
        (rs_h, rs_w), (top, left) = self.resized_size, self.crop_offset
        orig_h, orig_w = self.original_size
        if (top, left) == (0, 0) and (rs_h, rs_w) == (in_h, in_w):  # plain resize: one multiply, as MLPerf
            scale = np.array([orig_w, orig_h, orig_w, orig_h], dtype=np.float32)
            return boxes * scale
        xy = boxes * np.array([in_w, in_h, in_w, in_h], dtype=np.float32)
        xy = xy + np.array([left, top, left, top], dtype=np.float32)
        return xy * np.array([orig_w / rs_w, orig_h / rs_h, orig_w / rs_w, orig_h / rs_h], dtype=np.float32)


def check_pixels(height: int, width: int, what: str) -> None:
    """The one image-size guard: refuse an array of ``height`` x ``width`` pixels over MAX_IMAGE_PIXELS.

    Called before every allocation that scales with the image (decode, array copy, resize).

    Raises:
        ImageError: too many pixels; the message gives the size, the limit and the fix.
    """
    if height * width > MAX_IMAGE_PIXELS:
        raise ImageError(f"{what} {width}x{height} = {height * width} pixels exceeds the limit of "
                         f"{MAX_IMAGE_PIXELS} (a decompression bomb?): downscale it first")


def _from_pil(image: Image.Image, *, exif: bool = True) -> Image.Image:
    """An RGB, decoded image, EXIF-oriented when ``exif``; the pixel limit is checked before anything is decoded."""
    check_pixels(image.height, image.width, "image")
    if image.mode not in _CONVERTIBLE_MODES:
        raise ImageError(f"unsupported PIL image mode {image.mode!r} (16-bit or float?): convert it to 8-bit RGB")
    try:
        image.load()  # decode now: a truncated or corrupt file fails here, not later in the resize
        if exif and image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
        if image.mode == "RGB":
            return image
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA")
        elif image.mode == "La":  # premultiplied: Pillow converts it only to LA
            image = image.convert("LA")
        return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode or convert the {image.mode} image to RGB: {exc}") from exc


def _from_path(path: Union[str, "os.PathLike[str]"], draft_size: Optional[tuple[int, int]] = None, *,
               exif: bool = True) -> Image.Image:
    """Decode ``path``; with ``draft_size`` (h, w) (fast mode), JPEGs decode at the smallest DCT scale (1/2,
    1/4, 1/8) that keeps both sides at least that large (Pillow ``Image.draft``)."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise ImageError(f"cannot read image {os.fspath(path)!r}: not a regular file (a directory, device or FIFO)")
    try:
        with Image.open(path) as image:
            if draft_size is not None and image.format == "JPEG" and image.mode in ("RGB", "L"):
                check_pixels(image.height, image.width, "image")
                h, w = draft_size
                image.draft(image.mode, (w, h))
            return _from_pil(image, exif=exif)
    except ImageError as exc:
        raise ImageError(f"cannot read image {os.fspath(path)!r}: {exc}") from exc
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        # ValueError: Pillow's "Decompressed Data Too Large" for a zTXt/iTXt/iCCP bomb; SyntaxError: its
        # plugins' way of saying "broken file" in a few places.
        raise ImageError(f"cannot read image {os.fspath(path)!r}: {exc}") from exc


def _from_array(array: np.ndarray, *, bgr: bool) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image array, got dtype {array.dtype}: convert with "
                         "np.clip(x, 0, 255).astype(np.uint8) or pass a PIL image")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ImageError(f"expected an HWC or HW image array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"image array has zero size: shape {array.shape}")
    check_pixels(array.shape[0], array.shape[1], "image array")
    channels = array.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channels not in (3, 4):
        raise ImageError(f"expected 1, 3 or 4 channels, got {channels} (shape {array.shape})")
    rgb = array[:, :, 2::-1] if bgr else array[:, :, :3]
    return np.ascontiguousarray(rgb)


def _items(images: Any) -> list[Any]:
    """The flat list of inputs, not yet decoded (a 4-D array stays one item)."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageError("no images given: the list is empty")
        if any(isinstance(item, (list, tuple)) for item in images):
            raise ImageError("nested lists of images are not supported: pass a flat list")
        return list(images)
    return [images]


def _flatten(images: Any, *, bgr: bool,
             draft: Optional[tuple[int, int]] = None, exif: bool = True) -> list[Union[Image.Image, np.ndarray]]:
    """Every input image as an RGB PIL image or an RGB uint8 HWC array (EXIF-oriented when ``exif``)."""
    if isinstance(images, (str, os.PathLike)):
        return [_from_path(images, draft, exif=exif)]
    if isinstance(images, Image.Image):
        if images.width == 0 or images.height == 0:
            raise ImageError(f"PIL image has zero size: {images.size}")
        return [_from_pil(images, exif=exif)]
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            if images.shape[0] == 0:
                raise ImageError(f"empty image batch: shape {images.shape}")
            return [_from_array(image, bgr=bgr) for image in images]
        return [_from_array(images, bgr=bgr)]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageError("no images given: the list is empty")
        out = []
        for item in images:
            if isinstance(item, (list, tuple)):
                raise ImageError("nested lists of images are not supported: pass a flat list")
            out.extend(_flatten(item, bgr=bgr, draft=draft, exif=exif))
        return out
    raise ImageError(f"unsupported image input of type {type(images).__name__}: pass a path, a PIL image, "
                     "a uint8 numpy array or a list of those")


def _resized_size(height: int, width: int, p: PreprocessSpec) -> tuple[int, int]:
    """(h, w) after the resize, computed as torchvision's ``F.resize`` does."""
    if p.resize.mode == "exact":
        return p.resize.size
    size = p.resize.size[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _resize(image: Union[Image.Image, np.ndarray], size: tuple[int, int], p: PreprocessSpec, *,
            fast: bool = False) -> np.ndarray:
    """Resize to (h, w) with the spec's backend; HWC (HW for an "L" image).

    The PIL backend returns uint8 (PIL resizes 8-bit images), so the crop that follows copies a quarter
    of the bytes a float32 array would need; the cv2 backend resizes float32, as MLPerf does.
    """
    h, w = size
    if fast and p.resize.backend == "pil":  # OpenCV on uint8: area averaging when shrinking (antialiased)
        import cv2

        array = np.asarray(image)
        if array.shape[:2] == (h, w):
            return array
        shrink = h < array.shape[0] and w < array.shape[1]
        flag = cv2.INTER_AREA if shrink else getattr(cv2, _CV2_FLAGS[p.resize.interpolation])
        out = cv2.resize(array, (w, h), interpolation=flag)
        return out if out.ndim == array.ndim else out[:, :, None]
    if p.resize.backend == "pil":
        pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
        if pil.size != (w, h):
            pil = pil.resize((w, h), _PIL_FILTERS[p.resize.interpolation])
        return np.asarray(pil)
    import cv2  # OpenCV is only needed by the cv2-backend models

    # as MLPerf maybe_resize: float32 before the resize (fast: uint8, a quarter of the bytes, rounded)
    array = np.asarray(image, dtype=np.uint8 if fast else np.float32)
    return cv2.resize(array, (w, h), interpolation=getattr(cv2, _CV2_FLAGS[p.resize.interpolation]))


def _center_crop(array: np.ndarray, crop: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    height, width = array.shape[:2]
    top = int(round((height - crop[0]) / 2.0))
    left = int(round((width - crop[1]) / 2.0))
    return array[top:top + crop[0], left:left + crop[1]], (top, left)


def preprocess_image(image: Union[Image.Image, np.ndarray], spec: ModelSpec, *, out: Optional[np.ndarray] = None,
                     fast: bool = False) -> tuple[np.ndarray, ImageContext]:
    """One decoded RGB image (PIL or uint8 HWC array) -> float32 (C, H, W) or (H, W, C) tensor and its context.

    For ``color: L`` the image becomes 8-bit luma first (PIL ``convert("L")``, ITU-R 601-2). ``out``: a
    float32 array of the input shape to write into (no intermediate float copy); ``fast``: see ``preprocess``.
    """
    p = spec.preprocess
    width, height = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    if p.color == "L":
        image = (image if isinstance(image, Image.Image) else Image.fromarray(image)).convert("L")
    resized_size = _resized_size(height, width, p)
    check_pixels(*resized_size, f"a {width}x{height} image resized to")
    array = _resize(image, resized_size, p, fast=fast)
    if array.ndim == 2:
        array = array[:, :, None]
    offset = (0, 0)
    if p.crop is not None:
        array, offset = _center_crop(array, p.crop)
    if p.color == "BGR":
        array = array[:, :, ::-1]
    if out is None:
        out = np.empty(spec.input.shape, dtype=np.float32)
    # same float32 operations in the same order as (x.astype(float32) / scale - mean) / std, written
    # straight into the batch: per channel plane for NCHW (contiguous writes)
    planes = [(out[c], array[:, :, c]) for c in range(out.shape[0])] if spec.input.layout == "NCHW" else [
        (out, array)]
    mean = np.asarray(p.mean, dtype=np.float32)
    std = np.asarray(p.std, dtype=np.float32)
    for c, (dst, src) in enumerate(planes):
        np.divide(src, np.float32(p.scale), out=dst, dtype=np.float32, casting="unsafe")
        dst -= mean[c] if len(planes) > 1 else mean
        dst /= std[c] if len(planes) > 1 else std
    context = ImageContext(original_size=(height, width), resized_size=resized_size, crop_offset=offset,
                           input_size=spec.input.size)
    return out, context


def preprocess(images: Images, spec: Union[ModelSpec, str], *, array_order: str = "RGB",
               threads: Optional[int] = None, fast: bool = False) -> tuple[np.ndarray, list[ImageContext]]:
    """Images -> (float32 batch in the spec's layout, one ImageContext per image).

    ``array_order`` says how numpy inputs store their channels ("RGB", or "BGR" for ``cv2.imread`` output).
    ``threads``: images decoded and resized in parallel (Pillow and OpenCV release the GIL); default one per
    CPU, at most one per image. The result is bit-identical to the reference whatever the threads.
    ``fast=True`` trades exactness for speed: for classifiers, JPEG files decode at a reduced DCT scale when
    one fits (Pillow draft mode, never below the network input size), and the resize runs in OpenCV on uint8
    (area averaging when shrinking, for the Pillow-backend models; uint8 instead of float32 for the cv2-backend
    ones); pixels then deviate from the reference (measured: docs/performance.md), so never use it for accuracy scoring.
    Raises ImageError for unreadable files, unsupported types, dtypes, ranks, channel counts or zero-size
    images; ModelNotFoundError for an unknown spec name.
    """
    if array_order not in ("RGB", "BGR"):
        raise ImageError(f"array_order must be 'RGB' or 'BGR', got {array_order!r}")
    spec = load_spec(spec) if isinstance(spec, str) else spec
    bgr = array_order == "BGR"
    exif = spec.preprocess.exif == "transpose"  # as the model's reference loader (specs.yaml)
    items = _items(images)
    # fast: decode no smaller than the network input; classifiers only (detection contexts need the true size)
    draft = spec.input.size if fast and spec.task == "classification" else None
    workers = min(len(items), threads or os.cpu_count() or 1)

    def load(item: Any) -> list[Union[Image.Image, np.ndarray]]:
        return _flatten(item, bgr=bgr, draft=draft, exif=exif)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            decoded = [image for batch in pool.map(load, items) for image in batch]
    else:
        decoded = [image for item in items for image in load(item)]
    batch = np.empty((len(decoded), *spec.input.shape), dtype=np.float32)

    def fill(i: int) -> ImageContext:
        try:
            return preprocess_image(decoded[i], spec, out=batch[i], fast=fast)[1]
        except ImageError as exc:  # one stacked batch: all or nothing, the bad image named
            raise ImageError(f"image {i + 1} of {len(decoded)}: {exc}" if len(decoded) > 1 else str(exc)) from exc

    if workers > 1:
        with ThreadPoolExecutor(min(workers, len(decoded))) as pool:
            contexts = list(pool.map(fill, range(len(decoded))))
    else:
        contexts = [fill(i) for i in range(len(decoded))]
    return batch, contexts
