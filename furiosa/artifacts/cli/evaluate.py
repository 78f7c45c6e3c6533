"""``furiosa-artifacts evaluate``: accuracy of a catalog model on an ImageNet- or COCO-style dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict

from furiosa.artifacts.cli.common import EXIT_OK, add_json_option, add_root_option, fail, positive_int, repo_root
from furiosa.artifacts.errors import ArtifactsError

PRECISIONS = ("fp32", "int8")


def format_report(name: str, report: Dict[str, Any]) -> str:
    """The human-readable table of an evaluation (``AccuracyReport.to_dict()``)."""
    dataset = report["dataset"]
    lines = [f"{name} on {report['count']} images of {dataset['kind']} dataset {dataset['images']}"]
    for precision in PRECISIONS:
        if precision in report:
            values = ", ".join(f"{k} {v * 100:.3f}%" if k.startswith("top") else f"{k} {v:.4f}"
                               for k, v in report[precision].items())
            lines.append(f"  {precision}: {values}")
    if all(p in report for p in PRECISIONS):
        key = next(iter(report["fp32"]))
        if report["fp32"][key] > 0:
            lines.append(f"  int8/fp32 {key}: {report['int8'][key] / report['fp32'][key]:.4f} "
                         "(MLPerf's rule: >= 0.99)")
    return "\n".join(lines)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from furiosa.artifacts.accuracy import evaluate_coco, evaluate_imagenet
    from furiosa.artifacts.catalog.entries import read_entries
    from furiosa.artifacts.facts import code_entry
    from furiosa.artifacts.loader import load_from_repo

    if args.coco is not None and args.annotations is None:
        args.parser.error("--coco IMAGES_DIR needs --annotations FILE (an instances_*.json)")
    if args.imagenet is None and args.coco is None:
        args.parser.error("give a dataset: --imagenet DIR [--val-map FILE] or --coco IMAGES_DIR --annotations FILE")
    if args.val_map is not None and args.imagenet is None:
        args.parser.error("--val-map goes with --imagenet")
    if args.skip_empty_images and args.coco is None:
        args.parser.error("--skip-empty-images goes with --coco")
    root = repo_root(args.root)
    precisions = PRECISIONS if args.precision == "all" else (args.precision,)
    try:
        entry, fixed = code_entry(read_entries(root, validate=False), args.name)
        if fixed and args.precision != fixed:
            args.parser.error(f"{args.name} is the {fixed} binary only: pass --precision {fixed}, or use {entry.name}")
        models = {p: load_from_repo(entry.name, precision=p, root=root) for p in precisions}
        if any(m.synthetic for m in models.values()):
            print(f"warning: {entry.name} was built from synthetic (random) weights: its accuracy means nothing",
                  file=sys.stderr)
        progress = not args.no_progress
        if args.imagenet is not None:
            report = evaluate_imagenet(models, Path(args.imagenet), val_map=args.val_map, limit=args.limit,
                                       batch_size=args.batch_size, progress=progress)
        else:
            report = evaluate_coco(models, Path(args.coco), Path(args.annotations), limit=args.limit,
                                   skip_empty=args.skip_empty_images, batch_size=args.batch_size,
                                   progress=progress)
    except ArtifactsError as exc:
        return fail(str(exc), as_json=args.json)
    result = report.to_dict()
    print(json.dumps(result, indent=2) if args.json else format_report(entry.name, result))
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate", help="accuracy on ImageNet (top-1/top-5) or COCO (mAP) by MLPerf's rule",
        description="Run a catalog model end to end (its preprocessing, ONNX Runtime, its postprocessing) over a "
        "validation set and report top-1/top-5 (classifiers; ImageNet-style folder + MLPerf val_map.txt, "
        "'file label' per line, labels 0..999) or COCO mAP@[.5:.95] and mAP@.5 by pycocotools (detectors; "
        "images folder + instances_*.json; boxes in original pixels, class indices mapped to COCO category ids). "
        "With --precision all, fp32 and int8 see the same images and the int8/fp32 ratio is shown (MLPerf: "
        ">= 0.99). Progress goes to stderr.",
        epilog="Example: furiosa-artifacts evaluate MLCommonsResNet50 --imagenet /data/imagenet/val --precision all")
    parser.add_argument("name", metavar="NAME", help="catalog name (case and punctuation are ignored)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--imagenet", metavar="DIR", help="ImageNet-style image folder")
    data.add_argument("--coco", metavar="IMAGES_DIR", help="COCO image folder (e.g. val2017)")
    parser.add_argument("--val-map", type=Path, metavar="FILE", help="MLPerf val_map.txt (default: DIR/val_map.txt)")
    parser.add_argument("--annotations", type=Path, metavar="FILE", help="COCO instances_*.json (with --coco)")
    parser.add_argument("--precision", choices=(*PRECISIONS, "all"), default="all",
                        help="which binary to score (default: all = fp32 and int8)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="score only the first N images")
    parser.add_argument("--skip-empty-images", action="store_true",
                        help="COCO: leave out images without annotations (MLPerf's SSD-ResNet34 loader does)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="images per run (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_option(parser, help='machine-readable: {"<precision>": {"top1", "top5"} or {"map", "map50"}, '
                    '"dataset", "count"}')
    add_root_option(parser)
    parser.set_defaults(func=_cmd_evaluate, parser=parser)
