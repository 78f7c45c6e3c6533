"""The S3-compatible team remote: ``dvc push``/``dvc pull`` and the DVC-free resolver against a real server.

The server is moto 5.2.5 out of process (``moto_server -H 127.0.0.1 -p PORT``, started by the
fixtures, stopped at the end). moto accepts any credentials, so credential handling is only
exercised for real by the second server started with ``INITIAL_NO_AUTH_ACTION_COUNT=0``, which
checks every request against its empty IAM store and answers 403 InvalidAccessKeyId.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from furiosa.artifacts.errors import ChecksumError, DownloadError
from furiosa.artifacts.sources import cache
from furiosa.artifacts.storage import object_key, resolve_binaries, resolve_binary
from test_storage_support import (  # noqa: F401  (fixtures)
    FILE_OUTPUTS,
    consumer_checkout,
    dvc,
    env,
    free_port,
    locked,
    md5_of,
    moto_server,
    repo,
    s3_client,
    set_remote,
    storage_template,
    tool_env,
)

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

pytest.importorskip("boto3", reason="needs boto3 (installed with moto[server])")

BUCKET = "furiosa-team"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """A moto S3 server on 127.0.0.1 with the bucket created; yields the endpoint URL."""
    with moto_server(tool_env(tmp_path_factory.mktemp("moto"))) as endpoint:
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture()
def consumer_s3(storage_template: Path, tmp_path: Path, env, s3: str, monkeypatch):
    """A checkout without DVC data, with moto's (any) credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return consumer_checkout(storage_template, tmp_path / "consumer", env), s3


def expected_objects(root: Path) -> dict[str, str]:
    """``{object key: md5}`` of every object DVC pushes for ``root`` (files, .dir manifests, their members)."""
    keys = {}
    for stage in yaml.safe_load((root / "dvc.lock").read_text())["stages"].values():
        for out in stage["outs"]:
            md5 = out["md5"]
            if md5.endswith(".dir"):
                keys[object_key(md5[:-4], is_dir=True)] = md5[:-4]
                manifest = root / ".dvc" / "cache" / object_key(md5[:-4], is_dir=True)
                for entry in json.loads(manifest.read_text()):
                    keys[object_key(entry["md5"])] = entry["md5"]
            else:
                keys[object_key(md5)] = md5
    return keys


def upload_remote(endpoint: str, storage: Path, prefix: str) -> None:
    """Copy a local DVC remote directory to ``s3://BUCKET/prefix`` (the layout ``dvc push`` writes).

    boto3's ``upload_file`` sends files from 8 MiB on as multipart uploads, which DVC's S3 plugin
    does only for much larger files; either way the object's bytes are the same.
    """
    client = s3_client(endpoint)
    for path in storage.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(storage).as_posix()}")


def test_dvc_push_and_pull_through_s3(repo: Path, env, s3: str) -> None:
    pytest.importorskip("dvc_s3", reason="needs DVC's S3 plugin (pip install dvc-s3)")
    outputs = [*FILE_OUTPUTS, "data/samples/a.bin", "data/samples/b.bin"]
    before = {rel: md5_of(repo / rel) for rel in outputs}
    dvc(["remote", "add", "-d", "team", f"s3://{BUCKET}/catalog"], repo, env)
    dvc(["remote", "modify", "team", "endpointurl", s3], repo, env)
    dvc(["remote", "modify", "--local", "team", "access_key_id", "testing"], repo, env)
    dvc(["remote", "modify", "--local", "team", "secret_access_key", "testing"], repo, env)
    assert "secret_access_key" in (repo / ".dvc/config.local").read_text()
    assert "secret_access_key" not in (repo / ".dvc/config").read_text()  # secrets stay out of git
    dvc(["push", "-q"], repo, env)

    listed = s3_client(s3).list_objects_v2(Bucket=BUCKET, Prefix="catalog/")["Contents"]
    expected = expected_objects(repo)
    assert {o["Key"] for o in listed} == {f"catalog/{key}" for key in expected}
    assert len(expected) == 8  # 5 files + the directory's manifest and its 2 members

    shutil.rmtree(repo / ".dvc" / "cache")
    for rel in FILE_OUTPUTS:
        (repo / rel).unlink()
    shutil.rmtree(repo / "data" / "samples")
    dvc(["pull", "-q"], repo, env)
    assert {rel: md5_of(repo / rel) for rel in outputs} == before


