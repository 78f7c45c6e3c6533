"""A safe YAML loader that keeps line/column positions.

The catalog is small and hand-edited, so we are strict: one document, no anchors or
aliases (which is also what makes "billion laughs" bombs impossible), no duplicate keys,
no custom tags, a size cap. Every failure becomes a :class:`CatalogReadError` whose
message starts with ``file:line:column:``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent

from furiosa.artifacts.errors import CatalogReadError

#: Largest catalog we read; real catalogs are a few KiB.
MAX_BYTES = 1 << 20
#: Deepest nesting we accept (the catalog needs 5).
MAX_DEPTH = 32

Pointer = Tuple[Any, ...]
#: The only explicit tags a catalog may carry (the YAML core schema).
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass
class Document:
    """Plain Python data (dict/list/str/int/float/bool/None) plus where each part sits.

    ``values[pointer]`` is where the value at a JSON-pointer-like tuple starts;
    ``keys[pointer]`` is where the mapping key naming that value starts.
    """

    path: Path
    data: Any
    values: Dict[Pointer, Position] = field(default_factory=dict)
    keys: Dict[Pointer, Position] = field(default_factory=dict)
    #: Values written as unquoted YAML timestamps (``date: 2015-12-10``), which common YAML readers
    #: (``yaml.safe_load``) turn into ``datetime.date`` rather than the string the schema asks for.
    unquoted_timestamps: List[Pointer] = field(default_factory=list)

    def position(self, pointer: Pointer, *, key: bool = False) -> Position:
        """Best position for ``pointer``: the key (if asked and known), else the value, else the nearest parent."""
        pointer = tuple(pointer)
        while True:
            if key and pointer in self.keys:
                return self.keys[pointer]
            if pointer in self.values:
                return self.values[pointer]
            if not pointer:
                return Position(1, 1)
            pointer = pointer[:-1]


class _TimestampText(str):
    """The text of a plain (unquoted) YAML scalar that YAML 1.1 readers take for a timestamp."""


class _TextDateConstructor(RoundTripConstructor):
    """Keeps YAML timestamps as their text, so a bad date is a positioned schema error, not a crash."""


_TextDateConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda self, node: _TimestampText(self.construct_scalar(node)))


def _new_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _TextDateConstructor
    yaml.allow_duplicate_keys = False
    return yaml


def printable(text: str) -> str:
    """``text`` with non-printable characters (controls, terminal escapes, bidi overrides, lone surrogates)
    written as Python escapes, so that catalog content never reaches a terminal raw."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fail(path: Path, line: int, column: int, message: str) -> CatalogReadError:
    return CatalogReadError(f"{path}:{line}:{column}: {printable(message)}")


def _check_events(text: str, path: Path) -> None:
    """Reject aliases, tags and excessive nesting before anything is constructed."""
    depth = 0
    yaml = YAML(typ="rt")
    for event in yaml.parse(io.StringIO(text)):
        mark = event.start_mark
        if isinstance(event, AliasEvent):
            raise _fail(path, mark.line + 1, mark.column + 1,
                        f"YAML alias '*{event.anchor}' is not allowed in the catalog: write the value out in full")
        if isinstance(event, (ScalarEvent, MappingStartEvent, SequenceStartEvent)):
            if getattr(event, "anchor", None):
                raise _fail(path, mark.line + 1, mark.column + 1,
                            f"YAML anchor '&{event.anchor}' is not allowed in the catalog: remove it")
            tag = getattr(event, "tag", None)
            if tag and str(tag) not in _PLAIN_TAGS:
                raise _fail(path, mark.line + 1, mark.column + 1,
                            f"custom YAML tag '{tag}' is not allowed in the catalog: remove it")
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _fail(path, mark.line + 1, mark.column + 1,
                            f"nesting deeper than {MAX_DEPTH} levels: this is not a catalog")
        elif type(event).__name__ in ("MappingEndEvent", "SequenceEndEvent"):
            depth -= 1


def _plain(node: Any, pointer: Pointer, doc: Document) -> Any:
    """Convert ruamel's round-trip nodes into plain data, recording positions."""
    if isinstance(node, CommentedMap):
        out: Dict[Any, Any] = {}
        for key in node:
            child = pointer + (key,)
            try:
                kline, kcol = node.lc.key(key)
                doc.keys[child] = Position(kline + 1, kcol + 1)
                vline, vcol = node.lc.value(key)
                doc.values[child] = Position(vline + 1, vcol + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out[key if isinstance(key, (str, int, float, bool)) or key is None else str(key)] = _plain(
                node[key], child, doc)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            child = pointer + (index,)
            try:
                line, col = node.lc.item(index)
                doc.values[child] = Position(line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            items.append(_plain(item, child, doc))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, _TimestampText):
        doc.unquoted_timestamps.append(pointer)
    return str(node)


def load_document(path: Path) -> Document:
    """Read a YAML file safely, keeping positions.

    Raises:
        CatalogReadError: the file is missing, too large, not UTF-8, not valid YAML, has
            duplicate keys, aliases/anchors, custom tags, or more than one document.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CatalogReadError(f"{path}: no such file: pass the path of an artifacts.yaml") from None
    except IsADirectoryError:
        raise CatalogReadError(f"{path}: is a directory: pass the path of its artifacts.yaml") from None
    except OSError as exc:
        raise CatalogReadError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise CatalogReadError(f"{path}: larger than {MAX_BYTES} bytes: this is not a catalog")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogReadError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None

    try:
        _check_events(text, path)
        documents = list(_new_yaml().load_all(text))
    except CatalogReadError:
        raise
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        if "duplicate key" in problem or "found duplicate key" in str(exc):
            problem = f"duplicate key: {problem.splitlines()[0]} (each key may appear once per mapping)"
        raise _fail(path, line, col, f"invalid YAML: {problem}") from None
    except (YAMLError, RecursionError, ValueError) as exc:
        raise CatalogReadError(f"{path}:1:1: invalid YAML: "
                               f"{printable(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__}") from None
    if len(documents) != 1:
        raise CatalogReadError(f"{path}:1:1: expected exactly one YAML document, found {len(documents)}")
    doc = Document(path=path, data=None)
    doc.data = _plain(documents[0], (), doc)
    return doc
