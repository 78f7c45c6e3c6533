"""Layout rules of the code, checked by reading it (ast), never by importing it.

- every exception class lives in ``furiosa/artifacts/errors.py``;
- no module imports a ``_private`` name or module from another package (a package = a directory);
- the import graph of ``furiosa.artifacts`` has no cycle but the known one below.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

from conftest import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "furiosa" / "artifacts"
ERRORS = PACKAGE_DIR / "errors.py"
#: Private modules still imported from another package (none: keep it that way).
KNOWN_PRIVATE_MODULES: set = set()
#: read_entries(validate=True) runs the lint, whose entry-module check reads the entries again.
KNOWN_CYCLES = [{"furiosa.artifacts.catalog.entries", "furiosa.artifacts.catalog.lint",
                 "furiosa.artifacts.registries.entry_module"}]


def _python_files(*dirs: str) -> Iterator[Path]:
    for name in dirs:
        yield from sorted(p for p in (REPO_ROOT / name).rglob("*.py") if "__pycache__" not in p.parts)


def _tree(path: Path, source: Optional[str] = None) -> ast.Module:
    return ast.parse(path.read_text("utf-8") if source is None else source, filename=str(path))


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# --------------------------------------------------------------------------- exceptions


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_exception_name(name: str, known: Set[str]) -> bool:
    builtin = getattr(builtins, name, None)
    return (name in known or (isinstance(builtin, type) and issubclass(builtin, BaseException))
            or name.endswith(("Error", "Exception", "Warning")))


def _exception_classes() -> List[Tuple[Path, ast.ClassDef]]:
    """Every class under furiosa/ deriving (by name, transitively) from an exception."""
    classes = [(path, node) for path in _python_files("furiosa") for node in ast.walk(_tree(path))
               if isinstance(node, ast.ClassDef)]
    known: Set[str] = set()
    while True:  # a class deriving from one of ours found in an earlier pass is an exception too
        found = {node.name for _, node in classes if any(_is_exception_name(_base_name(b), known) for b in node.bases)}
        if found <= known:
            return [(path, node) for path, node in classes if node.name in known]
        known |= found


def test_every_exception_class_is_defined_in_errors_py() -> None:
    classes = _exception_classes()
    assert any(path == ERRORS for path, _ in classes)  # the scan sees ours
    outside = [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: class {node.name}"
               for path, node in classes if path != ERRORS]
    assert outside == [], "define these in furiosa/artifacts/errors.py:\n" + "\n".join(outside)


def test_the_exception_scan_catches_a_class_outside_errors_py() -> None:
    tree = ast.parse("class Oops(ValueError): pass\nclass Deeper(Oops): pass\nclass Plain: pass\n")
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    known: Set[str] = set()
    for _ in range(3):
        known |= {n.name for n in classes if any(_is_exception_name(_base_name(b), known) for b in n.bases)}
    assert known == {"Oops", "Deeper"}


def test_errors_reaching_callers_derive_from_artifacts_error() -> None:
    import furiosa.artifacts.errors as errors

    internal = {"YamlPolicyError", "Transient", "Permanent", "DeadlineExceeded", "LocalWriteError", "GaveUp",
                "RemoteFailure"}
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__:
            if name not in internal and not issubclass(value, Warning):
                assert issubclass(value, errors.ArtifactsError), name
            assert value.__doc__, f"{name} has no docstring"


# --------------------------------------------------------------------------- private imports


def _module_path(dotted: str) -> Optional[Path]:
    base = REPO_ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_dir(dotted: str) -> Optional[Path]:
    """The directory (package) that holds the module or package ``dotted``'s names."""
    path = _module_path(dotted)
    if path is None:
        return None
    return path.parent


def _absolute(module: Optional[str], level: int, path: Path) -> str:
    if not level:
        return module or ""
    base = list(path.relative_to(REPO_ROOT).parent.parts)
    base = base[:len(base) - level + 1]
    return ".".join(base + ([module] if module else []))


