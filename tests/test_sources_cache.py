"""The content-addressed cache: layout, path safety, verification, atomic insertion."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from furiosa.artifacts.errors import ChecksumError, UnsafePathError
from furiosa.artifacts.sources import cache


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv(cache.ENV_HOME, str(root))
    return root


def digests(data: bytes) -> tuple[str, str]:
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_root_from_env_or_default(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache.cache_root() == home
    monkeypatch.delenv(cache.ENV_HOME)
    monkeypatch.setenv("HOME", "/nonexistent-home")
    assert cache.cache_root() == Path("/nonexistent-home/.cache/furiosa-artifacts")


def test_layout_for_sha256_and_md5(home: Path) -> None:
    sha, md5 = digests(b"abc")
    assert cache.cache_path("sha256", sha.upper()) == home / "blobs" / "sha256" / sha
    assert cache.cache_path("md5", md5) == home / "blobs" / "md5" / md5


@pytest.mark.parametrize(
    ("algo", "digest"),
    [
        ("sha256", "../" * 21 + "x"),
        ("sha256", "/etc/passwd"),
        ("sha256", "a" * 63 + "/"),
        ("sha256", "a" * 32),  # an md5 is not a sha256
        ("sha256", "g" * 64),
        ("md5", "..%2F" + "a" * 27),
        ("../sha256", "a" * 64),
        ("sha1", "a" * 40),
    ],
)
def test_paths_that_would_escape_are_refused(algo: str, digest: str) -> None:
    with pytest.raises(UnsafePathError, match="refusing|unknown hash algorithm"):
        cache.cache_path(algo, digest)


def test_verify_file_names_file_expected_and_actual(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"hello")
    sha, md5 = digests(b"hello")
    cache.verify_file(path, sha256=sha, md5=md5, size=5)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        cache.verify_file(path, sha256=wrong)
    assert str(path) in str(info.value) and wrong in str(info.value) and sha in str(info.value)
    with pytest.raises(ChecksumError, match="expected 6 bytes, got 5 bytes"):
        cache.verify_file(path, sha256=sha, size=6)
    with pytest.raises(ChecksumError, match=f"md5 mismatch: expected {'1' * 32}, got {md5}"):
        cache.verify_file(path, md5="1" * 32)
    with pytest.raises(FileNotFoundError):
        cache.verify_file(tmp_path / "absent", sha256=sha)


def test_insert_is_verified_atomic_and_read_only(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    sha, md5 = digests(b"weights")
    entry = cache.insert(src, "sha256", sha, size=7)
    assert entry == cache.cache_path("sha256", sha) and entry.read_bytes() == b"weights"
    assert not os.access(entry, os.W_OK) or os.geteuid() == 0
    assert oct(entry.stat().st_mode & 0o777) == oct(0o444)
    assert cache.insert(src, "md5", md5).read_bytes() == b"weights"
    assert cache.lookup("sha256", sha, size=7) == entry
    assert sorted(p.name for p in entry.parent.iterdir()) == [sha]  # no temporary left


def test_insert_of_a_wrong_file_inserts_nothing(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    wrong = "f" * 64
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        cache.insert(src, "sha256", wrong)
    entry = cache.cache_path("sha256", wrong)
    assert not entry.exists() and list(entry.parent.iterdir()) == []


def test_lookup_drops_a_corrupted_entry(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    sha, _ = digests(b"weights")
    entry = cache.insert(src, "sha256", sha)
    os.chmod(entry, 0o644)
    entry.write_bytes(b"rotten!")
    assert cache.lookup("sha256", sha) is None
    assert not entry.exists()
    assert cache.lookup("sha256", "0" * 64) is None


def test_blob_lock_excludes_other_threads() -> None:
    sha = "a" * 64
    inside: list[str] = []
    entered = threading.Event()

    def other() -> None:
        with cache.blob_lock("sha256", sha):
            inside.append("other")

    with cache.blob_lock("sha256", sha):
        thread = threading.Thread(target=lambda: (entered.set(), other()))
        thread.start()
        entered.wait()
        thread.join(0.2)
        assert thread.is_alive() and inside == []  # blocked while we hold the lock
        inside.append("first")
    thread.join(5)
    assert inside == ["first", "other"]
