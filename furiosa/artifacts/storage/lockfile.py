"""What ``dvc.lock`` records about each output, read without importing DVC.

Every stage's ``outs`` (metrics included) gives a path, an md5 and a size. DVC 3 writes
``hash: md5`` beside them and stores the object under ``files/md5/xx/<rest>`` in the cache and
on remotes; an entry without it comes from DVC 2 and lives under ``xx/<rest>`` (``legacy``).
A directory output's md5 ends in ``.dir``: it names a JSON manifest listing the directory's
files (``[{"md5": ..., "relpath": ...}, ...]``).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable

from furiosa.artifacts.catalog.yaml_io import read_yaml

from furiosa.artifacts.errors import BinaryNotFoundError, LockFileError, UnsafePathError
from furiosa.artifacts.sources.cache import normalize_digest

__all__ = ["LOCK_FILE", "LockedOutput", "object_key", "read_outputs", "safe_relpath"]

LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class LockedOutput:
    """One output recorded in ``dvc.lock``."""

    path: str  # POSIX, relative to the repository root
    md5: str  # 32 hex digits (a directory's ``.dir`` suffix is in ``is_dir``)
    size: int | None  # a directory's total size, not its manifest's
    is_dir: bool = False
    legacy: bool = False  # DVC 2 layout (no ``files/md5/`` prefix)
    stage: str = ""


def object_key(md5: str, *, is_dir: bool = False, legacy: bool = False) -> str:
    """Where DVC stores an object inside a cache or remote: ``files/md5/xx/<rest>[.dir]``.

    Raises:
        UnsafePathError: ``md5`` is not 32 hexadecimal digits.
    """
    md5 = normalize_digest("md5", md5)
    key = f"{md5[:2]}/{md5[2:]}" + (".dir" if is_dir else "")
    return key if legacy else f"files/md5/{key}"


def contained_file(root: Path, relpath: str, *, what: str = "file") -> Path | None:
    """``root/relpath`` when it is a regular file whose real path stays inside ``root`` (or its DVC cache, for
    DVC's symlink/hardlink cache types); None when there is no such file. For readers that do not go
    through dvc.lock (``show``, ``verify``), so a workspace symlink never leads them out of the repository.

    Raises:
        UnsafePathError: the path resolves outside (through a symlink).
    """
    path = Path(root) / relpath
    try:
        if not path.is_file():
            return None
    except (OSError, ValueError):
        return None
    from furiosa.artifacts.errors import ArtifactsError
    from furiosa.artifacts.storage.remote import dvc_cache_dir

    try:
        inside = [dvc_cache_dir(root)]
    except (ArtifactsError, OSError, ValueError):
        inside = []
    return Path(root) / safe_relpath(root, relpath, what=what, inside=inside)


def safe_relpath(root: Path, relpath: str, *, what: str = "path", inside: Iterable[Path] = ()) -> str:
    """``relpath`` as a clean POSIX path that stays inside ``root``.

    Symlinks are followed: the real path must lie under ``root`` (or one of ``inside``).

    Raises:
        UnsafePathError: empty, absolute, with ``..`` or a NUL byte, or resolving outside.
    """
    if not isinstance(relpath, str) or not relpath.strip() or "\0" in relpath:
        raise UnsafePathError(f"refusing {what} {relpath!r}: expected a non-empty relative path")
    unified = relpath.replace("\\", "/")
    if PurePosixPath(unified).is_absolute() or PureWindowsPath(relpath).drive:
        raise UnsafePathError(f"refusing {what} {relpath!r}: an absolute path escapes the repository {root}")
    if ".." in unified.split("/"):
        raise UnsafePathError(f"refusing {what} {relpath!r}: '..' escapes the repository {root}")
    clean = posixpath.normpath(unified)
    if clean in (".", ""):
        raise UnsafePathError(f"refusing {what} {relpath!r}: it names the repository itself")
    real = os.path.realpath(Path(root) / clean)
    allowed = [os.path.realpath(p) for p in (Path(root), *inside)]
    if not any(os.path.commonpath([base, real]) == base for base in allowed):
        raise UnsafePathError(
            f"refusing {what} {relpath!r}: it resolves to {real} (through a symlink), outside the repository {root}"
        )
    return clean


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def read_outputs(root: Path) -> dict[str, LockedOutput]:
    """Every output in ``root/dvc.lock``, keyed by its path.

    Raises:
        BinaryNotFoundError: there is no ``dvc.lock`` (nothing was built), or it is not YAML.
        UnsafePathError: an output path escapes the repository, or an md5 is not hex.
    """
    path = Path(root) / LOCK_FILE
    try:
        data = read_yaml(path, error=LockFileError) or {}
    except LockFileError as exc:  # first: it is a FileNotFoundError too (there, but unreadable)
        raise LockFileError(f"{exc}; restore it with `git checkout {LOCK_FILE}`") from None
    except FileNotFoundError:
        raise BinaryNotFoundError(
            f"{path} does not exist: the pipeline has not recorded any output; build it with "
            "`dvc repro` (or `furiosa-artifacts build`) and commit dvc.lock"
        ) from None
    outputs: dict[str, LockedOutput] = {}
    stages = data.get("stages") if isinstance(data, dict) else None
    for stage, body in (stages if isinstance(stages, dict) else {}).items():
        outs = body.get("outs") if isinstance(body, dict) else None
        for out in outs if isinstance(outs, list) else []:
            if not isinstance(out, dict) or not isinstance(out.get("path"), str) or not out.get("md5"):
                continue
            relpath = safe_relpath(root, out["path"], what=f"{LOCK_FILE} output (stage {stage})")
            md5 = str(out["md5"])
            is_dir = md5.endswith(".dir")
            outputs[relpath] = LockedOutput(
                path=relpath,
                md5=normalize_digest("md5", md5[: -len(".dir")] if is_dir else md5),
                size=_size(out.get("size")),
                is_dir=is_dir,
                legacy=out.get("hash") != "md5",
                stage=str(stage),
            )
    return outputs
