"""resolve_binary without DVC: lookup order, local and HTTP remotes, corruption, offline, failures.

Runs on the tiny DVC repository of test_storage_support (built with the real ``dvc``), and a
static file server (``http.server`` on 127.0.0.1) serving a copy of its local remote directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import pytest

from furiosa.artifacts.errors import BinaryNotFoundError, ChecksumError, DownloadError, UnsafePathError
from furiosa.artifacts.sources import cache
from furiosa.artifacts.storage import checkout, object_key, read_outputs, read_remote, resolve_binaries, resolve_binary
from test_storage_support import (  # noqa: F401  (fixtures)
    FILE_OUTPUTS,
    consumer_checkout,
    env,
    free_port,
    http_server,
    locked,
    md5_of,
    repo,
    set_remote,
    storage_template,
)

BIG = "models/TinyNet/fp32.onnx"
SMALL = "models/TinyNet/int8.onnx"


def flip_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def no_partials() -> bool:
    md5_dir = cache.cache_root() / "blobs" / "md5"
    return not md5_dir.is_dir() or not [p for p in md5_dir.iterdir() if p.name.endswith(".incomplete")]


@pytest.fixture()
def consumer(storage_template: Path, tmp_path: Path, env) -> Path:
    """A checkout without DVC data (like a fresh ``git clone``)."""
    return consumer_checkout(storage_template, tmp_path / "consumer", env)


@pytest.fixture()
def www(storage_template: Path, tmp_path: Path) -> Path:
    """A web root whose ``storage/`` is a copy of the DVC remote directory."""
    shutil.copytree(storage_template / ".dvc-storage", tmp_path / "www" / "storage")
    return tmp_path / "www"


def test_lookup_order_workspace_then_dvc_cache_then_cache_then_remote(repo: Path, env, caplog) -> None:
    caplog.set_level(logging.INFO, logger="furiosa.artifacts.storage")
    want = locked(repo, BIG)
    first = resolve_binary(repo, BIG, progress=False)
    assert (first.source, first.path, first.md5, first.size) == ("workspace", repo / BIG, want["md5"], want["size"])

    flip_byte(repo / BIG)  # a modified workspace file is not used
    second = resolve_binary(repo, BIG, progress=False, verbose=True)
    assert second.source == "dvc-cache" and second.path == repo / ".dvc/cache" / object_key(want["md5"])
    assert second.steps[0].startswith("workspace: verify-failed") and "md5 mismatch" in second.steps[0]
    assert any("workspace: verify-failed" in r.getMessage() for r in caplog.records)  # logged, visible with verbose

    (repo / BIG).unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    third = resolve_binary(repo, BIG, progress=False)
    assert third.source == "remote"
    assert [s.split(":")[0] for s in third.steps] == ["workspace", "dvc-cache", "cache", "remote"]
    assert third.path == cache.cache_path("md5", want["md5"]) and md5_of(third.path) == want["md5"]
    assert stat.S_IMODE(third.path.stat().st_mode) == 0o444  # cache entries are read-only

    shutil.rmtree(repo / ".dvc-storage")  # the remote is gone: the shared cache answers
    fourth = resolve_binary(repo, BIG, progress=False)
    assert fourth.source == "cache" and fourth.path == third.path

    dest = checkout(repo, fourth)  # back into the workspace, a writable copy
    assert dest == repo / BIG and md5_of(dest) == want["md5"] and stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert resolve_binary(repo, BIG, progress=False).source == "workspace"


def test_http_remote_parallel_then_offline(consumer: Path, www: Path, capsys) -> None:
    with http_server(www, delay=0.2) as server:
        set_remote(consumer, "web", f"{server.url}/storage")
        report = resolve_binaries(consumer, list(FILE_OUTPUTS), jobs=4, progress=True)
        member = resolve_binary(consumer, "data/samples/b.bin", progress=False)  # via the directory's manifest
        assert report.ok, report.failed
        assert server.max_in_flight >= 2  # transfers ran in parallel
        requested = set(server.requests)
    assert [r.relpath for r in report.resolved] == list(FILE_OUTPUTS)
    for resolved in report.resolved:
        want = locked(consumer, resolved.relpath)
        assert resolved.source == "remote" and md5_of(resolved.path) == want["md5"]
        assert f"/storage/{object_key(want['md5'])}" in requested
    samples = locked(consumer, "data/samples")["md5"]
    assert f"/storage/{object_key(samples[:-4], is_dir=True)}" in requested
    assert member.source == "remote" and member.path.stat().st_size == 2000
    err = capsys.readouterr().err
    assert "fp32.onnx" in err and "pull" in err  # tqdm bars on stderr

    # the server is stopped: everything resolves offline from the shared cache
    again = resolve_binaries(consumer, [*FILE_OUTPUTS, "data/samples/b.bin"], progress=False)
    assert again.ok and {r.source for r in again.resolved} == {"cache"}


@pytest.mark.parametrize("kind", ["http", "local"])
def test_corrupt_object_is_rejected_and_not_cached(consumer: Path, www: Path, kind: str) -> None:
    want = locked(consumer, SMALL)
    obj = www / "storage" / object_key(want["md5"])
    flip_byte(obj)
    with http_server(www) as server:
        set_remote(consumer, "team", f"{server.url}/storage" if kind == "http" else str(www / "storage"))
        with pytest.raises(ChecksumError) as info:
            resolve_binary(consumer, SMALL, progress=False)
    message = str(info.value)
    assert object_key(want["md5"]) in message and "not cached" in message and "md5 mismatch" in message
    assert "remote 'team'" in message
    assert not cache.cache_path("md5", want["md5"]).exists() and no_partials()


def test_wrong_size_object_is_rejected(consumer: Path, www: Path) -> None:
    want = locked(consumer, SMALL)
    obj = www / "storage" / object_key(want["md5"])
    os.chmod(obj, 0o644)
    obj.write_bytes(obj.read_bytes() + b"x")
    with http_server(www) as server:
        set_remote(consumer, "web", f"{server.url}/storage")
        with pytest.raises(DownloadError, match="expected 300000"):
            resolve_binary(consumer, SMALL, progress=False, retries=0)
    assert not cache.cache_path("md5", want["md5"]).exists() and no_partials()


def test_unreachable_remote_names_url_and_object(consumer: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/storage"
    set_remote(consumer, "web", url)
    with pytest.raises(DownloadError) as info:
        resolve_binary(consumer, SMALL, progress=False, retries=1, backoff=0.01, timeout=2)
    message = str(info.value)
    md5 = locked(consumer, SMALL)["md5"]
    assert "unreachable" in message and "connection refused" in message and "2 attempts" in message
    assert f"{url}/{object_key(md5)}" in message and "remote 'web'" in message


def test_forbidden_remote_is_not_retried(consumer: Path, www: Path) -> None:
    with http_server(www, status=403) as server:
        set_remote(consumer, "web", f"{server.url}/storage")
        with pytest.raises(DownloadError) as info:
            resolve_binary(consumer, SMALL, progress=False, backoff=5)
        assert len(server.requests) == 1
    message = str(info.value)
    assert "refused the credentials" in message and "403" in message and server.url in message


def test_missing_object_says_push(consumer: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with http_server(tmp_path / "empty") as server:
        set_remote(consumer, "web", f"{server.url}/storage")
        with pytest.raises(DownloadError) as info:
            resolve_binary(consumer, SMALL, progress=False)
    assert "is missing on remote 'web'" in str(info.value) and "dvc push" in str(info.value)


def test_no_remote_and_nothing_local(consumer: Path) -> None:
    (consumer / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    with pytest.raises(BinaryNotFoundError, match="dvc remote add -d"):
        resolve_binary(consumer, SMALL, progress=False)


def test_unrecorded_path(consumer: Path) -> None:
    with pytest.raises(BinaryNotFoundError, match="not an output recorded") as info:
        resolve_binary(consumer, "models/Nope/int8.onnx", progress=False)
    assert SMALL in str(info.value)


@pytest.mark.parametrize(
    "relpath", ["../outside.onnx", "/etc/passwd", "models/../../x.onnx", "", "models/Link/int8.onnx"]
)
def test_paths_escaping_the_repo_are_refused(repo: Path, relpath: str, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", repo / "models" / "Link")
    with pytest.raises(UnsafePathError):
        resolve_binary(repo, relpath, progress=False)


def test_dvc_lock_output_escaping_the_repo_is_refused(consumer: Path) -> None:
    lock = consumer / "dvc.lock"
    lock.write_text(lock.read_text().replace("path: models/OtherNet/int8.onnx", "path: ../../evil.onnx"))
    with pytest.raises(UnsafePathError, match="evil.onnx"):
        resolve_binary(consumer, SMALL, progress=False)


def test_workspace_symlink_escaping_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    shutil.copy(repo / SMALL, outside)
    (repo / SMALL).unlink()
    os.symlink(outside, repo / SMALL)
    with pytest.raises(UnsafePathError, match="outside the repository"):
        resolve_binary(repo, SMALL, progress=False)


def test_remote_config_parsing(consumer: Path, tmp_path: Path) -> None:
    dvc_dir = consumer / ".dvc"
    (dvc_dir / "config").write_text(
        "[core]\n    remote = team\n"
        "[remote \"team\"]\n    url = s3://bucket/some/prefix  # comment\n    endpointurl = http://127.0.0.1:9\n"
        "['remote \"mirror\"']\n    url = https://example.invalid/dvc\n"
        "['remote \"gcs\"']\n    url = gs://bucket/x\n"
        "['remote \"near\"']\n    url = ../../shared-storage\n"
    )
    (dvc_dir / "config.local").write_text(
        "['remote \"team\"']\n    access_key_id = AKIA\n    secret_access_key = s3cr3t\n")
    team = read_remote(consumer)
    assert (team.name, team.kind, team.url) == ("team", "s3", "s3://bucket/some/prefix")
    assert team.option("endpointurl") == "http://127.0.0.1:9" and team.option("access_key_id") == "AKIA"
    assert "s3cr3t" not in team.describe() and "s3cr3t" not in repr(team)
    assert read_remote(consumer, "mirror").kind == "http"
    near = read_remote(consumer, "near")
    assert near.kind == "local" and near.path == (dvc_dir / "../../shared-storage").absolute()
    with pytest.raises(DownloadError, match="gs:// scheme"):
        read_remote(consumer, "gcs")
    with pytest.raises(DownloadError, match="known: gcs, mirror, near, team"):
        read_remote(consumer, "nope")
    assert read_outputs(consumer)["data/samples"].is_dir


def test_cached_binary_needs_no_remote_config(consumer: Path, www: Path) -> None:
    with http_server(www) as server:
        set_remote(consumer, "web", f"{server.url}/storage")
        resolve_binary(consumer, SMALL, progress=False)
    (consumer / ".dvc" / "config").write_text("[core]\n    remote = gone\n")  # broken config, offline
    assert resolve_binary(consumer, SMALL, progress=False).source == "cache"
