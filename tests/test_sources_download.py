"""download(): a real threaded HTTP server on 127.0.0.1 with injectable faults.

Each test writes its own files into the server, queues faults for the next requests to a
path, and asserts on the server's request log (path, Range header, status, bytes sent).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from furiosa.artifacts.errors import DownloadError, SpecError
from furiosa.artifacts.sources import cache, diskio, fetch_weights
from furiosa.artifacts.sources.download import ENV_MIRRORS, download, parse_mirrors, plan_candidates

SIZE = 1 << 20  # 1 MiB: several read chunks, fast to hash


# --------------------------------------------------------------------------- the server


@dataclass
class Fault:
    """What the server does wrong for one request (all fields optional)."""

    status: int | None = None  # answer with this status and no body
    delay: float = 0.0  # sleep before the status line (slow server)
    truncate_after: int | None = None  # send this many body bytes, then close the connection
    die_after: int | None = None  # send this many body bytes, then stop the whole server
    stall_after: int | None = None  # send this many body bytes, then sleep `stall` seconds
    stall: float = 0.0
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    wrong_range_start: bool = False  # answer 206 starting at byte 0 instead of the asked offset
    trickle: float = 0.0  # sleep between 64 KiB chunks


@dataclass
class Logged:
    path: str
    range: str | None
    status: int | None = None
    sent: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        pass

    def do_GET(self) -> None:
        srv = self.server
        path = urlsplit(self.path).path
        entry = Logged(path, self.headers.get("Range"))
        with srv.lock:
            srv.log.append(entry)
            queue = srv.faults[path]
            fault = queue.popleft() if queue else Fault()
        try:
            self._serve(srv, path, entry, fault)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client gave up (timeout tests)

    def _serve(self, srv: FaultServer, path: str, entry: Logged, fault: Fault) -> None:
        if fault.delay:
            time.sleep(fault.delay)
        body = srv.files.get(path)
        if fault.status is not None or body is None:
            entry.status = fault.status or 404
            self.send_response(entry.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, 200
        if entry.range and not fault.ignore_range:
            start = int(entry.range.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                entry.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        served_from = 0 if fault.wrong_range_start else start
        payload = body[served_from:]
        entry.status = status
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {served_from}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        limit = next((n for n in (fault.truncate_after, fault.die_after) if n is not None), len(payload))
        pos = 0
        while pos < limit:
            if fault.stall_after is not None and pos == fault.stall_after:
                self.wfile.flush()
                time.sleep(fault.stall)
            end = min(limit, pos + (1 << 16))
            if fault.stall_after is not None and pos < fault.stall_after < end:
                end = fault.stall_after
            self.wfile.write(payload[pos:end])
            entry.sent += end - pos
            pos = end
            if fault.trickle:
                self.wfile.flush()
                time.sleep(fault.trickle)
        self.wfile.flush()
        if fault.die_after is not None:
            srv.shutdown()  # the serving loop stops and the listening socket closes ...
            srv.socket.close()  # ... before this connection is closed, so retries are refused
        self.close_connection = True


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, data: bytes, *faults: Fault) -> str:
        self.files[path] = data
        self.faults[path].extend(faults)
        return self.url(path)

    def requests(self, path: str | None = None) -> list[Logged]:
        return [e for e in self.log if path is None or e.path == path]

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv(cache.ENV_HOME, str(home))
    monkeypatch.delenv(ENV_MIRRORS, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def server():
    srv = FaultServer()
    yield srv
    srv.stop()


def payload(seed: int = 0, size: int = SIZE) -> tuple[bytes, str]:
    data = hashlib.shake_256(str(seed).encode()).digest(size)
    return data, hashlib.sha256(data).hexdigest()


def fast(**kwargs):
    """download() options for tests: no bar, tiny backoff, short timeout."""
    return {"progress": False, "backoff": 0.01, "timeout": 5.0, **kwargs}


def blob_of(digest: str) -> Path:
    return cache.cache_path("sha256", digest)


def assert_clean(digest: str, *, cached: bool) -> None:
    """No partial anywhere; the cache holds the blob only if it is valid."""
    blob = blob_of(digest)
    leftovers = list(blob.parent.glob("*.incomplete")) if blob.parent.exists() else []
    assert leftovers == []
    assert blob.exists() is cached
    if cached:
        cache.verify_file(blob, sha256=digest)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- happy paths


def test_correct_file_lands_in_cache_and_dest(server: FaultServer, tmp_path: Path) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    dest = tmp_path / "out" / "model.pth"
    got = download([url], sha256=digest.upper(), size=len(data), dest=dest, **fast())
    assert got == dest and dest.read_bytes() == data
    assert [(e.range, e.status, e.sent) for e in server.requests()] == [(None, 200, len(data))]
    assert_clean(digest, cached=True)
    assert not os.stat(blob_of(digest)).st_mode & stat.S_IWUSR  # cache entries are read-only
    assert download([url], sha256=digest, size=len(data), **fast()) == blob_of(digest)


def test_cached_file_never_touches_network(server: FaultServer, tmp_path: Path) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    download([url], sha256=digest, size=len(data), **fast())
    server.stop()
    dest = tmp_path / "again.pth"
    got = download([url], sha256=digest, size=len(data), dest=dest, **fast(retries=0))
    assert got.read_bytes() == data
    assert len(server.requests()) == 1


def test_corrupt_cache_entry_is_replaced(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    blob = download([url], sha256=digest, size=len(data), **fast())
    os.chmod(blob, 0o644)
    blob.write_bytes(b"x" * len(data))  # bit rot behind our back
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert len(server.requests()) == 2
    assert_clean(digest, cached=True)


def test_progress_bar_goes_to_stderr(server: FaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    download([url], sha256=digest, size=len(data), **{**fast(), "progress": True})
    captured = capsys.readouterr()
    assert captured.out == "" and "model.pth" in captured.err


def test_file_url_and_plain_path(tmp_path: Path) -> None:
    data, digest = payload()
    src = tmp_path / "src" / "w.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    assert download([src.as_uri()], sha256=digest, size=len(data), **fast()).read_bytes() == data
    shutil.rmtree(cache.cache_root())
    assert download([str(src)], sha256=digest, size=None, **fast()).read_bytes() == data


# --------------------------------------------------------------------------- integrity


def test_wrong_hash_leaves_nothing(server: FaultServer) -> None:
    data, digest = payload()
    other, _ = payload(seed=1)
    url = server.add("/w/model.pth", other)  # same size, other bytes
    with pytest.raises(DownloadError) as info:
        download([url], sha256=digest, size=len(data), **fast())
    message = str(info.value)
    assert url in message and "sha256 mismatch" in message and digest in message
    assert len(server.requests()) == 1  # a wrong hash is not retried on the same URL
    assert_clean(digest, cached=False)


def test_wrong_hash_moves_on_to_next_url(server: FaultServer) -> None:
    data, digest = payload()
    bad = server.add("/bad/model.pth", payload(seed=1)[0])
    good = server.add("/good/model.pth", data)
    assert download([bad, good], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert [e.path for e in server.requests()] == ["/bad/model.pth", "/good/model.pth"]
    assert_clean(digest, cached=True)


def test_announced_size_mismatch_fails_before_the_body(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data + b"extra")
    with pytest.raises(DownloadError, match=f"server reports {len(data) + 5} bytes, expected {len(data)}"):
        download([url], sha256=digest, size=len(data), **fast())
    assert_clean(digest, cached=False)


def test_stale_partial_with_a_wrong_prefix_is_downloaded_again(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    partial = diskio.incomplete_path(blob_of(digest))
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 1000)  # left by something else: not a prefix of the file
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert [e.range for e in server.requests()] == ["bytes=1000-", None]
    assert_clean(digest, cached=True)


# --------------------------------------------------------------------------- resume


def test_complete_but_uncommitted_partial_needs_no_network(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    partial = diskio.incomplete_path(blob_of(digest))
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data)  # e.g. killed between the last byte and the rename
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert server.requests() == []
    assert_clean(digest, cached=True)


def test_truncated_body_is_resumed_with_range(server: FaultServer) -> None:
    data, digest = payload()
    cut = 300_000
    url = server.add("/w/model.pth", data, Fault(truncate_after=cut))
    assert download([url], sha256=digest, size=len(data), **fast(retries=2)).read_bytes() == data
    log = server.requests()
    assert [(e.range, e.status, e.sent) for e in log] == [
        (None, 200, cut),
        (f"bytes={cut}-", 206, len(data) - cut),  # only the missing bytes travel again
    ]
    assert_clean(digest, cached=True)


def test_server_ignoring_range_restarts_from_zero(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, Fault(truncate_after=300_000), Fault(ignore_range=True))
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert [(e.range, e.status, e.sent) for e in server.requests()] == [
        (None, 200, 300_000),
        ("bytes=300000-", 200, len(data)),
    ]
    assert_clean(digest, cached=True)


def test_wrong_content_range_restarts_from_zero(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, Fault(truncate_after=300_000), Fault(wrong_range_start=True))
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert [e.range for e in server.requests()] == [None, "bytes=300000-", None]
    assert_clean(digest, cached=True)


# --------------------------------------------------------------------------- HTTP statuses


@pytest.mark.parametrize("status", [403, 404])
def test_client_errors_are_not_retried_and_next_source_is_used(server: FaultServer, status: int) -> None:
    data, digest = payload()
    mirror_base = server.url("/mirror")
    server.faults["/mirror/model.pth"].append(Fault(status=status))
    denied = server.add("/denied/model.pth", data, *[Fault(status=status)] * 5)
    good = server.add("/good/model.pth", data)
    got = download([denied, good], sha256=digest, size=len(data), mirrors=[mirror_base], **fast(retries=3))
    assert got.read_bytes() == data
    assert [(e.path, e.status) for e in server.requests()] == [
        ("/mirror/model.pth", status),
        ("/denied/model.pth", status),
        ("/good/model.pth", 200),
    ]


def test_server_error_is_retried_then_succeeds(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, Fault(status=500), Fault(status=503))
    assert download([url], sha256=digest, size=len(data), **fast(retries=3)).read_bytes() == data
    assert [e.status for e in server.requests()] == [500, 503, 200]


def test_persistent_server_error_gives_up_after_retries(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, *[Fault(status=500)] * 10)
    with pytest.raises(DownloadError, match=r"HTTP 500 .*\(3 attempts\)"):
        download([url], sha256=digest, size=len(data), **fast(retries=2))
    assert len(server.requests()) == 3
    assert_clean(digest, cached=False)


def test_server_down_gives_a_clear_error(tmp_path: Path) -> None:
    _, digest = payload()
    url = f"http://127.0.0.1:{closed_port()}/w/model.pth"
    with pytest.raises(DownloadError) as info:
        download([url], sha256=digest, size=SIZE, **fast(retries=1))
    message = str(info.value)
    assert url in message and "connection refused" in message and "(2 attempts)" in message
    assert ENV_MIRRORS in message and "model.pth" in message and "synthetic" in message
    assert info.value.attempts[0][0].location == url
    assert_clean(digest, cached=False)


def test_unsupported_scheme_is_reported(tmp_path: Path) -> None:
    _, digest = payload()
    with pytest.raises(DownloadError, match="s3://bucket/w.pth .*unsupported URL scheme 's3'"):
        download(["s3://bucket/w.pth"], sha256=digest, size=None, **fast())


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(SpecError, match="sha256"):
        download(["http://127.0.0.1/x"], sha256="abc", size=None)
    with pytest.raises(SpecError, match="list of URLs"):
        download("http://127.0.0.1/x", sha256="0" * 64, size=None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- slow and dying servers


def test_slow_server_times_out(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, *[Fault(delay=2.0)] * 2)
    with pytest.raises(DownloadError, match=r"timed out .*\(2 attempts\)"):
        download([url], sha256=digest, size=len(data), **fast(timeout=0.3, retries=1))
    assert len(server.requests("/w/model.pth")) == 2  # gave up on each slow response, retried once, stopped
    assert_clean(digest, cached=False)


def test_stalled_body_times_out_then_resumes(server: FaultServer) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, Fault(stall_after=200_000, stall=1.5))
    assert download([url], sha256=digest, size=len(data), **fast(timeout=0.3)).read_bytes() == data
    assert [e.range for e in server.requests()] == [None, "bytes=200000-"]
    assert_clean(digest, cached=True)


def test_server_dying_mid_transfer_then_retry_resumes(server: FaultServer) -> None:
    data, digest = payload()
    cut = 400_000
    url = server.add("/w/model.pth", data, Fault(die_after=cut))
    with pytest.raises(DownloadError) as info:
        download([url], sha256=digest, size=len(data), **fast(retries=1))
    assert "connection refused" in str(info.value) and "kept at" in str(info.value)
    partial = diskio.incomplete_path(blob_of(digest))
    assert not blob_of(digest).exists() and partial.stat().st_size == cut  # never under the final name
    revived = FaultServer(port=server.port)
    try:
        revived.files["/w/model.pth"] = data
        assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
        assert [(e.range, e.sent) for e in revived.requests()] == [(f"bytes={cut}-", len(data) - cut)]
    finally:
        revived.stop()
    assert_clean(digest, cached=True)


# --------------------------------------------------------------------------- disk full


def test_disk_full_via_writer_hook(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC simulated by the single write hook (diskio.write_chunk) after 256 KiB."""
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    other = server.add("/other/model.pth", data)
    written = 0
    real_write = diskio.write_chunk

    def full_disk(fh, chunk: bytes) -> None:
        nonlocal written
        if written + len(chunk) > 256 * 1024:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written += len(chunk)
        real_write(fh, chunk)

    monkeypatch.setattr(diskio, "write_chunk", full_disk)
    with pytest.raises(DownloadError, match="no space left on device") as info:
        download([url, other], sha256=digest, size=len(data), **fast())
    assert info.value.errno == errno.ENOSPC
    assert [e.path for e in server.requests()] == ["/w/model.pth"]  # a local fault: no other source tried
    assert_clean(digest, cached=False)
    monkeypatch.setattr(diskio, "write_chunk", real_write)
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert_clean(digest, cached=True)


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 256 KiB tmpfs, when this process may mount one (root in a container); else skip."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the writer-hook test covers ENOSPC")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_on_a_real_small_tmpfs(
    server: FaultServer, small_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    monkeypatch.setenv(cache.ENV_HOME, str(small_tmpfs))
    with pytest.raises(DownloadError, match="no space left on device") as info:
        download([url], sha256=digest, size=None, **fast())  # size unknown: fails while writing
    assert info.value.errno == errno.ENOSPC
    assert_clean(digest, cached=False)
    # size known: refused up front, before any request
    with pytest.raises(DownloadError, match=f"free at least {len(data)} bytes"):
        download([url], sha256=digest, size=len(data), **fast())
    assert len(server.requests()) == 1
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)], check=True)
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert_clean(digest, cached=True)


