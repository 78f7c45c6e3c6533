"""Model cards: a model's facts as Markdown (``docs/models/<name>.md``).

Cards are build products, like the binaries: their numbers come from the workspace's build, and latency
depends on the machine that built it. ``furiosa-artifacts docs`` regenerates them after every build
(``docs --check`` reports a card that no longer matches the workspace); they are not committed. A model
that is not built gets a card without build results. Rendering is deterministic: no timestamps, no
absolute paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from furiosa.artifacts.facts import SPECS_RELPATH, model_facts
from furiosa.artifacts.layout import metrics_relpath, model_dir
from furiosa.artifacts.render.text import shape_text, synthetic_warning

__all__ = ["format_card", "render_card"]


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
    return format_card(model_facts(root, name, onnx_tensors=False))


def format_card(facts: Dict[str, Any]) -> str:
    """The Markdown model card of :func:`furiosa.artifacts.facts.model_facts` (``onnx_tensors=False``)."""
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
    lines += [f"| input | `{t['name']}` | {t['datatype']} | {shape_text(t['shape'])} ({t.get('layout', '')}) |"
              for t in tensors["inputs"]]
    lines += [f"| output | `{t['name']}` | {t['datatype']} | {shape_text(t['shape'])} |" for t in tensors["outputs"]]
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
