"""What the DVC pipeline declares, read without importing DVC (lint must stay fast).

Understands the subset of dvc.yaml this repository uses: plain stages and ``foreach: ${dict}``
over a mapping in params.yaml with ``${key}`` / ``${item.x}`` in output paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, Set

from furiosa.artifacts.catalog.yaml_io import read_yaml
from furiosa.artifacts.errors import CatalogReadError

_VAR = re.compile(r"\$\{([^}]+)\}")


def _lookup(context: Dict[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        value = value[part]
    return value


def _expand(text: str, context: Dict[str, Any]) -> str:
    return _VAR.sub(lambda m: str(_lookup(context, m.group(1).strip())), text)


def _out_paths(outs: Any) -> Iterable[str]:
    for out in outs if isinstance(outs, list) else []:
        if isinstance(out, str):
            yield out
        elif isinstance(out, dict):
            yield from (k for k in out if isinstance(k, str))


def declared_outputs(root: Path) -> Set[str]:
    """Output paths the pipeline declares (dvc.yaml outs/metrics/plots, foreach expanded), plus dvc.lock's."""
    root = Path(root)
    outs: Set[str] = set()
    try:
        pipeline = read_yaml(root / "dvc.yaml") or {}
        params = read_yaml(root / "params.yaml") or {}
    except (OSError, CatalogReadError):
        pipeline, params = {}, {}
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    for stage in (stages if isinstance(stages, dict) else {}).values():
        if not isinstance(stage, dict):
            continue
        body = stage.get("do", stage)
        if not isinstance(body, dict):
            continue  # `do:` that is not a mapping declares nothing (DVC itself refuses it)
        paths = [p for key in ("outs", "metrics", "plots") for p in _out_paths(body.get(key))]
        foreach = stage.get("foreach")
        if foreach is None:
            outs.update(paths)
            continue
        try:
            items = _lookup(params, foreach.strip()[2:-1]) if isinstance(foreach, str) else foreach
            pairs = items.items() if isinstance(items, dict) else enumerate(items)
            for key, item in pairs:
                outs.update(_expand(p, {"key": key, "item": item}) for p in paths)
        except (KeyError, TypeError, AttributeError):
            continue
    try:
        lock = read_yaml(root / "dvc.lock") or {}
    except (OSError, CatalogReadError):
        lock = {}
    locked = lock.get("stages") if isinstance(lock, dict) else None
    for stage in (locked if isinstance(locked, dict) else {}).values():
        lock_outs = stage.get("outs") if isinstance(stage, dict) else None
        outs.update(o["path"] for o in (lock_outs if isinstance(lock_outs, list) else [])
                    if isinstance(o, dict) and isinstance(o.get("path"), str))
    return outs
