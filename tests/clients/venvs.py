"""Separate, cached virtual environments for the real furiosa-registry clients.

Created once under ``$FURIOSA_TEST_VENVS`` (default ``<repo>/.test-venvs``, git-ignored) and reused
while the requirement list is unchanged. Each client call runs in a fresh process, because the
registry's code resolver leaves imported modules in ``sys.modules``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_SCRIPT = Path(__file__).with_name("registry_client.py")

#: Requirements of each client environment. onnx checks the bytes; numpy/pyyaml are our runtime needs.
CLIENTS = {
    "0.5.2": ["furiosa-registry==0.5.2", "pydantic<2", "onnx", "numpy"],
    # 0.9.1 imports a root-level artifacts.py instead of reading artifacts.yaml; it declares pydantic
    # unpinned but its Model uses the v1 API (BaseConfig, Extra), so pin <2 as for 0.5.2.
    "0.9.1": ["furiosa-registry==0.9.1", "pydantic<2", "onnx", "numpy"],
}


def client_python(version: str) -> Path:
    """Python of the cached environment for furiosa-registry ``version`` (created on first use)."""
    reqs = CLIENTS[version]
    digest = hashlib.sha256(json.dumps([sys.version_info[:2], reqs]).encode()).hexdigest()[:12]
    root = Path(os.environ.get("FURIOSA_TEST_VENVS", REPO_ROOT / ".test-venvs")) / f"registry-{version}-{digest}"
    python = root / "bin" / "python"
    marker = root / ".complete"
    if marker.is_file():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
                   check=True, stdout=subprocess.DEVNULL)
    marker.write_text("\n".join(reqs))
    return python


def call_client(version: str, args: Sequence[str], *, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run one registry client call in a fresh process with its cache under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["FURIOSA_REGISTRY_HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home)
    return subprocess.run([str(client_python(version)), str(CLIENT_SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
