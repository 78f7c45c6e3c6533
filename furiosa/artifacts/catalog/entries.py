"""Catalog entries as typed objects (the furiosa-registry `Artifact` structure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from furiosa.artifacts.catalog.yaml_io import MAX_BYTES, read_yaml

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

        problems = lint_catalog(path, stage_deps=False)  # the pipeline's code deps are `lint`'s concern
        if problems:
            listing = "\n".join(f"  {p}" for p in problems)
            raise CatalogError(f"{path} has {len(problems)} problem(s); run `furiosa-artifacts lint`:\n{listing}")
    try:
        data = read_yaml(path, error=CatalogReadError, max_bytes=MAX_BYTES)
    except FileNotFoundError:
        raise CatalogReadError(f"{path}: no such file") from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        raise CatalogReadError(f"{path}: expected a mapping with an 'artifacts' list")
    return [_artifact(raw, where=f"{path}: /artifacts/{index}") for index, raw in enumerate(data["artifacts"])]


def find_entry(entries: List[Artifact], name: str, version: Optional[str] = None) -> Artifact:
    """The entry ``name`` stands for (see :func:`lookup`), newest listed if no version.

    Raises:
        ModelNotFoundError: nothing matches (with "did you mean"), or the name is ambiguous (candidates listed).
    """
    return lookup(entries, name, version)[0]


def _pick(matches: List[Artifact], version: Optional[str]) -> Optional[Artifact]:
    if version is not None:
        matches = [e for e in matches if e.version == version]
    return matches[-1] if matches else None


def _close_names(wanted: str, names: List[str], *, limit: int = 3) -> List[str]:
    """Names that contain most of ``wanted`` in order (a typo inside a substring), best first (difflib)."""
    import difflib

    scored = []
    for name in names:
        matcher = difflib.SequenceMatcher(None, wanted, normalize_name(name), autojunk=False)
        share = sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(wanted))
        if share >= 0.75:
            scored.append((-share, -matcher.ratio(), name))
    return [name for _, _, name in sorted(scored)[:limit]]


def lookup(entries: List[Artifact], name: str, version: Optional[str] = None) -> Tuple[Artifact, Optional[str]]:
    """The entry a name a user typed stands for, and the precision the name fixes (None: not fixed).

    Tried in order: the exact name; the name ignoring case and punctuation (``mlcommons-resnet50``); a DVC
    artifact name (``mlcommons-resnet50-fp32`` fixes fp32); a unique case/punctuation-insensitive
    substring of one name (``resnet50``, ``ssd-resnet34``), code entries preferred over their bare
    ``_INT8`` files. Several names with the substring: ambiguous; none: the closest names are suggested.

    Raises:
        ModelNotFoundError: no match, or an ambiguous one; the message says what to type instead.
    """
    what = f"{name!r}" + (f" version {version!r}" if version is not None else "")
    for matches in ([e for e in entries if e.name == name],
                    [e for e in entries if normalize_name(e.name) == normalize_name(name)]):
        if matches:
            found = _pick(matches, version)
            if found is None:
                versions = ", ".join(sorted({str(e.version) for e in matches}))
                raise ModelNotFoundError(f"no catalog entry {what}; {matches[0].name} has version(s) {versions}")
            return found, None
    code = [e.name for e in entries if e.format == "code"]
    try:
        from furiosa.artifacts.registries.names import catalog_name

        model, precision = catalog_name(name, code)
        found = _pick([e for e in entries if e.name == model], version)
        if found is not None:
            return found, precision
    except ModelNotFoundError:
        pass
    wanted = normalize_name(name)
    hits = [e for e in entries if wanted and wanted in normalize_name(e.name)]
    hits = [e for e in hits if e.format == "code"] or hits
    names = list(dict.fromkeys(e.name for e in hits))
    if len(names) == 1:
        found = _pick([e for e in hits if e.name == names[0]], version)
        if found is not None:
            return found, None
    if len(names) > 1:
        raise ModelNotFoundError(f"{name!r} is ambiguous: it matches {', '.join(names)}; type more of the name")
    known = list(dict.fromkeys(e.name for e in entries))
    close = _close_names(wanted, list(dict.fromkeys(code)) or known)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ModelNotFoundError(f"no catalog entry {what}; {hint}known names: {', '.join(sorted(known))} "
                             "(`furiosa-artifacts list`)")


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
