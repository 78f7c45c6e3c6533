"""The ``furiosa-artifacts`` command line.

Exit codes: 0 success; 1 problems found (lint/verify) or a command failed; 2 bad usage or
unreadable input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from furiosa.artifacts.errors import ArtifactsError, CatalogReadError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _cmd_lint(args: argparse.Namespace) -> int:
    from furiosa.artifacts.catalog.yaml_io import printable
    from furiosa.artifacts.catalog.lint import lint_catalog, unbuilt_binaries

    try:
        problems = lint_catalog(Path(args.path))
    except CatalogReadError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "problems": []}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"ok": not problems, "problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            print(problem)
        if problems:
            print(f"{len(problems)} problem(s) found", file=sys.stderr)
        unbuilt = unbuilt_binaries(Path(args.path))
        if unbuilt:
            listed = ", ".join(unbuilt[:5]) + (f", and {len(unbuilt) - 5} more" if len(unbuilt) > 5 else "")
            print(f"note: {len(unbuilt)} binaries are pipeline outputs not built here yet ({printable(listed)}): "
                  "run `furiosa-artifacts build` or `dvc pull`", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def _cmd_docs(args: argparse.Namespace) -> int:
    from furiosa.artifacts.docs import stale_docs, update_docs

    root = Path(args.root)
    if args.check:
        stale = stale_docs(root)
        for path in stale:
            print(f"{path}: stale generated content: run `furiosa-artifacts docs`")
        return EXIT_PROBLEMS if stale else EXIT_OK
    for path in update_docs(root):
        print(f"updated {path}")
    return EXIT_OK


def _cmd_build(args: argparse.Namespace) -> int:
    from furiosa.artifacts.pipeline.build import build, format_outcomes, format_summary

    result = build(Path(args.root), weights=args.weights, models=args.model, push=not args.no_push)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_summary(result["summary"]))
        print(format_outcomes(result["models"]))
    not_built = [o["model"] for o in result["models"] if o["status"] != "built"]
    if not_built and not args.json:
        print(f"error: not built: {', '.join(not_built)} (reasons above)", file=sys.stderr)
    return EXIT_PROBLEMS if not_built else EXIT_OK


def _version_text() -> str:
    """``furiosa-artifacts X.Y.Z (catalog: ...)``: the package and which catalog data it reads."""
    from furiosa.artifacts import __version__
    from furiosa.artifacts.catalog.bundle import read_manifest
    from furiosa.artifacts.layout import is_bundle, package_repo_root

    root = package_repo_root()
    if is_bundle(root):
        lock = (read_manifest() or {}).get("dvc.lock")
        where = f"bundled at build time; dvc.lock sha256 {lock[:12]}" if lock else "bundled at build time; no dvc.lock"
    else:
        where = f"checkout {root}"
    return f"furiosa-artifacts {__version__} (catalog: {where})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="furiosa-artifacts",
        description="A reproducible catalog of deployable vision models (ONNX fp32 + INT8).",
        epilog="Exit codes: 0 ok, 1 problems found or command failed, 2 bad usage or unreadable input.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    lint = sub.add_parser("lint", help="check artifacts.yaml against the schema and the semantic rules",
                          description="Check a catalog: JSON Schema plus semantic rules. Prints "
                          "file:line:column: message for every problem.")
    lint.add_argument("path", nargs="?", default="artifacts.yaml",
                      help="catalog file or the directory holding it (default: ./artifacts.yaml)")
    lint.add_argument("--json", action="store_true", help="machine-readable output")
    lint.set_defaults(func=_cmd_lint)

    from furiosa.artifacts.cli_cache import register as register_cache
    from furiosa.artifacts.cli_client import register as register_client
    from furiosa.artifacts.cli_convert import register as register_convert
    from furiosa.artifacts.cli_evaluate import register as register_evaluate
    from furiosa.artifacts.cli_registries import register as register_registries
    from furiosa.artifacts.cli_storage import register as register_storage

    register_client(sub)
    register_evaluate(sub)
    register_storage(sub)
    register_registries(sub)
    register_convert(sub)
    register_cache(sub)

    build = sub.add_parser(
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
    build.add_argument("--root", default=".", help="repository root (default: .)")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.set_defaults(func=_cmd_build)

    docs = sub.add_parser("docs", help="regenerate generated docs (README catalog table, model cards)",
                          description="Regenerate the README's catalog table from artifacts.yaml and the model "
                          "cards docs/models/<name>.md from the catalog, params, specs and this workspace's "
                          "metrics (the build runs this too).")
    docs.add_argument("--root", default=".", help="repository root (default: .)")
    docs.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    docs.set_defaults(func=_cmd_docs)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArtifactsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `furiosa-artifacts list --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
