"""Catalog entries as typed objects (the furiosa-registry `Artifact` structure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from furiosa.artifacts.errors import CatalogError, CatalogReadError, ModelNotFoundError

CATALOG_FILE = "artifacts.yaml"


@dataclass(frozen=True)
class Publication:
    """Where a model was published (furiosa-registry `Publication`)."""

    authors: Optional[List[str]] = None
    title: Optional[str] = None
    publisher: Optional[str] = None
    date: Optional[str] = None
    url: Optional[str] = None


@dataclass(frozen=True)
class Artifact:
    """One catalog entry (furiosa-registry `Artifact`)."""

    name: str
    family: str
    location: str
    format: str
    version: Optional[str] = None
    doc: Optional[str] = None
    description: Optional[str] = None
    publication: Optional[Publication] = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def normalize_name(name: str) -> str:
    """Case- and punctuation-insensitive form of a model name (``ssd-resnet34`` ~ ``SSDResNet34``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _artifact(raw: Any, *, where: str) -> Artifact:
    """One entry; raises CatalogError when it lacks the shape every reader relies on."""
    def bad(what: str) -> CatalogError:
        return CatalogError(f"{where}: {what}; run `furiosa-artifacts lint`")

    if not isinstance(raw, dict):
        raise bad(f"expected a mapping, got {type(raw).__name__}")
    for key in ("name", "family", "location", "format"):
        if not isinstance(raw.get(key), str):
            raise bad(f"'{key}' must be a string, got {raw.get(key)!r:.80}")
    for key in ("version", "doc"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise bad(f"'{key}' must be a quoted string, got {raw[key]!r:.80}")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict) or not isinstance(meta.get("publication") or {}, dict):
        raise bad("'metadata' must be a mapping (with 'description' and a 'publication' mapping)")
    pub = meta.get("publication")
    date = pub.get("date") if isinstance(pub, dict) else None
    return Artifact(
        name=raw["name"], family=raw["family"], location=raw["location"], format=raw["format"],
        version=raw.get("version"), doc=raw.get("doc"), description=meta.get("description"),
        publication=Publication(
            authors=pub.get("authors"), title=pub.get("title"), publisher=pub.get("publisher"),
            date=None if date is None else str(date), url=pub.get("url"),
        ) if isinstance(pub, dict) else None,
    )


def read_entries(root: Path, *, validate: bool = True) -> List[Artifact]:
    """The entries of ``root/artifacts.yaml``.

    With ``validate`` (the default) the catalog is linted first and any problem raises.

    Raises:
        CatalogReadError: the file is missing or not YAML.
        CatalogError: the catalog has lint problems (all are listed in the message).
    """
    path = Path(root) / CATALOG_FILE
    if validate:
        from furiosa.artifacts.catalog.lint import lint_catalog

        problems = lint_catalog(path)
        if problems:
            listing = "\n".join(f"  {p}" for p in problems)
            raise CatalogError(f"{path} has {len(problems)} problem(s); run `furiosa-artifacts lint`:\n{listing}")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CatalogReadError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CatalogReadError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CatalogReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CatalogReadError(f"{path}: invalid YAML: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # PyYAML's constructor: bad dates, deep nesting
        raise CatalogReadError(f"{path}: invalid YAML: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        raise CatalogReadError(f"{path}: expected a mapping with an 'artifacts' list")
    return [_artifact(raw, where=f"{path}: /artifacts/{index}") for index, raw in enumerate(data["artifacts"])]


def find_entry(entries: List[Artifact], name: str, version: Optional[str] = None) -> Artifact:
    """The entry named ``name`` (exact, else case/punctuation-insensitive), newest listed if no version.

    Raises:
        ModelNotFoundError: nothing matches; the message lists close names.
    """
    exact = [e for e in entries if e.name == name]
    matches = exact or [e for e in entries if normalize_name(e.name) == normalize_name(name)]
    if version is not None:
        matches = [e for e in matches if e.version == version]
    if not matches:
        known = ", ".join(sorted({e.name for e in entries}))
        what = f"{name!r}" + (f" version {version!r}" if version is not None else "")
        raise ModelNotFoundError(f"no catalog entry {what}; known names: {known}")
    return matches[-1]


def built_binary(entries: List[Artifact], entry: Artifact) -> Optional[Tuple[Artifact, str]]:
    """The ``code`` entry and precision a binary entry is a pipeline build of, else None.

    The one place ``<Name>_INT8``-style entries are resolved: by location, never by name, so
    ``DigitsConvNet_INT8`` at ``models/DigitsConvNet/int8.onnx`` is ``(DigitsConvNet entry, "int8")``
    whatever it is called. A ``code`` entry resolves to None.
    """
    from furiosa.artifacts.layout import PRECISIONS, binary_relpath

    if entry.format == "code":
        return None
    for candidate in entries:
        if candidate.format == "code":
            for precision in PRECISIONS:
                if binary_relpath(candidate.name, precision) == entry.location:
                    return candidate, precision
    return None
