"""Run-time model specifications (``specs.yaml``) as typed, validated, frozen dataclasses.

Everything that pre/postprocesses or exports a catalog model reads its facts from here: input size and
layout, class count, labels, mean/std, anchors, box coder and NMS settings. No torch import.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from furiosa.artifacts.catalog.yaml_io import read_yaml

from furiosa.artifacts.errors import ModelNotFoundError, SpecError

SPECS_PATH = Path(__file__).with_name("specs.yaml")

TASKS = ("classification", "detection")
# label set -> number of network outputs it names (with label_offset 0)
LABEL_SETS = {"imagenet": 1000, "coco91": 91, "coco80": 81, "digits": 10, "digits_coco": 11}
COLORS = {"RGB": 3, "BGR": 3, "L": 1}  # network channel order -> channel count
EXIF_MODES = ("transpose", "ignore")  # what the model's reference image loader does with EXIF orientation
INTERPOLATIONS = {"pil": ("nearest", "bilinear", "bicubic", "lanczos"),
                  "cv2": ("nearest", "bilinear", "bicubic", "area", "lanczos")}


@dataclass(frozen=True)
class InputSpec:
    """The network input tensor (one image; the batch axis is added in front)."""

    name: str
    shape: tuple[int, int, int]  # (C, H, W) for NCHW, (H, W, C) for NHWC
    layout: str  # "NCHW" | "NHWC"
    dtype: str  # "float32"

    @property
    def channels(self) -> int:
        return self.shape[0] if self.layout == "NCHW" else self.shape[2]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        return (self.shape[1], self.shape[2]) if self.layout == "NCHW" else (self.shape[0], self.shape[1])


@dataclass(frozen=True)
class ResizeSpec:
    """How the decoded image is resized (sizes computed as torchvision's ``F.resize``)."""

    mode: str  # "short_side" (keep aspect ratio) | "exact" (to size, aspect not kept)
    size: tuple[int, int]  # (h, w) for "exact"; (s, s) for "short_side"
    interpolation: str  # nearest | bilinear | bicubic | area | lanczos
    backend: str  # "pil" | "cv2"


@dataclass(frozen=True)
class PreprocessSpec:
    """Resize, optional center crop, then x = (pixel / scale - mean) / std with channels in ``color`` order."""

    color: str  # "RGB" | "BGR" | "L" (8-bit luma as PIL's convert("L"))
    resize: ResizeSpec
    crop: Optional[tuple[int, int]]  # (h, w) center crop after the resize, or None
    scale: float
    mean: tuple[float, ...]  # one per channel
    std: tuple[float, ...]
    exif: str = "transpose"  # "transpose": apply the EXIF orientation (cv2.imread's default) | "ignore" (PIL/timm)


@dataclass(frozen=True)
class TfSsdAnchorSpec:
    """TF object detection ``create_ssd_anchors`` (MLPerf models/anchor_generator.py)."""

    feature_maps: tuple[tuple[int, int], ...]
    min_scale: float
    max_scale: float
    aspect_ratios: tuple[float, ...]
    interpolated_scale_aspect_ratio: float
    reduce_boxes_in_lowest_layer: bool
    count: int
    kind: str = "tf_ssd"


@dataclass(frozen=True)
class DefaultBoxSpec:
    """SSD default boxes (MLPerf models/ssd_r34.py ``DefaultBoxes``); sizes in input pixels."""

    image_size: tuple[int, int]  # (h, w) of the network input (``fig_size``; square in the reference)
    feature_maps: tuple[tuple[int, int], ...]
    steps: tuple[int, ...]
    scales: tuple[int, ...]  # one more than feature maps
    aspect_ratios: tuple[tuple[float, ...], ...]
    count: int
    kind: str = "default_boxes"


AnchorSpec = Union[TfSsdAnchorSpec, DefaultBoxSpec]


@dataclass(frozen=True)
class BoxCoderSpec:
    """How raw ``loc`` offsets decode against anchors: offset / scale, then center-size to corners."""

    anchor_format: str  # "yxyx" (corners) | "cxcywh" (center-size)
    code_order: str  # "yxhw" | "xywh": order of the 4 offsets in ``loc``
    scales: tuple[float, float, float, float]  # divisors, in code_order


@dataclass(frozen=True)
class PostprocessSpec:
    """Scores, top-k (classification) or decoding + per-class NMS (detection)."""

    # scores
    score: str  # "softmax" | "sigmoid"
    # classification
    top_k: Optional[int] = None
    # detection
    score_threshold: Optional[float] = None  # strict >
    nms_iou: Optional[float] = None  # suppress IoU > nms_iou (>= with nms_suppress_ge)
    nms_eps: float = 0.0  # added to the union in IoU
    nms_iou_mode: str = "clamped"  # "clamped" | "unclamped": overlaps < 0 kept (MLPerf ssd_r34 calc_iou_tensor)
    nms_suppress_ge: bool = False  # suppress at IoU >= nms_iou (MLPerf ssd_r34 keeps iou < criteria)
    per_class_top_k: Optional[int] = None  # candidates per class before NMS; None = all
    max_detections: Optional[int] = None  # per image after NMS, best scores; None = all
    box_coder: Optional[BoxCoderSpec] = None
    anchors: Optional[AnchorSpec] = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the client and the pipeline need to feed and read one catalog model."""

    # identity
    name: str
    task: str  # "classification" | "detection"
    # tensors
    input: InputSpec
    output_names: tuple[str, ...]  # classification: (logits,); detection: (loc, conf), in that order
    # head
    num_classes: int
    label_offset: int
    labels: str  # "imagenet" | "coco91" (index = COCO id) | "coco80" (contiguous, 0 = background) | "digits"
    #              | "digits_coco" (0 = background, index = category id of the generated digits dataset)
    # processing
    preprocess: PreprocessSpec
    postprocess: PostprocessSpec


class _Field:
    """A value read from the YAML, with the path used in error messages."""

    def __init__(self, value: Any, where: str, path: str) -> None:
        self.value, self.where, self.path = value, where, path

    def fail(self, message: str) -> SpecError:
        return SpecError(f"{self.where}: field '{self.path}': {message}")

    def get(self, key: str, *, required: bool = True, default: Any = None) -> "_Field":
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {type(self.value).__name__}")
        child = f"{self.path}.{key}" if self.path else key
        value = self.value.get(key)
        if value is None:
            if required:
                raise SpecError(f"{self.where}: field '{child}' is missing")
            value = default
        return _Field(value, self.where, child)

    def check_keys(self, allowed: set[str]) -> None:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {type(self.value).__name__}")
        extra = sorted(map(str, set(self.value) - allowed))
        if extra:
            raise self.fail(f"unknown key(s) {extra}; allowed: {sorted(allowed)}")

    def str_(self, choices: tuple[str, ...] = ()) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail(f"expected a non-empty string, got {self.value!r}")
        if choices and self.value not in choices:
            raise self.fail(f"{self.value!r} is not one of {list(choices)}")
        return self.value

    def int_(self, *, minimum: int = 0) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < minimum:
            raise self.fail(f"expected an integer >= {minimum}, got {self.value!r}")
        return self.value

    def float_(self, *, positive: bool = False, lo: float = -math.inf, hi: float = math.inf) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.fail(f"expected a number, got {self.value!r}")
        value = float(self.value)
        if not math.isfinite(value) or (positive and value <= 0) or not lo <= value <= hi:
            raise self.fail(f"{value!r} is out of range")
        return value

    def bool_(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {self.value!r}")
        return self.value

    def items(self, *, length: Optional[int] = None) -> list["_Field"]:
        if not isinstance(self.value, list) or (length is not None and len(self.value) != length):
            expected = f"a list of {length}" if length is not None else "a list"
            raise self.fail(f"expected {expected}, got {self.value!r}")
        return [_Field(v, self.where, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def size(self) -> tuple[int, int]:
        """An int n (meaning (n, n)) or a pair [h, w]."""
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            n = self.int_(minimum=1)
            return (n, n)
        h, w = (f.int_(minimum=1) for f in self.items(length=2))
        return (h, w)


def _input(f: _Field) -> InputSpec:
    f.check_keys({"name", "shape", "layout", "dtype"})
    shape = tuple(x.int_(minimum=1) for x in f.get("shape").items(length=3))
    layout = f.get("layout").str_(("NCHW", "NHWC"))
    channels = shape[0] if layout == "NCHW" else shape[2]
    if channels not in (1, 3):
        raise f.get("shape").fail(f"expected 1 or 3 channels in {layout}, got {shape}")
    return InputSpec(name=f.get("name").str_(), shape=shape, layout=layout,
                     dtype=f.get("dtype").str_(("float32",)))


def _preprocess(f: _Field, input_size: tuple[int, int], channels: int) -> PreprocessSpec:
    f.check_keys({"color", "resize", "crop", "scale", "mean", "std", "exif"})
    r = f.get("resize")
    r.check_keys({"mode", "size", "interpolation", "backend"})
    backend = r.get("backend").str_(tuple(INTERPOLATIONS))
    resize = ResizeSpec(mode=r.get("mode").str_(("short_side", "exact")), size=r.get("size").size(),
                        interpolation=r.get("interpolation").str_(INTERPOLATIONS[backend]), backend=backend)
    crop_field = f.get("crop", required=False)
    crop = None if crop_field.value is None else crop_field.size()
    final = crop if crop is not None else resize.size
    if resize.mode == "short_side" and crop is None:
        raise crop_field.fail("a short_side resize needs a crop to reach a fixed input size")
    if final != input_size:
        raise crop_field.fail(f"preprocessing yields {final} but input.shape needs {input_size}")
    if crop is not None and (crop[0] > resize.size[0] or crop[1] > resize.size[1]):
        raise crop_field.fail(f"crop {crop} is larger than the resize {resize.size}")
    color = f.get("color").str_(tuple(COLORS))
    if COLORS[color] != channels:
        raise f.get("color").fail(f"{color} gives {COLORS[color]} channel(s), input.shape has {channels}")
    mean = tuple(x.float_() for x in f.get("mean").items(length=channels))
    std = tuple(x.float_(positive=True) for x in f.get("std").items(length=channels))
    return PreprocessSpec(color=color, resize=resize, crop=crop,
                          scale=f.get("scale").float_(positive=True), mean=mean, std=std,
                          exif=f.get("exif").str_(EXIF_MODES))


def _anchors(f: _Field) -> AnchorSpec:
    kind = f.get("kind").str_(("tf_ssd", "default_boxes"))
    maps = tuple(x.size() for x in f.get("feature_maps").items())
    if not maps:
        raise f.get("feature_maps").fail("expected at least one feature map")
    count = f.get("count").int_(minimum=1)
    if kind == "tf_ssd":
        f.check_keys({"kind", "feature_maps", "min_scale", "max_scale", "aspect_ratios",
                      "interpolated_scale_aspect_ratio", "reduce_boxes_in_lowest_layer", "count"})
        return TfSsdAnchorSpec(
            feature_maps=maps, min_scale=f.get("min_scale").float_(positive=True),
            max_scale=f.get("max_scale").float_(positive=True),
            aspect_ratios=tuple(x.float_(positive=True) for x in f.get("aspect_ratios").items()),
            interpolated_scale_aspect_ratio=f.get("interpolated_scale_aspect_ratio").float_(lo=0.0),
            reduce_boxes_in_lowest_layer=f.get("reduce_boxes_in_lowest_layer").bool_(), count=count)
    f.check_keys({"kind", "image_size", "feature_maps", "steps", "scales", "aspect_ratios", "count"})
    steps = tuple(x.int_(minimum=1) for x in f.get("steps").items(length=len(maps)))
    scales = tuple(x.int_(minimum=1) for x in f.get("scales").items(length=len(maps) + 1))
    ratios = tuple(tuple(r.float_(positive=True) for r in x.items())
                   for x in f.get("aspect_ratios").items(length=len(maps)))
    return DefaultBoxSpec(image_size=f.get("image_size").size(), feature_maps=maps, steps=steps,
                          scales=scales, aspect_ratios=ratios, count=count)


def _postprocess(f: _Field, task: str, input_size: tuple[int, int]) -> PostprocessSpec:
    score = f.get("score").str_(("softmax", "sigmoid"))
    if task == "classification":
        f.check_keys({"score", "top_k"})
        return PostprocessSpec(score=score, top_k=f.get("top_k").int_(minimum=1))
    f.check_keys({"score", "score_threshold", "nms_iou", "nms_eps", "nms_iou_mode", "nms_suppress_ge",
                  "per_class_top_k", "max_detections", "box_coder", "anchors"})
    c = f.get("box_coder")
    c.check_keys({"anchor_format", "code_order", "scales"})
    coder = BoxCoderSpec(anchor_format=c.get("anchor_format").str_(("yxyx", "cxcywh")),
                         code_order=c.get("code_order").str_(("yxhw", "xywh")),
                         scales=tuple(x.float_(positive=True) for x in c.get("scales").items(length=4)))
    anchors = _anchors(f.get("anchors"))
    if isinstance(anchors, DefaultBoxSpec) and anchors.image_size != input_size:
        raise f.get("anchors").get("image_size").fail(f"differs from the input size {input_size}")

    def optional_int(key: str) -> Optional[int]:
        field = f.get(key, required=False)
        return None if field.value is None else field.int_(minimum=1)

    return PostprocessSpec(
        score=score, score_threshold=f.get("score_threshold").float_(lo=0.0, hi=1.0),
        nms_iou=f.get("nms_iou").float_(lo=0.0, hi=1.0),
        nms_eps=f.get("nms_eps", required=False, default=0.0).float_(lo=0.0),
        nms_iou_mode=f.get("nms_iou_mode", required=False, default="clamped").str_(("clamped", "unclamped")),
        nms_suppress_ge=f.get("nms_suppress_ge", required=False, default=False).bool_(),
        per_class_top_k=optional_int("per_class_top_k"), max_detections=optional_int("max_detections"),
        box_coder=coder, anchors=anchors)


def _model(name: str, f: _Field) -> ModelSpec:
    f.check_keys({"task", "input", "output_names", "num_classes", "label_offset", "labels", "preprocess",
                  "postprocess"})
    task = f.get("task").str_(TASKS)
    inp = _input(f.get("input"))
    outputs = tuple(x.str_() for x in f.get("output_names").items())
    expected_outputs = 1 if task == "classification" else 2
    if len(outputs) != expected_outputs or len(set(outputs)) != len(outputs):
        raise f.get("output_names").fail(f"a {task} model has {expected_outputs} distinct outputs")
    num_classes = f.get("num_classes").int_(minimum=2)
    label_offset = f.get("label_offset", required=False, default=0).int_(minimum=-1)
    labels = f.get("labels").str_(tuple(LABEL_SETS))
    if num_classes + label_offset != LABEL_SETS[labels]:
        raise f.get("num_classes").fail(
            f"{num_classes} classes with label_offset {label_offset} do not fit the {LABEL_SETS[labels]} "
            f"outputs of label set {labels!r}")
    return ModelSpec(
        name=name, task=task, input=inp, output_names=outputs, num_classes=num_classes,
        label_offset=label_offset, labels=labels,
        preprocess=_preprocess(f.get("preprocess"), inp.size, inp.channels),
        postprocess=_postprocess(f.get("postprocess"), task, inp.size))


def read_specs(path: Union[str, Path]) -> dict[str, ModelSpec]:
    """Read and validate every model spec in the YAML file ``path``.

    Raises SpecError (naming file, model and field) when the file is unreadable or a value is invalid.
    """
    path = Path(path)
    try:
        data = read_yaml(path, error=SpecError)
    except SpecError as exc:
        raise SpecError(f"cannot read model specs: {exc}") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read model specs: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or not data:
        raise SpecError(f"{path}: expected a mapping of model name to spec")
    specs = {}
    for name, body in data.items():
        if not isinstance(name, str):
            raise SpecError(f"{path}: model names must be strings, got {name!r}")
        specs[name] = _model(name, _Field(body, f"{path}: model '{name}'", ""))
    return specs


@functools.lru_cache(maxsize=None)
def _packaged() -> dict[str, ModelSpec]:
    return read_specs(SPECS_PATH)


def list_specs() -> list[str]:
    """Names of every model in the packaged specs.yaml, in file order. Raises SpecError if it is invalid."""
    return list(_packaged())


def load_spec(name: str) -> ModelSpec:
    """The validated spec of catalog model ``name``.

    Raises ModelNotFoundError for an unknown name (listing the known ones), SpecError if specs.yaml is invalid.
    """
    specs = _packaged()
    if name not in specs:
        raise ModelNotFoundError(f"no model spec named {name!r}; known: {', '.join(specs)}")
    return specs[name]
