"""Everything the repository knows about one catalog model, gathered once as JSON-able data.

:func:`model_facts` gathers, for one model, the catalog entry (artifacts.yaml), its build recipe
(params.yaml), its run-time facts (specs.yaml), the outputs dvc.lock records and the metrics the
evaluate stage wrote (``models/<name>/metrics.json``). Renderers turn those facts into text
(:mod:`furiosa.artifacts.render.text`, what ``furiosa-artifacts show`` prints), the Markdown model card
``docs/models/<name>.md`` (:mod:`furiosa.artifacts.render.markdown`) and its plot ``docs/models/<name>.png``
(:mod:`furiosa.artifacts.render.plot`). Metrics files are read defensively: whatever they hold, the facts
carry numbers or None and text or None where the renderers expect them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from furiosa.artifacts.catalog.entries import Artifact, built_binary, find_entry, read_entries
from furiosa.artifacts.errors import (
    BinaryNotFoundError,
    CatalogError,
    LockFileError,
    ModelNotFoundError,
    SpecError,
)
from furiosa.artifacts.layout import PRECISIONS, binary_relpath, metrics_relpath, model_dir

__all__ = ["CARDS_DIR", "SPECS_RELPATH", "card_relpath", "code_entry", "model_facts", "read_metrics",
           "read_model_spec"]

CARDS_DIR = "docs/models"
SPECS_RELPATH = "furiosa/artifacts/vision/specs.yaml"
LICENSE_NOTE = "see the publication/source (this catalog records no license for the weights)"
# metrics.json keys that say how close int8 is to fp32 on the same inputs (agreement, not accuracy), in display order
AGREEMENT_KEYS = ("int8_vs_fp32_top1_agreement", "int8_vs_fp32_top5_overlap", "int8_vs_fp32_detection_f1",
                  "int8_vs_fp32_detection_precision", "int8_vs_fp32_detection_recall", "int8_vs_fp32_mean_iou")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # as the lint requires: safe inside models/<name>/


def card_relpath(name: str, ext: str = "md") -> str:
    """Where the card (``md``) or its plot (``png``) of ``name`` lives, e.g. ``docs/models/DigitsConvNet.md``."""
    return f"{CARDS_DIR}/{name}.{ext}"


# --------------------------------------------------------------------------- reading


def code_entry(entries: List[Artifact], name: str) -> Tuple[Artifact, Optional[str]]:
    """The ``code`` entry ``name`` stands for, and the precision it fixes (None for a code entry).

    A bare binary entry (``DigitsConvNet_INT8`` at ``models/DigitsConvNet/int8.onnx``) stands for the code
    entry of the same model directory with that binary's precision. Names match loosely (see find_entry).

    Raises:
        ModelNotFoundError: no entry matches, or a binary entry has no code entry to take its processing from.
        CatalogError: the entry's name is not a plain identifier (it would name a path outside models/).
    """
    entry = find_entry(entries, name)
    if not _NAME.match(entry.name):
        raise CatalogError(f"catalog entry name {entry.name!r} is not [A-Za-z][A-Za-z0-9_]*: "
                           "run `furiosa-artifacts lint`")
    if entry.format == "code":
        return entry, None
    built = built_binary(entries, entry)
    if built is not None:
        return built
    raise ModelNotFoundError(
        f"catalog entry {entry.name!r} is a bare {entry.format} file ({entry.location}) without a code entry "
        "that knows its pre/postprocessing; use one of the code entries (`furiosa-artifacts list`)")


def read_model_spec(root: Path, name: str) -> Any:
    """The spec of ``name`` from ``root``'s specs.yaml (the packaged one when ``root`` has none).

    Raises:
        SpecError: specs.yaml is invalid. ModelNotFoundError: it has no entry ``name``.
    """
    from furiosa.artifacts.vision.specs import load_spec, read_specs

    path = Path(root) / SPECS_RELPATH
    if not path.is_file():
        return load_spec(name)
    specs = read_specs(path)
    if name not in specs:
        raise ModelNotFoundError(f"{path}: no model spec named {name!r}; known: {', '.join(specs)}")
    return specs[name]


def read_metrics(root: Path, name: str) -> Optional[Dict[str, Any]]:
    """``models/<name>/metrics.json`` of ``root``, or None when the model is not built there.

    Raises:
        SpecError: the file exists but is not a JSON object (rebuild it or `dvc checkout` it).
    """
    from furiosa.artifacts.storage.lockfile import contained_file

    path = contained_file(root, metrics_relpath(name), what="metrics file")
    if path is None:
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[..." nesting
        raise SpecError(f"{path}: not valid JSON ({str(exc)[:200]}): restore it with `dvc checkout` or rebuild") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _lock_outputs(root: Path) -> Optional[Dict[str, Any]]:
    from furiosa.artifacts.storage.lockfile import read_outputs

    try:
        return read_outputs(root)
    except LockFileError:
        raise  # there, but unreadable: say so (exit 2), never show it as "not built"
    except BinaryNotFoundError:
        return None


def _model_params(root: Path, name: str) -> Tuple[Optional[str], Optional[Any]]:
    from furiosa.artifacts.pipeline.params import PARAMS_FILE, load_params

    params = load_params(Path(root) / PARAMS_FILE)
    return params.weights, params.models.get(name)


# --------------------------------------------------------------------------- facts


def _publication(entry: Artifact) -> Optional[Dict[str, Any]]:
    pub = entry.publication
    if pub is None:
        return None
    return {"title": pub.title, "authors": pub.authors, "publisher": pub.publisher, "date": pub.date, "url": pub.url}


def _spec_tensors(spec: Any) -> Dict[str, Any]:
    inputs = [{"name": spec.input.name, "datatype": spec.input.dtype, "shape": ["N", *spec.input.shape],
               "layout": spec.input.layout}]
    if spec.task == "classification":
        outputs = [{"name": spec.output_names[0], "datatype": "float32", "shape": ["N", spec.num_classes]}]
    else:
        anchors = spec.postprocess.anchors.count
        loc, conf = spec.output_names
        outputs = [{"name": loc, "datatype": "float32", "shape": ["N", anchors, 4]},
                   {"name": conf, "datatype": "float32", "shape": ["N", anchors, spec.num_classes]}]
    return {"from": SPECS_RELPATH, "inputs": inputs, "outputs": outputs}


def _onnx_tensors(path: Path) -> Dict[str, Any]:
    from furiosa.artifacts.onnx_io import graph_io

    inputs, outputs = graph_io(Path(path))

    def info(tensor: Any) -> Dict[str, Any]:
        return {"name": tensor.name, "datatype": "?" if tensor.datatype == "undefined" else tensor.datatype,
                "shape": list(tensor.symbolic_shape("?"))}

    return {"inputs": [info(t) for t in inputs], "outputs": [info(t) for t in outputs]}


def _preprocess(spec: Any) -> Dict[str, Any]:
    p = spec.preprocess
    resize = {"mode": p.resize.mode, "size": list(p.resize.size), "interpolation": p.resize.interpolation,
              "backend": p.resize.backend}
    return {"color": p.color, "resize": resize, "crop": list(p.crop) if p.crop else None, "scale": p.scale,
            "mean": list(p.mean), "std": list(p.std), "layout": spec.input.layout, "exif": p.exif}


def _postprocess(spec: Any) -> Dict[str, Any]:
    post = spec.postprocess
    out: Dict[str, Any] = {"task": spec.task, "score": post.score, "labels": spec.labels,
                           "num_classes": spec.num_classes, "label_offset": spec.label_offset}
    if spec.task == "classification":
        out["top_k"] = post.top_k
    else:
        out.update(score_threshold=post.score_threshold, nms_iou=post.nms_iou, nms_eps=post.nms_eps,
                   nms_iou_mode=post.nms_iou_mode, nms_suppress_ge=post.nms_suppress_ge,
                   per_class_top_k=post.per_class_top_k, max_detections=post.max_detections,
                   anchors={"kind": post.anchors.kind, "count": post.anchors.count},
                   box_coder={"anchor_format": post.box_coder.anchor_format, "code_order": post.box_coder.code_order,
                              "scales": list(post.box_coder.scales)})
    return out


def _mapping(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> Optional[Union[int, float]]:
    """``value`` when it is a finite int or float (not a bool), else None: metrics.json may be anything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)[:200]


