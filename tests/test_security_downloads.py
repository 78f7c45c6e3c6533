"""Download and remote faults that tests/test_sources_* and tests/test_storage_* do not already inject.

A hostile HTTP server on 127.0.0.1 (``http.server``): an endless body without Content-Length, a
redirect to ``file://`` (towards a local file with the *right* bytes, so following it would succeed),
a redirect loop, a gzip "bomb" served despite ``Accept-Encoding: identity``; and a ``dvc.lock``
whose md5 or size is hostile. The mapping of every other fault to its existing test is in SECURITY.md.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from furiosa.artifacts.errors import ChecksumError, DownloadError, SpecError, UnsafePathError
from furiosa.artifacts.sources import cache
from furiosa.artifacts.sources.download import ENV_MIRRORS, download
from furiosa.artifacts.storage import resolve_binary
from test_storage_support import (  # noqa: F401  (fixtures)
    consumer_checkout,
    env,
    free_port,
    http_server,
    locked,
    repo,
    set_remote,
    storage_template,
)

DATA = hashlib.shake_256(b"weights").digest(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
ENDLESS_CAP = 64 << 20  # the server gives up after this much (the client must stop long before)


class _Hostile(BaseHTTPRequestHandler):
    server: "HostileServer"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.hits.append(self.path)
        try:
            if self.path.startswith("/endless"):
                self.send_response(200)
                self.send_header("Connection", "close")  # no Content-Length: the body ends when we close
                self.end_headers()
                chunk = b"\0" * (1 << 16)
                while self.server.sent < ENDLESS_CAP:
                    self.wfile.write(chunk)
                    self.server.sent += len(chunk)
            elif self.path.startswith("/busy-"):  # /busy-<kind>/...: 503 once with a hostile Retry-After, then the file
                kind = self.path.split("/")[1][len("busy-"):]
                if self.server.hits.count(self.path) == 1:
                    self.send_response(503)
                    self.send_header("Retry-After", {"soon": "soon", "year": "Fri, 31 Dec 99999 23:59:59 GMT",
                                                     "huge": "9" * 40, "blank": " "}[kind])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(DATA)))
                    self.end_headers()
                    self.wfile.write(DATA)
            elif self.path.startswith("/drip"):  # the right length announced, one byte every 50 ms
                self.send_response(200)
                self.send_header("Content-Length", str(len(DATA)))
                self.end_headers()
                for byte in DATA:
                    if self.server.closed.is_set():
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    self.server.sent += 1
                    time.sleep(0.05)
            elif self.path.startswith("/to-file"):
                self.send_response(302)
                self.send_header("Location", self.server.file_url)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/loop"):
                self.send_response(302)
                self.send_header("Location", f"/loop{len(self.server.hits)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/gzip"):
                body = gzip.compress(b"\0" * (50 << 20))  # 50 MB of zeros in ~50 KB
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, file_url: str) -> None:
        super().__init__(("127.0.0.1", 0), _Hostile)
        self.file_url, self.hits, self.sent = file_url, [], 0
        self.closed = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture()
def hostile(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(cache.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.delenv(ENV_MIRRORS, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    target = tmp_path / "local" / "weights.pth"
    target.parent.mkdir()
    target.write_bytes(DATA)  # the right bytes: following the redirect would "work"
    server = HostileServer(target.as_uri())
    yield server
    server.closed.set()
    server.shutdown()
    server.server_close()


def _fast(**kwargs):
    return {"progress": False, "backoff": 0.01, "timeout": 5.0, "retries": 1, **kwargs}


def _nothing_cached(digest: str) -> bool:
    blob = cache.cache_path("sha256", digest)
    leftovers = list(blob.parent.glob("*")) if blob.parent.exists() else []
    return not blob.exists() and not [p for p in leftovers if p.stat().st_size > len(DATA) + (1 << 20)]


def test_endless_body_stops_at_the_pinned_size(hostile: HostileServer) -> None:
    with pytest.raises(DownloadError, match="more than the expected"):
        download([f"{hostile.url}/endless/w.pth"], sha256=SHA, size=len(DATA), **_fast())
    assert hostile.sent < ENDLESS_CAP  # the client hung up long before the server's own cap
    assert _nothing_cached(SHA)
    assert len([h for h in hostile.hits if h.startswith("/endless")]) == 1  # a wrong file is not retried


def test_redirect_to_a_local_file_is_not_followed(hostile: HostileServer) -> None:
    with pytest.raises(DownloadError) as info:
        download([f"{hostile.url}/to-file/w.pth"], sha256=SHA, size=len(DATA), **_fast())
    assert "/to-file/w.pth" in str(info.value) and "is not allowed" in str(info.value)
    assert not cache.cache_path("sha256", SHA).exists()


def test_redirect_loop_ends_with_an_error(hostile: HostileServer) -> None:
    with pytest.raises(DownloadError, match="infinite loop"):
        download([f"{hostile.url}/loop"], sha256=SHA, size=len(DATA), **_fast())
    assert len(hostile.hits) < 60  # urllib's redirect limit, not forever


def test_gzip_bomb_is_never_inflated(hostile: HostileServer) -> None:
    with pytest.raises(DownloadError) as info:
        download([f"{hostile.url}/gzip/w.pth"], sha256=SHA, size=None, **_fast())
    assert "sha256 mismatch" in str(info.value)  # compared as the raw compressed bytes
    assert _nothing_cached(SHA)


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", "x" * 32, "0" * 31, 12345])
def test_hostile_sha256_is_refused_before_any_request(hostile: HostileServer, bad) -> None:
    with pytest.raises(SpecError):
        download([f"{hostile.url}/endless/w.pth"], sha256=bad, size=len(DATA), **_fast())
    assert hostile.hits == []


@pytest.mark.parametrize("kind", ["soon", "year", "blank"])
def test_unparseable_retry_after_falls_back_to_the_default_backoff(hostile: HostileServer, kind: str) -> None:
    """``Retry-After: soon`` or a year-99999 date used to raise a bare ValueError (a traceback in ``pull``,
    the remaining mirrors abandoned): now it is the default backoff, and the retry gets the file."""
    path = download([f"{hostile.url}/busy-{kind}/w.pth"], sha256=SHA, size=len(DATA), **_fast())
    assert path.read_bytes() == DATA
    assert hostile.hits.count(f"/busy-{kind}/w.pth") == 2


def test_retry_after_parser_never_raises() -> None:
    from furiosa.artifacts.sources.transfer import retry_after

    assert retry_after("120") == 120.0 and retry_after(None) is None
    assert retry_after("9" * 40) == 1e9  # valid but absurd: bounded here, capped at MAX_BACKOFF_S by the caller
    for value in ("soon", "Fri, 31 Dec 99999 23:59:59 GMT", "-5", "1e9", "Mon, 32 Foo 2020", "\x00", "9" * 400):
        assert retry_after(value) is None or retry_after(value) >= 0


def test_a_slow_drip_cannot_beat_the_overall_deadline(hostile: HostileServer) -> None:
    """Each byte arrives well within ``timeout`` (5 s), so only the overall deadline (1 s) stops it; the
    partial is kept for a resume and nothing is cached."""
    with pytest.raises(DownloadError, match=r"overall deadline .*1 s; set FURIOSA_ARTIFACTS_DOWNLOAD_DEADLINE") as info:
        download([f"{hostile.url}/drip/w.pth"], sha256=SHA, size=len(DATA), deadline=1.0, **_fast())
    assert "running again resumes it" in str(info.value)
    assert not cache.cache_path("sha256", SHA).exists()
    assert 0 < hostile.sent < len(DATA)


@pytest.mark.parametrize("value", [0, -1, float("inf"), "10", True])
def test_a_bad_deadline_is_refused(hostile: HostileServer, value) -> None:
    with pytest.raises(SpecError, match="deadline"):
        download([f"{hostile.url}/drip/w.pth"], sha256=SHA, size=len(DATA), deadline=value, **_fast())
    assert hostile.hits == []


@pytest.mark.parametrize("size", [-1, "83367", 1.5, True])
def test_a_malformed_size_pin_is_an_error_when_params_are_read_even_for_a_synthetic_build(
        tmp_path: Path, size) -> None:
    """``size: -1`` or ``size: "83367"`` used to disable the size pin silently: now params.yaml is refused."""
    from furiosa.artifacts.pipeline.params import load_params

    repo_params = Path(__file__).resolve().parents[1] / "params.yaml"
    data = yaml.safe_load(repo_params.read_text())
    name = next(n for n, m in data["models"].items() if m["source"].get("type") == "url")
    data["models"][name]["source"]["size"] = size
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError, match=rf"models.{name}.source.size: expected a byte count"):
        load_params(tmp_path / "params.yaml")
    with pytest.raises(SpecError, match="size must be a non-negative integer"):
        download(["http://127.0.0.1:9/w.pth"], sha256=SHA, size=size, progress=False)


# --------------------------------------------------------------------------- hostile dvc.lock entries

SMALL = "models/TinyNet/int8.onnx"


@pytest.fixture()
def consumer(storage_template: Path, tmp_path: Path, env) -> Path:
    return consumer_checkout(storage_template, tmp_path / "consumer", env)


def _edit_lock(root: Path, relpath: str, **changes) -> None:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == relpath:
                out.update(changes)
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


@pytest.mark.parametrize("md5", ["../../../../../etc/passwd", "zz" * 16, "0" * 40])
def test_hostile_md5_in_dvc_lock_never_becomes_a_path(consumer: Path, storage_template: Path, md5: str) -> None:
    set_remote(consumer, "local", str(storage_template / ".dvc-storage"))
    _edit_lock(consumer, SMALL, md5=md5)
    with pytest.raises(UnsafePathError):
        resolve_binary(consumer, SMALL, progress=False)


def test_wrong_size_in_dvc_lock_rejects_the_right_bytes(consumer: Path, storage_template: Path) -> None:
    """dvc.lock is the pin: a remote object with the right md5 but another recorded size is not cached."""
    want = locked(storage_template, SMALL)
    set_remote(consumer, "local", str(storage_template / ".dvc-storage"))
    _edit_lock(consumer, SMALL, size=want["size"] - 1)
    with pytest.raises((ChecksumError, DownloadError)):
        resolve_binary(consumer, SMALL, progress=False)
    assert not cache.cache_path("md5", want["md5"]).exists()


def test_http_remote_serving_an_endless_object_is_cut_off(consumer: Path, tmp_path: Path) -> None:
    """The resolver's HTTP transfer stops at dvc.lock's size too (here the object is just too long)."""
    want = locked(consumer, SMALL)
    www = tmp_path / "www"
    obj = www / "storage" / "files" / "md5" / want["md5"][:2] / want["md5"][2:]
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"\0" * (want["size"] * 4))
    with http_server(www) as server:
        set_remote(consumer, "web", f"{server.url}/storage")
        with pytest.raises((ChecksumError, DownloadError)) as info:
            resolve_binary(consumer, SMALL, progress=False, retries=0)
    assert "bytes" in str(info.value)
    assert not cache.cache_path("md5", want["md5"]).exists()


@pytest.mark.slow  # git-lfs and a DVC repository
def test_publish_errors_never_print_credentials_from_the_git_url(repo: Path, env) -> None:
    import subprocess

    from furiosa.artifacts.storage import PublishError, publish_lfs

    if subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0:
        pytest.skip("needs git-lfs (apt-get install -y git-lfs)")
    url = f"http://publisher:s3cr3t-token@127.0.0.1:{free_port()}/org/catalog.git"  # nothing listens there
    with pytest.raises(PublishError) as info:
        publish_lfs(repo, url, progress=False)
    message = str(info.value)
    assert "s3cr3t-token" not in message and "***@127.0.0.1" in message, message
