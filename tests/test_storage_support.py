"""Shared pieces of the storage tests (no tests here): a tiny real DVC repository, servers on 127.0.0.1.

The DVC repository is built once per session (``git init``, ``dvc init``, a one-stage ``dvc.yaml`` whose
command writes seeded random bytes, ``dvc repro``, ``dvc push`` to the default local remote
``../.dvc-storage`` like the project's) and copied for each test that changes it. It never runs the
project's real pipeline. Every subprocess gets a temporary HOME, XDG directories and
``DVC_SITE_CACHE_DIR``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import yaml

BIN_DIR = Path(sys.executable).parent
BIG = 9 << 20  # >= 8 MiB: dvc-s3 uploads it multipart

GEN_PY = """\
import os, random
rng = random.Random(20240501)
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
write("models/TinyNet/fp32.onnx", rng.randbytes(%d))
write("models/TinyNet/int8.onnx", rng.randbytes(300_000))
write("models/TinyNet/metrics.json", b'{"top1": 0.5}')
write("models/OtherNet/fp32.onnx", rng.randbytes(200_000))
write("models/OtherNet/int8.onnx", rng.randbytes(100_000))
write("data/samples/a.bin", rng.randbytes(1000))
write("data/samples/b.bin", rng.randbytes(2000))
""" % BIG

DVC_YAML = """\
stages:
  gen:
    cmd: {python} gen.py
    deps: [gen.py]
    outs:
      - models/TinyNet/fp32.onnx
      - models/TinyNet/int8.onnx
      - models/OtherNet/fp32.onnx
      - models/OtherNet/int8.onnx
      - data/samples
    metrics:
      - models/TinyNet/metrics.json
"""

CATALOG = """\
artifacts:
  - name: TinyNet
    family: Tiny
    version: "v1.0"
    location: artifacts.py
    format: code
    metadata:
      description: A tiny stand-in model for the storage tests.
  - name: OtherNet
    family: Tiny
    version: "v1.0"
    location: artifacts.py
    format: code
  - name: TinyNet_INT8
    family: Tiny
    version: "v1.0"
    location: models/TinyNet/int8.onnx
    format: onnx
"""

ARTIFACTS_PY = """\
def TinyNet():
    raise NotImplementedError


def OtherNet():
    raise NotImplementedError
