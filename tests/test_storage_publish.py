"""publish_lfs: the catalog and its binaries in a Git LFS-backed repository, read back with git + git-lfs.

Two LFS remotes: a local bare repository given as a path (git-lfs's standalone file transfer,
objects under ``<bare>/lfs/objects``), and a real LFS server, giftless 0.6.2 out of process
(``flask --app giftless.wsgi_entrypoint run`` on 127.0.0.1, local storage, anonymous read-write).
Needs Debian's ``git-lfs`` (``apt-get install -y git-lfs``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from furiosa.artifacts.errors import UnsafePathError
from furiosa.artifacts.storage import PublishError, publish_lfs
from furiosa.artifacts.storage.publish import LFS_ATTRIBUTES
from test_storage_support import (  # noqa: F401  (fixtures)
    BIN_DIR,
    FILE_OUTPUTS,
    env,
    free_port,
    md5_of,
    repo,
    run,
    storage_template,
    wait_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0,
    reason="needs git-lfs (apt-get install -y git-lfs)",
)]

POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"


def bare_repo(path: Path, env) -> Path:
    run(["git", "init", "--bare", "-q", "-b", "main", str(path)], path.parent, env)
    return path


def clone_and_pull(url: str, dest: Path, env) -> Path:
    """``git clone`` (pointers only) then ``git lfs pull`` (real bytes), as a consumer would."""
    run(["git", "clone", "-q", url, str(dest)], dest.parent, dict(env, GIT_LFS_SKIP_SMUDGE="1"))
    assert (dest / FILE_OUTPUTS[0]).read_bytes().startswith(POINTER_PREFIX)  # LFS pointers before the pull
    run(["git", "lfs", "install", "--local"], dest, env)
    run(["git", "lfs", "pull"], dest, env)
    return dest


def assert_real_binaries(clone: Path, source: Path) -> None:
    for rel in FILE_OUTPUTS:
        data = (clone / rel).read_bytes()
        assert not data.startswith(POINTER_PREFIX), rel
        assert md5_of(clone / rel) == md5_of(source / rel), rel


def test_publish_to_bare_repository_and_read_back(repo: Path, env, tmp_path: Path) -> None:
    (repo / FILE_OUTPUTS[0]).unlink()  # not in the workspace: published from the DVC cache
    bare = bare_repo(tmp_path / "published.git", env)
    report = publish_lfs(repo, str(bare), progress=False)
    assert report.changed and report.branch == "main"
    assert report.lfs_files == sorted(FILE_OUTPUTS)
    assert report.files == [".gitattributes", "README.md", "artifacts.py", "artifacts.yaml", "dvc.lock", "dvc.yaml"]
    assert len(list((bare / "lfs" / "objects").rglob("*"))) >= len(FILE_OUTPUTS)  # standalone transfer

    clone = clone_and_pull(str(bare), tmp_path / "clone", env)
    assert (clone / ".gitattributes").read_text().splitlines() == [LFS_ATTRIBUTES]
    assert run(["git", "rev-parse", "HEAD"], clone, env).stdout.strip() == report.commit
    assert (clone / "artifacts.yaml").read_text() == (repo / "artifacts.yaml").read_text()
    assert not (clone / "gen.py").exists()  # not in the default include list
    lfs_listed = run(["git", "lfs", "ls-files", "-n"], clone, env).stdout.split()
    assert sorted(lfs_listed) == sorted(FILE_OUTPUTS)
    (repo / FILE_OUTPUTS[0]).write_bytes((clone / FILE_OUTPUTS[0]).read_bytes())
    assert_real_binaries(clone, repo)

    again = publish_lfs(repo, str(bare), progress=False)  # same content: no new commit
    assert not again.changed and again.commit == report.commit

    (repo / "README.md").write_text("# tiny catalog, second edition\n")
    run(["git", "commit", "-q", "-am", "edit"], repo, env)
    third = publish_lfs(repo, str(bare), progress=False, message="second")
    assert third.changed and third.commit != report.commit
    log = run(["git", "log", "--format=%s", "main"], bare, env).stdout.split("\n")
    assert log[:2] == ["second", "Publish the furiosa-artifacts catalog (5 files, 5 binaries)"]


def test_symlink_leading_outside_is_refused(repo: Path, env, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not for publication")
    os.makedirs(repo / "docs")
    os.symlink("../../secret.txt", repo / "docs" / "escape.md")
    run(["git", "add", "docs/escape.md"], repo, env)
    run(["git", "commit", "-q", "-m", "escaping link"], repo, env)
    with pytest.raises(UnsafePathError, match="docs/escape.md"):
        publish_lfs(repo, str(bare_repo(tmp_path / "p.git", env)), progress=False)


def test_symlink_inside_is_published_as_a_link(repo: Path, env, tmp_path: Path) -> None:
    os.makedirs(repo / "docs")
    os.symlink("../README.md", repo / "docs" / "index.md")
    run(["git", "add", "docs/index.md"], repo, env)
    run(["git", "commit", "-q", "-m", "link"], repo, env)
    bare = bare_repo(tmp_path / "p.git", env)
    publish_lfs(repo, str(bare), progress=False)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(bare), str(clone)], tmp_path, dict(env, GIT_LFS_SKIP_SMUDGE="1"))
    assert os.readlink(clone / "docs" / "index.md") == "../README.md"


def test_unreachable_git_url(repo: Path, env, tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=f"cannot reach the git repository {tmp_path / 'missing.git'}"):
        publish_lfs(repo, str(tmp_path / "missing.git"), progress=False)


def test_binary_missing_everywhere(repo: Path, env, tmp_path: Path) -> None:
    (repo / FILE_OUTPUTS[1]).unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / ".dvc-storage")
    with pytest.raises(PublishError, match="could not be resolved"):
        publish_lfs(repo, str(bare_repo(tmp_path / "p.git", env)), progress=False)


@pytest.fixture()
def giftless(tmp_path: Path, env):
    """giftless on 127.0.0.1 (out of process), anonymous read-write, objects under ``<tmp>/lfs-store``."""
    pytest.importorskip("giftless", reason="needs giftless==0.6.2 and its dependencies (PyJWT<2.10)")
    workdir = tmp_path / "giftless"
    workdir.mkdir()  # giftless reads .env from its working directory
    config = {
        "LEGACY_ENDPOINTS": False,
        "AUTH_PROVIDERS": ["giftless.auth.allow_anon:read_write"],
        "TRANSFER_ADAPTERS": {"basic": {"factory": "giftless.transfer.basic_streaming:factory", "options": {
            "storage_class": "giftless.storage.local_storage:LocalStorage",
            "storage_options": {"path": str(tmp_path / "lfs-store")}}}},
        "PRE_AUTHORIZED_ACTION_PROVIDER": {"options": {"private_key": "storage-tests-" + "k" * 32}},
    }
    (workdir / "giftless.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN_DIR / "flask"), "--app", "giftless.wsgi_entrypoint", "run", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=workdir, env=dict(env, GIFTLESS_CONFIG_FILE=str(workdir / "giftless.yaml")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}/furiosa/catalog.git/info/lfs", tmp_path / "lfs-store"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_publish_through_giftless(repo: Path, env, tmp_path: Path, giftless) -> None:
    lfs_url, store = giftless
    bare = bare_repo(tmp_path / "published.git", env)
    report = publish_lfs(repo, str(bare), lfs_url=lfs_url, progress=False)
    assert ".lfsconfig" in report.files
    assert len(list(store.rglob("*"))) >= len(FILE_OUTPUTS)  # the objects are on the LFS server
    assert not (bare / "lfs").exists()  # ... and not in the git repository
    clone = clone_and_pull(str(bare), tmp_path / "clone", env)
    assert lfs_url in (clone / ".lfsconfig").read_text()
    assert_real_binaries(clone, repo)
