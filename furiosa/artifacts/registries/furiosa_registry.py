"""furiosa-registry 0.9.x: the entry points of the root-level ``artifacts.py`` descriptor, from the catalog.

furiosa-registry 0.9 no longer reads ``artifacts.yaml``: ``list(uri)`` copies the repository, imports
its root-level ``artifacts.py`` and lists the module's functions whose return annotation is a
``furiosa.registry.Model`` subclass; ``load(uri, name, *args)`` calls the function ``name``. That
descriptor stays three lines: it calls :func:`entry_points` at import time, which makes one
function per catalog entry (``code`` entries and ``<Name>_INT8`` binaries alike) from
``artifacts.yaml``, so there is no second list of models.

Each function takes an optional ``version`` (positional, as the client's ``help(uri, name, version)``
passes it; the catalog version ``v1.5`` or its semver ``v1.5.0``) and, for a ``code`` entry,
``precision="int8"|"fp32"``, and returns a :class:`CatalogModel` (built on first use): a
``furiosa.registry.Model`` with ``format``, ``family``, ``version``, ``metadata`` (description and
publication) from the catalog, ``source`` the ONNX bytes, ``inputs``/``outputs`` from the graph,
plus our ``preprocess``/``postprocess``/``run``.

Two traps of 0.9.1 that shape this module: ``list`` calls ``issubclass`` on every module-level
function's return annotation, so the descriptor must hold no other function (and no string
annotation: no ``from __future__ import annotations`` there); and it needs pydantic 1.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from furiosa.artifacts.catalog.entries import Artifact, built_binary, read_entries
from furiosa.artifacts.errors import ModelNotFoundError
from furiosa.artifacts.registries.names import semver

__all__ = ["DESCRIPTOR", "entry_points", "model_class"]

#: The file furiosa-registry 0.9.x imports from the repository root.
DESCRIPTOR = "artifacts.py"


@functools.lru_cache(maxsize=None)
def model_class() -> type:
    """``CatalogModel``: a ``furiosa.registry.Model`` subclass with our pre/postprocessing.

    Raises:
        ImportError: furiosa-registry (0.9.x, with pydantic 1) is not installed.
    """
    try:
        from furiosa.registry import Model as RegistryModel
        from pydantic import PrivateAttr
    except ImportError as exc:
        raise ImportError(f"{DESCRIPTOR} is the furiosa-registry 0.9 descriptor: "
                          f"`pip install furiosa-registry==0.9.1 'pydantic<2'` ({exc})") from exc

    class CatalogModel(RegistryModel):  # type: ignore[misc, valid-type]
        """A catalog model (furiosa-registry ``Model``): ONNX ``source`` plus ``preprocess``,
        ``postprocess`` and ``run`` (ONNX Runtime) from furiosa-artifacts."""

        precision: str = "int8"
        synthetic: bool = False
        _runner: Any = PrivateAttr(default=None)
        _code_name: Optional[str] = PrivateAttr(default=None)  # the code entry whose processing applies

        def _model(self) -> Any:
            if self._runner is None:
                from furiosa.artifacts.model import Model

                description = self.metadata.description if self.metadata else None
                self._runner = Model(name=self._code_name or self.name, family=self.family or "",
                                     version=self.version, description=description, source=self.source,
                                     precision=self.precision, synthetic=self.synthetic)
            return self._runner

        def preprocess(self, images: Any) -> Any:
            """Images -> (NCHW float32 batch, contexts), as :meth:`furiosa.artifacts.model.Model.preprocess`."""
            return self._model().preprocess(images)

        def postprocess(self, outputs: Any, contexts: Any) -> Any:
            """Raw outputs -> one result list per image, as :meth:`furiosa.artifacts.model.Model.postprocess`."""
            return self._model().postprocess(outputs, contexts)

        def run(self, images: Any, *, batch_size: int = 8) -> Any:
            """Preprocess, run with ONNX Runtime and postprocess."""
            return self._model().run(images, batch_size=batch_size)

    return CatalogModel


def _tensors(source: bytes, what: str) -> Dict[str, list]:
    from furiosa.artifacts.onnx_io import graph_io

    inputs, outputs = graph_io(source, what=what)

    def tensor(info: Any) -> dict:
        return {"name": info.name, "datatype": info.datatype, "shape": list(info.shape)}

    return {"inputs": [tensor(i) for i in inputs], "outputs": [tensor(o) for o in outputs]}


def _metadata(entry: Artifact) -> Dict[str, Any]:
    pub = entry.publication
    publication = None if pub is None else {
        "authors": pub.authors, "title": pub.title, "publisher": pub.publisher, "date": pub.date, "url": pub.url}
    return {"description": entry.description, "publication": publication}


def _versions(version: Optional[str]) -> set:
    """The forms a caller may give for a catalog version: itself and its semver (``v1.5``, ``v1.5.0``)."""
    try:
        return {version, semver(version)} if version else set()
    except ValueError:
        return {version}


def _build(root: Path, entry: Artifact, version: Optional[str], precision: Optional[str],
           built: Optional[Tuple[Artifact, str]] = None) -> Any:
    from furiosa.artifacts.loader import is_synthetic, load_from_repo
    from furiosa.artifacts.binaries import fetch_binary

    if version is not None and version not in _versions(entry.version):
        raise ModelNotFoundError(f"{entry.name} is version {entry.version!r} in this catalog, not {version!r}")
    if entry.format == "code":
        model = load_from_repo(entry.name, precision=precision or "int8", version=entry.version, root=root)
        source, synthetic, precision = model.source, model.synthetic, model.precision
    else:
        from furiosa.artifacts.storage.lockfile import safe_relpath

        # the catalog is data from anywhere: its location must stay inside the repository (symlinks followed)
        source = fetch_binary(root, safe_relpath(root, entry.location,
                                                 what=f"location of catalog entry {entry.name!r}"))[0]
        code_name = built[0].name if built else None
        synthetic = is_synthetic(root, code_name) if code_name else False
        precision = built[1] if built else Path(entry.location).stem
    fmt = "onnx" if entry.format == "code" else entry.format
    cls = model_class()
    model = cls(name=entry.name, source=source, format=fmt, family=entry.family, version=entry.version,
                metadata=_metadata(entry), precision=precision, synthetic=synthetic,
                **(_tensors(source, f"{entry.name} {precision} binary") if fmt == "onnx" else {}))
    object.__setattr__(model, "__doc__", _doc(entry))  # what the client's help(uri, name, version) returns
    model._code_name = entry.name if entry.format == "code" else (built[0].name if built else None)
    return model


def _doc(entry: Artifact) -> str:
    description = " ".join((entry.description or "").split())
    extra = " ``precision``: int8 (default) or fp32." if entry.format == "code" else ""
    return (f"{description}\n\n{entry.family} {entry.version or ''}, {entry.format} entry of artifacts.yaml; "
            f"``version``: {entry.version!r} or its semver.{extra}")


def _entry_point(root: Path, entry: Artifact, cls: type, module: str,
                 built: Optional[Tuple[Artifact, str]] = None) -> Callable[..., Any]:
    if entry.format == "code":
        def entry_point(version=None, *, precision="int8"):  # noqa: ANN001, ANN202 - annotations set below
            return _build(root, entry, version, precision)
    else:
        def entry_point(version=None):  # noqa: ANN001, ANN202
            return _build(root, entry, version, None, built)
    entry_point.__name__ = entry_point.__qualname__ = entry.name
    entry_point.__module__ = module
    entry_point.__annotations__ = {"return": cls}  # what furiosa-registry's list() inspects
    entry_point.__doc__ = _doc(entry)
    return entry_point


def entry_points(root: Path, *, module: str = "artifacts") -> Dict[str, Callable[..., Any]]:
    """One furiosa-registry 0.9 entry point per entry of ``root/artifacts.yaml``, by catalog name.

    Raises:
        ImportError: furiosa-registry is not installed (see :func:`model_class`).
        CatalogReadError: artifacts.yaml is missing or malformed.
    """
    root = Path(root)
    cls = model_class()
    entries = read_entries(root, validate=False)
    return {e.name: _entry_point(root, e, cls, module, built_binary(entries, e)) for e in entries}
