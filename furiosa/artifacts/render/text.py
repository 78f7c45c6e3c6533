"""The plain-text rendering of a model's facts: what ``furiosa-artifacts show`` prints.

:func:`format_facts` renders :func:`furiosa.artifacts.facts.model_facts`; :func:`synthetic_warning` is the
one-line warning every output (``show``, ``predict``, the model card) gives for synthetic weights.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

__all__ = ["format_facts", "shape_text", "synthetic_warning"]


def shape_text(shape: Sequence[Any]) -> str:
    """``[N, 3, 224, 224]``: a tensor shape as the outputs print it."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def synthetic_warning(facts: Dict[str, Any]) -> str:
    """The one-line warning for a model built from synthetic weights."""
    seed = facts["weights"].get("seed")
    return (f"SYNTHETIC WEIGHTS: {facts['name']} was built from seeded random weights"
            f"{f' (seed {seed})' if seed is not None else ''}, not from its official ones: not for deployment, "
            "its predictions are meaningless.")


def _fmt(value: Any, spec: str = "") -> str:
    """``format(value, spec)``, or "n/a" when metrics.json did not hold a number there."""
    if value is None:
        return "n/a"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def format_facts(f: Dict[str, Any]) -> str:
    """The text ``show`` prints for :func:`furiosa.artifacts.facts.model_facts`."""
    out = [f"{f['name']} {f['version'] or ''} ({f['family']}, {f['task']})"]
    if f["synthetic"]:
        out += ["!" * 100, f"!! {synthetic_warning(f)}", "!" * 100]
    out += [f["description"] or "", "", "catalog (artifacts.yaml)"]
    out += [f"  entry      {e['name']} ({e['format']}, {e['location']})" for e in f["entries"]]
    pub = f["publication"] or {}
    if pub:
        out += [f"  paper      {pub.get('title')} ({pub.get('publisher')}, {pub.get('date')})",
                f"             {pub.get('url')}", f"  authors    {', '.join(pub.get('authors') or [])}"]
    out.append(f"  license    {f['license']}")
    w = f["weights"]
    out += ["", f"weights (params.yaml: models.{f['name']}.source; base.weights: {w['mode']})"]
    source = w["source"] or {}
    for key in ("type", "filename", "member", "path", "publisher"):
        if source.get(key):
            out.append(f"  {key:10} {source[key]}")
    out += [f"  url        {url}" for url in source.get("urls") or []]
    if source.get("type") in ("url", "file"):
        pins = [algo for algo in ("sha256", "sha384", "md5") if source.get(algo)]
        for algo in pins:
            out.append(f"  {algo:10} {source[algo]}")
        if not pins:
            digest = (f"{source['sha256_prefix']}... (prefix only)" if source.get("sha256_prefix")
                      else "not pinned in params.yaml")
            out.append(f"  sha256     {digest}")
        if source.get("size"):
            out.append(f"  size       {source['size']:,} bytes")
    if source.get("train"):
        out.append("  recipe     " + ", ".join(f"{k}={v}" for k, v in source["train"].items()))
    prov = f.get("provenance") or {}
    if prov:
        stamp = prov.get("weights", "unknown")
        out.append(f"  binary says {stamp if stamp in ('official', 'train') else stamp.upper()}"
                   + (f" ({prov['error']})" if prov.get("error") else "")
                   + "".join(f", {k} {prov[k]}" for k in ("source_sha256", "fp32_md5", "params_sha256") if prov.get(k)))
    built_from = w["built_from"] or "not built"
    if built_from == "synthetic":
        built_from = "SYNTHETIC (not for deployment)"
    out.append(f"  this build {built_from}")
    out += ["", "binaries (dvc.lock)" if f["lock"] else "binaries: no dvc.lock in this workspace"]
    for b in f["binaries"]:
        out.append(f"  {b['path']:48} md5 {b['md5']}  {b['size'] or 0:>12,} bytes"
                   f"{'' if b['present'] else '  (not in the workspace)'}")
    m = f["metrics"]
    if m is None:
        out += ["", "metrics: not built here (`furiosa-artifacts build` or `dvc pull`)"]
    else:
        s, lat = m["sizes"], m["latency"]
        out += ["", f"metrics ({m['path']})",
                f"  weights    {m['weights']['source']} (deployable: {m['weights']['deployable']})"
                + ("  << SYNTHETIC" if f["synthetic"] else ""),
                f"  size       fp32 {_fmt(s['fp32_bytes'], ',')} bytes, int8 {_fmt(s['int8_bytes'], ',')} bytes "
                f"(ratio {_fmt(s['size_ratio'], '.3f')}); {_fmt(s['parameters'], ',')} parameters",
                f"  latency    fp32 {_fmt(lat['fp32_ms'], '.4g')} ms, int8 {_fmt(lat['int8_ms'], '.4g')} ms (ratio "
                f"{_fmt(lat['int8_latency_ratio'], '.3f')}; median, batch {_fmt(lat['batch'])}, "
                f"{_fmt(lat['threads'])} threads, {_fmt(lat['cpu_count'])} CPUs)",
                f"  evaluated  on {m['evaluation']['inputs']} {m['evaluation']['data']} inputs"]
        published = (f["params"] or {}).get("published")
        if published:
            out.append(f"  published  fp32 {published['metric']} {published['value']} ({published['source']})")
        accuracy = m.get("accuracy")
        if accuracy:
            out.append(f"  accuracy   on {accuracy['count']} images of {accuracy['dataset']['kind']} "
                       f"{accuracy['dataset']['images']}: " + "; ".join(
                           f"{p} " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy[p].items())
                           for p in ("fp32", "int8") if p in accuracy))
        else:
            out.append("  accuracy   not measured (no labelled dataset configured: sample photos)")
        out += [f"  {key:34} {value:.4f}" if isinstance(value, float) else f"  {key:34} {value}"
                for key, value in m["agreement"].items()]
        for key, gate in sorted(m["gates"].items()):
            sign = ">=" if key.endswith("_min") else "<="
            out.append(f"  gate {key:36} {sign} {gate.get('threshold')}: {gate.get('value')} -> {gate.get('status')}")
    t = f["tensors"]
    out += ["", f"tensors (from {t['from']})"]
    out += [f"  input   {x['name']} {x['datatype']} {shape_text(x['shape'])}" for x in t["inputs"]]
    out += [f"  output  {x['name']} {x['datatype']} {shape_text(x['shape'])}" for x in t["outputs"]]
    pre, post = f["preprocess"], f["postprocess"]
    r = pre["resize"]
    out += ["", "preprocessing (specs.yaml)",
            f"  {pre['color']}, resize {r['mode']} {'x'.join(str(v) for v in r['size'])} {r['interpolation']} "
            f"({r['backend']}), crop {'x'.join(str(v) for v in pre['crop']) if pre['crop'] else 'none'}, "
            f"x = (pixel / {pre['scale']} - {pre['mean']}) / {pre['std']}, {pre['layout']}",
            "postprocessing (specs.yaml)"]
    if post["task"] == "classification":
        out.append(f"  {post['score']}, top {post['top_k']} of {post['num_classes']} ({post['labels']})")
    else:
        out.append(f"  {post['anchors']['count']} anchors ({post['anchors']['kind']}), {post['score']} scores > "
                   f"{post['score_threshold']}, NMS IoU {post['nms_iou']}, "
                   f"{'all' if post['max_detections'] is None else 'at most ' + str(post['max_detections'])} "
                   f"detections, {post['num_classes']} classes ({post['labels']})")
    return "\n".join(out)
