"""``furiosa-artifacts pull`` and ``furiosa-artifacts publish``: the storage subcommands.

:func:`register` adds them to the main parser's subparsers; each handler returns the exit
code (0 ok, 1 failure, 2 an unreadable dvc.lock or .dvc/config) and prints errors as ``error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from furiosa.artifacts.catalog.yaml_io import printable
from furiosa.artifacts.storage.remote import redact
from furiosa.artifacts.errors import ArtifactsError, UnreadableFileError
from furiosa.artifacts.storage.resolver import DEFAULT_JOBS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PRECISION_CHOICES = ("int8", "fp32", "all")


def exit_code(exc: BaseException) -> int:
    """2 when an input file (dvc.lock, .dvc/config) is unreadable, else 1."""
    return EXIT_USAGE if isinstance(exc, UnreadableFileError) else EXIT_FAILED


def _bounded(message: str, limit: int = 4000) -> str:
    """``message`` cut at ``limit`` characters: an error never floods the terminal with a hostile value."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message) - limit} more characters)"


def _fail(message: str, as_json: bool, code: int = EXIT_FAILED) -> int:
    message = _bounded(redact(message))
    if as_json:
        print(json.dumps({"ok": False, "error": printable(message), "resolved": [], "failed": []}, indent=2))
    else:
        print(f"error: {printable(message)}", file=sys.stderr)
    return code


def _binaries(entry, precision: str | None) -> list[tuple[str, str]]:
    """``(relpath, precision)`` of the binaries a catalog entry stands for.

    A ``code`` entry has one per precision (``models/<name>/<precision>.onnx``; int8 by default);
    an ``onnx``/``tflite`` entry is the one file at its ``location``.

    Raises:
        ModelNotFoundError: a file entry was asked for another precision than its own.
    """
    from furiosa.artifacts.errors import ModelNotFoundError
    from furiosa.artifacts.layout import PRECISIONS, binary_relpath

    if entry.format == "code":
        precisions = PRECISIONS if precision == "all" else (precision or "int8",)
        return [(binary_relpath(entry.name, p), p) for p in precisions]
    own = Path(entry.location).stem
    label = own if own in PRECISIONS else entry.format
    if precision not in (None, "all", own):
        raise ModelNotFoundError(
            f"catalog entry {entry.name!r} is the single {label} binary {entry.location}; drop --precision, "
            f"or ask for the model's code entry with --precision {precision}"
        )
    return [(entry.location, label)]


def _entry(entries, name: str, precision: str | None):
    """The catalog entry and precision ``name`` stands for: a catalog name, or a DVC artifact name.

    Raises:
        ModelNotFoundError: neither (the catalog lookup's message, listing the catalog names).
    """
    from furiosa.artifacts.catalog.entries import lookup
    from furiosa.artifacts.errors import ModelNotFoundError

    entry, own = lookup(entries, name)
    if own is None:
        return entry, precision
    if precision not in (None, "all", own):
        raise ModelNotFoundError(f"{name!r} is the {own} binary of {entry.name}; drop --precision")
    return entry, own


