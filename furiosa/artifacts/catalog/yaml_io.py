"""A safe YAML loader that keeps line/column positions.

The catalog is small and hand-edited, so we are strict: one document, no anchors or
aliases (which is also what makes "billion laughs" bombs impossible), no duplicate keys,
no custom tags, a size cap. Every failure becomes a :class:`CatalogReadError` whose
message starts with ``file:line:column:``.
"""

from __future__ import annotations

import collections
import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

from functools import lru_cache

from furiosa.artifacts.errors import CatalogReadError, YamlPolicyError

# ruamel (lint's position-keeping YAML 1.2 parser) is imported on demand: loading a model needs only PyYAML.

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
    text: str = ""
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


@lru_cache(maxsize=1)
def _text_date_constructor() -> type:
    """A round-trip constructor keeping YAML timestamps as their text, so a bad date is a positioned
    schema error, not a crash."""
    from ruamel.yaml.constructor import RoundTripConstructor

    class _TextDateConstructor(RoundTripConstructor):
        pass

    _TextDateConstructor.add_constructor(
        "tag:yaml.org,2002:timestamp", lambda self, node: _TimestampText(self.construct_scalar(node)))
    return _TextDateConstructor


@lru_cache(maxsize=1)
def _policy_composer() -> type:
    """A ruamel composer that applies the catalog policy (no aliases or anchors, no custom tags, bounded
    depth) to each event before composing it: one pass, nothing expanded before it is checked."""
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent

    class _PolicyComposer(Composer):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            mark = event.start_mark
            if isinstance(event, AliasEvent):
                raise YamlPolicyError(mark, f"YAML alias '*{event.anchor}' is not allowed in the catalog: "
                                   "write the value out in full")
            if getattr(event, "anchor", None):
                raise YamlPolicyError(mark, f"YAML anchor '&{event.anchor}' is not allowed in the catalog: remove it")
            tag = getattr(event, "tag", None)
            if tag and str(tag) not in _PLAIN_TAGS:
                raise YamlPolicyError(mark, f"custom YAML tag '{tag}' is not allowed in the catalog: remove it")
            nested = isinstance(event, (MappingStartEvent, SequenceStartEvent))
            self._policy_depth = getattr(self, "_policy_depth", 0) + nested
            try:
                if self._policy_depth > MAX_DEPTH:
                    raise YamlPolicyError(mark, f"nesting deeper than {MAX_DEPTH} levels: this is not a catalog")
                return super().compose_node(parent, index)
            finally:
                self._policy_depth -= nested

    return _PolicyComposer


def _new_yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.Composer = _policy_composer()
    yaml.Constructor = _text_date_constructor()
    yaml.allow_duplicate_keys = False
    return yaml


def printable(text: str) -> str:
    """``text`` with non-printable characters (controls, terminal escapes, bidi overrides, lone surrogates)
    written as Python escapes, so that catalog content never reaches a terminal raw."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def printable_lines(text: str) -> str:
    """:func:`printable` applied line by line (newlines kept): for multi-line CLI text output."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _fail(path: Path, line: int, column: int, message: str) -> CatalogReadError:
    return CatalogReadError(f"{path}:{line}:{column}: {printable(message)}")