def _accuracy(value: Any) -> Optional[Dict[str, Any]]:
    """The metrics' ``accuracy`` section (dataset, count, per-precision figures), or None when absent/malformed."""
    return value if isinstance(value, dict) and isinstance(value.get("dataset"), dict) else None


def _metrics_summary(m: Dict[str, Any], relpath: str) -> Dict[str, Any]:
    """The parts of metrics.json that ``show`` and the cards print, each of the type they print (numbers
    or None, text or None), whatever the file holds (``{}``, wrong types, NaN)."""
    latency = _mapping(m.get("latency"))
    fp32_lat, int8_lat = _mapping(latency.get("fp32")), _mapping(latency.get("int8"))
    weights = _mapping(m.get("weights"))
    deployable = weights.get("deployable")
    return {
        "path": relpath,
        "weights": {"source": _text(weights.get("source")),
                    "deployable": deployable if isinstance(deployable, bool) else None},
        "sizes": {key: _number(m.get(key)) for key in ("fp32_bytes", "int8_bytes", "size_ratio", "parameters")},
        "latency": {"fp32_ms": _number(m.get("fp32_latency_ms")), "int8_ms": _number(m.get("int8_latency_ms")),
                    "int8_latency_ratio": _number(m.get("int8_latency_ratio")), "statistic": "median",
                    "batch": _number(int8_lat.get("batch", fp32_lat.get("batch"))),
                    "threads": _number(int8_lat.get("threads", fp32_lat.get("threads"))),
                    "cpu_count": _number(int8_lat.get("cpu_count", fp32_lat.get("cpu_count")))},
        "agreement": {k: m[k] if _number(m[k]) is not None else _text(m[k]) for k in AGREEMENT_KEYS if k in m},
        # dataset, count, fp32 and int8 figures; None on the sample photos
        "accuracy": _accuracy(m.get("accuracy")),
        "evaluation": {"data": _text(m.get("evaluation_data")), "inputs": _number(m.get("evaluation_inputs"))},
        "gates": {str(k): {f: gate.get(f) if _number(gate.get(f)) is not None else _text(gate.get(f))
                           for f in ("threshold", "value", "status", "reason")
                           if f != "reason" or gate.get("reason")}
                  for k, gate in _mapping(m.get("gates")).items() if isinstance(gate, dict)},
    }


