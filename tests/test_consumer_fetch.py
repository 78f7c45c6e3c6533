"""``fa.load`` and the CLI fetch a missing binary on demand: a loopback HTTP copy of the DVC remote,
``$FURIOSA_ARTIFACTS_REMOTE``, the shared cache, ``$FURIOSA_ARTIFACTS_OFFLINE``.

The catalog is a copy of this checkout (dvc.lock included) without any binary; its configured remote
is an empty directory, so every byte must come through the override URL.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import furiosa.artifacts as fa
from conftest import copy_repo, run_cli
from consumer_support import SEED, TRAINED, fill_remote, int8
from furiosa.artifacts.errors import OfflineError, SyntheticWeightsWarning
from furiosa.artifacts.layout import binary_relpath
from furiosa.artifacts.provenance import read_provenance
from furiosa.artifacts.sources.cache import cache_path
from test_storage_support import http_server

pytestmark = pytest.mark.slow


@pytest.fixture()
def consumer(tmp_path, monkeypatch):
    """(catalog copy without binaries, remote directory with two int8 binaries, {relpath: md5})."""
    root = copy_repo(tmp_path / "catalog")
    assert not (root / "models").exists()
    remote = tmp_path / "www"
    md5s = fill_remote(remote, [int8(TRAINED), int8(SEED)])
    monkeypatch.setenv("FURIOSA_ARTIFACTS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FURIOSA_ARTIFACTS_OFFLINE", raising=False)
    return root, remote, md5s


def digit(path: Path) -> Path:
    image = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(image).rectangle([14, 3, 18, 28], fill=255)
    image.save(path)
    return path


def test_load_fetches_verifies_caches_then_works_offline(consumer, monkeypatch, tmp_path):
    root, remote, md5s = consumer
    with http_server(remote) as server:
        monkeypatch.setenv("FURIOSA_ARTIFACTS_REMOTE", server.url)
        model = fa.load("digits-conv", root=root)
        assert any(path.endswith(md5s[int8(TRAINED)][2:]) for path in server.requests)
    blob = cache_path("md5", md5s[int8(TRAINED)])
    assert model.path == blob and blob.read_bytes() == model.source
    assert model.weights == read_provenance(blob).kind != "unknown"
    assert not (root / int8(TRAINED)).exists()  # the shared cache, not the catalog, holds it
    # server gone, network forbidden: the verified copy in $FURIOSA_ARTIFACTS_HOME answers
    monkeypatch.setenv("FURIOSA_ARTIFACTS_OFFLINE", "1")
    again = fa.load("DigitsConvNet", root=root)
    assert again.source == model.source and again.path == blob
    assert len(again.run(str(digit(tmp_path / "one.png")))[0]) >= 1
    with pytest.raises(OfflineError) as info:
        fa.load("digits-convnet-fp32", root=root)
    message = str(info.value)
    assert binary_relpath(TRAINED, "fp32") in message and "FURIOSA_ARTIFACTS_OFFLINE" in message


def test_a_synthetic_model_is_flagged_when_loaded(consumer, monkeypatch):
    root, remote, _ = consumer
    with http_server(remote) as server:
        monkeypatch.setenv("FURIOSA_ARTIFACTS_REMOTE", server.url)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fa.load("ssd-mobile", root=root)
    expected = read_provenance(model.source).kind
    assert model.weights == expected
    assert model.synthetic is (expected == "synthetic")
    assert any(w.category is SyntheticWeightsWarning for w in caught) is (expected == "synthetic")


def test_cli_predict_fetches_and_marks_synthetic_output(consumer, tmp_path):
    root, remote, _ = consumer
    with http_server(remote) as server:
        env = {"FURIOSA_ARTIFACTS_REMOTE": server.url, "FURIOSA_ARTIFACTS_HOME": os.environ["FURIOSA_ARTIFACTS_HOME"]}
        picture = tmp_path / "scene.png"
        Image.new("RGB", (300, 200), (120, 160, 200)).save(picture)
        out = tmp_path / "boxes.png"
        proc = run_cli(["predict", "ssd-mobile", str(picture), "--out", str(out), "--json", "--root", str(root)],
                       env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    if result["weights"] != "synthetic":
        pytest.fail(f"expected the seed model built from synthetic weights (the README's main command), "
                    f"got {result['weights']}")
    assert result["synthetic"] is True and "SYNTHETIC WEIGHTS" in proc.stderr
    marked = Image.open(out).convert("RGB")
    bottom = [marked.getpixel((x, marked.height - 2)) for x in range(0, marked.width, 7)]
    assert sum(p == (200, 0, 0) for p in bottom) > len(bottom) // 2  # the red banner across the bottom


def test_pull_all_from_the_override_remote_and_cache_commands(consumer, tmp_path):
    root, remote, md5s = consumer
    home = os.environ["FURIOSA_ARTIFACTS_HOME"]
    with http_server(remote) as server:
        env = {"FURIOSA_ARTIFACTS_REMOTE": server.url, "FURIOSA_ARTIFACTS_HOME": home}
        proc = run_cli(["pull", "--all", "--json", "--root", str(root)], env=env)
    report = json.loads(proc.stdout)
    pulled = {r["relpath"] for r in report["resolved"]}
    assert pulled == set(md5s) and proc.returncode == 1  # the other models are not on that remote
    failed = {r["name"] for r in report["failed"]}
    assert failed and not failed & {TRAINED, SEED}
    assert all(r["relpath"] in r["error"] for r in report["failed"])  # each failure names its binary
    assert (root / int8(TRAINED)).is_file()  # a checkout gets its workspace copy
    listed = json.loads(run_cli(["cache", "list", "--json", "--root", str(root)], env={"FURIOSA_ARTIFACTS_HOME": home},
                                check=True).stdout)
    names = {(f["model"], f["precision"]) for f in listed["files"]}
    assert {(TRAINED, "int8"), (SEED, "int8")} <= names
    proc = run_cli(["cache", "clean", "digits-conv", "--root", str(root)], env={"FURIOSA_ARTIFACTS_HOME": home},
                   check=True)
    assert "removed 1 file(s)" in proc.stdout and not cache_path("md5", md5s[int8(TRAINED)]).exists()
    assert cache_path("md5", md5s[int8(SEED)]).exists()
    assert run_cli(["cache", "clean", "--root", str(root)]).returncode == 2  # says what to remove
