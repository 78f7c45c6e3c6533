"""DVC's model registry for real: GTO tags made by `furiosa-artifacts release`, read by `gto show`,
`dvc artifacts get` and our own resolver, on a released copy of this catalog (test_registries_support).

Every binary comes through the project's default DVC remote (the local directory ``.dvc-storage``): the
released repository has no DVC cache and no binaries in its workspace. Servers: none (git and DVC on files).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from furiosa.artifacts.errors import ModelNotFoundError
from furiosa.artifacts.layout import PRECISIONS, binary_relpath
from furiosa.artifacts.registries import gto
from furiosa.artifacts.registries.dvc_artifacts import expected_artifacts
from furiosa.artifacts.registries.names import dvc_name, semver
from test_registries_support import (
    CODE_MODELS, built_outputs, copy_publisher, is_synthetic, make_publisher, md5_of, run_block, tags,
)
from test_storage_support import BIN_DIR, run

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

ARTIFACTS = [(dvc_name(e["name"], p), e["name"], p, e["version"]) for e in CODE_MODELS for p in PRECISIONS]
IDS = [a[0] for a in ARTIFACTS]


def cli(args, cwd: Path, env, *, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN_DIR / "furiosa-artifacts"), *args], cwd, env, check=check)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The publisher after the docs' release blocks (MLCommonsResNet50) and a release of every other model
    to stage prod; tags pushed to its bare origin. Returns (repo, env)."""
    base = tmp_path_factory.mktemp("gto")
    repo, env = make_publisher(base)
    synthetic = is_synthetic("MLCommonsResNet50")
    proc = run_block("release", repo, env, check=not synthetic)
    if synthetic:  # the documented command refuses a synthetic build and creates no tag
        assert proc.returncode == 1 and "synthetic" in proc.stderr, proc.stdout + proc.stderr
        assert tags(repo, env) == []
        run_block("release-synthetic", repo, env)
        run(["git", "push", "-q", "origin", "--tags"], repo, env)
    for entry in CODE_MODELS[1:] if CODE_MODELS[0]["name"] == "MLCommonsResNet50" else CODE_MODELS:
        flags = ["--allow-synthetic"] if is_synthetic(entry["name"]) else []
        cli(["release", entry["name"], "--stage", "prod", *flags], repo, env)
    run(["git", "push", "-q", "origin", "--tags"], repo, env)
    return repo, env


def test_release_tags_every_artifact_and_pushes_them(released):
    repo, env = released
    want = {f"{a}@{semver(v)}" for a, _, _, v in ARTIFACTS} | {f"{a}#prod#1" for a, _, _, _ in ARTIFACTS}
    assert set(tags(repo, env)) == want
    assert set(run(["git", "tag", "--list"], repo.parent / "origin.git", env).stdout.split()) == want
    message = run(["git", "tag", "-l", "--format=%(contents)", "mlcommons-resnet50@v1.5.0"], repo, env).stdout
    lock = built_outputs()[binary_relpath("MLCommonsResNet50", "int8")]
    assert f"md5 {lock.md5}" in message
    assert ("SYNTHETIC" in message) == is_synthetic("MLCommonsResNet50")


def test_gto_show_lists_every_model(released):
    repo, env = released
    shown = json.loads(run([str(BIN_DIR / "gto"), "show", "--json"], repo, env).stdout)
    assert set(shown) == set(expected_artifacts(repo)) == set(IDS)
    for artifact, _, _, version in ARTIFACTS:
        assert shown[artifact]["version"] == semver(version)
        assert shown[artifact]["stage"]["prod"] == semver(version)


@pytest.mark.parametrize("artifact,name,precision,version", ARTIFACTS, ids=IDS)
def test_dvc_artifacts_get_stage_prod_is_the_built_binary(released, artifact, name, precision, version, tmp_path):
    repo, env = released
    out = tmp_path / f"{artifact}.onnx"
    run([str(BIN_DIR / "dvc"), "artifacts", "get", str(repo), artifact, "--stage", "prod", "-o", str(out)],
        tmp_path, env)
    assert md5_of(out) == built_outputs()[binary_relpath(name, precision)].md5


def test_dvc_artifacts_get_by_version_and_latest(released, tmp_path):
    repo, env = released
    want = built_outputs()[binary_relpath("DigitsConvNet", "int8")].md5
    for extra, out in ((["--rev", "v1.0.0"], "a.onnx"), ([], "b.onnx")):
        run([str(BIN_DIR / "dvc"), "artifacts", "get", str(repo), "digits-convnet", *extra, "-o", out], tmp_path, env)
        assert md5_of(tmp_path / out) == want


def test_dvc_artifacts_get_fetches_through_the_default_remote(released, tmp_path):
    repo, env = released
    storage = repo / ".dvc-storage"
    assert not (repo / ".dvc" / "cache").exists() and not (repo / "models").exists()
    hidden = repo / "storage-moved-away"
    storage.rename(hidden)
    try:
        proc = run([str(BIN_DIR / "dvc"), "artifacts", "get", str(repo), "digits-convnet", "--stage", "prod"],
                   tmp_path, env, check=False)
    finally:
        hidden.rename(storage)
    assert proc.returncode != 0 and not (tmp_path / "int8.onnx").exists()


