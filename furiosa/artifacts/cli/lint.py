"""``furiosa-artifacts lint``: a catalog against the JSON Schema and the semantic rules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from furiosa.artifacts.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_json_option, fail
from furiosa.artifacts.errors import CatalogReadError


def _cmd_lint(args: argparse.Namespace) -> int:
    from furiosa.artifacts.catalog.yaml_io import printable
    from furiosa.artifacts.catalog.lint import lint_catalog, unbuilt_binaries

    try:
        problems = lint_catalog(Path(args.path))
    except CatalogReadError as exc:
        return fail(str(exc), as_json=args.json, code=EXIT_USAGE, fields={"problems": []})
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
    return EXIT_FAILED if problems else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``lint`` subcommand."""
    lint = subparsers.add_parser("lint", help="check artifacts.yaml against the schema and the semantic rules",
                                 description="Check a catalog: JSON Schema plus semantic rules. Prints "
                                 "file:line:column: message for every problem.")
    lint.add_argument("path", nargs="?", default="artifacts.yaml",
                      help="catalog file or the directory holding it (default: ./artifacts.yaml)")
    add_json_option(lint)
    lint.set_defaults(func=_cmd_lint)
