"""Model cards: everything the repository knows about one catalog model, as data and as Markdown.

:func:`model_facts` gathers, for one model, the catalog entry (artifacts.yaml), its build recipe
(params.yaml), its run-time facts (specs.yaml), the outputs dvc.lock records and the metrics the
evaluate stage wrote (``models/<name>/metrics.json``); ``furiosa-artifacts show`` prints it.
:func:`render_card` turns it into ``docs/models/<name>.md`` and :func:`render_plot` into
``docs/models/<name>.png`` (fp32 vs int8 latency and size).

Cards are build products, like the binaries: their numbers come from the workspace's build, and latency
depends on the machine that built it. ``furiosa-artifacts docs`` regenerates them after every build
(``docs --check`` reports a card that no longer matches the workspace); they are not committed. A model
that is not built gets a card without build results. Rendering is deterministic: no timestamps, no
absolute paths, matplotlib's default style, fixed size and dpi, no PNG ``Software`` chunk.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from furiosa.artifacts.catalog.entries import Artifact, built_binary, find_entry, read_entries
from furiosa.artifacts.errors import (
    ArtifactsError,
    BinaryNotFoundError,
    CatalogError,
    LockFileError,
    ModelNotFoundError,
    SpecError,
)
from furiosa.artifacts.layout import PRECISIONS, binary_relpath, metrics_relpath, model_dir

__all__ = ["CARDS_DIR", "SPECS_RELPATH", "card_relpath", "code_entry", "generated_cards", "model_facts",
           "read_metrics", "read_model_spec", "render_card", "render_plot"]

CARDS_DIR = "docs/models"
SPECS_RELPATH = "furiosa/artifacts/vision/specs.yaml"
LICENSE_NOTE = "see the publication/source (this catalog records no license for the weights)"
# metrics.json keys that say how close int8 is to fp32 on the same inputs (agreement, not accuracy), in display order
AGREEMENT_KEYS = ("int8_vs_fp32_top1_agreement", "int8_vs_fp32_top5_overlap", "int8_vs_fp32_detection_f1",
                  "int8_vs_fp32_detection_precision", "int8_vs_fp32_detection_recall", "int8_vs_fp32_mean_iou")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # as the lint requires: safe inside models/<name>/
PLOT_DPI = 100
PLOT_SIZE = (7.0, 2.8)  # inches


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
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def info(value: Any) -> Dict[str, Any]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
        return {"name": value.name, "datatype": dtype, "shape": dims}

    return {"inputs": [info(v) for v in graph.input if v.name not in initializers],
            "outputs": [info(v) for v in graph.output]}


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


# --------------------------------------------------------------------------- Markdown


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return f"{value:,}" if not isinstance(value, bool) else str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ms(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def _cap(max_detections: Optional[int]) -> str:
    return "all detections" if max_detections is None else f"at most {max_detections} detections"


def _mb(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 1e6:.2f} MB ({value:,} bytes)"


def _shape(shape: List[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def synthetic_warning(facts: Dict[str, Any]) -> str:
    """The one-line warning for a model built from synthetic weights."""
    seed = facts["weights"].get("seed")
    return (f"SYNTHETIC WEIGHTS: {facts['name']} was built from seeded random weights"
            f"{f' (seed {seed})' if seed is not None else ''}, not from its official ones: not for deployment, "
            "its predictions are meaningless.")


def _source_lines(facts: Dict[str, Any]) -> List[str]:
    source = facts["weights"]["source"]
    if source is None:
        return ["1. source weights: no section in params.yaml"]
    if source.get("type") == "train":
        recipe = ", ".join(f"{k} {v}" for k, v in (source.get("train") or {}).items())
        return [f"1. source weights: trained inside the pipeline (params.yaml `models.{facts['name']}.source.train`: "
                f"{recipe})"]
    urls = list(source.get("urls") or [])
    where = f"<{urls[0]}>" if urls else f"local file `{source.get('path')}`"
    lines = [f"1. source weights: {where}"]
    lines += [f"   - also at <{url}>" for url in urls[1:]]
    if source.get("filename"):
        lines.append(f"   - file `{source['filename']}`" + (f", member `{source['member']}`" if source.get("member")
                                                            else ""))
    if source.get("publisher"):
        lines.append(f"   - published by {source['publisher']}")
    pins = [algo for algo in ("sha256", "sha384", "md5") if source.get(algo)]
    for algo in pins:
        lines.append(f"   - {algo} `{source[algo]}` (the publisher's checksum, pinned in params.yaml)")
    if not pins and source.get("sha256_prefix"):
        lines.append(f"   - sha256 prefix `{source['sha256_prefix']}` (pinned in params.yaml; the full hash is not)")
    elif not pins:
        lines.append("   - checksum: not pinned in params.yaml (an official build refuses this model)")
    if source.get("size"):
        lines.append(f"   - size {source['size']:,} bytes")
    lines.append("   - read by `furiosa.artifacts.weights_io` (format detected from the bytes, no pickled code run; "
                 "`furiosa-artifacts convert` does the same for a local copy)")
    if facts["weights"]["built_from"] == "synthetic":
        lines.append("   - **not used by this build**: `base.weights: synthetic` replaced them with seeded random "
                     "weights")
    return lines


def _provenance_lines(facts: Dict[str, Any]) -> List[str]:
    name = facts["name"]
    lines = _source_lines(facts)
    if not facts["lock"]:
        return lines + ["", "No dvc.lock in this workspace: the hashes of the built files are not recorded."]
    by_path = {b["path"]: b for b in facts["binaries"]}
    steps = (("weights", "weights.pt"), ("fp32 ONNX", "fp32.onnx"), ("int8 ONNX", "int8.onnx"),
             ("metrics", "metrics.json"))
    for number, (step, rel) in enumerate(steps, start=2):
        out = by_path.get(f"{model_dir(name)}/{rel}")
        if out is None:
            lines.append(f"{number}. {step} `{model_dir(name)}/{rel}`: not recorded in dvc.lock")
        else:
            lines.append(f"{number}. {step} `{out['path']}`: md5 `{out['md5']}`, {out['size']:,} bytes "
                         f"(dvc.lock, stage `{out['stage']}`)")
    return lines


def _gate_rows(metrics: Dict[str, Any]) -> List[str]:
    rows = []
    for key, gate in sorted(metrics["gates"].items()):
        sign = ">=" if key.endswith("_min") else "<="
        reason = f" ({gate['reason']})" if gate.get("reason") else ""
        rows.append(f"| `{key}` | {sign} {_num(gate.get('threshold'))} | {_num(gate.get('value'))} | "
                    f"{gate.get('status')}{reason} |")
    return rows


def _published_lines(facts: Dict[str, Any]) -> List[str]:
    published = (facts["params"] or {}).get("published")
    lines = ["## Published accuracy", ""]
    if published is None:
        return lines + ["No published figure (see the publication below, or: trained in this pipeline).", ""]
    value = published["value"]
    shown = f"top-1 {value * 100:.3f}%" if published["metric"] == "top1" else f"mAP {value:.3f}"
    return lines + [f"fp32 {shown}: {published['source']} (params.yaml `models.{facts['name']}.published`).", ""]


def _accuracy_lines(facts: Dict[str, Any], m: Dict[str, Any]) -> List[str]:
    accuracy = m.get("accuracy")
    lines = ["## Accuracy measured here", ""]
    if not accuracy:
        return lines + [f"None: the evaluation set in params.yaml is `{m['evaluation'].get('data')}` (the offline "
                        "sample photos, which have no labels). Configure an ImageNet- or COCO-style dataset there "
                        "(the MLPerf rule then binds: int8 >= 0.99 x fp32, fp32 near the published figure), or run "
                        f"`furiosa-artifacts evaluate {facts['name']} --imagenet DIR | --coco DIR --annotations FILE`.",
                        ""]
    dataset = accuracy["dataset"]
    keys = [k for k in ("top1", "top5", "map", "map50") if k in accuracy.get("fp32", {})]
    names = {"top1": "top-1", "top5": "top-5", "map": "mAP@[.5:.95]", "map50": "mAP@.5"}
    lines += [f"On {_num(accuracy['count'])} images of the {dataset['kind']} dataset `{dataset['images']}` "
              "(our preprocessing, ONNX Runtime, our postprocessing; COCO mAP by pycocotools).", "",
              "| | " + " | ".join(names[k] for k in keys) + " |", "| --- |" + " --- |" * len(keys)]
    for precision in ("fp32", "int8"):
        if precision in accuracy:
            lines.append(f"| {precision} | " + " | ".join(_num(accuracy[precision][k], 4) for k in keys) + " |")
    primary = accuracy.get("metric")
    if primary and "fp32" in accuracy and "int8" in accuracy and accuracy["fp32"][primary]:
        lines += ["", f"int8 / fp32 {names[primary]}: {_num(accuracy['int8'][primary] / accuracy['fp32'][primary], 4)} "
                      "(MLPerf's rule: >= 0.99)."]
    return lines + [""]


def _build_section(facts: Dict[str, Any]) -> List[str]:
    name, m = facts["name"], facts["metrics"]
    if m is None:
        return _published_lines(facts) + [
            "## Build results", "",
            "Not built in this workspace: run `furiosa-artifacts build` (or `dvc pull`), then "
            "`furiosa-artifacts docs` to add accuracy, sizes, latency and int8 agreement here.", ""]
    sizes, lat = m["sizes"], m["latency"]
    lines = _published_lines(facts) + _accuracy_lines(facts, m)
    lines += ["## Int8 vs fp32 agreement", ""]
    ev = m["evaluation"]
    lines.append(f"How often int8 gives fp32's answer on the same {_num(ev.get('inputs'))} `{ev.get('data')}` "
                 f"inputs (not accuracy: no labels involved; `{m['path']}`).")
    lines += ["", "| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {_num(value)} |" for key, value in m["agreement"].items()]
    if m["gates"]:
        lines += ["", "| gate (params.yaml) | threshold | value | status |", "| --- | --- | --- | --- |"]
        lines += _gate_rows(m)
        if facts["synthetic"]:
            lines += ["", "Gates are not applicable to synthetic weights (random weights have no meaningful "
                          "margins between classes)."]
    lines += ["", "## Size and latency", "",
              "| | fp32 | int8 | int8 / fp32 |", "| --- | --- | --- | --- |",
              f"| file size | {_mb(sizes['fp32_bytes'])} | {_mb(sizes['int8_bytes'])} | {_num(sizes['size_ratio'])} |",
              f"| latency ({lat['statistic']}) | {_ms(lat['fp32_ms'])} | {_ms(lat['int8_ms'])} | "
              f"{_num(lat['int8_latency_ratio'])} |",
              "",
              f"Parameters (fp32 ONNX weights and biases): {_num(sizes['parameters'])}. Latency: ONNX Runtime CPU, "
              f"batch {lat['batch']}, {lat['threads']} threads on a {lat['cpu_count']}-CPU build machine; it "
              "depends on that machine.", "",
              f"![fp32 vs int8 latency and size of {name}]({name}.png)", ""]
    return lines


def render_card(root: Path, name: str) -> str:
    """The Markdown model card of ``name`` (``docs/models/<name>.md``) from the workspace at ``root``.

    Raises what :func:`model_facts` raises.
    """
    return _card(model_facts(root, name, onnx_tensors=False))


def _card(facts: Dict[str, Any]) -> str:
    name = facts["name"]
    pre, post, tensors = facts["preprocess"], facts["postprocess"], facts["tensors"]
    lines = [f"<!-- generated by `furiosa-artifacts docs` from artifacts.yaml, params.yaml, {SPECS_RELPATH}, "
             f"{metrics_relpath(name)} and dvc.lock; do not edit. Regenerate after every build. -->", "",
             f"# {name} {facts['version'] or ''}".rstrip(), ""]
    if facts["synthetic"]:
        lines += [f"> **{synthetic_warning(facts)}**", ""]
    lines += [facts["description"] or "", "",
              "| | |", "| --- | --- |",
              f"| family | {facts['family']} |", f"| task | {facts['task']} |",
              "| catalog entries | " + ", ".join(f"`{e['name']}` ({e['format']})" for e in facts["entries"]) + " |",
              f"| weights of this build | {facts['weights']['built_from'] or 'not built'} |", ""]
    lines += ["## Use", "", "```python", "import furiosa.artifacts as fa", "",
              f"model = fa.load(\"{name}\")          # int8; precision=\"fp32\" for the fp32 binary",
              "results = model.run([\"image.jpg\"])[0]", "```", "",
              "```sh", f"furiosa-artifacts predict {name} image.jpg --out annotated.png", "```", ""]
    lines += ["## Tensors", "", "| | name | type | shape |", "| --- | --- | --- | --- |"]
    lines += [f"| input | `{t['name']}` | {t['datatype']} | {_shape(t['shape'])} ({t.get('layout', '')}) |"
              for t in tensors["inputs"]]
    lines += [f"| output | `{t['name']}` | {t['datatype']} | {_shape(t['shape'])} |" for t in tensors["outputs"]]
    resize = pre["resize"]
    size = "x".join(str(s) for s in resize["size"])
    exif = ("EXIF orientation applied, as `cv2.imread` in the reference loader" if pre["exif"] == "transpose"
            else "EXIF orientation ignored, as the reference loader (PIL, timm) does")
    lines += ["", "## Preprocessing", "",
              f"- decode ({exif}) to {pre['color']}; resize ({resize['mode']}) to {size} with "
              f"{resize['interpolation']} "
              f"interpolation ({resize['backend']})",
              f"- center crop {'x'.join(str(c) for c in pre['crop'])}" if pre["crop"] else "- no crop",
              f"- x = (pixel / {_num(pre['scale'], 1)} - mean) / std, mean {pre['mean']}, std {pre['std']}; "
              f"{pre['layout']}", "", "## Postprocessing", ""]
    if post["task"] == "classification":
        lines.append(f"- {post['score']} over {post['num_classes']} classes (label set `{post['labels']}`, offset "
                     f"{post['label_offset']}), top {post['top_k']}")
    else:
        lines += [f"- {post['anchors']['count']} anchors ({post['anchors']['kind']}), box coder "
                  f"{post['box_coder']['anchor_format']} / {post['box_coder']['code_order']} scales "
                  f"{post['box_coder']['scales']}",
                  f"- {post['score']} scores over {post['num_classes']} classes (label set `{post['labels']}`); "
                  f"per class score > {post['score_threshold']}, NMS suppressing at IoU "
                  f"{'>=' if post.get('nms_suppress_ge') else '>'} {post['nms_iou']} "
                  f"({post.get('nms_iou_mode', 'clamped')} overlaps), {_cap(post['max_detections'])} per image; "
                  "boxes x1, y1, x2, y2 in image pixels"]
    lines += ["", f"All run-time facts: `{SPECS_RELPATH}` (`{name}`).", ""]
    lines += _build_section(facts)
    lines += ["## Provenance", "", "Each step is built from the one before (DVC pipeline, `dvc.yaml`):", ""]
    lines += _provenance_lines(facts)
    if facts["params"]:
        q = facts["params"]["quantization"]
        lines += ["", f"Quantization (params.yaml): {q.get('quant_format')}, {q.get('method')}, "
                      f"activations {q.get('activation_type')}, weights {q.get('weight_type')}"
                      f"{', per channel' if q.get('per_channel') else ''}; export opset "
                      f"{facts['params']['export'].get('opset')}."]
    pub = facts["publication"] or {}
    lines += ["", "## License and publication", "", f"- license: {facts['license']}"]
    if pub:
        authors = ", ".join(pub.get("authors") or [])
        lines.append(f"- {pub.get('title')}: {authors}; {pub.get('publisher')}, {pub.get('date')}. <{pub.get('url')}>")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- plot


def render_plot(root: Path, name: str) -> Optional[bytes]:
    """PNG bytes of fp32 vs int8 latency and file size of ``name``, or None when it is not built.

    Deterministic for a given matplotlib: the default style, fixed size and dpi, no metadata chunk.

    Raises:
        ArtifactsError: matplotlib is not installed (it comes with the ``build`` extra).
    """
    return _plot(model_facts(root, name, onnx_tensors=False))


def _plot(facts: Dict[str, Any]) -> Optional[bytes]:
    name, m = facts["name"], facts["metrics"]
    if m is None or m["latency"]["fp32_ms"] is None or m["sizes"]["fp32_bytes"] is None:
        return None
    try:
        import matplotlib.style
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ArtifactsError("model card plots need matplotlib: pip install -e \".[build]\"") from None
    lat, sizes = m["latency"], m["sizes"]
    colors = ("#4c72b0", "#dd8452")
    with matplotlib.style.context("default"):
        fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI)
        FigureCanvasAgg(fig)
        panels = ((f"latency (ms, batch {lat['batch']}, {lat['threads']} threads)", lat["fp32_ms"], lat["int8_ms"]),
                  ("file size (MB)", sizes["fp32_bytes"] / 1e6, sizes["int8_bytes"] / 1e6))
        for index, (title, fp32, int8) in enumerate(panels):
            ax = fig.add_subplot(1, 2, index + 1)
            bars = ax.bar(["fp32", "int8"], [fp32, int8], color=colors)
            ax.bar_label(bars, labels=[f"{fp32:.3g}", f"{int8:.3g}"], padding=2)
            ax.set_title(title, fontsize=9)
            ax.margins(y=0.2)
        suffix = " (SYNTHETIC weights: not for deployment)" if facts["synthetic"] else ""
        fig.suptitle(f"{name}{suffix}", fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buffer.getvalue()


def generated_cards(root: Path) -> Dict[Path, Union[str, bytes]]:
    """Every model card (and plot, for built models) of the code entries in ``root``: path -> content."""
    root = Path(root)
    out: Dict[Path, Union[str, bytes]] = {}
    for entry in read_entries(root, validate=False):
        if entry.format != "code":
            continue
        facts = model_facts(root, entry.name, onnx_tensors=False)
        out[root / card_relpath(entry.name)] = _card(facts)
        plot = _plot(facts)
        if plot is not None:
            out[root / card_relpath(entry.name, "png")] = plot
    return out
