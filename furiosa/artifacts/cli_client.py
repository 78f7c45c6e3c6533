"""``furiosa-artifacts list | show | verify | predict``: the client subcommands.

:func:`register` adds them to the main parser's subparsers; each handler returns the exit code
(0 ok, 1 failure or problems found; argparse exits 2 on bad usage) and prints errors as
``error: ...`` on stderr (or ``{"ok": false, "error": ...}`` with ``--json``).

Every subcommand reads the repository given by ``--root``; by default the current directory when it
holds an ``artifacts.yaml``, else the repository this package was installed from (where
``furiosa.artifacts.load`` looks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from furiosa.artifacts.catalog.yaml_io import printable, printable_lines
from furiosa.artifacts.storage.remote import redact
from furiosa.artifacts.errors import ArtifactsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TASKS = ("classification", "detection")
# box colours of detections, by COCO category id (tab10, then a few more distinct ones)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (255, 215, 0), (0, 128, 128))
MIN_DRAW_SIDE = 256  # images smaller than this are scaled up (nearest) before drawing, so labels stay legible


def repo_root(value: Optional[str]) -> Path:
    """``--root``, else ``.`` when it holds artifacts.yaml, else the repository this package comes from."""
    from furiosa.artifacts.catalog.entries import CATALOG_FILE
    from furiosa.artifacts.layout import package_repo_root

    if value is not None:
        return Path(value)
    return Path(".") if Path(CATALOG_FILE).is_file() else package_repo_root()


def exit_code(exc: BaseException) -> int:
    """2 when an input file (dvc.lock, .dvc/config) is unreadable, else 1."""
    from furiosa.artifacts.errors import UnreadableFileError

    return EXIT_USAGE if isinstance(exc, UnreadableFileError) else EXIT_FAILED


def _bounded(message: str, limit: int = 4000) -> str:
    """``message`` cut at ``limit`` characters: an error never floods the terminal with a hostile value."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message) - limit} more characters)"


def _fail(message: str, as_json: bool, code: int = 1) -> int:
    message = _bounded(redact(message))
    if as_json:
        print(json.dumps({"ok": False, "error": printable(message)}, indent=2))
    else:
        print(f"error: {printable(message)}", file=sys.stderr)
    return code


def _warn_synthetic(facts_or_name: Any) -> None:
    from furiosa.artifacts.cards import synthetic_warning

    facts = facts_or_name if isinstance(facts_or_name, dict) else {"name": facts_or_name, "weights": {}}
    print(f"warning: {printable(synthetic_warning(facts))}", file=sys.stderr)


# --------------------------------------------------------------------------- list


