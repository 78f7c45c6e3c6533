"""``furiosa-artifacts list | show | verify | predict``: the client subcommands.

:func:`register` adds them to the main parser's subparsers; each handler returns the exit code
(0 ok, 1 failure or problems found, 2 an unreadable input file; argparse exits 2 on bad usage) and prints
errors as ``error: ...`` on stderr (or ``{"ok": false, "error": ...}`` with ``--json``). ``show`` prints the
facts of :mod:`furiosa.artifacts.facts` as :mod:`furiosa.artifacts.render.text` writes them; ``predict --out``
draws with :mod:`furiosa.artifacts.vision.draw`.

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
from furiosa.artifacts.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_json_option,
    add_root_option,
    exit_code,
    fail,
    positive_int,
    repo_root,
)
from furiosa.artifacts.errors import ArtifactsError

TASKS = ("classification", "detection")


def _warn_synthetic(facts_or_name: Any) -> None:
    from furiosa.artifacts.render.text import synthetic_warning

    facts = facts_or_name if isinstance(facts_or_name, dict) else {"name": facts_or_name, "weights": {}}
    print(f"warning: {printable(synthetic_warning(facts))}", file=sys.stderr)


# --------------------------------------------------------------------------- list


def list_rows(root: Path, pattern: Optional[str], task: Optional[str]) -> List[Dict[str, Any]]:
    """One row per matching code entry: name, family, version, task, input, built binaries, synthetic."""
    import furiosa.artifacts as fa
    from furiosa.artifacts.binaries import local_binary, model_provenance
    from furiosa.artifacts.catalog.entries import find_entry, read_entries
    from furiosa.artifacts.facts import read_model_spec
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


def _cmd_show(args: argparse.Namespace) -> int:
    from furiosa.artifacts.facts import model_facts
    from furiosa.artifacts.render.text import format_facts

    try:
        facts = model_facts(repo_root(args.root), args.name)
    except ArtifactsError as exc:
        return fail(str(exc), as_json=args.json, code=exit_code(exc), sanitize=True)
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
        return fail(str(exc), as_json=args.json, code=exit_code(exc), sanitize=True)
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
    outputs = model.infer(tensor)
    if model.spec.task == "classification":
        return classify(model.output_by_name(outputs, model.spec.output_names[0]), model.spec, top_k=top_k)[0]
    detections = model.postprocess(outputs, contexts)[0]
    return detections[:top_k] if top_k else detections


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
    import warnings

    from furiosa.artifacts.catalog.entries import read_entries
    from furiosa.artifacts.errors import ProvenanceWarning
    from furiosa.artifacts.facts import code_entry
    from furiosa.artifacts.loader import load_from_repo
    from furiosa.artifacts.vision.draw import annotate, mark_provenance

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
        return fail(str(exc), as_json=args.json, code=exit_code(exc), sanitize=True)
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``list``, ``show``, ``verify`` and ``predict`` subcommands (each sets ``func``)."""
    ls = subparsers.add_parser(
        "list", help="list the catalog's models (name, task, input, built?, synthetic?)",
        description="List the models with pre/postprocessing (code entries). PATTERN is a shell wildcard matched "
        "case- and punctuation-insensitively ('*ssd*', 'mlcommons-resnet*'). Exit 1 when nothing matches.")
    ls.add_argument("pattern", nargs="?", metavar="PATTERN", help="wildcard over names (default: all)")
    ls.add_argument("--task", choices=TASKS, help="only classifiers or only detectors")
    add_json_option(ls)
    add_root_option(ls)
    ls.set_defaults(func=_cmd_list)

    show = subparsers.add_parser(
        "show", help="everything known about one model: catalog, recipe, hashes, metrics, tensors",
        description="Print a model's catalog entry, its params.yaml recipe (source weights, sha256, urls), the md5 "
        "and size dvc.lock records for each built file, its metrics (sizes, latency, int8 agreement, gates, weights "
        "source; synthetic weights are flagged), its tensors (from the built ONNX, else specs.yaml), its pre/"
        "postprocessing and its provenance. Names match loosely.")
    show.add_argument("name", metavar="NAME", help="catalog name (case and punctuation are ignored)")
    add_json_option(show)
    add_root_option(show)
    show.set_defaults(func=_cmd_show)

    verify = subparsers.add_parser(
        "verify", help="check built binaries against dvc.lock, onnx.checker, metrics.json and specs.yaml",
        description="For each model (default: every built one): recompute the md5 and size of every file dvc.lock "
        "records for it, run onnx.checker's full check, recompute the parameter count and file sizes and compare "
        "them with metrics.json, and check the graph inputs/outputs against specs.yaml. Every problem is "
        "reported; exit 1 if there is any, 0 when all is clean.")
    verify.add_argument("names", nargs="*", metavar="NAME", help="catalog names (default: every built model)")
    add_json_option(verify)
    add_root_option(verify)
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
    add_json_option(predict)
    add_root_option(predict)
    predict.set_defaults(func=_cmd_predict, parser=predict)