def _plain(node: Any, pointer: Pointer, doc: Document) -> Any:
    """Convert ruamel's round-trip nodes into plain data, recording positions."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

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
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        documents = list(_new_yaml().load_all(text))
    except YamlPolicyError as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        raise _fail(path, line, col, exc.message) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        if "duplicate key" in problem or "found duplicate key" in str(exc):
            problem = f"duplicate key: {problem.splitlines()[0]} (each key may appear once per mapping)"
        raise _fail(path, line, col, f"invalid YAML: {problem}") from None
    except (YAMLError, RecursionError, ValueError, TypeError) as exc:  # TypeError: a list as a mapping key
        raise CatalogReadError(f"{path}:1:1: invalid YAML: "
                               f"{printable(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__}") from None
    if len(documents) != 1:
        raise CatalogReadError(f"{path}:1:1: expected exactly one YAML document, found {len(documents)}")
    doc = Document(path=path, data=None, text=text)
    doc.data = _plain(documents[0], (), doc)
    return doc


# --- The one runtime reader (PyYAML, YAML 1.1: what DVC, GTO and the furiosa-registry client read) ----------

#: Largest YAML file read at run time (dvc.lock, params.yaml, dvc.yaml, specs.yaml, .gto, artifacts.yaml).
RUNTIME_MAX_BYTES = 4 << 20
#: Longest excerpt of a parser message we print (never the expanded value).
MAX_MESSAGE = 200


def _short(text: str) -> str:
    """One line of ``text``, printable, at most MAX_MESSAGE characters."""
    line = printable(" ".join(str(text).split()))
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


#: Aliases may repeat a node at most this many extra times, over the size of the text itself: a shared
#: list in a dumped file is fine, a "billion laughs" is refused long before it is expanded.
ALIAS_SLACK_NODES = 10_000


def _check_events(events: Any, source: str, error: type, max_depth: int) -> None:
    """The policy on a PyYAML event stream, before anything is built: at most ``max_depth`` levels, one
    document, and aliases bounded: the document expanded (every alias counted as the size of its anchor)
    may hold at most twice the nodes written plus :data:`ALIAS_SLACK_NODES`."""
    import yaml as pyyaml

    anchors: Dict[str, int] = {}
    stack: list = [[None, 0]]  # [anchor, expanded node count] per open collection; [0] is the stream
    written = documents = 0
    for event in events:
        mark = event.start_mark
        if isinstance(event, pyyaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise error(f"{source}:{mark.line + 1}:{mark.column + 1}: expected one YAML document, found more")
        elif isinstance(event, pyyaml.ScalarEvent):
            written += 1
            stack[-1][1] += 1
            if event.anchor:
                anchors[event.anchor] = 1
        elif isinstance(event, pyyaml.AliasEvent):
            written += 1
            stack[-1][1] += anchors.get(event.anchor, 1)
        elif isinstance(event, (pyyaml.MappingStartEvent, pyyaml.SequenceStartEvent)):
            written += 1
            stack.append([event.anchor, 1])
            if len(stack) - 1 > max_depth:
                raise error(f"{source}:{mark.line + 1}:{mark.column + 1}: nesting deeper than {max_depth} levels: "
                            "refusing to parse it")
        elif isinstance(event, (pyyaml.MappingEndEvent, pyyaml.SequenceEndEvent)):
            anchor, count = stack.pop()
            if anchor:
                anchors[anchor] = count
            stack[-1][1] += count
        else:
            continue
        if stack[0][1] + sum(c for _, c in stack[1:]) > 2 * written + ALIAS_SLACK_NODES:
            raise error(f"{source}:{mark.line + 1}:{mark.column + 1}: YAML aliases expand this document past "
                        f"{2 * written + ALIAS_SLACK_NODES} nodes (an alias bomb?): refusing to parse it; write "
                        "the values out")


def parse_yaml(text: "str | bytes", *, source: str, error: type = CatalogReadError,
               max_bytes: int = RUNTIME_MAX_BYTES, max_depth: int = MAX_DEPTH, exact: bool = False) -> Any:
    """Parse one YAML document with PyYAML's safe loader under this package's safety policy.

    The policy, the same for every file we read: at most ``max_bytes``, UTF-8, one document, aliases only
    within a bounded expansion (checked on the event stream, before anything is built, so "billion laughs"
    cannot start; see :func:`_check_events`), at most ``max_depth`` levels, and every failure (syntax, a bad date, an over-deep nest) becomes ``error`` with a
    bounded, printable message starting with ``source``. With libyaml installed the C parser is used
    (same resolver and constructor, ~10x faster); ``exact=True`` uses the pure-Python parser, exactly what
    ``yaml.safe_load`` (and so the furiosa-registry client) runs.

    Raises:
        error: (an ``ArtifactsError`` subclass) whatever is wrong, positioned where PyYAML knows it.
    """
    import yaml as pyyaml

    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise error(f"{source}: larger than {max_bytes} bytes: refusing to parse it")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{source}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    elif len(text) > max_bytes:
        raise error(f"{source}: larger than {max_bytes} characters: refusing to parse it")
    try:
        fast = not exact and getattr(pyyaml, "__with_libyaml__", False)
        # libyaml (C) when present: the same resolver and constructor, ~10x faster
        _check_events(pyyaml.parse(text, Loader=pyyaml.CSafeLoader if fast else pyyaml.SafeLoader),
                      source, error, max_depth)
        return pyyaml.load(text, Loader=pyyaml.CSafeLoader if fast else pyyaml.SafeLoader)
    except error:
        raise
    except pyyaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part) or type(exc).__name__
        raise error(f"{where}: invalid YAML: {_short(problem)}") from None
    except (pyyaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # ValueError/OverflowError: PyYAML's constructor on a bad date (2020-13-45, year 99999)
        raise error(f"{source}: invalid YAML: {_short(str(exc) or type(exc).__name__)}") from None


def read_yaml(path: Path, *, error: type = CatalogReadError, max_bytes: int = RUNTIME_MAX_BYTES) -> Any:
    """Read the YAML file ``path`` with :func:`parse_yaml`'s policy.

    Raises:
        FileNotFoundError: ``path`` does not exist (callers say how to create it).
        error: it cannot be read (a directory, no permission) or parsed.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    key = (hashlib.blake2b(raw, digest_size=16).digest(), max_bytes)
    if key not in _PARSED:
        _PARSED[key] = parse_yaml(raw, source=str(path), error=error, max_bytes=max_bytes)
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    _PARSED.move_to_end(key)
    return copy.deepcopy(_PARSED[key])  # callers may change what they get