def list_rows(root: Path, pattern: Optional[str], task: Optional[str]) -> List[Dict[str, Any]]:
    """One row per matching code entry: name, family, version, task, input, built binaries, synthetic."""
    import furiosa.artifacts as fa
    from furiosa.artifacts.binaries import local_binary, model_provenance
    from furiosa.artifacts.cards import read_model_spec
    from furiosa.artifacts.catalog.entries import find_entry, read_entries
    from furiosa.artifacts.layout import binary_relpath

    entries = read_entries(root, validate=False)
    rows = []
    for name in fa.list_models(pattern, root=root):
        entry, spec = find_entry(entries, name), read_model_spec(root, name)
        if task is not None and spec.task != task:
            continue
        built = {p: local_binary(root, binary_relpath(name, p)) is not None for p in ("int8", "fp32")}
        kind = model_provenance(root, name).kind if any(built.values()) else None
        rows.append({"name": name, "family": entry.family, "version": entry.version, "task": spec.task,
                     "input": f"{spec.input.name} {'x'.join(str(d) for d in spec.input.shape)} {spec.input.layout}",
                     "int8": built["int8"], "fp32": built["fp32"], "weights": kind,
                     "synthetic": None if kind is None else kind == "synthetic"})
    return rows


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = list_rows(repo_root(args.root), args.pattern, args.task)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        def mark(kind: Optional[str]) -> str:  # fail closed: anything not proven real is shouted
            return "-" if kind is None else (kind if kind in ("official", "train") else kind.upper())

        table = [["name", "family", "version", "task", "input", "int8", "weights"]]
        table += [[r["name"], r["family"], r["version"] or "", r["task"], r["input"], "local" if r["int8"] else "-",
                   mark(r["weights"])] for r in rows]
        if rows:
            print(printable_lines(_table(table)))
    if not rows:
        what = " and ".join(x for x in (f"pattern {args.pattern!r}" if args.pattern else "",
                                         f"task {args.task}" if args.task else "") if x)
        print(f"no model matches {what}: `furiosa-artifacts list` shows them all", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# --------------------------------------------------------------------------- show


def _shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _fmt(value: Any, spec: str = "") -> str:
    """``format(value, spec)``, or "n/a" when metrics.json did not hold a number there."""
    if value is None:
        return "n/a"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def format_facts(f: Dict[str, Any]) -> str:
    """The text ``show`` prints for :func:`furiosa.artifacts.cards.model_facts`."""
    from furiosa.artifacts.cards import synthetic_warning

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
    out += [f"  input   {x['name']} {x['datatype']} {_shape(x['shape'])}" for x in t["inputs"]]
    out += [f"  output  {x['name']} {x['datatype']} {_shape(x['shape'])}" for x in t["outputs"]]
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


def _cmd_show(args: argparse.Namespace) -> int:
    from furiosa.artifacts.cards import model_facts

    try:
        facts = model_facts(repo_root(args.root), args.name)
    except ArtifactsError as exc:
        return _fail(str(exc), args.json, exit_code(exc))
    if facts["synthetic"]:
        _warn_synthetic(facts)
    elif facts["built"] and facts["provenance"].get("weights") not in ("official", "train"):
        print(f"warning: {facts['name']}: provenance UNKNOWN ({printable(str(facts['provenance'].get('error')))})",
              file=sys.stderr)
    print(json.dumps(facts, indent=2) if args.json else printable_lines(format_facts(facts)))
    return EXIT_OK


# --------------------------------------------------------------------------- verify


def _cmd_verify(args: argparse.Namespace) -> int:
    from furiosa.artifacts.verify import reports_json, verify_models

    try:
        reports = verify_models(repo_root(args.root), args.names)
    except ArtifactsError as exc:
        return _fail(str(exc), args.json, exit_code(exc))
    problems = sum(len(r.problems) for r in reports)
    if args.json:
        print(reports_json(reports))
    else:
        for report in reports:
            state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
            weights = report.weights if report.weights in ("official", "train") else report.weights.upper()
            print(f"{report.model}: {state} ({len(report.checked)} checks; weights {weights})")
            for problem in report.problems:
                print(f"  {printable(str(problem))}")
            for note in report.skipped:
                print(f"  skipped {printable(str(note))}", file=sys.stderr)
        if problems:
            print(f"{problems} problem(s) in {sum(not r.ok for r in reports)} of {len(reports)} model(s)",
                  file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


# --------------------------------------------------------------------------- predict


def predict_one(model: Any, image: str, *, top_k: Optional[int]) -> List[Any]:
    """Results (Classification or Detection, best first) of ``model`` on one image path."""
    from furiosa.artifacts.vision.postprocess import classify

    tensor, contexts = model.preprocess([image])
    session = model.session
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {session.get_inputs()[0].name: tensor})))
    if model.spec.task == "classification":
        return classify(model.output_by_name(outputs, model.spec.output_names[0]), model.spec, top_k=top_k)[0]
    detections = model.postprocess(outputs, contexts)[0]
    return detections[:top_k] if top_k else detections


def box_color(category_id: int) -> tuple:
    """The RGB colour detections of ``category_id`` are drawn in."""
    return PALETTE[category_id % len(PALETTE)]


def annotate(image: str, results: Sequence[Any], task: str) -> Any:
    """The image (EXIF-oriented RGB, scaled up when tiny) with boxes and labels drawn, as a PIL image.

    Boxes are clipped to the image; the best detection is drawn last, so it is on top.
    """
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    with Image.open(image) as raw:
        canvas = ImageOps.exif_transpose(raw).convert("RGB")
    scale = max(1, -(-MIN_DRAW_SIDE // max(canvas.size)))
    if scale > 1:
        canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.Resampling.NEAREST)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    width, height = canvas.size
    line = max(2, round(min(width, height) / 200))

    def label(x: float, y: float, text: str, color: tuple) -> None:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 4, bottom - top + 4
        x = min(max(0, x), max(0, width - w))
        y = y - h if y - h >= 0 else min(y, max(0, height - h))
        draw.rectangle((x, y, x + w, y + h), fill=color)
        draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)

    if task == "classification":
        for rank, r in enumerate(results):
            label(0, rank * 16 + 16, f"{rank + 1}. {r.label} {r.score:.2f}", (0, 0, 0))
        return canvas
    for det in reversed(results):
        x1, y1, x2, y2 = (v * scale for v in det.box)
        x1, x2 = max(0.0, min(x1, width - 1.0)), max(0.0, min(x2, width - 1.0))
        y1, y2 = max(0.0, min(y1, height - 1.0)), max(0.0, min(y2, height - 1.0))
        if x2 <= x1 or y2 <= y1:
            continue  # entirely outside the image
        color = box_color(det.category_id)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        label(x1, y1, f"{det.category_name} {det.score:.2f}", color)
    return canvas


