"""url sources pinned by the checksum their publisher gives (sha256, sha384 or md5), the cache keyed by sha256,
and unpinned sources refused with the fix; every pin in the real params.yaml checked for shape."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from furiosa.artifacts.errors import DownloadError, SpecError
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.sources import cache, fetch_weights, source_pin
from furiosa.artifacts.sources.download import ENV_MIRRORS

DATA = b"published weights " * 500


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.delenv(ENV_MIRRORS, raising=False)
    return tmp_path / "home"


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "mirror"
    directory.mkdir()
    (directory / "w.pth").write_bytes(DATA)
    monkeypatch.setenv(ENV_MIRRORS, str(directory))
    return directory


def fetch(source: dict, tmp_path: Path) -> Path:
    return fetch_weights(source, dest=tmp_path / "out" / "w.pth", repo_root=tmp_path, progress=False,
                         where="params.yaml:models.M.source")


@pytest.mark.parametrize("algo", ["sha384", "md5", "sha256"])
def test_published_pin_of_any_algorithm_verifies_and_caches_by_sha256(algo, mirror, tmp_path, home):
    source = {"type": "url", "urls": ["http://127.0.0.1:9/w.pth"], "filename": "w.pth",
              algo: hashlib.new(algo, DATA).hexdigest(), "size": len(DATA)}
    assert fetch(source, tmp_path).read_bytes() == DATA
    sha256 = hashlib.sha256(DATA).hexdigest()
    assert (home / "blobs" / "sha256" / sha256).read_bytes() == DATA
    assert not list((home / "blobs").glob("*/*.incomplete"))
    (mirror / "w.pth").unlink()  # a second fetch is a cache hit: no source needed
    (tmp_path / "out" / "w.pth").unlink()
    assert fetch(source, tmp_path).read_bytes() == DATA


@pytest.mark.parametrize("algo", ["sha384", "md5"])
def test_wrong_published_pin_is_refused_and_nothing_is_cached(algo, mirror, tmp_path, home):
    source = {"type": "url", "urls": ["file:///nonexistent/w.pth"], "filename": "w.pth",
              algo: hashlib.new(algo, b"other bytes").hexdigest()}
    with pytest.raises(DownloadError, match=f"{algo} mismatch"):
        fetch(source, tmp_path)
    assert not (home / "blobs" / "sha256").exists() or not list((home / "blobs" / "sha256").iterdir())


def test_unpinned_source_is_refused_with_the_fix(tmp_path):
    with pytest.raises(SpecError) as info:
        fetch({"type": "url", "urls": ["http://127.0.0.1:9/w.pth"]}, tmp_path)
    message = str(info.value)
    assert "params.yaml:models.M.source" in message and "no published checksum pinned" in message
    assert "sha256, sha384, md5" in message and "FURIOSA_ARTIFACTS_MIRRORS" in message
    assert "--weights synthetic" in message and "missing key" not in message


@pytest.mark.parametrize(("extra", "match"), [
    ({"sha256": "ab" * 32, "md5": "cd" * 16}, "pin one checksum, not sha256 and md5"),
    ({"sha384": "ab" * 32}, r"source\.sha384: expected 96 hexadecimal.*sha384sum"),
    ({"md5": 12}, r"source\.md5: expected 32 hexadecimal"),
])
def test_malformed_pins_name_the_field(extra, match, tmp_path):
    with pytest.raises(SpecError, match=match):
        fetch({"type": "url", "urls": ["http://127.0.0.1:9/w.pth"], **extra}, tmp_path)


def test_convert_key_is_gone_with_a_clear_message(tmp_path):
    with pytest.raises(SpecError, match=r"source\.convert: no longer used.*detected from the file's bytes"):
        fetch({"type": "url", "urls": ["http://x/w"], "sha256": "ab" * 32, "convert": "torch_state_dict"}, tmp_path)


def test_member_of_a_pinned_tarball_is_read_safely(tmp_path, monkeypatch):
    inner = b"frozen graph bytes" * 100
    archive = tmp_path / "mirror" / "bundle.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("bundle/frozen_inference_graph.pb")
        info.size = len(inner)
        tar.addfile(info, io.BytesIO(inner))
    monkeypatch.setenv(ENV_MIRRORS, str(archive.parent))
    source = {"type": "url", "urls": ["http://127.0.0.1:9/bundle.tar.gz"], "filename": "bundle.tar.gz",
              "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(), "size": archive.stat().st_size,
              "member": "bundle/frozen_inference_graph.pb"}
    assert fetch(source, tmp_path).read_bytes() == inner


def test_every_url_source_in_params_is_pinned_and_explained():
    params = load_params(REPO_ROOT / "params.yaml")
    text = (REPO_ROOT / "params.yaml").read_text("utf-8")
    urls = {name: m.source for name, m in params.models.items() if m.source["type"] == "url"}
    assert set(urls) >= {"MLCommonsResNet50", "EfficientNetV2_S", "MLCommonsSSDResNet34", "MLCommonsSSDMobileNet"}
    for name, source in urls.items():
        algo, digest = source_pin(source, f"params.yaml:models.{name}.source")
        assert source.get("publisher"), name
        assert "convert" not in source, name
        section = text[text.index(f"  {name}:"):]
        assert "published" in section[:section.index("source:")], f"{name}: say why this file (a comment)"
    ssd = urls["MLCommonsSSDMobileNet"]
    assert ssd["member"] == "ssd_mobilenet_v1_coco_2018_01_28/frozen_inference_graph.pb" and ssd["size"] == 76541073
    assert "size" not in urls["EfficientNetV2_S"]  # the Hub does not publish it
    assert "/resolve/58906b9a6161ef085fe6305455bf488faa94f21a/" in urls["EfficientNetV2_S"]["urls"][0]
