"""The code and data dependencies of every dvc.yaml stage, derived from the code (never chosen by hand).

A stage whose ``cmd`` runs ``python stages/X.py`` depends on every project module that script can
import, transitively, counting *every* ``import``/``from`` of ``furiosa.artifacts...`` anywhere in a
module (lazy imports inside functions included) and the ``__init__.py`` of every package on the way.
It also depends on the package data files those modules name (``specs.yaml``, ``data/*.txt``): a
string constant equal to the file name of a non-Python file shipped in the package.

Two refinements keep "edit one model, rebuild one model" true:

* Network files (``params.yaml`` ``models.<name>.network``) are imported by
  :func:`furiosa.artifacts.vision.models.create_model` only for the model being built, so a stage whose
  closure reaches the network registry gets ``${item.network}`` (its own model's file) plus the closure
  of every network file that another module imports statically.
* A YAML data file keyed by model name (``specs.yaml``) is tracked per model as a ``params`` entry
  (``- furiosa/artifacts/vision/specs.yaml: [${key}]``) in ``foreach`` stages, not as a whole-file dep.

``furiosa-artifacts dvc-deps`` rewrites those parts of dvc.yaml (ruamel round trip: comments, order and
the hand-written deps such as ``models/${key}/weights.pt`` are kept); ``furiosa-artifacts lint`` and
:func:`check_stage_deps` report drift.
"""

from __future__ import annotations

import ast
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import yaml

from furiosa.artifacts.atomic import atomic_write_text
from furiosa.artifacts.errors import CatalogReadError

__all__ = ["StageDeps", "check_stage_deps", "expected_stage_deps", "import_closure", "write_stage_deps"]

DVC_FILE = "dvc.yaml"
PARAMS_FILE = "params.yaml"
PACKAGE = "furiosa.artifacts"
PACKAGE_DIR = "furiosa/artifacts"
#: The module whose ``create_model`` imports a model's network file (named in params.yaml) by path.
NETWORK_REGISTRY = "furiosa/artifacts/vision/models/__init__.py"
NETWORK_DEP = "${item.network}"
_SCRIPT = re.compile(r"(?:^|\s)python3?\s+(?:-u\s+)?(\S+\.py)(?=\s|$)")
_MODULE = re.compile(r"(?:^|\s)python3?\s+(?:-u\s+)?-m\s+([A-Za-z_][\w.]*)(?=\s|$)")
FIX = "run `furiosa-artifacts dvc-deps`"
_STAGES_KEY = re.compile(r"^stages\s*:")
_TOP_LEVEL_KEY = re.compile(r"^[^\s#]")


@dataclass(frozen=True)
class StageDeps:
    """What one stage must depend on: code and data files, and per-model YAML files tracked as params."""

    stage: str
    deps: Tuple[str, ...]
    keyed_params: Tuple[str, ...] = ()


def _module_file(root: Path, dotted: str) -> Optional[str]:
    """``furiosa.artifacts.x.y`` -> ``furiosa/artifacts/x/y.py`` (or its package ``__init__.py``), if it exists."""
    rel = dotted.replace(".", "/")
    for candidate in (f"{rel}.py", f"{rel}/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def _packages_of(rel: str, root: Path) -> List[str]:
    """``__init__.py`` files Python runs before ``rel`` (every package above it, ``furiosa/`` upwards)."""
    parts = Path(rel).parent.parts
    out = []
    for i in range(1, len(parts) + 1):
        init = "/".join(parts[:i]) + "/__init__.py"
        if init != rel and (root / init).is_file():
            out.append(init)
    return out


def _current_package(rel: str) -> str:
    """The package a module's relative imports start from (its directory, for a module or an ``__init__``)."""
    return ".".join(Path(rel).parent.parts)


def _scan(rel: str, tree: ast.AST) -> Tuple[Set[str], Set[str]]:
    """One walk of ``tree``: the dotted names of every project module it may import (all levels, relative
    imports resolved) and its short one-line string constants (package data files it may name)."""
    names: Set[str] = set()
    strings: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str) and 0 < len(node.value) < 200 and "\n" not in node.value:
                strings.add(node.value)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _current_package(rel).split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}, strings