#: Parses of read_yaml by content (one lint reads dvc.yaml and dvc.lock several times): the same bytes
#: always parse the same, so the cache can never be stale. Errors are not cached.
_PARSED: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_PARSED_MAX = 16


# --- YAML 1.1 (PyYAML) vs YAML 1.2 (ruamel) agreement ---------------------------------------------------------


def _same(yaml11: Any, yaml12: Any, key: Any) -> bool:
    """Whether one scalar means the same to both parsers (dates: PyYAML's date, our text of it)."""
    import datetime
    import math

    if isinstance(yaml11, (datetime.date, datetime.datetime)):
        return key == "date" and isinstance(yaml12, str) and yaml12.strip() == str(yaml11)
    if type(yaml11) is not type(yaml12):
        return False
    if isinstance(yaml11, float) and math.isnan(yaml11):
        return math.isnan(yaml12)
    return bool(yaml11 == yaml12)


def yaml11_differences(yaml11: Any, yaml12: Any, pointer: Pointer = ()) -> "list[tuple[Pointer, Any, Any]]":
    """Every place where PyYAML's (YAML 1.1) and lint's (YAML 1.2) parse of one text differ, compared node by
    node: ``(pointer in the 1.2 document, 1.1 value, 1.2 value)``. A mapping key read differently is
    reported at that key."""
    if isinstance(yaml12, dict):
        if not isinstance(yaml11, dict) or len(yaml11) != len(yaml12):
            return [(pointer, yaml11, yaml12)]
        out = []
        for (k11, v11), (k12, v12) in zip(yaml11.items(), yaml12.items()):
            if not _same(k11, k12, None):
                out.append((pointer + (k12,), k11, k12))
            else:
                out.extend(yaml11_differences(v11, v12, pointer + (k12,)))
        return out
    if isinstance(yaml12, list):
        if not isinstance(yaml11, list) or len(yaml11) != len(yaml12):
            return [(pointer, yaml11, yaml12)]
        return [d for i, (a, b) in enumerate(zip(yaml11, yaml12)) for d in yaml11_differences(a, b, pointer + (i,))]
    key = pointer[-1] if pointer else None
    return [] if _same(yaml11, yaml12, key) else [(pointer, yaml11, yaml12)]


def shown(value: Any) -> str:
    """A bounded, printable ``repr`` for messages (never a whole expanded value)."""
    return _short(repr(value))