def _pull_release(args: argparse.Namespace) -> int:
    """``pull NAME --rev REV | --stage STAGE``: the binaries of a GTO version/stage (dvc.lock at its tag)."""
    from furiosa.artifacts.registries.gto import artifact_names, resolve

    from furiosa.artifacts.cli_client import repo_root

    root = repo_root(args.root)
    rows, failed = [], []
    try:
        targets = [(n, p) for name in args.names for _, n, p in artifact_names(root, name, args.precision)]
    except (ArtifactsError, ValueError) as exc:
        return _fail(str(exc), args.json, exit_code(exc))
    for name, precision in dict.fromkeys(targets):
        try:
            got = resolve(root, name, rev=args.rev, stage=args.stage, precision=precision, remote=args.remote,
                          verbose=args.verbose, progress=not args.json and sys.stderr.isatty())
        except (ArtifactsError, ValueError) as exc:
            failed.append({"name": name, "precision": precision, "error": str(exc)})
            continue
        rel = got.release
        rows.append({"name": name, "precision": precision, **got.file.as_dict(), "artifact": rel.artifact,
                     "version": rel.version, "stage": rel.stage, "tag": rel.tag, "commit": rel.commit,
                     "synthetic": got.synthetic})
    if args.json:
        print(json.dumps({"ok": not failed, "resolved": rows, "failed": failed}, indent=2))
    else:
        for row in rows:
            where = row["stage"] and f"#{row['stage']} " or ""
            mark = ", synthetic weights" if row["synthetic"] else ""
            print(f"{row['name']} {row['precision']} {where}{row['version'] or row['tag']}: {row['path']} "
                  f"({row['source']}{mark})")
        for row in failed:
            print(f"error: {row['name']} {row['precision']}: {row['error']}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_pull(args: argparse.Namespace) -> int:
    if args.rev is not None or args.stage is not None:
        return _pull_release(args)
    from furiosa.artifacts.catalog.entries import read_entries
    from furiosa.artifacts.storage.resolver import checkout, resolve_binaries

    from furiosa.artifacts.cli_client import repo_root
    from furiosa.artifacts.layout import is_bundle

    root = repo_root(args.root)
    bundle = is_bundle(root)  # an installed catalog: fill the shared cache, never write into site-packages
    if bool(args.names) == bool(args.all):
        args.parser.error("give model NAMEs or --all (not both)")
    if args.verbose:
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
        logging.getLogger("furiosa.artifacts.storage").setLevel(logging.INFO)
    try:
        entries = read_entries(root, validate=not bundle)
        names = args.names or [e.name for e in entries if e.format == "code"]
        wanted = {}  # relpath -> (name, precision)
        for name in names:
            entry, wanted_precision = _entry(entries, name, args.precision)
            for relpath, precision in _binaries(entry, wanted_precision):
                wanted[relpath] = (entry.name, precision)
        report = resolve_binaries(root, list(wanted), remote=args.remote, jobs=args.jobs, verbose=args.verbose,
                                  retries=args.retries, progress=not args.json and sys.stderr.isatty())
        rows, failed = [], []
        for resolved in report.resolved:
            name, precision = wanted[resolved.relpath]
            path = resolved.path if args.no_checkout or bundle else checkout(root, resolved)
            rows.append({"name": name, "precision": precision, **resolved.as_dict(), "path": str(path)})
    except ArtifactsError as exc:
        return _fail(str(exc), args.json, exit_code(exc))
    for relpath, exc in report.failed.items():
        name, precision = wanted[relpath]
        failed.append({"name": name, "precision": precision, "relpath": relpath, "error": str(exc)})
    if args.json:
        print(json.dumps({"ok": not failed, "resolved": rows, "failed": failed}, indent=2))
    else:
        for row in rows:
            print(f"{row['name']} {row['precision']}: {row['path']} ({row['source']})")
        for row in failed:
            print(f"error: {row['name']} {row['precision']}: {row['error']}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_publish(args: argparse.Namespace) -> int:
    from furiosa.artifacts.storage.publish import publish_lfs

    try:
        report = publish_lfs(Path(args.root), args.lfs, branch=args.branch, message=args.message,
                             lfs_url=args.lfs_url, remote=args.remote, progress=not args.json and sys.stderr.isatty())
    except ArtifactsError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"ok": True, **report.as_dict()}, indent=2))
    else:
        state = "published" if report.changed else "already up to date:"
        print(f"{state} {report.branch} {report.commit[:12]} ({len(report.files)} files, "
              f"{len(report.lfs_files)} LFS binaries) to {report.as_dict()['git_url']}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pull`` and ``publish`` subcommands (each sets ``func`` to its handler)."""
    pull = subparsers.add_parser(
        "pull", help="fetch the binaries of catalog models (verified, cached; no DVC needed)",
        description="Resolve the ONNX binaries of catalog entries by their md5 in dvc.lock: the workspace, the DVC "
        "cache, the shared cache ($FURIOSA_ARTIFACTS_HOME), then the DVC remote (local directory, http(s):// or "
        "s3://). Fetched files are verified, cached and copied into the workspace.")
    pull.add_argument("names", nargs="*", metavar="NAME",
                      help="catalog name (case and punctuation are ignored, a unique part is enough) or DVC artifact "
                      "name (mlcommons-resnet50-fp32)")
    pull.add_argument("--all", action="store_true", help="every model of the catalog")
    pull.add_argument("--precision", choices=PRECISION_CHOICES,
                      help="which binary of a code entry (default: int8); an onnx entry is its own single file")
    pull.add_argument("--remote", help="DVC remote name from .dvc/config (default: the default remote)")
    pull.add_argument("--root", help="repository root (default: . when it holds artifacts.yaml, else the catalog "
                      "this package was installed with; there binaries only go to the shared cache)")
    pull.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"parallel transfers (default: {DEFAULT_JOBS})")
    pull.add_argument("--retries", type=int, default=3,
                      help="extra attempts per transfer after a network error (default: 3)")
    pull.add_argument("--no-checkout", action="store_true",
                      help="only fill the cache; print the cached paths instead of writing the workspace")
    release = pull.add_mutually_exclusive_group()
    release.add_argument("--rev", help="a GTO version (v1.5.0, or the catalog's v1.5) or any git revision: the "
                         "binary dvc.lock records there (GTO tag NAME@VERSION); implies --no-checkout")
    release.add_argument("--stage", help="the version GTO assigned to STAGE (tag NAME#STAGE#N), e.g. prod; "
                         "implies --no-checkout")
    pull.add_argument("--verbose", action="store_true", help="show where each binary was looked for")
    pull.add_argument("--json", action="store_true", help="machine-readable output")
    pull.set_defaults(func=_cmd_pull, parser=pull)

    publish = subparsers.add_parser(
        "publish", help="publish the catalog and its binaries to a Git LFS repository",
        description="Commit the catalog (git-tracked files) and the binaries dvc.lock records under models/ "
        "(as Git LFS objects, .gitattributes generated) to a branch of GIT_URL and push it.")
    publish.add_argument("--lfs", required=True, metavar="GIT_URL", help="git repository to publish to")
    publish.add_argument("--root", default=".", help="repository root (default: .)")
    publish.add_argument("--branch", default="main", help="branch to publish (default: main)")
    publish.add_argument("--lfs-url", help="separate Git LFS server URL (written to .lfsconfig)")
    publish.add_argument("--remote", help="DVC remote for binaries not found locally")
    publish.add_argument("--message", help="commit message")
    publish.add_argument("--json", action="store_true", help="machine-readable output")
    publish.set_defaults(func=_cmd_publish)