def test_docs_dvc_get_block(released, tmp_path):
    repo, env = released
    proc = run_block("dvc-get", tmp_path, {**env, "REPO": str(repo)})
    for artifact in IDS:
        assert artifact in proc.stdout  # gto show's table
    outputs = built_outputs()
    assert md5_of(tmp_path / "int8.onnx") == outputs[binary_relpath("MLCommonsResNet50", "int8")].md5
    assert md5_of(tmp_path / "resnet50-fp32.onnx") == outputs[binary_relpath("MLCommonsResNet50", "fp32")].md5


def test_docs_checkout_block_resolves_through_the_remote(released, tmp_path):
    repo, env = released
    env = {**env, "FURIOSA_ARTIFACTS_HOME": str(tmp_path / "fresh-cache")}
    proc = run_block("checkout", repo, env)
    lines = proc.stdout.splitlines()
    mark = ", synthetic weights" if is_synthetic("MLCommonsResNet50") else ""
    assert lines[0].startswith("MLCommonsResNet50 int8 #prod v1.5.0: ") and lines[0].endswith(f"(remote{mark})")
    assert lines[1].startswith("MLCommonsResNet50 fp32 v1.5.0: ") and lines[1].endswith(f"(remote{mark})")
    assert lines[2].startswith("Model(name='MLCommonsResNet50', version='v1.5.0', precision='int8'")
    fp32 = Path(lines[1].split(": ", 1)[1].rsplit(" (", 1)[0])
    assert md5_of(fp32) == built_outputs()[binary_relpath("MLCommonsResNet50", "fp32")].md5
    assert not (repo / "models").exists()  # a release is not checked out over HEAD's workspace


@pytest.mark.parametrize("entry", CODE_MODELS, ids=[e["name"] for e in CODE_MODELS])
def test_library_load_by_dvc_name_version_and_stage(released, entry, tmp_path, monkeypatch):
    repo, env = released
    monkeypatch.setenv("FURIOSA_ARTIFACTS_HOME", str(tmp_path / "cache"))
    outputs = built_outputs()
    version = semver(entry["version"])
    model = gto.load(dvc_name(entry["name"]), version=version, root=repo)
    assert (model.name, model.version, model.precision) == (entry["name"], version, "int8")
    assert model.synthetic == is_synthetic(entry["name"])
    assert md5_of(model.path) == outputs[binary_relpath(entry["name"], "int8")].md5
    fp32 = gto.load(entry["name"], stage="prod", precision="fp32", root=repo)
    assert md5_of(fp32.path) == outputs[binary_relpath(entry["name"], "fp32")].md5
    assert gto.resolve(repo, dvc_name(entry["name"], "fp32"), rev=entry["version"]).file.md5 == \
        outputs[binary_relpath(entry["name"], "fp32")].md5


def test_pull_rev_takes_any_git_revision_and_json(released, tmp_path):
    repo, env = released
    proc = cli(["pull", "digits-convnet-fp32", "--rev", "HEAD", "--json"], repo, env)
    row = json.loads(proc.stdout)["resolved"][0]
    assert (row["name"], row["precision"], row["tag"]) == ("DigitsConvNet", "fp32", "HEAD")
    assert row["md5"] == built_outputs()[binary_relpath("DigitsConvNet", "fp32")].md5


def test_plain_pull_accepts_dvc_names(released, tmp_path):
    repo, env = released
    env = {**env, "FURIOSA_ARTIFACTS_HOME": str(tmp_path / "cache")}
    proc = cli(["pull", "digits-convnet-fp32", "--no-checkout", "--json"], repo, env)
    row = json.loads(proc.stdout)["resolved"][0]
    assert (row["name"], row["precision"], row["source"]) == ("DigitsConvNet", "fp32", "remote")
    bad = cli(["pull", "digits-convnet-fp32", "--precision", "int8"], repo, env, check=False)
    assert bad.returncode == 1 and "is the fp32 binary of DigitsConvNet" in bad.stderr


def test_unknown_stage_and_version_say_what_exists(released, tmp_path):
    repo, env = released
    proc = cli(["pull", "mlcommons-resnet50", "--stage", "staging"], repo, env, check=False)
    assert proc.returncode == 1 and "stages assigned: prod" in proc.stderr
    with pytest.raises(ModelNotFoundError, match=r"registered: v1\.5\.0"):
        gto.find_release(repo, "mlcommons-resnet50", version="v1.5.7")


