"""Catalog lint: the JSON Schema plus the semantic checks of DESIGN.md contract 2.

Every problem is collected (not just the first) and reported as
``file:line:column: message [json-pointer]``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from jsonschema.exceptions import ValidationError

from furiosa.artifacts.catalog.yaml_io import (
    MAX_BYTES,
    Document,
    Pointer,
    load_document,
    parse_yaml,
    printable,
    read_yaml,
    shown,
    yaml11_differences,
)
from furiosa.artifacts.errors import CatalogReadError
from furiosa.artifacts.catalog.schema import iter_schema_errors

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: File extension each ``format`` must have.
EXTENSIONS = {"code": ".py", "onnx": ".onnx", "tflite": ".tflite"}


@dataclass(frozen=True)
class Problem:
    """One lint finding, positioned in the catalog file."""

    file: str
    line: int
    column: int
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message} [{self.pointer or '/'}]"

    def as_dict(self) -> Dict[str, Any]:
        """JSON-friendly form (for ``--json``)."""
        return {"file": self.file, "line": self.line, "column": self.column,
                "pointer": self.pointer or "/", "message": self.message}


def _pointer_text(pointer: Pointer) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in pointer)


class _Collector:
    def __init__(self, doc: Document):
        self.doc = doc
        self.problems: List[Problem] = []
        self.flagged: Set[Pointer] = set()

    def add(self, pointer: Pointer, message: str, *, key: bool = False) -> None:
        if pointer in self.flagged:
            return  # one message per field: the schema's already says what is wrong
        self.flagged.add(pointer)
        pos = self.doc.position(pointer, key=key)
        self.problems.append(Problem(str(self.doc.path), pos.line, pos.column, printable(_pointer_text(pointer)),
                                     printable(message)))


def _schema_message(error: ValidationError) -> Tuple[Pointer, str, bool]:
    """Turn a jsonschema error into (pointer, friendly message, point-at-key?)."""
    pointer = tuple(error.absolute_path)
    field = str(pointer[-1]) if pointer else "the document"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed), key=str) if isinstance(error.instance, dict) else []
        key = extra[0] if extra else ""
        return (pointer + (key,), f"unknown key '{key}' (furiosa-registry rejects extra fields); "
                f"allowed here: {', '.join(allowed)}", True)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else error.message
        return pointer, f"missing required key '{name}'", False
    if error.validator == "type":
        want = error.validator_value
        got = type(error.instance).__name__
        hint = f" (quote it in YAML: {field}: \"{error.instance}\")" if want == "string" and isinstance(
            error.instance, (int, float)) and not isinstance(error.instance, bool) else ""
        if pointer == () and want == "object":
            return pointer, f"the catalog root must be a mapping with an 'artifacts' list, got {got}", False
        return pointer, f"'{field}' must be of type {want}, got {got}{hint}", False
    if error.validator == "enum":
        return pointer, f"'{field}' is {error.instance!r}; use one of: {', '.join(map(str, error.validator_value))}", False
    if error.validator == "format":
        fmt = error.validator_value
        example = "YYYY-MM-DD" if fmt == "date" else "https://..."
        return pointer, f"'{field}' is not a valid {fmt}: {error.instance!r} (expected {example})", False
    if error.validator == "pattern":
        if field == "name":
            return pointer, (f"name {error.instance!r} must match [A-Za-z][A-Za-z0-9_]* "
                             "(it is also a Python function name)"), False
        if field in ("location", "doc"):
            return pointer, (f"'{field}' {error.instance!r} must be a relative path inside the repository "
                             "(no leading '/', no '..', forward slashes)"), False
        if field == "url":
            return pointer, f"'url' {error.instance!r} must be an http(s) URL", False
        return pointer, f"'{field}' {error.instance!r} does not match {error.validator_value}", False
    if error.validator == "minLength":
        return pointer, f"'{field}' must not be empty", False
    return pointer, error.message, False


def _lookup(data: Any, pointer: Pointer) -> Any:
    for part in pointer:
        data = data[part]
    return data


def _safe_relative(root: Path, value: str) -> Optional[str]:
    """Why ``value`` is not a safe repository-relative path, or None when it is."""
    if not value or value.strip() != value:
        return "must be a non-empty path without surrounding spaces"
    if "\\" in value:
        return "must use forward slashes"
    if "\0" in value:
        return "must not contain a NUL character"
    pure = PurePosixPath(value)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", value):
        return "must be relative to the catalog's directory, not absolute"
    if ".." in pure.parts:
        return "must not contain '..'"
    try:
        resolved = (root / value).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a symlink loop, an unencodable name
        return f"cannot be resolved ({exc})"
    try:
        resolved.relative_to(root.resolve())
    except ValueError:
        return f"resolves to {resolved}, outside the repository (a symlink pointing out?)"
    return None


def _is_file(path: Path) -> bool:
    """``path.is_file()`` that answers False for names the OS refuses (too long, ...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _callables_in(module: Path) -> Set[str]:
    """Names bound at module level to a def/class (or assigned), without importing the module."""
    tree = ast.parse(module.read_text("utf-8"), filename=str(module))
    names: Set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.ImportFrom, ast.Import)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _check_entry(c: _Collector, root: Path, index: int, entry: Dict[str, Any],
                 pipeline_outputs: Set[str], module_cache: Dict[str, Any]) -> None:
    base = ("artifacts", index)
    name = entry.get("name")
    fmt = entry.get("format")
    location = entry.get("location")
    if isinstance(location, str):
        why = _safe_relative(root, location)
        if why:
            c.add(base + ("location",), f"location {location!r} {why}")
            return
        ext = EXTENSIONS.get(fmt) if isinstance(fmt, str) else None
        if ext and not location.endswith(ext):
            c.add(base + ("location",), f"location {location!r} must end in '{ext}' for format '{fmt}'")
            return
        path = root / location
        if fmt == "code":
            if not _is_file(path):
                c.add(base + ("location",), f"code module {location!r} does not exist")
            elif isinstance(name, str):
                if location not in module_cache:
                    try:
                        module_cache[location] = _callables_in(path)
                    except (SyntaxError, UnicodeDecodeError, ValueError, OSError, RecursionError) as exc:
                        module_cache[location] = exc
                found = module_cache[location]
                if isinstance(found, Exception):
                    c.add(base + ("location",), f"code module {location!r} does not parse: {found}")
                elif name not in found:
                    c.add(base + ("name",), f"{location} defines no callable named '{name}': "
                          f"add `def {name}(...)` there or fix the name")
        elif fmt in ("onnx", "tflite"):
            if not _is_file(path) and location not in pipeline_outputs:
                c.add(base + ("location",), f"binary {location!r} does not exist and is not an output of the "
                      "pipeline (dvc.yaml): build it with the pipeline or fix the path")
    doc = entry.get("doc")
    if isinstance(doc, str):
        why = _safe_relative(root, doc)
        if why:
            c.add(base + ("doc",), f"doc {doc!r} {why}")
        elif not _is_file(root / doc):
            c.add(base + ("doc",), f"doc {doc!r} does not exist (furiosa-registry reads it on load): "
                  "create it or remove the key")


