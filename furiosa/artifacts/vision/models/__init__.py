"""PyTorch network code for the catalog models (the only vision package that imports torch).

A registry in the manner of torchvision's ``register_model`` and timm's ``@register_model``: each
network file decorates its builder with ``@register_model("<catalog name>")``, and ``create_model(name)``
builds a randomly initialised network by catalog name. The file holding a model's builder is the one
``params.yaml`` names (``models.<name>.network``); it is imported on first use, and only for that model,
so the pipeline's stages depend on their own model's network file (``${item.network}`` in dvc.yaml)
and nothing here restates a model name.

State-dict keys match the official weights (torchvision, timm, MLPerf reference modules) so
``load_state_dict`` takes them as is. Classifiers return logits (N, num_classes); detectors return the raw
heads ``(loc, conf)`` named by ``specs.yaml`` ``output_names``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, Optional

import torch
import yaml

from furiosa.artifacts.errors import CatalogError, ModelNotFoundError
from furiosa.artifacts.layout import package_repo_root
from furiosa.artifacts.vision.specs import load_spec

__all__ = ["builder_file", "create_model", "list_models", "network_files", "register_model"]

Builder = Callable[..., torch.nn.Module]
_BUILDERS: Dict[str, Builder] = {}
PARAMS_FILE = "params.yaml"


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(*, num_classes)`` as the network of catalog model ``name``.

    Raises CatalogError when another builder already holds ``name`` (two network files claiming one
    model); re-importing the same module is fine.
    """
    def decorate(builder: Builder) -> Builder:
        other = _BUILDERS.get(name)
        if other is not None and (other.__module__, other.__qualname__) != (builder.__module__, builder.__qualname__):
            raise CatalogError(f"two network builders for {name!r}: {other.__module__}.{other.__qualname__} and "
                               f"{builder.__module__}.{builder.__qualname__}; keep one (params.yaml "
                               f"models.{name}.network names its file)")
        _BUILDERS[name] = builder
        return builder

    return decorate


def network_files(root: Optional[Path] = None) -> Dict[str, str]:
    """``params.yaml`` ``models.<name>.network`` by model name (repository-relative paths), in params order."""
    path = Path(root or package_repo_root()) / PARAMS_FILE
    try:
        params = yaml.safe_load(path.read_text("utf-8")) or {}
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: invalid YAML: {exc}") from None
    models = params.get("models") if isinstance(params, dict) else None
    return {str(n): m["network"] for n, m in (models or {}).items() if isinstance(m, dict)
            and isinstance(m.get("network"), str)}


def _import_network(name: str, relpath: str) -> None:
    pure = PurePosixPath(relpath)
    if pure.suffix != ".py" or pure.is_absolute() or ".." in pure.parts or pure.parts[:2] != ("furiosa", "artifacts"):
        raise CatalogError(f"{PARAMS_FILE}: models.{name}.network {relpath!r} must be a .py file under "
                           "furiosa/artifacts/vision/models/")
    parts = list(pure.with_suffix("").parts)
    importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))


def _ensure(name: str) -> None:
    if name in _BUILDERS:
        return
    relpath = network_files().get(name)
    if relpath is None:
        return
    _import_network(name, relpath)
    if name not in _BUILDERS:
        raise CatalogError(f"{relpath} (params.yaml models.{name}.network) registers no builder for {name!r}: "
                           f"decorate its builder with @register_model({name!r})")


def list_models() -> list[str]:
    """Catalog names that ``create_model`` can build (every model params.yaml names, then any other registered)."""
    files = network_files()
    for name in files:
        _ensure(name)
    return list(dict.fromkeys([n for n in files if n in _BUILDERS] + list(_BUILDERS)))


def builder_file(name: str) -> str:
    """Repository-relative path of the file whose ``@register_model(name)`` builds ``name``."""
    _ensure(name)
    if name not in _BUILDERS:
        raise ModelNotFoundError(f"no network for {name!r}; known: {', '.join(list_models())}")
    source = Path(inspect.getsourcefile(_BUILDERS[name]) or "").resolve()
    try:
        return source.relative_to(package_repo_root()).as_posix()
    except ValueError:
        return source.as_posix()


def create_model(name: str, *, num_classes: Optional[int] = None) -> torch.nn.Module:
    """A randomly initialised network for catalog model ``name``, in eval mode.

    ``num_classes`` defaults to the spec's. Raises ModelNotFoundError for an unknown name (listing the
    known ones), SpecError if specs.yaml is invalid, CatalogError if params.yaml names a network file
    that does not register ``name``.
    """
    _ensure(name)
    if name not in _BUILDERS:
        raise ModelNotFoundError(f"no network for {name!r}; known: {', '.join(list_models())}")
    classes = load_spec(name).num_classes if num_classes is None else num_classes
    return _BUILDERS[name](num_classes=classes).eval()
