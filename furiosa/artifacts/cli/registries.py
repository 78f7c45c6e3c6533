"""``furiosa-artifacts dvc-artifacts``, ``dvc-deps`` and ``release``: DVC's model registry (dvc.yaml + GTO).

:func:`register` adds them to the main parser's subparsers; each handler returns the exit code
(0 ok, 1 problems found or failure) and prints errors as ``error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from furiosa.artifacts.cli.common import EXIT_FAILED, EXIT_OK, add_json_option, add_root_option, fail, repo_root
from furiosa.artifacts.errors import ArtifactsError


def _generated(args: argparse.Namespace, check, write, what: str) -> int:
    """``--check`` (list the drift, exit 1) or write a generated part of dvc.yaml."""
    root = repo_root(args.root)
    if args.check:
        problems = check(root)
        if args.json:
            print(json.dumps({"ok": not problems, "problems": [{"location": w, "message": m} for w, m in problems]},
                             indent=2))
        else:
            for where, message in problems:
                print(f"{where}: {message}")
            if problems:
                print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return EXIT_FAILED if problems else EXIT_OK
    try:
        changed = write(root)
    except (ArtifactsError, ValueError) as exc:
        return fail(str(exc), as_json=False)  # stderr even with --json
    if args.json:
        print(json.dumps({"ok": True, "changed": [str(p) for p in changed]}, indent=2))
    else:
        for path in changed:
            print(f"updated {path}")
        if not changed:
            print(f"{what} are up to date")
    return EXIT_OK


def _cmd_dvc_artifacts(args: argparse.Namespace) -> int:
    from furiosa.artifacts.registries.dvc_artifacts import check_dvc_artifacts, write_dvc_artifacts

    return _generated(args, check_dvc_artifacts, write_dvc_artifacts, "dvc.yaml artifacts")


def _cmd_dvc_deps(args: argparse.Namespace) -> int:
    from furiosa.artifacts.catalog.stage_deps import check_stage_deps, write_stage_deps

    return _generated(args, check_stage_deps, write_stage_deps, "dvc.yaml stage dependencies")


def _check_all(root: Path) -> list:
    from furiosa.artifacts.catalog.stage_deps import check_stage_deps
    from furiosa.artifacts.registries.dvc_artifacts import check_dvc_artifacts
    from furiosa.artifacts.registries.entry_module import check_entry_module

    return check_entry_module(root) + check_stage_deps(root) + check_dvc_artifacts(root)


def _write_all(root: Path) -> list:
    from furiosa.artifacts.catalog.stage_deps import write_stage_deps
    from furiosa.artifacts.registries.dvc_artifacts import write_dvc_artifacts
    from furiosa.artifacts.registries.entry_module import write_entry_module

    return write_entry_module(root) + write_stage_deps(root) + write_dvc_artifacts(root)


def _cmd_generate(args: argparse.Namespace) -> int:
    return _generated(args, _check_all, _write_all, "generated parts")


def _cmd_release(args: argparse.Namespace) -> int:
    from furiosa.artifacts.registries.release import release

    try:
        steps = release(repo_root(args.root), args.name, version=args.version, stage=args.stage,
                        precision=args.precision, allow_synthetic=args.allow_synthetic, remote=args.remote)
    except (ArtifactsError, ValueError) as exc:
        return fail(str(exc), as_json=args.json, fields={"tags": []})
    if args.json:
        print(json.dumps({"ok": True, "tags": [s.as_dict() for s in steps]}, indent=2))
        return EXIT_OK
    for step in steps:
        state = "created" if step.created else "exists:"
        mark = " (synthetic weights)" if step.synthetic else ""
        print(f"{state} {step.tag} -> {step.commit[:12]}{mark}")
    created = [s.tag for s in steps if s.created]
    if created:
        print(f"share them: git push origin {' '.join(repr(t) if '#' in t else t for t in created)} "
              "(and the binaries: dvc push)")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dvc-artifacts``, ``dvc-deps``, ``generate`` and ``release`` subcommands (each sets ``func``)."""
    generators = (
        ("dvc-artifacts", _cmd_dvc_artifacts, "write (or --check) the artifacts: section of dvc.yaml from the catalog",
         "Generate dvc.yaml's `artifacts:` (DVC's model registry: one artifact per built int8/fp32 binary, e.g. "
         "mlcommons-resnet50 and mlcommons-resnet50-fp32) from artifacts.yaml, params.yaml and specs.yaml, "
         "leaving the rest of dvc.yaml untouched; also writes .gto when absent."),
        ("dvc-deps", _cmd_dvc_deps, "write (or --check) the code and data deps of every dvc.yaml stage, derived "
         "from imports",
         "Derive each dvc.yaml stage's dependencies from the code its `python stages/X.py` command imports "
         "(transitively, lazy imports included), the package data files that code reads, and ${item.network} "
         "for stages that build networks; rewrite them in dvc.yaml keeping everything else (comments, outputs "
         "of earlier stages, params, outs)."),
        ("generate", _cmd_generate, "rewrite (or --check) every generated file: entry points, dvc.yaml deps and "
         "artifacts",
         "Regenerate what is derived from the catalog and the code: furiosa/artifacts/artifacts.py (one entry "
         "point per `format: code` entry of artifacts.yaml), dvc.yaml's stage dependencies (`dvc-deps`) and "
         "dvc.yaml's `artifacts:` (`dvc-artifacts`). Run it after adding a model or a module."),
    )
    for name, func, help_text, description in generators:
        gen = subparsers.add_parser(name, help=help_text, description=description)
        gen.add_argument("--check", action="store_true",
                         help="only compare; exit 1 and list the differences when anything is stale")
        add_root_option(gen, default=".")
        add_json_option(gen)
        gen.set_defaults(func=func)

    rel = subparsers.add_parser(
        "release", help="register HEAD's build of a model as a GTO version, optionally assign a stage",
        description="Create the GTO tags NAME@vX.Y.Z (and NAME#STAGE#N) on HEAD for a catalog model's binaries, "
        "after checking that dvc.yaml/dvc.lock are committed and agree with the catalog and that the binaries "
        "resolve. Consumers then run `dvc artifacts get REPO NAME --stage STAGE` or "
        "`furiosa-artifacts pull NAME --stage STAGE`.")
    rel.add_argument("name", metavar="NAME", help="catalog name (both precisions) or DVC artifact name")
    rel.add_argument("--version", help="semver to register (default: the catalog version, v1.5 -> v1.5.0); "
                     "must keep the catalog's vMAJOR.MINOR")
    rel.add_argument("--stage", help="stage to assign to that version (e.g. dev, staging, prod)")
    rel.add_argument("--precision", choices=("int8", "fp32", "all"), default="all",
                     help="which binaries of a catalog name (default: all)")
    rel.add_argument("--allow-synthetic", action="store_true",
                     help="register a build from synthetic weights anyway (the tag message says so)")
    rel.add_argument("--remote", help="DVC remote to look for binaries not found locally")
    add_root_option(rel, default=".")
    add_json_option(rel)
    rel.set_defaults(func=_cmd_release)
