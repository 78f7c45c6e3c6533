"""The catalog without a clone: the wheel from ``pip wheel .`` installed into a fresh virtual environment.

Outside any checkout, with an empty cache, no git, no DVC and no torch, and the binaries served from a
loopback HTTP copy of the DVC remote: ``fa.load(...).run(image)`` and ``furiosa-artifacts list | show |
pull | predict`` work, a synthetic model is flagged, and with ``FURIOSA_ARTIFACTS_OFFLINE=1`` and a warm
cache everything still works once the server is stopped. ``build`` there says which extra it needs and
changes nothing.

The wheel is built from a copy of this checkout (its dvc.lock is the build the wheel carries); the venv
installs the wheel for real (dependencies from pip's cache or index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from conftest import REPO_ROOT, copy_repo
from consumer_support import SEED, TRAINED, fill_remote, int8
from furiosa.artifacts.catalog.bundle import FILES
from test_storage_support import http_server

pytestmark = pytest.mark.slow

CHECK = textwrap.dedent("""
    import importlib.util, json, sys, warnings
    import furiosa.artifacts as fa
    from furiosa.artifacts.errors import ArtifactsError, OfflineError
    out = {"file": fa.__file__, "torch": importlib.util.find_spec("torch") is not None,
           "dvc": importlib.util.find_spec("dvc") is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        digits = fa.load("digits-conv")
        out["digits"] = {"weights": digits.weights, "path": str(digits.path),
                         "top": [r.label for r in digits.run(sys.argv[1])[0]][:1]}
        if sys.argv[2] == "online":
            seed = fa.load("ssd-mobile")
            out["seed"] = {"weights": seed.weights, "synthetic": seed.synthetic, "path": str(seed.path),
                           "detections": len(seed.run(sys.argv[3])[0])}
    out["warnings"] = [w.category.__name__ for w in caught]
    try:
        fa.load("digits-convnet-fp32")
        out["fp32"] = "loaded"
    except OfflineError as exc:
        out["fp32"] = "offline: " + str(exc)
    except ArtifactsError as exc:
        out["fp32"] = type(exc).__name__ + ": " + str(exc)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin directory, the wheel) with the wheel of this checkout installed into a fresh venv."""
    base = tmp_path_factory.mktemp("wheel")
    src = copy_repo(base / "src")
    if not (src / "dvc.lock").is_file():
        pytest.fail("no dvc.lock in this checkout: run the README's main command first")
    dist = base / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
                    "-w", str(dist), str(src)], check=True, env=env, cwd=base, timeout=900)
    wheel = next(dist.glob("furiosa_artifacts-*.whl"))
    prefix = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(prefix)
    subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True, env=env, cwd=base, timeout=900)
    return prefix / "bin", wheel


def _env(bin_dir: Path, base: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "FURIOSA_ARTIFACTS_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HOME=str(base / "user"),
               FURIOSA_ARTIFACTS_HOME=str(base / "cache"), **extra)
    return env


def _run(bin_dir: Path, args, *, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_wheel_carries_the_catalog_of_the_tree_it_was_built_from(installed):
    import zipfile

    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    for rel in FILES:
        assert f"furiosa/artifacts/_catalog/{rel}" in names, rel
    manifest = json.loads(zipfile.ZipFile(wheel).read("furiosa/artifacts/_catalog/BUNDLE.json"))
    lock = zipfile.ZipFile(wheel).read("furiosa/artifacts/_catalog/dvc.lock")
    assert lock == (REPO_ROOT / "dvc.lock").read_bytes()
    import hashlib

    assert manifest["files"]["dvc.lock"] == hashlib.sha256(lock).hexdigest()
    assert not any(n.startswith(("models/", "tests/", "stages/")) or "config.local" in n for n in names)


def test_a_fresh_venv_loads_runs_and_serves_the_cli_outside_any_checkout(installed, tmp_path):
    bin_dir, _ = installed
    work = tmp_path / "elsewhere"  # no artifacts.yaml, no .git, no .dvc here
    work.mkdir()
    digit = work / "digit.png"
    image = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(image).rectangle([14, 3, 18, 28], fill=255)
    image.save(digit)
    scene = work / "scene.png"
    Image.new("RGB", (300, 200), (120, 160, 200)).save(scene)
    script = work / "check.py"
    script.write_text(CHECK)
    remote = tmp_path / "www"
    fill_remote(remote, [int8(TRAINED), int8(SEED)])

    with http_server(remote) as server:
        env = _env(bin_dir, tmp_path, FURIOSA_ARTIFACTS_REMOTE=server.url)
        proc = _run(bin_dir, ["python", str(script), str(digit), "online", str(scene)], cwd=work, env=env)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        listed = _run(bin_dir, ["furiosa-artifacts", "list", "--json"], cwd=work, env=env)
        shown = _run(bin_dir, ["furiosa-artifacts", "show", "ssd-mobile"], cwd=work, env=env)
        predicted = _run(bin_dir, ["furiosa-artifacts", "predict", "digits-conv", str(digit), "--json"], cwd=work,
                         env=env)
        pulled = _run(bin_dir, ["furiosa-artifacts", "pull", "mlcommons-ssd-mobilenet", "--json"], cwd=work, env=env)
        version = _run(bin_dir, ["furiosa-artifacts", "--version"], cwd=work, env=env)

    site = str(bin_dir.parent)
    assert out["file"].startswith(site) and not out["torch"] and not out["dvc"]
    assert out["digits"]["weights"] == "train" and out["digits"]["top"]
    assert out["digits"]["path"].startswith(str(tmp_path / "cache"))  # fetched into the empty shared cache
    if out["seed"]["weights"] != "synthetic":
        pytest.fail(f"{SEED} should be the synthetic build of the README's main command, got {out['seed']}")
    assert out["seed"]["synthetic"] is True and "SyntheticWeightsWarning" in out["warnings"]
    assert "missing" in out["fp32"] and "models/DigitsConvNet/fp32.onnx" in out["fp32"]  # not on that remote
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows[TRAINED]["weights"] == "train" and rows[SEED]["weights"] == "synthetic"
    assert shown.returncode == 0 and "SYNTHETIC" in shown.stdout and "binary says SYNTHETIC" in shown.stdout
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["weights"] == "train"
    assert pulled.returncode == 0 and json.loads(pulled.stdout)["resolved"][0]["source"] == "cache"
    assert "bundled at build time" in version.stdout

    # the server is gone; offline, the warm cache answers and the missing fp32 binary is named
    env = _env(bin_dir, tmp_path, FURIOSA_ARTIFACTS_OFFLINE="1", FURIOSA_ARTIFACTS_REMOTE=server.url)
    proc = _run(bin_dir, ["python", str(script), str(digit), "offline"], cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["digits"]["weights"] == "train" and out["digits"]["top"]
    assert out["fp32"].startswith("offline: ") and "models/DigitsConvNet/fp32.onnx" in out["fp32"]
    predicted = _run(bin_dir, ["furiosa-artifacts", "predict", "ssd-mobile", str(scene)], cwd=work, env=env)
    assert predicted.returncode == 0 and "SYNTHETIC WEIGHTS" in predicted.stderr


def test_build_without_the_build_extra_names_the_extra_and_changes_nothing(installed, tmp_path):
    bin_dir, _ = installed
    catalog = copy_repo(tmp_path / "clone")
    before = {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()}
    proc = _run(bin_dir, ["furiosa-artifacts", "build", "--weights", "synthetic"], cwd=catalog,
                env=_env(bin_dir, tmp_path))
    assert proc.returncode == 1 and "furiosa-artifacts[build]" in proc.stderr and "nothing was changed" in proc.stderr
    assert {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()} == before
