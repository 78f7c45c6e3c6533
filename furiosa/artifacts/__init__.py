"""furiosa-artifacts: a reproducible catalog of deployable vision models.

    >>> import furiosa.artifacts as fa
    >>> fa.list_models("*ssd*")
    ['MLCommonsSSDResNet34', 'MLCommonsSSDMobileNet']
    >>> model = fa.load("MLCommonsSSDMobileNet")            # int8 by default; precision="fp32" too
    >>> detections = model.run("photo.jpg")[0]

Everything here works without torch.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import List, Optional

from furiosa.artifacts.errors import ArtifactsError

__all__ = ["ArtifactsError", "__version__", "list_models", "load"]


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "unknown"
    try:
        return version("furiosa-artifacts")
    except PackageNotFoundError:
        return "unknown"


__version__ = _version()


def list_models(pattern: Optional[str] = None, *, task: Optional[str] = None, root: Optional[Path] = None) -> List[str]:
    """Catalog names of the models with pre/postprocessing (``code`` entries), in catalog order.

    ``pattern`` is a shell-style wildcard matched case- and punctuation-insensitively against the
    whole name (``"*ssd-resnet34"`` matches ``MLCommonsSSDResNet34``); a pattern without wildcards matches
    the names that contain it (``"resnet"``); ``task`` filters by
    ``classification`` or ``detection``.
    """
    from furiosa.artifacts.catalog.entries import normalize_name, read_entries
    from furiosa.artifacts.layout import package_repo_root
    from furiosa.artifacts.vision.specs import load_spec

    names = [e.name for e in read_entries(Path(root) if root else package_repo_root(), validate=False)
             if e.format == "code"]
    if pattern is not None:
        wanted = "".join(ch for ch in pattern.lower() if ch.isalnum() or ch in "*?[]")
        if not any(ch in wanted for ch in "*?["):  # a plain word: any name containing it
            wanted = f"*{wanted}*"
        names = [n for n in names if fnmatch.fnmatchcase(normalize_name(n), wanted)]
    if task is not None:
        names = [n for n in names if load_spec(n).task == task]
    return names


def load(name: str, *, version: Optional[str] = None, precision: Optional[str] = None, root: Optional[Path] = None,
         trust_repo: bool = False):
    """The model object of catalog entry ``name`` (see :class:`furiosa.artifacts.model.Model`), int8 unless
    ``precision="fp32"`` (or a name like ``mlcommons-resnet50-fp32``) asks for the fp32 binary.

    A missing binary is fetched on demand: the workspace, the DVC cache, the shared cache
    ``$FURIOSA_ARTIFACTS_HOME``, then the remote (``$FURIOSA_ARTIFACTS_REMOTE`` or the catalog's default),
    verified by md5 and size against the catalog's dvc.lock; ``$FURIOSA_ARTIFACTS_OFFLINE=1`` forbids the
    network. Names match loosely (``resnet50``, ``ssd-resnet34``). A model built from synthetic weights, or
    whose binary carries no provenance, emits a :class:`~furiosa.artifacts.errors.ProvenanceWarning`.

    Code is only ever taken from this installed package; a catalog at ``root`` whose ``code`` entry
    needs its own code is refused unless ``trust_repo=True`` (see :mod:`furiosa.artifacts.loader`).

    Raises ModelNotFoundError, BinaryNotFoundError (OfflineError), DownloadError, ChecksumError,
    UntrustedCodeError, UnsafePathError.
    """
    import warnings

    from furiosa.artifacts.loader import load_from_repo

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_from_repo(name, precision=precision, version=version, root=root, trust_repo=trust_repo)
    for item in caught:  # re-raised at the caller's line
        warnings.warn(item.message, item.category, stacklevel=2)
    return model
