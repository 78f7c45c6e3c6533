"""Turn a catalog entry into a :class:`~furiosa.artifacts.model.Model`.

Trust model: loading never imports code from the catalog repository. A ``code`` entry whose
``location`` is :data:`ENTRY_MODULE` and whose name is an entry point of the *installed*
``furiosa.artifacts.artifacts`` (named by its source, which is read, never imported here: that module
imports this one; see :func:`~furiosa.artifacts.registries.entry_module.installed_entry_points`) is
served by this package's own code; the repository only
supplies data (the catalog and the ONNX binaries under ``models/``). Any other ``code`` entry
would run the repository's Python: it is refused with :class:`UntrustedCodeError` unless the
repository is trusted (``trust_repo=True``, or its absolute path listed in
``$FURIOSA_ARTIFACTS_TRUSTED_REPOS``, separated by ``os.pathsep``); then its module is imported
by file path and the function named like the entry is called. Paths from the catalog
(``location``, ``doc``) and the binaries read must stay inside the repository (symlinks included)
unless the repository is trusted.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any, FrozenSet, Optional, Tuple

from furiosa.artifacts.catalog.entries import Artifact, built_binary, lookup, read_entries
from furiosa.artifacts.errors import CatalogError, ModelNotFoundError, UnsafePathError, UntrustedCodeError
from furiosa.artifacts.layout import binary_relpath, metrics_relpath, package_repo_root
from furiosa.artifacts.binaries import fetch_binary, model_provenance, warn_provenance
from furiosa.artifacts.model import Model
from furiosa.artifacts.registries.entry_module import ENTRY_MODULE, installed_entry_points

#: Environment variable listing trusted repository roots (absolute paths, ``os.pathsep``-separated).
ENV_TRUSTED = "FURIOSA_ARTIFACTS_TRUSTED_REPOS"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: (repository root, entry names whose trusted code is running): lets that code's own
#: ``load_from_repo(name)`` read its binary from that repository instead of calling itself again.
_ACTIVE: contextvars.ContextVar[Optional[Tuple[Path, FrozenSet[str]]]] = contextvars.ContextVar(
    "furiosa_artifacts_active_repo", default=None)


def is_trusted(root: Path, *, trust_repo: bool = False) -> bool:
    """Whether code from the repository at ``root`` may be imported (``trust_repo`` or the environment)."""
    if trust_repo:
        return True
    real = Path(root).resolve()
    for item in os.environ.get(ENV_TRUSTED, "").split(os.pathsep):
        item = item.strip()
        if item and os.path.isabs(item) and Path(item).resolve() == real:
            return True
    return False


def _contained(root: Path, relpath: Any, *, what: str, trusted: bool) -> Path:
    """``root / relpath`` after checking that it is a clean relative path that stays inside ``root``.

    Raises:
        UnsafePathError: not a non-empty string, NUL byte, backslash, absolute, ``..``, or (unless
            ``trusted``) resolving outside ``root`` through a symlink.
    """
    if not isinstance(relpath, str) or not relpath.strip() or "\0" in relpath or "\\" in relpath:
        raise UnsafePathError(f"refusing {what} {relpath!r} from {root}: expected a relative path with '/'")
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", relpath) or ".." in pure.parts:
        raise UnsafePathError(f"refusing {what} {relpath!r} from {root}: absolute or containing '..'; "
                              "catalog paths are relative to the repository root")
    path = Path(root) / relpath
    if not trusted:
        try:
            path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            raise UnsafePathError(
                f"refusing {what} {relpath!r}: it resolves to {path.resolve()}, outside the repository {root} "
                "(a symlink pointing out?); trust the repository to allow it"
            ) from None
        except (OSError, RuntimeError) as exc:  # symlink loop, name too long
            raise UnsafePathError(f"refusing {what} {relpath!r} from {root}: {exc}") from None
    return path


def _check_entry(root: Path, entry: Artifact, *, trusted: bool) -> None:
    if not isinstance(entry.name, str) or not _NAME.match(entry.name):
        raise CatalogError(f"{root / 'artifacts.yaml'}: entry name {entry.name!r} must match [A-Za-z][A-Za-z0-9_]*; "
                           "run `furiosa-artifacts lint`")
    _contained(root, entry.location, what="location", trusted=trusted)
    if entry.doc is not None:
        _contained(root, entry.doc, what="doc", trusted=trusted)


def is_synthetic(root: Path, name: str) -> bool:
    """Whether the built binaries of ``name`` in ``root`` are *not* known to come from real weights.

    Fails closed: True for synthetic weights and for a binary whose provenance is missing or
    unreadable (see :func:`furiosa.artifacts.binaries.model_provenance`); False only when the
    binary says ``official`` or ``train``.
    """
    from furiosa.artifacts.binaries import model_provenance

    return model_provenance(root, name).kind not in ("official", "train")


def _call_repo_code(root: Path, entry: Artifact, precision: str) -> Any:
    """Import ``root/entry.location`` by file path and call its function ``entry.name`` (trusted repos only)."""
    path = Path(root) / entry.location
    try:
        is_module = path.is_file() and path.suffix == ".py"
    except (OSError, ValueError):
        is_module = False
    if not is_module:
        raise CatalogError(f"code entry {entry.name!r}: {path} is not a Python module")
    module_name = "_furiosa_artifacts_repo_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise CatalogError(f"code entry {entry.name!r}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
    function = getattr(module, entry.name, None)
    if not callable(function):
        raise CatalogError(f"code entry {entry.name!r}: {entry.location} defines no callable named {entry.name!r}")
    try:
        params = inspect.signature(function).parameters.values()
        takes_precision = any(p.name == "precision" or p.kind is p.VAR_KEYWORD for p in params)
    except (TypeError, ValueError):
        takes_precision = True
    active = _ACTIVE.get()
    running = active[1] if active and active[0] == Path(root).resolve() else frozenset()
    token = _ACTIVE.set((Path(root).resolve(), running | {entry.name}))
    try:
        return function(precision=precision) if takes_precision else function()
    finally:
        _ACTIVE.reset(token)


def load_from_repo(name: str, *, precision: Optional[str] = None, version: Optional[str] = None,
                   root: Optional[Path] = None, trust_repo: bool = False) -> Model:
    """Load catalog model ``name`` from a repository checkout (default: the one this package is in, or the
    catalog bundled into an installed wheel).

    A binary recorded in the catalog's ``dvc.lock`` is resolved and verified by md5 and size (workspace,
    DVC cache, ``$FURIOSA_ARTIFACTS_HOME``, then the remote); a model whose binary does not prove real
    weights (synthetic or unknown provenance) emits a :class:`~furiosa.artifacts.errors.ProvenanceWarning`.

    ``code`` entries that are not entry points of the installed package (see the module docstring)
    run the repository's own code, which needs ``trust_repo=True`` or ``$FURIOSA_ARTIFACTS_TRUSTED_REPOS``.

    Raises:
        ModelNotFoundError: no such entry (typos get "did you mean"), or an ambiguous name.
        BinaryNotFoundError: the binary is in none of the places the resolver looks (OfflineError when
            only the network has it and ``$FURIOSA_ARTIFACTS_OFFLINE`` is set).
        DownloadError, ChecksumError: the remote failed or served corrupt bytes.
        UntrustedCodeError: the entry needs code from a repository that is not trusted.
        UnsafePathError: a catalog path or the binary leads outside the repository.
        CatalogError: the entry is malformed.
        ValueError: unknown precision.

    ``name`` matches loosely (:func:`furiosa.artifacts.catalog.entries.lookup`): ``resnet50``,
    ``mlcommons-resnet50-fp32`` (a DVC artifact name, which fixes the precision), ...
    """
    active = _ACTIVE.get()
    if root is None:
        root = active[0] if active else package_repo_root()
    root = Path(root)
    trusted = is_trusted(root, trust_repo=trust_repo) or bool(active and active[0] == root.resolve())
    entries = read_entries(root, validate=False)
    entry, fixed = lookup(entries, name, version)
    if entry.format != "code":  # `<Name>_INT8`-style entries: the build their location names, never their name
        built = built_binary(entries, entry)
        if built is None:
            raise ModelNotFoundError(
                f"catalog entry {entry.name!r} ({entry.location}) is not a binary the pipeline builds for a catalog "
                "model, so no pre/postprocessing goes with it: read the file itself, or load the model it belongs to")
        entry, fixed = built
    if fixed is not None and precision not in (None, fixed):
        raise ModelNotFoundError(f"{name!r} names the {fixed} binary of {entry.name}; drop precision={precision!r} "
                                 f"or load {entry.name!r}")
    precision = precision or fixed or "int8"
    _check_entry(root, entry, trusted=trusted)
    if entry.format == "code" and not (entry.location == ENTRY_MODULE and entry.name in installed_entry_points()):
        running = bool(active and active[0] == root.resolve() and entry.name in active[1])
        if not running:  # else: that entry's trusted code is asking for its own binary
            if not trusted:
                raise UntrustedCodeError(
                    f"refusing to import code from {root}: catalog entry {entry.name!r} (location "
                    f"{entry.location!r}) is not an entry point of the installed furiosa-artifacts ({ENTRY_MODULE}: "
                    f"{', '.join(sorted(installed_entry_points()))}), and loading it would run that repository's "
                    f"Python code. If you trust the repository, pass trust_repo=True or add {root.resolve()} to "
                    f"${ENV_TRUSTED}"
                )
            return _call_repo_code(root, entry, precision)
    relpath = binary_relpath(entry.name, precision)
    _contained(root, relpath, what="binary", trusted=trusted)
    _contained(root, metrics_relpath(entry.name), what="metrics file", trusted=trusted)
    source, path = fetch_binary(root, relpath)
    provenance = model_provenance(root, entry.name, source)
    model = Model(name=entry.name, family=entry.family, version=entry.version, description=entry.description,
                  source=source, precision=precision, path=path, provenance=provenance)
    warn_provenance(entry.name, provenance)
    return model