# --------------------------------------------------------------------------- mirrors


def test_env_mirror_directory_is_used_first(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.pth").write_bytes(data)
    monkeypatch.setenv(ENV_MIRRORS, f"{tmp_path / 'absent'}{os.pathsep}{mirror}")
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert server.requests() == []
    assert_clean(digest, cached=True)


def test_env_mirror_with_a_wrong_file_falls_back_to_the_url(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data)
    (tmp_path / "model.pth").write_bytes(payload(seed=1)[0])
    monkeypatch.setenv(ENV_MIRRORS, str(tmp_path))
    assert download([url], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert len(server.requests()) == 1


def test_env_http_mirror_is_used_before_the_url(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    data, digest = payload()
    official = server.add("/official/model.pth", data)
    server.add("/mirror/model.pth", data)
    monkeypatch.setenv(ENV_MIRRORS, server.url("/mirror/"))
    assert download([official], sha256=digest, size=len(data), **fast()).read_bytes() == data
    assert [e.path for e in server.requests()] == ["/mirror/model.pth"]


def test_candidate_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MIRRORS, f"http://127.0.0.1:9/a {tmp_path}")
    plan = plan_candidates(
        ["https://example.org/x/w%20b.pth?download=1", "file:///srv/w.pth"],
        mirrors=["https://m.example/base"],
    )
    assert [(c.origin, c.kind, c.location) for c in plan] == [
        ("env mirror", "http", "http://127.0.0.1:9/a/w%20b.pth"),
        ("env mirror", "local", str(tmp_path / "w b.pth")),
        ("mirror", "http", "https://m.example/base/w%20b.pth"),
        ("url", "http", "https://example.org/x/w%20b.pth?download=1"),
        ("url", "local", "/srv/w.pth"),
    ]


def test_parse_mirrors_keeps_ports_and_schemes() -> None:
    sep = os.pathsep
    value = f"http://h:8080/w{sep}/srv/w  https://[::1]:9/x\nfile:///a/b"
    assert parse_mirrors(value) == ["http://h:8080/w", "/srv/w", "https://[::1]:9/x", "file:///a/b"]
    assert parse_mirrors("") == [] and parse_mirrors(None) == []


# --------------------------------------------------------------------------- concurrency, fetch_weights


def test_concurrent_downloads_of_one_blob(server: FaultServer, tmp_path: Path) -> None:
    data, digest = payload()
    url = server.add("/w/model.pth", data, Fault(trickle=0.02))
    barrier = threading.Barrier(2)
    results: dict[int, Path | BaseException] = {}

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = download([url], sha256=digest, size=len(data), dest=tmp_path / f"d{i}", **fast())
        except BaseException as exc:  # reported by the assert below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(isinstance(r, Path) and r.read_bytes() == data for r in results.values()), results
    assert len(server.requests()) == 1  # the second waited on the lock, then hit the cache
    assert_clean(digest, cached=True)


def test_fetch_weights_url_source_over_http(server: FaultServer, tmp_path: Path) -> None:
    data, digest = payload()
    url = server.add("/records/1/files/w.pth", data)
    source = {"type": "url", "urls": [url], "sha256": digest, "size": len(data), "filename": "w.pth"}
    dest = tmp_path / "models" / "m" / "weights.pth"
    assert fetch_weights(source, dest=dest, repo_root=tmp_path, progress=False) == dest
    assert dest.read_bytes() == data
