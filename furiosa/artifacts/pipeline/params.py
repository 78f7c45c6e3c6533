"""params.yaml: the build recipe of every model, read and validated in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping

from furiosa.artifacts.catalog.yaml_io import read_yaml
from furiosa.artifacts.errors import SpecError

PARAMS_FILE = "params.yaml"
#: Untracked (git-ignored) per-workspace overrides beside params.yaml: only ``base.weights``. Written by
#: ``furiosa-artifacts build`` so that ``--weights synthetic`` never rewrites the tracked params.yaml; dvc.yaml
#: lists it as a parameter file of the weights stage, so ``dvc status`` sees a change of mode.
LOCAL_PARAMS_FILE = "params.local.yaml"
WEIGHT_MODES = ("official", "synthetic")
MODEL_KEYS = {"network", "data", "source", "export", "calibration", "quantization", "evaluation", "gates",
              "published"}
MODEL_REQUIRED = MODEL_KEYS - {"data"}
DEFAULT_DATA = "data/samples"
BASE_KEYS = {"seed", "weights", "latency"}
LATENCY_COUNTS = {"warmup", "repeats", "threads", "batch", "rounds"}
LATENCY_KEYS = LATENCY_COUNTS | {"budget_s"}  # budget_s: optional (evaluate.latency_ratio)
SAMPLES_KEYS = {"count", "size", "seed"}
EXPORT_KEYS = {"opset", "rtol", "atol"}
# A dataset section (calibration or evaluation) names its kind and its path (a DVC dependency of the
# calibrate/evaluate stage, so a changed dataset reruns them):
#   samples:  the offline sample photos (path data/samples, the samples stage's output); agreement only
#   imagenet: an image folder (path) + MLPerf val_map.txt (val_map, relative to path; evaluation)
#   coco:     a COCO root (path) with an image folder (images) and instances json (annotations), relative to path
# list: a file of image names to use (MLPerf's calibration lists, shipped in furiosa/artifacts/data/).
DATA_KEYS = {"samples": {"data", "path", "count", "offset"},
             "imagenet": {"data", "path", "val_map", "list", "count", "offset"},
             "coco": {"data", "path", "images", "annotations", "list", "count", "offset", "skip_empty_images"}}
DATA_KINDS = tuple(DATA_KEYS)
REAL_DATA_KINDS = ("imagenet", "coco")
PUBLISHED_KEYS = {"metric", "value", "source"}
PUBLISHED_METRICS = ("top1", "map")


@dataclass(frozen=True)
class ModelParams:
    """One model's section of params.yaml (``models.<name>``)."""

    name: str
    network: str
    source: Dict[str, Any]
    export: Dict[str, Any]
    calibration: Dict[str, Any]
    quantization: Dict[str, Any]
    evaluation: Dict[str, Any]
    gates: Dict[str, Any]
    published: Dict[str, Any] | None = None  # {metric: top1|map, value, source}, or None (no published figure)

    @property
    def real_evaluation(self) -> bool:
        """Whether the evaluation set is a real labelled dataset (the accuracy gates bind)."""
        return self.evaluation["data"] in REAL_DATA_KINDS
    # the image data a trained model's weights stage trains on (e.g. data/digits_detection); the calibration
    # and evaluation datasets are the `path`s of those sections
    data: str = DEFAULT_DATA


@dataclass(frozen=True)
class Params:
    """All of params.yaml, validated."""

    path: Path
    seed: int
    weights: str
    latency: Dict[str, int]
    samples: Dict[str, Any]
    models: Dict[str, ModelParams]
    digits_detection: Dict[str, Any] | None = None  # the generated detection dataset (DigitsSSD)

    def model(self, name: str) -> ModelParams:
        """The section of ``name``. Raises SpecError naming the known models."""
        try:
            return self.models[name]
        except KeyError:
            raise SpecError(f"{self.path}: no section models.{name}; known: {', '.join(self.models)}") from None


def _keys(where: str, value: Any, allowed: set, *, required: set | None = None) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(map(str, set(value) - allowed))
    missing = sorted((allowed if required is None else required) - set(value))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    if missing:
        raise SpecError(f"{where}: missing key(s) {', '.join(missing)}")
    return dict(value)