def _package_data(root: Path) -> Dict[str, List[str]]:
    """Non-Python files shipped in the package, by file name."""
    out: Dict[str, List[str]] = {}
    for path in sorted((root / PACKAGE_DIR).rglob("*")):
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
            out.setdefault(path.name, []).append(path.relative_to(root).as_posix())
    return out


#: (relative path, file content) -> (imported dotted names, short string constants): a module is parsed
#: once per process while its text is unchanged (the lint runs this on every call).
_PARSED: Dict[Tuple[str, str], Tuple[Set[str], Set[str]]] = {}


class _Scanner:
    """Parses each module once; answers closures of scripts."""

    def __init__(self, root: Path):
        self.root = root
        self._edges: Dict[str, List[str]] = {}
        self._parsed: Dict[str, Tuple[Set[str], Set[str]]] = {}  # one read per module per scanner
        self._data = _package_data(root)

    def parsed(self, rel: str) -> Tuple[Set[str], Set[str]]:
        """(project modules ``rel`` imports, its string constants) from a cached parse."""
        if rel in self._parsed:
            return self._parsed[rel]
        path = self.root / rel
        try:
            key = (rel, path.read_text("utf-8"))
            if key not in _PARSED:
                if len(_PARSED) > 4096:
                    _PARSED.clear()
                _PARSED[key] = _scan(rel, ast.parse(key[1], filename=rel))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
            raise CatalogReadError(f"{path}: cannot parse to derive stage dependencies: {exc}") from None
        self._parsed[rel] = _PARSED[key]
        return self._parsed[rel]

    def closure(self, start: Iterable[str]) -> Set[str]:
        """Every project module reachable from ``start`` (repository-relative paths), ``start`` included."""
        seen: Set[str] = set()
        todo = [s for s in start]
        while todo:
            rel = todo.pop()
            if rel in seen:
                continue
            seen.add(rel)
            todo.extend(p for p in self.edges(rel) if p not in seen)
        return seen

    def edges(self, rel: str) -> List[str]:
        """The project files importing ``rel`` runs first: its packages' ``__init__.py`` and every import."""
        if rel not in self._edges:
            found = {_module_file(self.root, dotted) for dotted in self.parsed(rel)[0]}
            self._edges[rel] = _packages_of(rel, self.root) + sorted(f for f in found if f)
        return self._edges[rel]

    def data_files(self, modules: Iterable[str]) -> Set[str]:
        out: Set[str] = set()
        for rel in modules:
            for text in self.parsed(rel)[1] & set(self._data):
                out.update(self._data[text])
        return out


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader when built with it
_YAML_CACHE: Dict[str, Any] = {}


def _read_yaml(path: Path) -> Any:
    """Safely parsed YAML (plain data only), cached by text; callers must not mutate it."""
    try:
        text = path.read_text("utf-8")
        if text not in _YAML_CACHE:
            if len(_YAML_CACHE) > 64:
                _YAML_CACHE.clear()
            _YAML_CACHE[text] = yaml.load(text, Loader=_SafeLoader)
        return _YAML_CACHE[text]
    except FileNotFoundError:
        raise CatalogReadError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise CatalogReadError(f"{path}: invalid YAML: {exc}") from None


