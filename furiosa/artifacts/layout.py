"""Where things live inside a catalog repository (paths relative to its root)."""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("int8", "fp32")
MODELS_DIR = "models"


def model_dir(name: str) -> str:
    """Directory of one model's build outputs, e.g. ``models/MLCommonsResNet50``."""
    return f"{MODELS_DIR}/{name}"


def binary_relpath(name: str, precision: str) -> str:
    """Relative path of a model's ONNX binary, e.g. ``models/MLCommonsResNet50/int8.onnx``.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return f"{model_dir(name)}/{precision}.onnx"


def metrics_relpath(name: str) -> str:
    """Relative path of a model's metrics file written by the evaluate stage."""
    return f"{model_dir(name)}/metrics.json"


def package_repo_root() -> Path:
    """The catalog this package reads by default: the repository it was imported from (a source checkout
    or a registry copy) when that holds artifacts.yaml, else the catalog bundled into an installed wheel
    (``furiosa/artifacts/_catalog``, see :mod:`furiosa.artifacts.catalog.bundle`)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "artifacts.yaml").is_file():
        return checkout
    bundled = Path(__file__).resolve().parent / "_catalog"
    return bundled if (bundled / "artifacts.yaml").is_file() else checkout


def is_bundle(root: Path) -> bool:
    """Whether ``root`` is the read-only catalog bundled into an installed package (no workspace, no DVC)."""
    return Path(root).resolve() == (Path(__file__).resolve().parent / "_catalog")