WARNING_BANNER = (200, 0, 0)  # red


def mark_provenance(canvas: Any, kind: str) -> Any:
    """Draw a red banner across the bottom of ``canvas`` saying the weights are ``kind`` (synthetic/unknown)."""
    from PIL import ImageDraw, ImageFont

    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    text = ("SYNTHETIC WEIGHTS: meaningless predictions" if kind == "synthetic"
            else f"{kind.upper()} PROVENANCE: not proven real weights")
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    height = bottom - top + 6
    draw.rectangle((0, canvas.height - height, canvas.width, canvas.height), fill=WARNING_BANNER)
    draw.text((3 - left, canvas.height - height + 3 - top), text, fill=(255, 255, 255), font=font)
    return canvas


def _out_paths(images: Sequence[str], out: Optional[str]) -> List[Optional[Path]]:
    """Where each annotated image goes: ``out`` itself for one image (or inside it when it is a
    directory), else ``out/<stem>.png`` (``<stem>-<n>.png`` when two stems collide)."""
    if out is None:
        return [None] * len(images)
    target = Path(out)
    if len(images) == 1 and not target.is_dir():
        return [target]
    paths, used = [], set()
    for index, image in enumerate(images):
        stem = Path(image).stem or f"image{index}"
        name = f"{stem}.png" if stem not in used else f"{stem}-{index}.png"
        used.add(stem)
        paths.append(target / name)
    return paths


def _result_dict(result: Any) -> Dict[str, Any]:
    from dataclasses import asdict

    data = asdict(result)
    if "box" in data:
        data["box"] = [round(v, 2) for v in data["box"]]
    data["score"] = round(data["score"], 6)
    return data


def _print_results(image: str, task: str, results: Sequence[Any], out: Optional[Path]) -> None:
    where = f" -> {out}" if out else ""
    if task == "classification":
        print(f"{image}:{where}")
        for rank, r in enumerate(results, start=1):
            print(f"  {rank}. {r.label} ({r.label_id})  {r.score:.4f}")
        return
    print(f"{image}: {len(results)} detection(s){where}")
    for d in results:
        box = ", ".join(f"{v:.1f}" for v in d.box)
        print(f"  {d.category_name} ({d.category_id})  {d.score:.3f}  [{box}]")


def _cmd_predict(args: argparse.Namespace) -> int:
    from furiosa.artifacts.cards import code_entry
    from furiosa.artifacts.catalog.entries import read_entries
    import warnings

    from furiosa.artifacts.errors import ProvenanceWarning
    from furiosa.artifacts.loader import load_from_repo

    root = repo_root(args.root)
    if args.out and len(args.images) > 1 and Path(args.out).is_file():
        args.parser.error(f"--out {args.out} is a file: with several images --out is a directory")
    try:
        entry, fixed = code_entry(read_entries(root, validate=False), args.name)
        if fixed and args.precision and args.precision != fixed:
            args.parser.error(f"{args.name} is the {fixed} binary only: drop --precision, or use {entry.name}")
        with warnings.catch_warnings():  # the CLI says it in its own words below
            warnings.simplefilter("ignore", ProvenanceWarning)
            model = load_from_repo(entry.name, precision=args.precision or fixed or "int8", root=root)
        model.session  # noqa: B018 - a corrupt binary or one with external data fails here, once
    except ArtifactsError as exc:
        return _fail(str(exc), args.json, exit_code(exc))
    if model.synthetic:
        _warn_synthetic(model.name)
    elif not model.deployable:
        print(f"warning: {model.name}: provenance UNKNOWN ({model.provenance.error}); nothing proves these "
              "predictions come from real weights", file=sys.stderr)
    from tqdm import tqdm

    task, rows, errors = model.spec.task, [], []
    outs = _out_paths(args.images, args.out)
    progress = tqdm(list(zip(args.images, outs)), desc=model.name, unit="image", file=sys.stderr,
                    disable=True if len(args.images) < 2 else None)
    for image, out in progress:
        try:
            results = predict_one(model, image, top_k=args.top_k)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                canvas = annotate(image, results, task)
                if not model.deployable:
                    mark_provenance(canvas, model.weights)
                canvas.save(out, format="PNG")
        except (ArtifactsError, OSError) as exc:  # ImageError, or the binary's outputs unlike its spec
            errors.append({"image": image, "error": str(exc)})
            progress.write(f"error: {image}: {exc}", file=sys.stderr)
            continue
        rows.append({"image": image, "out": str(out) if out else None,
                     ("classifications" if task == "classification" else "detections"):
                         [_result_dict(r) for r in results]})
        if not args.json:
            progress.clear()
            _print_results(image, task, results, out)
    if args.json:
        print(json.dumps({"ok": not errors, "model": model.name, "precision": model.precision, "task": task,
                          "synthetic": model.synthetic, "weights": model.weights, "results": rows, "errors": errors}, indent=2))
    return EXIT_FAILED if errors else EXIT_OK


