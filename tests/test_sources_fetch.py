"""fetch_weights(): params.yaml source mappings, validated, for url and file sources."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from furiosa.artifacts.errors import ChecksumError, DownloadError, SpecError, UnsafePathError
from furiosa.artifacts.sources import cache, fetch_weights
from furiosa.artifacts.sources.download import ENV_MIRRORS

DATA = b"pretend these are weights" * 100
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.delenv(ENV_MIRRORS, raising=False)
    return tmp_path / "home"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "w.pth").write_bytes(DATA)
    return root


def fetch(source: object, repo: Path) -> Path:
    return fetch_weights(source, dest=repo / "models" / "m" / "w.pth", repo_root=repo, progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("url", "expected a mapping"),
        (
            {"urls": ["http://x/w"], "sha256": SHA},
            r"source\.type: expected one of \['file', 'synthetic', 'train', 'url'\], got None",
        ),
        ({"type": "ftp"}, "got 'ftp'"),
        ({"type": "synthetic", "seed": 0}, "'synthetic' sources are not fetched"),
        ({"type": "train"}, "'train' sources are not fetched"),
        ({"type": "url", "sha256": SHA}, "missing key 'urls'"),
        (
            {"type": "url", "url": "http://x/w.pth", "urls": ["http://x/w"], "sha256": SHA},
            "unknown key 'url'.*did you mean 'urls'",
        ),
        ({"type": "url", "urls": "http://x/w.pth", "sha256": SHA}, r"source\.urls: .*single string"),
        ({"type": "url", "urls": [], "sha256": SHA}, r"source\.urls: expected a non-empty list"),
        ({"type": "url", "urls": ["weights/w.pth"], "sha256": SHA}, r"source\.urls\[0\]: .*type: file"),
        (
            {"type": "url", "urls": ["http://x/w"], "sha256": "abc"},
            r"source\.sha256: expected 64 hexadecimal.*sha256sum",
        ),
        (
            {"type": "url", "urls": ["http://x/w"], "sha256": SHA, "size": "1 MB"},
            r"source\.size: expected a byte count",
        ),
        ({"type": "url", "urls": ["http://x/w"], "sha256": SHA, "size": True}, r"source\.size"),
        (
            {"type": "url", "urls": ["http://x/w"], "sha256": SHA, "filename": "a/b.pth"},
            r"source\.filename: .*plain file name",
        ),
        ({"type": "file", "sha256": SHA}, "missing key 'path'"),
        ({"type": "file", "path": "", "sha256": SHA}, r"source\.path: expected a non-empty string"),
        ({"type": "file", "path": "w", "sha256": SHA, "urls": []}, "unknown key 'urls' for type 'file'"),
    ],
)
def test_invalid_mappings_name_the_field(repo: Path, source: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        fetch(source, repo)
    assert not (repo / "models").exists() or not any((repo / "models").rglob("w.pth"))


def test_file_source_relative_to_repo(repo: Path) -> None:
    dest = fetch({"type": "file", "path": "weights/w.pth", "sha256": SHA.upper(), "size": len(DATA)}, repo)
    assert dest.read_bytes() == DATA
    assert sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]


def test_file_source_absolute_path(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.pth"
    outside.write_bytes(DATA)
    assert fetch({"type": "file", "path": str(outside), "sha256": SHA}, repo).read_bytes() == DATA


@pytest.mark.parametrize("path", ["../elsewhere.pth", "weights/../../elsewhere.pth", "link/elsewhere.pth"])
def test_file_source_escaping_the_repo_is_refused(repo: Path, tmp_path: Path, path: str) -> None:
    (tmp_path / "elsewhere.pth").write_bytes(DATA)
    (repo / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="outside the repository"):
        fetch({"type": "file", "path": path, "sha256": SHA}, repo)


def test_file_source_with_wrong_hash(repo: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        fetch({"type": "file", "path": "weights/w.pth", "sha256": wrong}, repo)
    message = str(info.value)
    assert "weights/w.pth" in message and wrong in message and SHA in message
    assert not (repo / "models" / "m" / "w.pth").exists()
    assert list((repo / "models" / "m").iterdir()) == []  # no temporary left either


def test_file_source_missing(repo: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        fetch({"type": "file", "path": "weights/absent.pth", "sha256": SHA}, repo)


def test_url_source_with_file_url_and_cache(repo: Path) -> None:
    source = {"type": "url", "urls": [(repo / "weights" / "w.pth").as_uri()], "sha256": SHA, "size": len(DATA)}
    assert fetch(source, repo).read_bytes() == DATA
    assert cache.cache_path("sha256", SHA).read_bytes() == DATA


def test_url_source_uses_env_mirror_by_filename(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "resnet50.pth").write_bytes(DATA)
    monkeypatch.setenv(ENV_MIRRORS, str(mirror))
    source = {
        "type": "url",
        "urls": ["http://127.0.0.1:9/records/1/files/download?id=3"],  # nothing listens on port 9
        "sha256": SHA,
        "filename": "resnet50.pth",
    }
    assert fetch(source, repo).read_bytes() == DATA


def test_url_source_member_of_a_tarball(repo: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("ssd/frozen_inference_graph.pb")
        info.size = len(DATA)
        tar.addfile(info, io.BytesIO(DATA))
    source = {
        "type": "url",
        "urls": [archive.as_uri()],
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "member": "ssd/frozen_inference_graph.pb",
    }
    assert fetch(source, repo).read_bytes() == DATA
