"""What the DVC pipeline (dvc.yaml) declares, read without importing DVC."""

from __future__ import annotations

from pathlib import Path
from typing import Set

import yaml


def declared_outputs(root: Path) -> Set[str]:
    """Output paths recorded for the pipeline in ``dvc.lock`` (empty when there is none)."""
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return set()
    try:
        data = yaml.safe_load(lock.read_text("utf-8")) or {}
    except yaml.YAMLError:
        return set()
    outs: Set[str] = set()
    for stage in (data.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                outs.add(out["path"])
    return outs