def _yaml11_problems(c: _Collector, doc: Document) -> None:
    """Lint parses YAML 1.2; DVC, GTO, our runtime reader and the furiosa-registry client parse YAML 1.1
    (PyYAML). Every scalar the two read differently (``yes``, ``off``, ``1:20``, ``017``, ``1_000``, a bad
    date ...) is a problem: the catalog must mean one thing to every reader."""
    if not doc.text:
        return
    try:
        yaml11 = parse_yaml(doc.text, source=str(doc.path), max_bytes=MAX_BYTES, exact=True)
    except CatalogReadError as exc:
        c.add((), f"PyYAML (YAML 1.1: the furiosa-registry client, DVC) cannot read this file: {exc}")
        return
    for pointer, old, new in yaml11_differences(yaml11, doc.data):
        field = str(pointer[-1]) if pointer else "the document"
        c.add(pointer, f"'{printable(field)}' reads as {shown(new)} in YAML 1.2 (lint) but as {shown(old)} in "
              "YAML 1.1 (PyYAML: the furiosa-registry client, DVC, GTO): quote it so both read the same text")


def lint_document(doc: Document, *, pipeline_outputs: Iterable[str] = ()) -> List[Problem]:
    """Schema and semantic problems of an already-loaded catalog document."""
    c = _Collector(doc)
    root = doc.path.parent
    _yaml11_problems(c, doc)
    for error in iter_schema_errors(doc.data):
        pointer, message, key = _schema_message(error)
        c.add(pointer, message, key=key)
    for pointer in doc.unquoted_timestamps:
        value = _lookup(doc.data, pointer)
        field = str(pointer[-1]) if pointer else "value"
        c.add(pointer, f"unquoted date {value!r}: YAML readers such as yaml.safe_load load it as a date object, "
              f"which the schema (a string) rejects; quote it: {field}: \"{value}\"")
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        return sorted(c.problems, key=lambda p: (p.line, p.column))
    seen: Dict[Tuple[str, Any], int] = {}
    outputs = set(pipeline_outputs)
    module_cache: Dict[str, Any] = {}
    for index, entry in enumerate(data["artifacts"]):
        if not isinstance(entry, dict):
            continue
        name, version = entry.get("name"), entry.get("version")
        if isinstance(name, str):
            key = (name, version if isinstance(version, (str, int, float, bool, type(None))) else repr(version))
            if key in seen:
                c.add(("artifacts", index, "name"), f"duplicate entry {name!r} version {version!r} "
                      f"(first at /artifacts/{seen[key]}): (name, version) must be unique")
            else:
                seen[key] = index
        _check_entry(c, root, index, entry, outputs, module_cache)
    return sorted(c.problems, key=lambda p: (p.line, p.column))