def _positive_int(where: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _data(where: str, value: Any, *, section: str) -> Dict[str, Any]:
    if not isinstance(value, Mapping) or value.get("data") not in DATA_KINDS:
        kind = value.get("data") if isinstance(value, Mapping) else None
        raise SpecError(f"{where}.data: {kind!r} is not one of {', '.join(DATA_KINDS)}")
    kind = value["data"]
    required = {"data", "path", "count"} | ({"images", "annotations"} if kind == "coco" and section == "evaluation"
                                            else {"images"} if kind == "coco" else set())
    data = _keys(where, value, DATA_KEYS[kind], required=required)
    if not isinstance(data["path"], str) or not data["path"]:
        raise SpecError(f"{where}.path: expected a directory path, got {data['path']!r}")
    if data["count"] is not None or kind == "samples":  # null: every image of a real dataset
        _positive_int(f"{where}.count", data["count"])
    data.setdefault("offset", 0)
    _positive_int(f"{where}.offset", data["offset"], minimum=0)
    if kind == "imagenet":
        data.setdefault("val_map", "val_map.txt")
    return data


def _published(where: str, value: Any) -> Dict[str, Any] | None:
    if value is None:
        return None
    published = _keys(where, value, PUBLISHED_KEYS)
    if published["metric"] not in PUBLISHED_METRICS:
        raise SpecError(f"{where}.metric: {published['metric']!r} is not one of {', '.join(PUBLISHED_METRICS)}")
    v = published["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
        raise SpecError(f"{where}.value: expected a fraction in (0, 1] (76.014% is 0.76014), got {v!r}")
    if not isinstance(published["source"], str) or not published["source"]:
        raise SpecError(f"{where}.source: say where the figure is published")
    return published


def _data_path(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in Path(value).parts:
        raise SpecError(f"{where}: expected a relative path inside the repository such as {DEFAULT_DATA}, "
                        f"got {value!r}")
    return value


def load_params(path: Path) -> Params:
    """Read and validate params.yaml.

    Raises:
        SpecError: the file is missing, not YAML, or a section has unknown/missing keys or bad
            values; the message names the file and the dotted key.
    """
    path = Path(path)
    try:
        raw = read_yaml(path, error=SpecError)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file (the pipeline's build recipe)") from None
    # benchmarks: targets read by benchmarks/ only (not build gates), optional
    top = _keys(f"{path}", raw, {"base", "samples", "models", "digits_detection", "benchmarks"},
                required={"base", "samples", "models"})
    base = _keys(f"{path}: base", top["base"], BASE_KEYS)
    if base["weights"] not in WEIGHT_MODES:
        raise SpecError(f"{path}: base.weights: {base['weights']!r} is not one of {', '.join(WEIGHT_MODES)}")
    latency = _keys(f"{path}: base.latency", base["latency"], LATENCY_KEYS, required=LATENCY_COUNTS)
    for key in LATENCY_COUNTS:
        _positive_int(f"{path}: base.latency.{key}", latency[key], minimum=0 if key == "warmup" else 1)
    budget = latency.get("budget_s")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise SpecError(f"{path}: base.latency.budget_s: expected a positive number of seconds or null, "
                        f"got {budget!r}")
    samples = _keys(f"{path}: samples", top["samples"], SAMPLES_KEYS)
    _positive_int(f"{path}: samples.count", samples["count"])
    models: Dict[str, ModelParams] = {}
    if not isinstance(top["models"], Mapping) or not top["models"]:
        raise SpecError(f"{path}: models: expected a non-empty mapping of catalog names")
    for name, section in top["models"].items():
        where = f"{path}: models.{name}"
        m = _keys(where, section, MODEL_KEYS, required=MODEL_REQUIRED)
        export = _keys(f"{where}.export", m["export"], EXPORT_KEYS)
        _positive_int(f"{where}.export.opset", export["opset"], minimum=7)
        if not isinstance(m["source"], Mapping) or "type" not in m["source"]:
            raise SpecError(f"{where}.source: expected a mapping with a 'type' (url, file, train, synthetic)")
        if m["source"].get("type") in ("url", "file"):  # a pin is checked even when the build is synthetic
            from furiosa.artifacts.sources import check_pins

            check_pins(m["source"], where=f"{where}.source")
        for key in ("quantization", "gates"):
            if not isinstance(m[key] if key != "gates" else (m[key] or {}), Mapping):
                raise SpecError(f"{where}.{key}: expected a mapping, got {type(m[key]).__name__}")
        models[name] = ModelParams(
            name=name, network=str(m["network"]), source=dict(m["source"]), export=export,
            calibration=_data(f"{where}.calibration", m["calibration"], section="calibration"),
            quantization=dict(m["quantization"]),
            evaluation=_data(f"{where}.evaluation", m["evaluation"], section="evaluation"),
            gates=dict(m["gates"] or {}), published=_published(f"{where}.published", m.get("published")),
            data=_data_path(f"{where}.data", m.get("data", DEFAULT_DATA)),
        )
    detection = top.get("digits_detection")
    if detection is not None:
        from furiosa.artifacts.pipeline.digits_detection import DatasetParams

        DatasetParams.from_params(detection, where=f"{path}: digits_detection")
    weights = read_local_weights(path.parent / LOCAL_PARAMS_FILE) or base["weights"]
    return Params(path=path, seed=_positive_int(f"{path}: base.seed", base["seed"], minimum=0),
                  weights=weights, latency=latency, samples=samples, models=models,
                  digits_detection=dict(detection) if detection is not None else None)


def read_local_weights(path: Path) -> str | None:
    """``base.weights`` from the override file ``path`` (None when the file does not exist).

    Raises:
        SpecError: the file is not YAML, holds anything but ``base.weights``, or an unknown mode.
    """
    path = Path(path)
    try:
        raw = read_yaml(path, error=SpecError)
    except FileNotFoundError:
        return None
    except SpecError as exc:
        raise SpecError(f"cannot read the local overrides: {exc}; delete {path} or rewrite it with "
                        "`furiosa-artifacts build --weights official|synthetic`") from None
    top = _keys(f"{path}", raw, {"base"})
    base = _keys(f"{path}: base", top["base"], {"weights"})
    if base["weights"] not in WEIGHT_MODES:
        raise SpecError(f"{path}: base.weights: {base['weights']!r} is not one of {', '.join(WEIGHT_MODES)}")
    return base["weights"]