def test_release_is_idempotent_and_refuses_a_taken_or_foreign_version(released, tmp_path):
    repo, env = released
    work = copy_publisher(repo, tmp_path / "work")
    flags = ["--allow-synthetic"] if is_synthetic("DigitsConvNet") else []
    again = cli(["release", "DigitsConvNet", "--stage", "prod", *flags], work, env)
    assert "created" not in again.stdout and again.stdout.count("exists:") == 4
    as_json = json.loads(cli(["release", "DigitsConvNet", "--json", *flags], work, env).stdout)
    assert as_json["ok"] and [(t["tag"], t["created"]) for t in as_json["tags"]] == [
        ("digits-convnet@v1.0.0", False), ("digits-convnet-fp32@v1.0.0", False)]
    bad = cli(["release", "DigitsConvNet", "--version", "v2.0.0", *flags], work, env, check=False)
    assert bad.returncode == 1 and "release it as v1.0.N" in bad.stderr
    (work / "README.md").write_text("next commit\n")
    run(["git", "commit", "-q", "-am", "another commit"], work, env)
    taken = cli(["release", "DigitsConvNet", *flags], work, env, check=False)
    assert taken.returncode == 1 and "already registered" in taken.stderr and "bump the patch" in taken.stderr
    bumped = cli(["release", "digits-convnet", "--version", "v1.0.1", "--stage", "prod", *flags], work, env)
    assert "created digits-convnet@v1.0.1" in bumped.stdout and "digits-convnet#prod#" in bumped.stdout
    assert "fp32" not in bumped.stdout  # a DVC name is one binary
    assert gto.find_release(work, "digits-convnet", stage="prod").version == "v1.0.1"
    assert gto.find_release(work, "digits-convnet").version == "v1.0.1"


def test_release_refuses_uncommitted_or_stale_or_synthetic(released, tmp_path):
    repo, env = released
    work = copy_publisher(repo, tmp_path / "work")
    if is_synthetic("EfficientNetV2_S"):
        proc = cli(["release", "EfficientNetV2_S", "--version", "v2.0.1"], work, env, check=False)
        assert proc.returncode == 1 and "--allow-synthetic" in proc.stderr
    lock = work / "dvc.lock"
    lock.write_text(lock.read_text() + "\n")
    proc = cli(["release", "EfficientNetV2_S", "--version", "v2.0.1", "--allow-synthetic"], work, env, check=False)
    assert proc.returncode == 1 and "dvc.lock has changes not committed" in proc.stderr
    run(["git", "checkout", "dvc.lock"], work, env)
    text = (work / "dvc.yaml").read_text().replace("models/EfficientNetV2_S/fp32.onnx\n    type: model",
                                                    "models/EfficientNetV2_S/int8.onnx\n    type: model")
    (work / "dvc.yaml").write_text(text)
    run(["git", "commit", "-q", "-am", "break dvc.yaml"], work, env)
    proc = cli(["release", "EfficientNetV2_S", "--version", "v2.0.1", "--allow-synthetic"], work, env, check=False)
    assert proc.returncode == 1 and "wrong path for EfficientNetV2_S fp32" in proc.stderr
    assert not [t for t in tags(work, env) if "v2.0.1" in t]


def test_find_release_follows_gto_events(tmp_path):
    """Deregistered versions and unassigned stages, read from plain annotated tags (no GTO needed)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t.invalid", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    run(["git", "init", "-q", "-b", "main"], tmp_path, env)
    commits = []
    for i in range(3):
        (tmp_path / "f").write_text(str(i))
        run(["git", "add", "f"], tmp_path, env)
        run(["git", "commit", "-q", "-m", str(i)], tmp_path, env)
        commits.append(run(["git", "rev-parse", "HEAD"], tmp_path, env).stdout.strip())
    events = [("m@v1.0.0", 0), ("m#prod#2", 0), ("m@v1.0.1", 1), ("m#prod#4", 1), ("m@v1.1.0-rc1", 2),
              ("m#prod!#6", 1), ("m@v1.0.1!#7", 1), ("other@v9.0.0", 2), ("m@v2.0.0", 2)]
    for name, commit in events:
        run(["git", "tag", "-a", "-m", name, name, commits[commit]], tmp_path, env)
    run(["git", "tag", "m@v3.0.0", commits[2]], tmp_path, env)  # lightweight: not a GTO event
    assert gto.find_release(tmp_path, "m").version == "v2.0.0"
    assert gto.find_release(tmp_path, "m", version="v1.0").commit == commits[0]
    with pytest.raises(ModelNotFoundError, match="no registered version v1.0.1"):
        gto.find_release(tmp_path, "m", version="v1.0.1")  # deregistered
    with pytest.raises(ModelNotFoundError, match="stage 'prod'"):
        gto.find_release(tmp_path, "m", stage="prod")  # unassigned after #4
    run(["git", "tag", "-a", "-m", "x", "m#prod#8", commits[0]], tmp_path, env)
    found = gto.find_release(tmp_path, "m", stage="prod")
    assert (found.commit, found.version, found.tag) == (commits[0], "v1.0.0", "m#prod#8")
    with pytest.raises(ValueError):
        gto.find_release(tmp_path, "m", version="v1", stage="prod")
