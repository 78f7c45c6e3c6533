"""A model binary on demand, and what it says about its weights.

:func:`fetch_binary` is what :func:`furiosa.artifacts.load` and the CLI call: when the catalog's
``dvc.lock`` records the binary, its verified bytes come from the resolver (workspace, DVC cache,
``$FURIOSA_ARTIFACTS_HOME``, then the remote, with a progress bar; see
:mod:`furiosa.artifacts.storage.resolver`). A catalog without ``dvc.lock`` (a bare checkout that built
its own binaries without recording them) falls back to the workspace file as it is.

:func:`model_provenance` reads the provenance stamped into a binary (fail closed: see
:mod:`furiosa.artifacts.provenance`).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from furiosa.artifacts.errors import (
    BinaryNotFoundError,
    SyntheticWeightsWarning,
    UnknownProvenanceWarning,
)
from furiosa.artifacts.layout import PRECISIONS, binary_relpath, metrics_relpath
from furiosa.artifacts.provenance import Provenance, weights_kind

__all__ = ["fetch_binary", "local_binary", "model_provenance", "provenance_label", "warn_provenance"]


def _build_hint(relpath: str) -> str:
    return (f"`furiosa-artifacts pull` or `dvc pull` fetches it; `furiosa-artifacts build` (official weights) or "
            f"`furiosa-artifacts build --weights synthetic` (offline) builds it ({relpath})")


def fetch_binary(root: Path, relpath: str, *, progress: Optional[bool] = None) -> Tuple[bytes, Path]:
    """Verified bytes of the binary ``relpath`` of the catalog at ``root``, and the file they came from.

    ``progress`` shows a download bar on stderr (default: when stderr is a terminal).

    Raises:
        BinaryNotFoundError: nowhere to be found (OfflineError when only the network has it).
        DownloadError, ChecksumError: the remote failed or served corrupt bytes.
        UnsafePathError: a path escapes the catalog.
    """
    from furiosa.artifacts.storage.lockfile import read_outputs
    from furiosa.artifacts.storage.resolver import resolve_binary

    from furiosa.artifacts.layout import is_bundle

    root = Path(root)
    try:
        recorded = relpath in read_outputs(root)
    except BinaryNotFoundError:  # no dvc.lock: a workspace that never recorded its outputs
        if is_bundle(root):
            raise BinaryNotFoundError(
                f"this installation's catalog ({root}) carries no dvc.lock: the wheel was built from a tree with "
                f"no recorded build, so {relpath} cannot be fetched; install a wheel built after "
                "`furiosa-artifacts build`, or pass root= a checkout that has the binary") from None
        recorded = False
    if recorded:
        found = resolve_binary(root, relpath, progress=sys.stderr.isatty() if progress is None else progress)
        path = found.path
    else:
        path = root / relpath
    try:
        return path.read_bytes(), path
    except FileNotFoundError:
        raise BinaryNotFoundError(f"{path} is not built yet and {root / 'dvc.lock'} does not record it: "
                                  + _build_hint(relpath)) from None
    except (OSError, ValueError) as exc:  # a directory, no permission, a name the OS refuses
        raise BinaryNotFoundError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def local_binary(root: Path, relpath: str) -> Optional[Path]:
    """Where a copy of ``relpath`` is on this machine without any transfer: the workspace file, else the
    shared cache's blob for the md5 dvc.lock records (not re-hashed here; :func:`fetch_binary` verifies)."""
    from furiosa.artifacts.sources import cache
    from furiosa.artifacts.storage.lockfile import read_outputs

    path = Path(root) / relpath
    if path.is_file():
        return path
    try:
        out = read_outputs(Path(root)).get(relpath)
    except BinaryNotFoundError:
        return None
    if out is None:
        return None
    blob = cache.cache_path("md5", out.md5)
    return blob if blob.is_file() else None


def _metrics(root: Path, name: str) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads((Path(root) / metrics_relpath(name)).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_provenance(root: Path, name: str, source: Optional[bytes] = None) -> Provenance:
    """Provenance of model ``name`` in ``root``: from ``source`` (ONNX bytes) when given, else from its
    int8 (then fp32) binary in the workspace; ``metrics.json`` can only turn it synthetic. No binary: unknown."""
    metrics = _metrics(root, name)
    if source is not None:
        return weights_kind(source, metrics=metrics)
    for precision in PRECISIONS:
        path = local_binary(root, binary_relpath(name, precision))
        if path is not None:
            return weights_kind(path, metrics=metrics)
    said = ((metrics or {}).get("weights") or {}).get("source")
    return Provenance("synthetic" if said == "synthetic" else "unknown", {}, "no binary of this model is built here")


def provenance_label(prov: Provenance) -> str:
    """``official``, ``train``, ``SYNTHETIC`` or ``UNKNOWN`` for tables."""
    return prov.kind if prov.kind in ("official", "train") else prov.kind.upper()


def warn_provenance(name: str, prov: Provenance, *, stacklevel: int = 3) -> None:
    """``warnings.warn`` a SyntheticWeightsWarning / UnknownProvenanceWarning unless the weights are real."""
    if prov.synthetic:
        warnings.warn(f"{name} was built from SYNTHETIC (seeded random) weights: its predictions are meaningless; "
                      "not for deployment", SyntheticWeightsWarning, stacklevel=stacklevel)
    elif not prov.known:
        warnings.warn(f"{name}: provenance unknown ({prov.error}); nothing proves it was built from real weights",
                      UnknownProvenanceWarning, stacklevel=stacklevel)