def test_resolver_reads_s3_with_credentials_from_config_local_or_env(storage_template: Path, tmp_path: Path, env,
                                                                     s3: str, monkeypatch) -> None:
    upload_remote(s3, storage_template / ".dvc-storage", "resolver")
    big_key = f"resolver/{object_key(md5_of(storage_template / FILE_OUTPUTS[0]))}"
    etag = s3_client(s3).head_object(Bucket=BUCKET, Key=big_key)["ETag"]
    assert "-" in etag  # uploaded in parts (boto3 goes multipart from 8 MiB): the ETag is no md5
    consumer = consumer_checkout(storage_template, tmp_path / "consumer", env)
    set_remote(consumer, "team", f"s3://{BUCKET}/resolver", endpointurl=s3)
    (consumer / ".dvc/config.local").write_text(
        "['remote \"team\"']\n    access_key_id = testing\n    secret_access_key = testing\n")
    report = resolve_binaries(consumer, list(FILE_OUTPUTS), progress=False)
    assert report.ok, report.failed
    for resolved in report.resolved:
        assert resolved.source == "remote" and md5_of(resolved.path) == md5_of(storage_template / resolved.relpath)
        assert f"s3://{BUCKET}/resolver/{object_key(resolved.md5)}" in resolved.steps[-1]
    assert resolve_binary(consumer, FILE_OUTPUTS[0], progress=False).source == "cache"

    (consumer / ".dvc/config.local").unlink()  # credentials from the environment instead
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    member = resolve_binary(consumer, "data/samples/a.bin", progress=False)
    assert member.source == "remote" and md5_of(member.path) == md5_of(storage_template / "data/samples/a.bin")


def test_s3_missing_object(consumer_s3) -> None:
    consumer, endpoint = consumer_s3
    set_remote(consumer, "team", f"s3://{BUCKET}/empty-prefix", endpointurl=endpoint)
    with pytest.raises(DownloadError) as info:
        resolve_binary(consumer, FILE_OUTPUTS[1], progress=False)
    message = str(info.value)
    assert "is missing on remote 'team'" in message and "NoSuchKey" in message and "dvc push" in message
    assert f"s3://{BUCKET}/empty-prefix/files/md5/" in message


def test_s3_corrupt_object_is_not_cached(consumer_s3) -> None:
    consumer, endpoint = consumer_s3
    md5 = locked(consumer, FILE_OUTPUTS[1])["md5"]
    s3_client(endpoint).put_object(Bucket=BUCKET, Key=f"corrupt/{object_key(md5)}", Body=bytes(300_000))
    set_remote(consumer, "team", f"s3://{BUCKET}/corrupt", endpointurl=endpoint)
    with pytest.raises(ChecksumError, match="corrupt .*md5 mismatch.*not cached"):
        resolve_binary(consumer, FILE_OUTPUTS[1], progress=False)
    assert not cache.cache_path("md5", md5).exists()


def test_s3_resumes_a_partial_download(consumer_s3, storage_template: Path) -> None:
    consumer, endpoint = consumer_s3
    rel = FILE_OUTPUTS[0]
    data = (storage_template / rel).read_bytes()
    md5, half = locked(consumer, rel)["md5"], len(data) // 2
    # the remote's first half is garbage: only a ranged request for the second half gives the right file
    s3_client(endpoint).put_object(Bucket=BUCKET, Key=f"resume/{object_key(md5)}", Body=bytes(half) + data[half:])
    partial = cache.cache_path("md5", md5).with_name(md5 + ".incomplete")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data[:half])  # what an interrupted earlier call left
    set_remote(consumer, "team", f"s3://{BUCKET}/resume", endpointurl=endpoint)
    resolved = resolve_binary(consumer, rel, progress=False)
    assert resolved.source == "remote" and md5_of(resolved.path) == md5 and not partial.exists()


def test_s3_unreachable_endpoint(consumer_s3) -> None:
    consumer, _ = consumer_s3
    endpoint = f"http://127.0.0.1:{free_port()}"
    set_remote(consumer, "team", f"s3://{BUCKET}/x", endpointurl=endpoint)
    with pytest.raises(DownloadError) as info:
        resolve_binary(consumer, FILE_OUTPUTS[1], progress=False, retries=1, backoff=0.01, timeout=2)
    message = str(info.value)
    assert "unreachable" in message and endpoint in message and f"s3://{BUCKET}/x/files/md5/" in message


def test_s3_refused_credentials(storage_template: Path, tmp_path: Path, env) -> None:
    consumer = consumer_checkout(storage_template, tmp_path / "consumer", env)
    with moto_server(env, enforce_auth=True) as endpoint:
        set_remote(consumer, "team", f"s3://{BUCKET}/catalog", endpointurl=endpoint)
        (consumer / ".dvc/config.local").write_text(
            "['remote \"team\"']\n    access_key_id = AKIAWRONG\n    secret_access_key = s3cr3t-value\n")
        with pytest.raises(DownloadError) as info:
            resolve_binary(consumer, FILE_OUTPUTS[1], progress=False)
    message = str(info.value)
    assert "refused the credentials" in message and "403" in message and "InvalidAccessKeyId" in message
    assert endpoint in message and "AWS_ACCESS_KEY_ID" in message and "dvc remote modify --local team" in message
    assert "s3cr3t-value" not in message  # the secret is never printed


def test_s3_without_credentials(consumer_s3, monkeypatch) -> None:
    consumer, endpoint = consumer_s3
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    set_remote(consumer, "team", f"s3://{BUCKET}/resolver", endpointurl=endpoint)
    with pytest.raises(DownloadError, match=r"refused the credentials \(no AWS credentials found\).*AWS_ACCESS_KEY_ID"):
        resolve_binary(consumer, FILE_OUTPUTS[1], progress=False)
