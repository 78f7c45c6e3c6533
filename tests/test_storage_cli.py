"""``pull`` and ``publish`` subcommands: a parser built with cli.storage.register, and one real subprocess.

The remotes are a local directory and http.server on 127.0.0.1 (see test_storage_support).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from furiosa.artifacts.cli.storage import register
from test_storage_support import (  # noqa: F401  (fixtures)
    consumer_checkout,
    env,
    free_port,
    http_server,
    md5_of,
    repo,
    run,
    set_remote,
    storage_template,
)

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

MAIN = (
    "import argparse, sys\n"
    "from furiosa.artifacts.cli.storage import register\n"
    "parser = argparse.ArgumentParser(prog='furiosa-artifacts')\n"
    "register(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args()\n"
    "sys.exit(args.func(args))\n"
)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="furiosa-artifacts")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture()
def consumer(storage_template: Path, tmp_path: Path, env) -> Path:
    """A checkout without DVC data whose default remote is a copy of the local remote directory."""
    root = consumer_checkout(storage_template, tmp_path / "consumer", env)
    shutil.copytree(storage_template / ".dvc-storage", tmp_path / "storage")
    set_remote(root, "shared", str(tmp_path / "storage"))
    return root


def test_pull_names_all_precisions_json(consumer: Path, storage_template: Path, capsys) -> None:
    assert cli("pull", "tinynet", "other-net", "--precision", "all", "--root", str(consumer), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and not out["failed"]
    got = {(row["name"], row["precision"]): row for row in out["resolved"]}
    assert set(got) == {(n, p) for n in ("TinyNet", "OtherNet") for p in ("int8", "fp32")}
    for (name, precision), row in got.items():
        rel = f"models/{name}/{precision}.onnx"
        assert row["source"] == "remote" and row["relpath"] == rel and row["path"] == str(consumer / rel)
        assert md5_of(consumer / rel) == md5_of(storage_template / rel) == row["md5"]  # checked out

    assert cli("pull", "TinyNet", "--root", str(consumer)) == 0  # default int8, now in the workspace
    assert capsys.readouterr().out.strip() == f"TinyNet int8: {consumer / 'models/TinyNet/int8.onnx'} (workspace)"


def test_pull_onnx_entry_is_its_own_file(consumer: Path, capsys) -> None:
    assert cli("pull", "tinynet-int8", "--root", str(consumer), "--json") == 0
    rows = json.loads(capsys.readouterr().out)["resolved"]
    assert [(r["name"], r["precision"], r["relpath"]) for r in rows] == [
        ("TinyNet_INT8", "int8", "models/TinyNet/int8.onnx")]
    assert cli("pull", "TinyNet_INT8", "--precision", "fp32", "--root", str(consumer)) == 1
    assert "single int8 binary models/TinyNet/int8.onnx" in capsys.readouterr().err


def test_pull_no_checkout_prints_cached_paths(consumer: Path, capsys) -> None:
    assert cli("pull", "TinyNet", "--root", str(consumer), "--no-checkout", "--json") == 0
    row = json.loads(capsys.readouterr().out)["resolved"][0]
    assert "blobs/md5" in row["path"] and not (consumer / "models/TinyNet/int8.onnx").exists()


def test_pull_unknown_name(consumer: Path, capsys) -> None:
    assert cli("pull", "NoSuchNet", "--root", str(consumer)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no catalog entry 'NoSuchNet'") and "OtherNet, TinyNet, TinyNet_INT8" in err


def test_pull_failure_exit_code_and_message(consumer: Path, capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}/dvc"
    set_remote(consumer, "web", url)
    assert cli("pull", "TinyNet", "--root", str(consumer), "--json", "--retries", "0") == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and out["failed"][0]["relpath"] == "models/TinyNet/int8.onnx"
    assert url in out["failed"][0]["error"] and "unreachable" in out["failed"][0]["error"]


def test_pull_subprocess_verbose_over_http(storage_template: Path, tmp_path: Path, env) -> None:
    root = consumer_checkout(storage_template, tmp_path / "consumer", env)
    shutil.copytree(storage_template / ".dvc-storage", tmp_path / "www" / "dvc")
    with http_server(tmp_path / "www") as server:
        set_remote(root, "web", f"{server.url}/dvc")
        proc = subprocess.run([sys.executable, "-c", MAIN, "pull", "tiny_net", "--precision", "fp32", "--verbose",
                               "--root", str(root)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"TinyNet fp32: {root / 'models/TinyNet/fp32.onnx'} (remote)"
    for step in ("workspace: miss", "dvc-cache: miss", "cache: miss", f"remote: hit (remote 'web' ({server.url}/dvc)"):
        assert f"models/TinyNet/fp32.onnx: {step}" in proc.stderr


def test_publish_cli(repo: Path, env, tmp_path: Path, capsys) -> None:
    if subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0:
        pytest.skip("needs git-lfs (apt-get install -y git-lfs)")
    bare = tmp_path / "published.git"
    run(["git", "init", "--bare", "-q", "-b", "main", str(bare)], tmp_path, env)
    assert cli("publish", "--lfs", str(bare), "--root", str(repo), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["changed"] and out["branch"] == "main" and len(out["lfs_files"]) == 5
    assert cli("publish", "--lfs", str(bare), "--root", str(repo)) == 0
    assert capsys.readouterr().out.startswith("already up to date: main ")
    assert cli("publish", "--lfs", str(tmp_path / "nowhere.git"), "--root", str(repo)) == 1
    assert "cannot reach the git repository" in capsys.readouterr().err
