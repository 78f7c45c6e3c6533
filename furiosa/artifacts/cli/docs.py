"""``furiosa-artifacts docs``: regenerate (or ``--check``) the README's catalog table and the model cards."""

from __future__ import annotations

import argparse

from furiosa.artifacts.cli.common import EXIT_FAILED, EXIT_OK, add_root_option, repo_root


def _cmd_docs(args: argparse.Namespace) -> int:
    from furiosa.artifacts.docs import stale_docs, update_docs

    root = repo_root(args.root)
    if args.check:
        stale = stale_docs(root)
        for path in stale:
            print(f"{path}: stale generated content: run `furiosa-artifacts docs`")
        return EXIT_FAILED if stale else EXIT_OK
    for path in update_docs(root):
        print(f"updated {path}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``docs`` subcommand."""
    docs = subparsers.add_parser("docs", help="regenerate generated docs (README catalog table, model cards)",
                                 description="Regenerate the README's catalog table from artifacts.yaml and the "
                                 "model cards docs/models/<name>.md from the catalog, params, specs and this "
                                 "workspace's metrics (the build runs this too).")
    add_root_option(docs, default=".")
    docs.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    docs.set_defaults(func=_cmd_docs)
