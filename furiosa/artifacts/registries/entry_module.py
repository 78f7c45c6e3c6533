"""``furiosa/artifacts/artifacts.py``, the code-format entry points, generated from the catalog.

furiosa-registry 0.5 imports the ``location`` of a ``format: code`` entry and calls the function named
like the entry; the loader serves only the functions of the *installed* module (see
:mod:`furiosa.artifacts.loader`), whose names it reads from the module's source with
:func:`installed_entry_points` (the module imports the loader, so the loader never imports it). The module
is written out as source (not made at import time like the root ``artifacts.py``) so that
``furiosa-artifacts lint`` can check, without importing anything, that every code entry has its function,
and so that a wheel without the catalog file still has them.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import textwrap
from pathlib import Path
from typing import FrozenSet, List, Tuple

from furiosa.artifacts.atomic import update_file
from furiosa.artifacts.catalog.entries import Artifact, read_entries
from furiosa.artifacts.errors import CatalogReadError

__all__ = [
    "ENTRY_MODULE",
    "ENTRY_MODULE_NAME",
    "check_entry_module",
    "entry_points_in",
    "installed_entry_points",
    "render_entry_module",
    "write_entry_module",
]

#: Repository-relative path of the module (the ``location`` of every ``code`` entry).
ENTRY_MODULE = "furiosa/artifacts/artifacts.py"
#: Its dotted name.
ENTRY_MODULE_NAME = "furiosa.artifacts.artifacts"
FIX = "run `furiosa-artifacts generate`"

_HEADER = '''\
"""Code-format entry points (furiosa-registry ``format: code``): one function per catalog name.

GENERATED from artifacts.yaml by `furiosa-artifacts generate`: edit the catalog, not this file
(`furiosa-artifacts lint` reports drift). The registry imports this module from a copy of the catalog
repository, calls the function named like the entry and then sets ``name``, ``description`` and
``version`` from the catalog. Keep it importable without torch.
"""

from __future__ import annotations

from furiosa.artifacts.loader import load_from_repo
from furiosa.artifacts.model import Model
'''


def _function(entry: Artifact) -> str:
    text = " ".join((entry.description or f"{entry.family} {entry.name}").split()).replace('"""', "'''")
    text = text.replace("\\", "\\\\") + (" " if text.endswith('"') else "")
    doc = textwrap.fill(text, width=112, initial_indent="    \"\"\"", subsequent_indent="    ") + '"""'
    if "\n" in doc:
        doc = doc[:-3] + "\n    \"\"\""
    return (f"\n\ndef {entry.name}(*, precision: str = \"int8\") -> Model:\n{doc}\n"
            f"    return load_from_repo(\"{entry.name}\", precision=precision)\n")


def render_entry_module(entries: List[Artifact]) -> str:
    """The module's source: one function per ``code`` entry located in :data:`ENTRY_MODULE`, catalog order."""
    seen = dict.fromkeys(e.name for e in entries if e.format == "code" and e.location == ENTRY_MODULE)
    by_name = {e.name: e for e in entries if e.format == "code" and e.location == ENTRY_MODULE}
    return _HEADER + "".join(_function(by_name[name]) for name in seen)


def write_entry_module(root: Path) -> List[Path]:
    """Write :data:`ENTRY_MODULE` under ``root`` from its artifacts.yaml; the files changed.

    Raises:
        CatalogReadError: artifacts.yaml cannot be read.
    """
    path = Path(root) / ENTRY_MODULE
    return [path] if update_file(path, render_entry_module(read_entries(Path(root), validate=False))) else []


def check_entry_module(root: Path) -> List[Tuple[str, str]]:
    """``[(ENTRY_MODULE, message)]`` when the module differs from what the catalog generates, else ``[]``."""
    try:
        want = render_entry_module(read_entries(Path(root), validate=False))
    except CatalogReadError as exc:
        return [("artifacts.yaml", f"cannot derive {ENTRY_MODULE}: {exc}")]
    try:
        have = (Path(root) / ENTRY_MODULE).read_text("utf-8")
    except OSError:
        have = None
    if have == want:
        return []
    return [(ENTRY_MODULE, f"stale generated entry points (one function per `format: code` entry of "
             f"artifacts.yaml); {FIX}")]


def entry_points_in(source: str) -> FrozenSet[str]:
    """The entry points a module's source defines: its top-level functions not named ``_...``.

    Raises:
        SyntaxError: ``source`` is not Python.
    """
    return frozenset(node.name for node in ast.parse(source).body
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"))


@functools.lru_cache(maxsize=1)
def installed_entry_points() -> FrozenSet[str]:
    """Names of the entry points of the installed :data:`ENTRY_MODULE_NAME`, read from its source.

    The module is found the way ``import`` would find it but not executed. Empty when the installation
    carries no source for it: then no ``code`` entry is served without trust.
    """
    spec = importlib.util.find_spec(ENTRY_MODULE_NAME)
    loader = getattr(spec, "loader", None)
    source = loader.get_source(ENTRY_MODULE_NAME) if hasattr(loader, "get_source") else None
    return entry_points_in(source) if source else frozenset()
