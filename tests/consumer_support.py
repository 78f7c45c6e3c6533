"""Helpers of the consumer tests: a DVC remote directory holding this checkout's built binaries.

The binaries are the ones the README's main command built here (``dvc.lock`` + ``models/``); they are
copied into DVC's remote layout (``files/md5/xx/<rest>``), each checked against its md5 in dvc.lock, so
the remote is exactly what ``dvc push`` would upload.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Dict, Iterable

import pytest

from conftest import REPO_ROOT
from furiosa.artifacts.layout import binary_relpath
from furiosa.artifacts.provenance import read_provenance
from furiosa.artifacts.storage.lockfile import object_key, read_outputs

#: the models the consumer tests fetch: a trained one and one of the (synthetic in CI) seed models
TRAINED, SEED = "DigitsConvNet", "MLCommonsSSDMobileNet"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fill_remote(storage: Path, relpaths: Iterable[str]) -> Dict[str, str]:
    """Copy the built ``relpaths`` into ``storage`` in DVC's layout; returns ``{relpath: md5}``.

    Fails (never skips) when a binary is not built, does not match dvc.lock, or carries no provenance.
    """
    try:
        outputs = read_outputs(REPO_ROOT)
    except Exception as exc:  # noqa: BLE001 - reported as the set-up problem it is
        pytest.fail(f"no usable dvc.lock ({exc}): run the README's main command first")
    done = {}
    for relpath in relpaths:
        out, src = outputs.get(relpath), REPO_ROOT / relpath
        if out is None or not src.is_file() or md5_of(src) != out.md5:
            pytest.fail(f"{relpath} is not built or does not match dvc.lock: run the README's main command first")
        if relpath.endswith(".onnx") and not read_provenance(src).known:
            pytest.fail(f"{relpath} carries no provenance (built before it was recorded): rebuild with "
                        "`furiosa-artifacts build --weights synthetic`")
        dest = storage / object_key(out.md5, legacy=out.legacy)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        done[relpath] = out.md5
    return done


def int8(name: str) -> str:
    return binary_relpath(name, "int8")
