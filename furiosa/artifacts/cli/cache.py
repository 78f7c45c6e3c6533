"""``furiosa-artifacts cache list | clean``: what the shared cache ``$FURIOSA_ARTIFACTS_HOME`` holds.

Like ``huggingface-cli scan-cache`` / ``delete-cache``: every verified blob (``blobs/md5``: binaries
fetched from a DVC remote; ``blobs/sha256``: downloaded source weights) with its size, when it was last
used, and which catalog binary it is (matched by md5 against the catalog's dvc.lock). ``clean`` removes
the blobs of the named models, the ones the catalog no longer references (``--unreferenced``), partial
downloads, or everything (``--all``); ``--dry-run`` only says what would go.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List

from furiosa.artifacts.cli.common import EXIT_OK, add_json_option, add_root_option, fail, repo_root
from furiosa.artifacts.errors import ArtifactsError

CACHE_ROOT_HELP = "catalog whose dvc.lock names the binaries (default: as `list`)"


def _catalog_binaries(root: Path) -> Dict[str, Dict[str, str]]:
    """md5 -> {name, precision, path} for every binary the catalog's dvc.lock records."""
    from furiosa.artifacts.catalog.entries import read_entries
    from furiosa.artifacts.errors import BinaryNotFoundError
    from furiosa.artifacts.layout import PRECISIONS, binary_relpath
    from furiosa.artifacts.storage.lockfile import read_outputs

    try:
        outputs = read_outputs(root)
        names = [e.name for e in read_entries(root, validate=False) if e.format == "code"]
    except (BinaryNotFoundError, ArtifactsError):
        return {}
    known = {}
    for name in names:
        for precision in PRECISIONS:
            out = outputs.get(binary_relpath(name, precision))
            if out is not None:
                known[out.md5] = {"name": name, "precision": precision, "path": out.path}
    return known


def scan(root: Path) -> List[Dict[str, Any]]:
    """One row per file under ``blobs/``: algo, digest, size, last access, partial?, catalog binary (or None)."""
    from furiosa.artifacts.sources.cache import cache_root

    known = _catalog_binaries(root)
    rows = []
    for algo in ("md5", "sha256"):
        base = cache_root() / "blobs" / algo
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if not path.is_file() or path.name.endswith(".lock"):
                continue
            digest = path.name.split(".", 1)[0]
            stat = path.stat()
            binary = known.get(digest) if algo == "md5" else None
            rows.append({"algo": algo, "digest": digest, "path": str(path), "size": stat.st_size,
                         "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(max(stat.st_atime, stat.st_mtime))),
                         "partial": path.name.endswith(".incomplete"), "model": binary and binary["name"],
                         "precision": binary and binary["precision"]})
    return rows


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _cmd_list(args: argparse.Namespace) -> int:
    from furiosa.artifacts.sources.cache import cache_root

    rows = scan(repo_root(args.root))
    if args.json:
        print(json.dumps({"cache": str(cache_root()), "files": rows}, indent=2))
        return EXIT_OK
    print(f"{cache_root()}: {len(rows)} file(s), {_size(sum(r['size'] for r in rows))}")
    for r in rows:
        what = (f"{r['model']} {r['precision']}" if r["model"] else
                "source weights" if r["algo"] == "sha256" else "not in this catalog")
        print(f"  {r['algo']:6} {r['digest'][:16]}  {_size(r['size']):>10}  {r['last_used']}  "
              f"{what}{'  (partial download)' if r['partial'] else ''}")
    return EXIT_OK


def _cmd_clean(args: argparse.Namespace) -> int:
    from furiosa.artifacts.catalog.entries import find_entry, read_entries

    root = repo_root(args.root)
    if not (args.names or args.all or args.unreferenced or args.partial):
        args.parser.error("say what to remove: model NAMEs, --unreferenced, --partial or --all")
    rows = scan(root)
    try:
        entries = read_entries(root, validate=False)
        names = {find_entry(entries, n).name for n in args.names}
    except ArtifactsError as exc:
        return fail(str(exc), as_json=False)
    chosen = [r for r in rows if args.all or (r["partial"] and args.partial) or (r["model"] in names)
              or (args.unreferenced and r["algo"] == "md5" and r["model"] is None)]
    freed = 0
    for r in chosen:
        if not args.dry_run:
            try:
                Path(r["path"]).unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                return fail(f"cannot remove {r['path']}: {exc.strerror or exc}", as_json=False)
        freed += r["size"]
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "removed": chosen, "bytes": freed}, indent=2))
    else:
        for r in chosen:
            print(f"{verb} {r['path']} ({r['model'] or r['algo']}, {_size(r['size'])})")
        print(f"{verb} {len(chosen)} file(s), {_size(freed)}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cache`` with its ``list`` and ``clean`` subcommands."""
    cache = subparsers.add_parser(
        "cache", help="list or clean the shared cache ($FURIOSA_ARTIFACTS_HOME)",
        description="The shared cache of verified binaries and source weights ($FURIOSA_ARTIFACTS_HOME, default "
        "~/.cache/furiosa-artifacts): `cache list` shows each file, its size, last use and catalog binary; "
        "`cache clean` removes some of them.")
    sub = cache.add_subparsers(dest="cache_command", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="every cached file, with size, last use and the catalog binary it is")
    add_json_option(ls)
    add_root_option(ls, help=CACHE_ROOT_HELP)
    ls.set_defaults(func=_cmd_list)
    clean = sub.add_parser("clean", help="remove cached files (by model, unreferenced, partial, or all)")
    clean.add_argument("names", nargs="*", metavar="NAME", help="remove the cached binaries of these models")
    clean.add_argument("--unreferenced", action="store_true",
                       help="remove binaries the catalog's dvc.lock does not reference")
    clean.add_argument("--partial", action="store_true", help="remove partial (interrupted) downloads")
    clean.add_argument("--all", action="store_true", help="remove everything in the cache")
    clean.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    add_json_option(clean)
    add_root_option(clean, help=CACHE_ROOT_HELP)
    clean.set_defaults(func=_cmd_clean, parser=clean)