def lint_catalog(path: Path, *, pipeline_outputs: Optional[Iterable[str]] = None,
                 stage_deps: bool = True) -> List[Problem]:
    """Lint the catalog at ``path`` (a file, or a directory holding artifacts.yaml).

    ``stage_deps=False`` leaves out the check that dvc.yaml's stage deps match the code the stages import:
    it concerns whoever rebuilds the binaries, not a reader of the catalog (which may have no stage code).

    Raises:
        CatalogReadError: the file cannot be read or parsed as YAML.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "artifacts.yaml"
    doc = load_document(path)
    if pipeline_outputs is None:
        from furiosa.artifacts.catalog.pipeline import declared_outputs

        pipeline_outputs = declared_outputs(path.parent)
    problems = lint_document(doc, pipeline_outputs=pipeline_outputs)
    # The DVC model registry section is derived from a valid catalog: check it only when the catalog is
    # clean (else its problems would repeat) and the repository has a pipeline at all.
    return problems or _registry_problems(path, stage_deps=stage_deps)


def _registry_problems(path: Path, *, stage_deps: bool = True) -> List[Problem]:
    """dvc.yaml's `artifacts:` (DVC model registry) must match the catalog, its stage deps the code they run."""
    root = path.parent
    if not ((root / "dvc.yaml").is_file() and (root / "params.yaml").is_file()):
        return []
    from furiosa.artifacts.catalog.stage_deps import check_stage_deps
    from furiosa.artifacts.errors import ArtifactsError
    from furiosa.artifacts.registries.entry_module import ENTRY_MODULE, check_entry_module
    from furiosa.artifacts.registries import check_dvc_artifacts

    try:
        found = check_dvc_artifacts(root)
    except ArtifactsError as exc:
        return [Problem(str(root / "dvc.yaml"), 1, 1, "/artifacts", f"cannot check the DVC artifacts: {exc}")]
    if stage_deps:  # code a stage runs but does not depend on: `dvc repro` would miss it
        found = found + check_stage_deps(root)
    if any(e.get("location") == ENTRY_MODULE for e in _code_entries(path)):
        found = found + check_entry_module(root)
    problems = []
    for where, message in found:
        file, _, pointer = where.partition(":")
        problems.append(Problem(str(root / file), 1, 1, pointer or "/", message))
    return problems


def _code_entries(path: Path) -> List[Dict[str, Any]]:
    try:  # the one YAML reader (libyaml when present): a pure-Python re-parse cost seconds on large catalogs
        data = read_yaml(path, max_bytes=MAX_BYTES) or {}
    except (OSError, CatalogReadError):
        return []
    entries = data.get("artifacts") if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict) and e.get("format") == "code"] if isinstance(entries, list) else []


def unbuilt_binaries(path: Path) -> List[str]:
    """Binary locations the catalog names that the pipeline declares but that are not built (or pulled) yet."""
    path = Path(path)
    if path.is_dir():
        path = path / "artifacts.yaml"
    try:
        data = read_yaml(path, max_bytes=MAX_BYTES) or {}
    except (OSError, CatalogReadError):
        return []
    entries = data.get("artifacts") if isinstance(data, dict) else None
    return [e["location"] for e in (entries if isinstance(entries, list) else []) if isinstance(e, dict) and e.get("format") in ("onnx", "tflite")
            and isinstance(e.get("location"), str) and _safe_relative(path.parent, e["location"]) is None
            and not _is_file(path.parent / e["location"])]