def _imports(path: Path, source: Optional[str] = None) -> Iterator[Tuple[int, str, List[str]]]:
    """(line, absolute module, imported names) of every import in the file, function bodies included."""
    for node in ast.walk(_tree(path, source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(node.module, node.level, path), [a.name for a in node.names]


def private_imports(path: Path, source: Optional[str] = None) -> List[str]:
    """Imports in ``path`` (or ``source`` as if it were there) of a ``_private`` module or name that belongs
    to another directory."""
    here = path.parent
    problems = []
    for line, module, names in _imports(path, source):
        parts = module.split(".")
        if _private(parts[0]):  # a top-level module found through sys.path: ours when the repository has it
            ours = [p.parent for p in REPO_ROOT.glob(f"*/{parts[0]}.py")] + [
                p.parent for p in REPO_ROOT.glob(f"{parts[0]}.py")]
            if ours and here not in ours:
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line}: private module {module}")
            continue
        if not (REPO_ROOT / parts[0]).is_dir():
            continue  # not ours
        for i, part in enumerate(parts):
            owner = _package_dir(".".join(parts[:i])) if i else REPO_ROOT
            if _private(part) and owner is not None and owner != here and ".".join(parts[:i + 1]) \
                    not in KNOWN_PRIVATE_MODULES:
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line}: private module {'.'.join(parts[:i + 1])}")
        owner = _package_dir(module)
        for name in names:
            target = f"{module}.{name}"
            if not _private(name) or owner is None or target in KNOWN_PRIVATE_MODULES:
                continue
            home = _module_path(target).parent if _module_path(target) else owner
            if home != here:
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line}: private name {name} from {module}")
    return problems


def test_no_private_name_is_imported_from_another_package() -> None:
    problems = [p for path in _python_files("furiosa", "stages", "benchmarks") for p in private_imports(path)]
    assert problems == [], "make these public (or move the importer):\n" + "\n".join(problems)


def test_the_private_import_scan_catches_violations() -> None:
    found = private_imports(PACKAGE_DIR / "storage" / "probe.py", (
        "from furiosa.artifacts.sources import diskio\n"
        "from furiosa.artifacts.storage import _fetch\n"  # same package: fine
        "from . import _fetch\n"
        "from furiosa.artifacts.vision.postprocess import _softmax\n"
        "from ..catalog.yaml_io import _new_yaml as y\n"
        "import furiosa.artifacts.build._fold\n"
        "def f():\n    from furiosa.artifacts.build._fold import fold_pads_into_convs\n"
        "import _nms_oracle\n"  # a private module nowhere in the repository: not ours
        "import numpy._core\n"))
    assert [p.split(": ", 1)[1] for p in found] == [
        "private name _softmax from furiosa.artifacts.vision.postprocess",
        "private name _new_yaml from furiosa.artifacts.catalog.yaml_io",
        "private module furiosa.artifacts.build._fold",
        "private module furiosa.artifacts.build._fold",
    ]
    assert private_imports(REPO_ROOT / "benchmarks" / "probe.py", "import _coco_oracle\n") == [
        "benchmarks/probe.py:1: private module _coco_oracle"]


# --------------------------------------------------------------------------- import cycles


def import_graph() -> Dict[str, Set[str]]:
    """``{module: modules it imports}`` over furiosa.artifacts, lazy imports inside functions included.

    ``from P import n`` is an edge to ``P.n`` when that is a module, else to ``P``; the implicit import of
    a module's parent packages is not an edge (every module has it).
    """
    modules = {_dotted(path): path for path in _python_files("furiosa/artifacts")}
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        edges: Set[str] = set()
        for _, module, names in _imports(path):
            submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in modules}
            edges |= submodules
            if module in modules and (not names or len(submodules) < len(names)):
                edges.add(module)
        graph[name] = edges - {name}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[Set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[Set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_loader_and_the_entry_module_are_in_no_import_cycle() -> None:
    graph = import_graph()
    assert "furiosa.artifacts.loader" in graph["furiosa.artifacts.artifacts"]  # the generated module uses it
    found = cycles(graph)
    assert not [c for c in found if {"furiosa.artifacts.loader", "furiosa.artifacts.artifacts"} & c], found


def test_no_import_cycle_but_the_known_ones() -> None:
    assert sorted(map(sorted, cycles(import_graph()))) == sorted(map(sorted, KNOWN_CYCLES))


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [{"a", "b", "c"}]
