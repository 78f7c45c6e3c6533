"""``furiosa-artifacts build``: the DVC pipeline (dvc repro + dvc push), every model reported."""

from __future__ import annotations

import argparse
import json
import sys

from furiosa.artifacts.cli.common import EXIT_FAILED, EXIT_OK, add_json_option, add_root_option, repo_root


def _cmd_build(args: argparse.Namespace) -> int:
    from furiosa.artifacts.pipeline.build import build, format_outcomes, format_summary

    result = build(repo_root(args.root), weights=args.weights, models=args.model, push=not args.no_push)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_summary(result["summary"]))
        print(format_outcomes(result["models"]))
    not_built = [o["model"] for o in result["models"] if o["status"] != "built"]
    if not_built and not args.json:
        print(f"error: not built: {', '.join(not_built)} (reasons above)", file=sys.stderr)
    return EXIT_FAILED if not_built else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``build`` subcommand."""
    build = subparsers.add_parser(
        "build", help="rebuild the binaries with the DVC pipeline (dvc repro + dvc push)",
        description="Run the DVC pipeline (weights -> export -> calibrate -> quantize -> evaluate) and push the "
        "binaries to the default DVC remote. --weights synthetic builds the four seed models from seeded random "
        "weights for offline use (marked synthetic, not for deployment); --weights official downloads the official "
        "weights (each pinned by its publisher's checksum, read by a safe reader for its format), builds every "
        "model it can and reports each one: built, refused (with the fix) or failed; exit 1 if any was not built.")
    build.add_argument("--weights", choices=("official", "synthetic"),
                       help="weight mode, written to the git-ignored params.local.yaml (params.yaml is never "
                       "rewritten; default: keep the current mode)")
    build.add_argument("--model", action="append", default=[], metavar="NAME",
                       help="build only this model (repeatable; default: all)")
    build.add_argument("--no-push", action="store_true", help="do not push to the DVC remote")
    add_root_option(build, default=".")
    add_json_option(build, help="print the summary as JSON")
    build.set_defaults(func=_cmd_build)
