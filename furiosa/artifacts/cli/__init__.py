"""The ``furiosa-artifacts`` command line.

One module per command group, each with a ``register(subparsers)`` that adds its subcommands (every one
sets ``func``, the handler returning the exit code); :mod:`furiosa.artifacts.cli.common` holds what they
share (exit codes, the error emitter, ``--json`` and ``--root``).

Exit codes: 0 success; 1 problems found (lint/verify) or a command failed; 2 bad usage or unreadable
input.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from furiosa.artifacts.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from furiosa.artifacts.errors import ArtifactsError

__all__ = ["build_parser", "main"]


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
    from furiosa.artifacts.cli import build, cache, client, convert, docs, evaluate, lint, registries, storage

    parser = argparse.ArgumentParser(
        prog="furiosa-artifacts",
        description="A reproducible catalog of deployable vision models (ONNX fp32 + INT8).",
        epilog="Exit codes: 0 ok, 1 problems found or command failed, 2 bad usage or unreadable input.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (lint, client, evaluate, storage, registries, convert, cache, build, docs):  # the help's order
        group.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArtifactsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `furiosa-artifacts list --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
