"""The catalog data an installed package carries, so that it works without a clone.

``pip install .`` and ``pip wheel .`` run :func:`write_bundle` (from ``setup.py``'s ``build_py``): the
catalog files a client reads are copied from the source tree into the package as
``furiosa/artifacts/_catalog/`` -- ``artifacts.yaml``, ``params.yaml`` (the recipe ``show`` prints),
``dvc.lock`` (the md5 and size of every binary of the build the tree holds) and ``.dvc/config`` (the
default remote; ``config.local`` and its secrets never) -- with ``BUNDLE.json``, the sha256 of each.
The specs (``vision/specs.yaml``) are package data already.

The bundle is generated at build time and never committed, so the source tree cannot drift from it;
an installed bundle is checked against a tree with :func:`stale_files` (``furiosa-artifacts version
--check-catalog ROOT``), and ``furiosa-artifacts --version`` names the dvc.lock it carries.

Standard library only (and :mod:`furiosa.artifacts.atomic`, which is too): ``setup.py`` loads this file by
path inside pip's isolated build environment, with the source tree on ``sys.path``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Dict, List, Optional

from furiosa.artifacts.atomic import atomic_directory

__all__ = ["BUNDLE_DIR", "FILES", "MANIFEST", "bundle_dir", "read_manifest", "stale_files", "write_bundle"]

BUNDLE_DIR = "_catalog"  # inside the furiosa/artifacts package
MANIFEST = "BUNDLE.json"
#: what is copied (relative to the repository root); a missing optional file is recorded as absent
FILES = ("artifacts.yaml", "params.yaml", "dvc.lock", ".dvc/config")
REQUIRED = ("artifacts.yaml",)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_dir() -> Path:
    """Where this installed package keeps its bundled catalog (it may not exist: a source checkout)."""
    return Path(__file__).resolve().parents[1] / BUNDLE_DIR


def write_bundle(root: Path, dest: Path) -> Dict[str, Optional[str]]:
    """Copy the catalog files of the tree at ``root`` into ``dest`` (replaced as a whole) with a manifest.

    Returns ``{relpath: sha256 or None when absent}``.

    Raises:
        FileNotFoundError: ``root`` has no artifacts.yaml.
    """
    root, dest = Path(root), Path(dest)
    for rel in REQUIRED:
        if not (root / rel).is_file():
            raise FileNotFoundError(f"{root / rel}: the catalog is missing; cannot bundle it into the package")
    with atomic_directory(dest, replace=True) as tmp:
        files: Dict[str, Optional[str]] = {}
        for rel in FILES:
            src = root / rel
            if src.is_file():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmp / rel)
                files[rel] = _sha256(src)
            else:
                files[rel] = None
        (tmp / MANIFEST).write_text(json.dumps({"format": 1, "files": files}, indent=2, sort_keys=True) + "\n",
                                    encoding="utf-8")
        (tmp / "__init__.py").write_text('"""Catalog data bundled at build time (see catalog/bundle.py)."""\n',
                                         encoding="utf-8")
    return files


def read_manifest(directory: Optional[Path] = None) -> Optional[Dict[str, Optional[str]]]:
    """``{relpath: sha256 or None}`` of a bundle (default: this package's); None when there is none."""
    path = Path(directory or bundle_dir()) / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return dict(files) if isinstance(files, dict) else None


def stale_files(root: Path, directory: Optional[Path] = None) -> List[str]:
    """Files of the tree at ``root`` that differ from the bundle in ``directory`` (default: this package's).

    Every file of :data:`FILES` is compared (present vs absent counts); no bundle: all of them.
    """
    manifest = read_manifest(directory) or {}
    stale = []
    for rel in FILES:
        src = Path(root) / rel
        current = _sha256(src) if src.is_file() else None
        if rel not in manifest or manifest[rel] != current:
            stale.append(rel)
    return stale