def stage_script(body: Dict[str, Any], root: Optional[Path] = None) -> Optional[str]:
    """The file a stage body's ``cmd`` runs with python (``python stages/X.py`` or ``python -m pkg.mod``
    for a project module under ``root``), or None."""
    cmd = body.get("cmd")
    text = " ".join((" ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd or "")).split())
    match = _SCRIPT.search(text)
    if match:
        return match.group(1)
    module = _MODULE.search(text)
    if module and root is not None:
        return _module_file(Path(root), module.group(1)) or _module_file(Path(root), module.group(1) + ".__main__")
    return None


def _network_files(params: Any) -> List[str]:
    models = (params or {}).get("models") if isinstance(params, dict) else None
    return sorted({m["network"] for m in (models or {}).values() if isinstance(m, dict)
                   and isinstance(m.get("network"), str)})


def _keyed_by_model(root: Path, rel: str, models: Set[str]) -> bool:
    """Whether ``rel`` is a YAML mapping whose top-level keys are exactly model names."""
    if not rel.endswith((".yaml", ".yml")) or not models:
        return False
    data = _read_yaml(root / rel)
    return isinstance(data, dict) and bool(data) and set(data) <= models


def expected_stage_deps(root: Path) -> Dict[str, StageDeps]:
    """The derived dependencies of every dvc.yaml stage that runs a ``python stages/X.py`` script.

    Raises:
        CatalogReadError: dvc.yaml or params.yaml is missing or not YAML, a stage script is missing,
            or a module of its closure does not parse.
    """
    root = Path(root)
    pipeline = _read_yaml(root / DVC_FILE) or {}
    params = _read_yaml(root / PARAMS_FILE) or {}
    models = set((params.get("models") or {}) if isinstance(params, dict) else {})
    scanner = _Scanner(root)
    networks = [n for n in _network_files(params) if (root / n).is_file()]
    out: Dict[str, StageDeps] = {}
    for name, stage in (pipeline.get("stages") or {}).items():
        if not isinstance(stage, dict):
            continue
        foreach = "foreach" in stage
        body = stage.get("do", stage) if foreach else stage
        script = stage_script(body, root)
        if script is None:
            continue
        if not (root / script).is_file():
            raise CatalogReadError(f"{root / DVC_FILE}: stage '{name}' runs {script}, which does not exist")
        modules = scanner.closure([script])
        network_deps: List[str] = []
        if NETWORK_REGISTRY in modules and networks:
            # create_model imports a model's network file by its params.yaml path: a per-model stage depends
            # on its own model's file (${item.network}), a single stage on all of them; and every stage that
            # builds networks on what the network files import (a network file imported statically by some
            # module is already in the closure, for every model).
            for net in networks:
                modules |= scanner.closure([net]) - {net}
            network_deps = [NETWORK_DEP] if foreach else [n for n in networks if n not in modules]
        data = scanner.data_files(modules | set(networks if network_deps else ()))
        keyed = tuple(sorted(d for d in data if foreach and _keyed_by_model(root, d, models)))
        code = sorted(modules - {script})
        deps = tuple([script] + code + sorted(data - set(keyed)) + network_deps)
        out[name] = StageDeps(stage=name, deps=deps, keyed_params=keyed)
    return out


def _is_generated(dep: Any, root: Path) -> bool:
    """Whether a dvc.yaml dep is one this module owns: project code/data files and ``${item.network}``."""
    if not isinstance(dep, str):
        return False
    if dep == NETWORK_DEP:
        return True
    if "${" in dep:
        return False
    if not dep.startswith((PACKAGE_DIR + "/", "stages/")):
        return False
    # a module that no longer exists (deleted or renamed) is still ours: regenerating drops it
    return dep.endswith(".py") or (root / dep).is_file()


def _keyed_entry(params: List[Any], rel: str) -> Optional[Any]:
    for entry in params:
        if isinstance(entry, dict) and rel in entry:
            return entry
    return None


def _want_deps(current: List[Any], want: StageDeps, root: Path) -> List[Any]:
    kept = [d for d in current if not _is_generated(d, root)]
    return list(want.deps) + kept


def check_stage_deps(root: Path) -> List[Tuple[str, str]]:
    """Where dvc.yaml's stage deps differ from the derived ones: ``(location, message)`` pairs.

    Unreadable inputs are reported as problems, not raised. Empty when everything agrees.
    """
    root = Path(root)
    try:
        expected = expected_stage_deps(root)
        pipeline = _read_yaml(root / DVC_FILE) or {}
    except CatalogReadError as exc:
        return [(DVC_FILE, f"cannot derive the stage dependencies: {exc}")]
    problems: List[Tuple[str, str]] = []
    stages = pipeline.get("stages") or {}
    for name, want in expected.items():
        stage = stages[name]
        body = stage.get("do", stage) if "foreach" in stage else stage
        where = f"{DVC_FILE}:/stages/{name}" + ("/do" if "foreach" in stage else "")
        have = [d for d in body.get("deps") or [] if _is_generated(d, root)]
        missing = [d for d in want.deps if d not in have]
        extra = [d for d in have if d not in want.deps]
        if missing:
            problems.append((f"{where}/deps", f"stage '{name}' runs code it does not depend on: "
                             f"{', '.join(missing)}; {FIX}"))
        if extra:
            problems.append((f"{where}/deps", f"stage '{name}' depends on files its code never imports or reads: "
                             f"{', '.join(extra)}; {FIX}"))
        if not missing and not extra and have != list(want.deps):
            problems.append((f"{where}/deps", f"stage '{name}' deps are not in the generated order; {FIX}"))
        params = body.get("params") or []
        for rel in want.keyed_params:
            entry = _keyed_entry(params, rel)
            if entry is None or entry[rel] != ["${key}"]:
                problems.append((f"{where}/params", f"stage '{name}' reads {rel} but does not track its own "
                                 f"entry (`- {rel}: [${{key}}]`); {FIX}"))
    return problems


def write_stage_deps(root: Path) -> List[Path]:
    """Rewrite the derived deps (and per-model params entries) of dvc.yaml's stages; the files changed.

    Everything else in dvc.yaml (comments, hand-written deps such as outputs of earlier stages,
    params, outs, the ``artifacts:`` section) is kept.

    Raises:
        CatalogReadError: dvc.yaml, params.yaml or a module cannot be read.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    root = Path(root)
    expected = expected_stage_deps(root)
    path = root / DVC_FILE
    text = path.read_text("utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _STAGES_KEY.match(line)), None)
    if start is None:
        return []
    end = next((j for j in range(start + 1, len(lines)) if _TOP_LEVEL_KEY.match(lines[j])), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1  # comments and blank lines right before the next key belong to that key
    block = "".join(lines[start:end])
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    data = rt.load(block)
    for name, want in expected.items():
        stage = data["stages"][name]
        body = stage["do"] if "foreach" in stage else stage
        current = list(body.get("deps") or [])
        new = _want_deps(current, want, root)
        if current != new:
            seq = CommentedSeq(new)
            if "deps" in body:
                body["deps"] = seq
            else:
                body.insert(list(body).index("cmd") + 1, "deps", seq)
        if want.keyed_params:
            params = body.get("params")
            if params is None:
                params = CommentedSeq()
                body.insert(list(body).index("deps") + 1, "params", params)
            for rel in want.keyed_params:
                entry = _keyed_entry(params, rel)
                if entry is None:
                    item = CommentedMap()
                    item[rel] = CommentedSeq(["${key}"])
                    params.append(item)
                elif entry[rel] != ["${key}"]:
                    entry[rel] = CommentedSeq(["${key}"])
    buffer = io.StringIO()
    rt.dump(data, buffer)
    new_text = "".join(lines[:start]) + buffer.getvalue() + "".join(lines[end:])
    if new_text == text:
        return []
    atomic_write_text(path, new_text)
    return [path]


def import_closure(root: Path, script: str) -> List[str]:
    """Every project module ``script`` (a repository-relative path) may import, itself first."""
    closure = _Scanner(Path(root)).closure([script])
    return [script] + sorted(closure - {script})