"""

#: the outputs of the tiny pipeline that are files (a directory output, data/samples, is separate)
FILE_OUTPUTS = (
    "models/TinyNet/fp32.onnx",
    "models/TinyNet/int8.onnx",
    "models/TinyNet/metrics.json",
    "models/OtherNet/fp32.onnx",
    "models/OtherNet/int8.onnx",
)


def md5_of(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def locked(root: Path, relpath: str) -> dict:
    """The ``outs`` entry of ``relpath`` in ``root/dvc.lock`` (path, hash, md5, size)."""
    for stage in yaml.safe_load((root / "dvc.lock").read_text())["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == relpath:
                return out
    raise KeyError(relpath)


def tool_env(base: Path) -> Dict[str, str]:
    """Environment for dvc/git subprocesses: everything user- or machine-wide redirected under ``base``."""
    home = base / "home"
    for sub in ("home", "xdg-cache", "xdg-config", "xdg-data", "dvc-site-cache", "furiosa-home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("AWS_", "DVC_", "GIT_"))]:
        del env[key]
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(base / "xdg-cache"),
        XDG_CONFIG_HOME=str(base / "xdg-config"),
        XDG_DATA_HOME=str(base / "xdg-data"),
        DVC_SITE_CACHE_DIR=str(base / "dvc-site-cache"),
        DVC_NO_ANALYTICS="1",
        FURIOSA_ARTIFACTS_HOME=str(base / "furiosa-home"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Storage Test",
        GIT_AUTHOR_EMAIL="storage@test.invalid",
        GIT_COMMITTER_NAME="Storage Test",
        GIT_COMMITTER_EMAIL="storage@test.invalid",
        PATH=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def apply_env(monkeypatch: pytest.MonkeyPatch, env: Dict[str, str]) -> None:
    """Make this process's environment ``env`` for the test (what in-process library calls see)."""
    for key in [k for k in os.environ if k not in env]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def run(args: List[str], cwd: Path, env: Dict[str, str], *, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {proc.returncode} in {cwd}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(args: List[str], cwd: Path, env: Dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return run([str(BIN_DIR / "dvc"), *args], cwd, env, **kwargs)


def make_dvc_repo(repo: Path, env: Dict[str, str]) -> Path:
    """git init + dvc init + the tiny stage + dvc repro + dvc push (local remote) + one commit."""
    repo.mkdir(parents=True)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    dvc(["init", "-q"], repo, env)
    dvc(["config", "core.analytics", "false"], repo, env)
    dvc(["remote", "add", "-d", "local", ".dvc-storage"], repo, env)  # cwd-relative: writes ../.dvc-storage
    (repo / "gen.py").write_text(GEN_PY)
    (repo / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    (repo / "artifacts.yaml").write_text(CATALOG)
    (repo / "artifacts.py").write_text(ARTIFACTS_PY)
    (repo / "README.md").write_text("# tiny catalog\n")
    (repo / ".gitignore").write_text("/.dvc-storage/\n")
    dvc(["repro", "-q"], repo, env)
    dvc(["push", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny catalog"], repo, env)
    return repo


def copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def consumer_checkout(repo: Path, dest: Path, env: Dict[str, str]) -> Path:
    """What a user without DVC has after ``git clone``: the tracked files only (no outputs, no cache)."""
    files = run(["git", "ls-files", "-z"], repo, env).stdout.split("\0")
    for rel in filter(None, files):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel)
    return dest


def set_remote(root: Path, name: str, url: str, *, default: bool = True, **options: str) -> None:
    """Write ``.dvc/config`` by hand, the way DVC writes it (a consumer needs no DVC for this)."""
    lines = ["[core]", "    analytics = false"] + ([f"    remote = {name}"] if default else [])
    lines += [f"['remote \"{name}\"']", f"    url = {url}"] + [f"    {k} = {v}" for k, v in options.items()]
    (root / ".dvc" / "config").write_text("\n".join(lines) + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --------------------------------------------------------------------------- HTTP


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:  # type: ignore[attr-defined]
            srv.requests.append(self.path)  # type: ignore[attr-defined]
            srv.in_flight += 1  # type: ignore[attr-defined]
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)  # type: ignore[attr-defined]
        try:
            time.sleep(srv.delay)  # type: ignore[attr-defined]
            if srv.status_override is not None:  # type: ignore[attr-defined]
                self.send_error(srv.status_override)  # type: ignore[attr-defined]
            else:
                super().do_GET()
        finally:
            with srv.lock:  # type: ignore[attr-defined]
                srv.in_flight -= 1  # type: ignore[attr-defined]


@contextlib.contextmanager
def http_server(directory: Path, *, status: Optional[int] = None, delay: float = 0.0) -> Iterator[ThreadingHTTPServer]:
    """A static file server (http.server) for ``directory`` on 127.0.0.1.

    ``status`` answers every GET with that status; ``delay`` sleeps before each answer. The server
    records ``requests`` (paths) and ``max_in_flight`` (most requests served at once).
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    server.requests, server.lock = [], threading.Lock()  # type: ignore[attr-defined]
    server.in_flight = server.max_in_flight = 0  # type: ignore[attr-defined]
    server.status_override, server.delay = status, delay  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- S3 (moto)


@contextlib.contextmanager
def moto_server(env: Dict[str, str], *, enforce_auth: bool = False) -> Iterator[str]:
    """``moto_server -H 127.0.0.1 -p PORT`` out of process; yields its endpoint URL.

    moto accepts any credentials unless ``enforce_auth`` (``INITIAL_NO_AUTH_ACTION_COUNT=0``): then
    it checks every request against its (empty) IAM store and refuses unknown keys with 403.
    """
    pytest.importorskip("moto", reason="needs moto[server] (pip install 'moto[server]==5.2.5')")
    port = free_port()
    server_env = dict(env, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if enforce_auth else {}))
    proc = subprocess.Popen([str(BIN_DIR / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=server_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1")


# --------------------------------------------------------------------------- fixtures


_TEMPLATE: Dict[str, Path] = {}


@pytest.fixture(scope="session")
def storage_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DVC repository (``<base>/repo``, its local remote at ``<base>/repo/.dvc-storage``).

    Each test module that imports this fixture gets its own fixture instance; the repository is
    still built once per session (memoised here). Tests must not modify it: use ``repo``.
    """
    if not (BIN_DIR / "dvc").exists():
        pytest.skip("needs dvc in the environment (pip install 'dvc[s3]')")
    if "repo" not in _TEMPLATE:
        base = tmp_path_factory.mktemp("storage-template")
        _TEMPLATE["repo"] = make_dvc_repo(base / "repo", tool_env(base / "env"))
    return _TEMPLATE["repo"]


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """A per-test environment for subprocesses, also applied to this process (fresh shared cache)."""
    environ = tool_env(tmp_path / "env")
    apply_env(monkeypatch, environ)
    return environ


@pytest.fixture()
def repo(storage_template: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny DVC repository (workspace, DVC cache and local remote included)."""
    return copy_repo(storage_template, tmp_path / "repo")