def _weights_source(source: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if source is None:
        return None
    out = {k: source[k] for k in ("type", "urls", "filename", "sha256", "sha384", "md5", "sha256_prefix", "size",
                                  "path", "member", "publisher") if k in source}
    if "train" in source:
        out["train"] = source["train"]
    return out


def model_facts(root: Path, name: str, *, onnx_tensors: bool = True) -> Dict[str, Any]:
    """What the repository at ``root`` knows about catalog model ``name``, as JSON-able data.

    ``tensors`` come from the built int8 (else fp32) ONNX when ``onnx_tensors`` and a binary exists,
    else from specs.yaml. ``metrics`` is None when the model is not built; ``binaries`` is empty without
    a dvc.lock.

    Raises:
        ModelNotFoundError: no such model. CatalogReadError, SpecError: an input file is invalid.
    """
    root = Path(root)
    entries = read_entries(root, validate=False)
    entry, _ = code_entry(entries, name)
    name = entry.name
    spec = read_model_spec(root, name)
    mode, params = _model_params(root, name)
    metrics = read_metrics(root, name)
    outputs = _lock_outputs(root)
    prefix = model_dir(name) + "/"
    binaries = [{"path": out.path, "md5": out.md5, "size": out.size, "stage": out.stage,
                 "present": (root / out.path).is_file()}
                for out in sorted((outputs or {}).values(), key=lambda o: o.path) if out.path.startswith(prefix)]
    tensors = _spec_tensors(spec)
    if onnx_tensors:
        from furiosa.artifacts.storage.lockfile import contained_file

        for precision in PRECISIONS:
            path = contained_file(root, binary_relpath(name, precision), what="binary")
            if path is not None:
                tensors = {"from": binary_relpath(name, precision), **_onnx_tensors(path)}
                break
    built_from = ((metrics or {}).get("weights") or {}).get("source")
    provenance = (metrics or {}).get("provenance") or {}
    from furiosa.artifacts.binaries import local_binary, model_provenance

    stamped = model_provenance(root, name)
    for binary in binaries:
        binary["present"] = binary["present"] or local_binary(root, binary["path"]) is not None
    related = [{"name": e.name, "format": e.format, "location": e.location} for e in entries
               if e.name == name or (e.format != "code" and e.location.startswith(prefix))]
    source = _weights_source(params.source if params else None)
    return {
        "name": name,
        "version": entry.version,
        "family": entry.family,
        "task": spec.task,
        "description": entry.description,
        "entries": related,
        "publication": _publication(entry),
        "license": LICENSE_NOTE,
        "built": metrics is not None or any((root / binary_relpath(name, p)).is_file() for p in PRECISIONS),
        "synthetic": built_from == "synthetic" or stamped.synthetic,
        # what the binary itself says (ONNX metadata_props); "unknown" when it carries nothing readable
        "provenance": stamped.as_dict(),
        "deployable": ((metrics or {}).get("weights") or {}).get("deployable"),
        "weights": {"mode": mode, "source": source, "built_from": built_from, "seed": provenance.get("seed")},
        "params": None if params is None else {
            "network": params.network, "export": params.export, "calibration": params.calibration,
            "quantization": params.quantization, "evaluation": params.evaluation, "gates": params.gates,
            "published": params.published},
        "binaries": binaries,
        "lock": outputs is not None,
        "metrics": None if metrics is None else _metrics_summary(metrics, metrics_relpath(name)),
        "tensors": tensors,
        "preprocess": _preprocess(spec),
        "postprocess": _postprocess(spec),
    }
