"""Weights and YAML are data, never code.

Source scans (AST, so multi-line calls count): every ``torch.load`` passes ``weights_only=True``; no
``pickle.load``, ``np.load(allow_pickle=True)`` or ``torch.jit.load``; PyYAML only through
``safe_load``/``SafeLoader``, ruamel only with ``typ`` ``rt``/``safe``. And hostile pickles run nothing.

test_vision_convert.py already checks that a pickled ``nn.Module`` is refused with BuildError; here the
pickles try to *execute* something (a ``__reduce__`` that creates a marker file; a module class whose
defining module creates a marker on import) and the test checks that nothing ran.
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO_ROOT

torch = pytest.importorskip("torch")

from furiosa.artifacts.errors import BuildError  # noqa: E402
from furiosa.artifacts.vision.convert import load_state_dict_file  # noqa: E402

SOURCE_DIRS = ("furiosa", "stages")


def _torch_load_calls(tree: ast.AST):
    """(line, call) of every ``torch.load(...)`` / ``load(...)`` imported from torch / ``torch.serialization.load``."""
    aliases = {"torch"}
    direct = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname for a in node.names if a.name == "torch" and a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            direct.update(a.asname or a.name for a in node.names if a.name == "load")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "load" and (
                isinstance(func.value, ast.Name) and func.value.id in aliases
                or isinstance(func.value, ast.Attribute) and func.value.attr == "serialization"):
            yield node.lineno, node
        elif isinstance(func, ast.Name) and func.id in direct:
            yield node.lineno, node


def test_every_torch_load_in_the_source_tree_is_weights_only():
    calls, bad = 0, []
    for directory in SOURCE_DIRS:
        for path in sorted((REPO_ROOT / directory).rglob("*.py")):
            text = path.read_text("utf-8")
            for lineno, call in _torch_load_calls(ast.parse(text, filename=str(path))):
                calls += 1
                flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    bad.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {ast.unparse(call)}")
            # pickle.load / pickle.loads / np.load(allow_pickle=True) on files are refused outright
            for lineno, line in enumerate(text.splitlines(), 1):
                code = line.split("#", 1)[0]
                if "pickle.load" in code or "allow_pickle=True" in code or "torch.jit.load" in code:
                    bad.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {line.strip()}")
    assert calls >= 2, "the scan found no torch.load at all: is it still looking at the right files?"
    assert not bad, "\n".join(bad)


_UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def _unsafe_yaml_calls(tree: ast.AST):
    """Lines of PyYAML loads that are not safe (``yaml.load``, ``Loader=yaml.Loader`` ...) and unsafe ruamel types."""
    pyyaml = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
              for a in node.names if a.name == "yaml"}
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    in_function = {id(n) for f in functions for n in ast.walk(f)}
    for scope in [tree] + functions:
        if scope is tree:
            local, nodes = set(), [n for n in ast.walk(tree) if id(n) not in in_function]
        else:
            local = {t.id for n in ast.walk(scope) if isinstance(n, ast.Assign) for t in n.targets
                     if isinstance(t, ast.Name)}
            nodes = list(ast.walk(scope))
        for node in nodes:
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            safe_loader = any(k.arg == "Loader" and ast.unparse(k.value).endswith(("SafeLoader", "CSafeLoader"))
                              for k in node.keywords)
            if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in pyyaml
                    and func.value.id not in local and func.attr in _UNSAFE_YAML and not safe_loader):
                yield node.lineno
            for keyword in node.keywords:
                if keyword.arg == "Loader" and not ast.unparse(keyword.value).endswith(("SafeLoader", "CSafeLoader")):
                    yield node.lineno
                if (keyword.arg == "typ" and isinstance(func, ast.Name) and func.id == "YAML"
                        and not (isinstance(keyword.value, ast.Constant) and keyword.value.value in ("rt", "safe"))):
                    yield node.lineno


def test_yaml_is_only_ever_loaded_safely():
    bad = []
    for directory in SOURCE_DIRS:
        for path in sorted((REPO_ROOT / directory).rglob("*.py")):
            tree = ast.parse(path.read_text("utf-8"), filename=str(path))
            bad.extend(f"{path.relative_to(REPO_ROOT)}:{line}" for line in sorted(set(_unsafe_yaml_calls(tree))))
    assert not bad, "unsafe YAML loading at:\n" + "\n".join(bad)
    unsafe = ("import yaml\nyaml.load(t)\nyaml.load(t, Loader=yaml.Loader)\nyaml.safe_load(t)\n"
              "yaml.load(t, Loader=yaml.SafeLoader)\nfrom ruamel.yaml import YAML\nYAML(typ='unsafe').load(t)\n"
              "def f():\n    yaml = YAML(typ='rt')\n    return yaml.load(t)\n")
    assert sorted(set(_unsafe_yaml_calls(ast.parse(unsafe)))) == [2, 3, 7]  # the scan does catch them


def test_the_scan_would_catch_an_unsafe_call():
    unsafe = "import torch as T\nfrom torch import load as L\nT.load('w.pt')\nL('w.pt', weights_only=False)\n"
    calls = list(_torch_load_calls(ast.parse(unsafe)))
    assert [line for line, _ in calls] == [3, 4]


class _Marker:
    """Unpickling this creates the marker file (``open(path, "w")``): code execution, if it ever happens."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_reduce_payload_is_refused_without_running(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"weight": torch.zeros(2), "evil": _Marker(marker)}
    path = tmp_path / "weights.pth"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    assert not marker.exists()
    with pytest.raises(BuildError, match="not a plain state dict"):
        load_state_dict_file(path)
    assert not marker.exists(), "unpickling ran the payload's code"


def test_whole_module_pickle_is_refused_and_its_module_never_imported(tmp_path: Path) -> None:
    """``torch.save(module)`` of a class whose module has side effects: loading must not import that module."""
    package = tmp_path / "pkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "evilnet.py").write_text(textwrap.dedent(f"""
        import pathlib, torch
        pathlib.Path({str(marker)!r}).write_text("module code ran")
        class EvilNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(2, 2)
    """))
    saved = tmp_path / "module.pth"
    subprocess.run([sys.executable, "-c", f"import sys, torch; sys.path.insert(0, {str(package)!r}); import evilnet; "
                    f"torch.save(evilnet.EvilNet(), {str(saved)!r})"], check=True, timeout=300)
    marker.unlink()  # saving imported it once, in the other process
    sys.path.insert(0, str(package))
    try:
        with pytest.raises(BuildError, match="pickled module is never unpickled"):
            load_state_dict_file(saved)
    finally:
        sys.path.remove(str(package))
    assert not marker.exists() and "evilnet" not in sys.modules
