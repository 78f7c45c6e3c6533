"""The model registries users already run, fed from the same catalog (DESIGN.md contract 6).

- DVC's model registry: :mod:`.dvc_artifacts` generates and checks the ``artifacts:`` section of
  ``dvc.yaml`` (:func:`write_dvc_artifacts`, :func:`check_dvc_artifacts`); :mod:`.names` maps catalog
  names to DVC artifact names (:func:`dvc_name`, :func:`catalog_name`).
- GTO versions and stages (git tags ``name@vX.Y.Z``, ``name#stage#N``): :mod:`.gto` resolves them with
  plain git (:func:`~.gto.resolve`, :func:`~.gto.load`) and registers releases (:func:`~.gto.release`).
- furiosa-registry 0.9.x: :mod:`.furiosa_registry` makes the functions of the root-level ``artifacts.py``.

Attributes load lazily, so importing one submodule (furiosa-registry's client imports
``furiosa_registry`` without our storage dependencies) pulls in nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DVC_NAME_PATTERN": "names", "catalog_name": "names", "dvc_name": "names", "semver": "names",
    "check_dvc_artifacts": "dvc_artifacts", "expected_artifacts": "dvc_artifacts",
    "write_dvc_artifacts": "dvc_artifacts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
