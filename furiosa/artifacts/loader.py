"""Turn a catalog entry into a :class:`~furiosa.artifacts.model.Model`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from furiosa.artifacts.catalog.entries import find_entry, read_entries
from furiosa.artifacts.layout import binary_relpath, metrics_relpath, package_repo_root
from furiosa.artifacts.model import Model, read_binary


def is_synthetic(root: Path, name: str) -> bool:
    """Whether the built binaries of ``name`` in ``root`` came from synthetic (random) weights."""
    path = Path(root) / metrics_relpath(name)
    try:
        metrics = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return False
    return (metrics.get("weights") or {}).get("source") == "synthetic"


def load_from_repo(name: str, *, precision: str = "int8", version: Optional[str] = None,
                   root: Optional[Path] = None) -> Model:
    """Load catalog model ``name`` from a repository checkout (default: the one this package is in).

    Raises:
        ModelNotFoundError: no such entry.
        BinaryNotFoundError: the binary is not built/pulled yet.
        ValueError: unknown precision.
    """
    root = Path(root) if root is not None else package_repo_root()
    entry = find_entry(read_entries(root, validate=False), name, version)
    relpath = binary_relpath(entry.name, precision)
    return Model(name=entry.name, family=entry.family, version=entry.version, description=entry.description,
                 source=read_binary(root, relpath), precision=precision, path=root / relpath,
                 synthetic=is_synthetic(root, entry.name))