# --------------------------------------------------------------------------- parser


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _root_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="repository root (default: . when it holds artifacts.yaml, else the "
                        "repository this package is installed from)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``list``, ``show``, ``verify`` and ``predict`` subcommands (each sets ``func``)."""
    ls = subparsers.add_parser(
        "list", help="list the catalog's models (name, task, input, built?, synthetic?)",
        description="List the models with pre/postprocessing (code entries). PATTERN is a shell wildcard matched "
        "case- and punctuation-insensitively ('*ssd*', 'mlcommons-resnet*'). Exit 1 when nothing matches.")
    ls.add_argument("pattern", nargs="?", metavar="PATTERN", help="wildcard over names (default: all)")
    ls.add_argument("--task", choices=TASKS, help="only classifiers or only detectors")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    _root_option(ls)
    ls.set_defaults(func=_cmd_list)

    show = subparsers.add_parser(
        "show", help="everything known about one model: catalog, recipe, hashes, metrics, tensors",
        description="Print a model's catalog entry, its params.yaml recipe (source weights, sha256, urls), the md5 "
        "and size dvc.lock records for each built file, its metrics (sizes, latency, int8 agreement, gates, weights "
        "source; synthetic weights are flagged), its tensors (from the built ONNX, else specs.yaml), its pre/"
        "postprocessing and its provenance. Names match loosely.")
    show.add_argument("name", metavar="NAME", help="catalog name (case and punctuation are ignored)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    _root_option(show)
    show.set_defaults(func=_cmd_show)

    verify = subparsers.add_parser(
        "verify", help="check built binaries against dvc.lock, onnx.checker, metrics.json and specs.yaml",
        description="For each model (default: every built one): recompute the md5 and size of every file dvc.lock "
        "records for it, run onnx.checker's full check, recompute the parameter count and file sizes and compare "
        "them with metrics.json, and check the graph inputs/outputs against specs.yaml. Every problem is "
        "reported; exit 1 if there is any, 0 when all is clean.")
    verify.add_argument("names", nargs="*", metavar="NAME", help="catalog names (default: every built model)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    _root_option(verify)
    verify.set_defaults(func=_cmd_verify)

    predict = subparsers.add_parser(
        "predict", help="run a model on images: top-k labels or boxes, optionally drawn onto a PNG",
        description="Run a catalog model (int8 by default) on image files with its exact pre/postprocessing and "
        "print the top-k classes or the detections (boxes x1, y1, x2, y2 in image pixels). --out draws them: a PNG "
        "file for one image, a directory for several. Models built from synthetic weights give meaningless "
        "predictions (a warning says so). Exit 1 if any image fails.")
    predict.add_argument("name", metavar="NAME", help="catalog name (case and punctuation are ignored)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (anything Pillow reads)")
    predict.add_argument("--top-k", type=positive_int, metavar="K",
                         help="classes per image (default: the model's) or best K detections (default: all)")
    predict.add_argument("--precision", choices=("int8", "fp32"), help="which binary (default: int8)")
    predict.add_argument("--out", metavar="OUT", help="annotated PNG (one image) or directory (several images)")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    _root_option(predict)
    predict.set_defaults(func=_cmd_predict, parser=predict)
