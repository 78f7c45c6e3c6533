"""``furiosa-artifacts verify``: md5 against dvc.lock, onnx.checker, parameter count and sizes against
metrics.json, tensors against specs.yaml; every problem collected before exit 1.

Mutating tests work on a copy of the repository with DigitsConvNet's built files (never on models/).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import REPO_ROOT, copy_repo, run_cli
from furiosa.artifacts.storage.lockfile import read_outputs
from furiosa.artifacts.verify import built_models, verify_model

pytestmark = pytest.mark.slow  # needs the built binaries (the README's main command)

DIGITS_FILES = [f"models/DigitsConvNet/{f}" for f in
                ("fp32.onnx", "int8.onnx", "metrics.json", "weights.json", "export.json", "quantize.json")]


@pytest.fixture()
def digits_copy(tmp_path: Path) -> Path:
    """A copy of the repository (dvc.lock included) with DigitsConvNet built, minus weights and calibration."""
    for rel in DIGITS_FILES:
        if not (REPO_ROOT / rel).is_file():
            pytest.fail(f"{rel} is not built: run the README's main command first")
    if not (REPO_ROOT / "dvc.lock").is_file():
        pytest.fail("dvc.lock is missing: run the README's main command first")
    return copy_repo(tmp_path / "repo", extra=DIGITS_FILES)


def flip_byte(path: Path, offset: int) -> str:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return hashlib.md5(data).hexdigest()


def verify(root: Path, *args: str):
    return run_cli(["verify", *args, "--root", str(root)])


def test_every_built_model_verifies_clean():
    proc = run_cli(["verify", "--root", str(REPO_ROOT)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in built_models(REPO_ROOT):
        assert f"{name}: ok (" in proc.stdout


def test_a_flipped_byte_names_the_file_and_both_md5s(digits_copy):
    clean = verify(digits_copy, "digits-conv-net")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "skipped models/DigitsConvNet/weights.pt: not in the workspace" in clean.stderr
    target = digits_copy / "models/DigitsConvNet/int8.onnx"
    expected = read_outputs(digits_copy)["models/DigitsConvNet/int8.onnx"].md5
    actual = flip_byte(target, target.stat().st_size // 2)
    proc = verify(digits_copy, "DigitsConvNet")
    assert proc.returncode == 1
    assert (f"models/DigitsConvNet/int8.onnx: md5 mismatch: expected {expected} (dvc.lock), got {actual}"
            in proc.stdout), proc.stdout
    assert "problem(s) in 1 of 1 model(s)" in proc.stderr


def test_every_problem_is_collected_before_exiting(digits_copy):
    metrics_path = digits_copy / "models/DigitsConvNet/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["parameters"] += 1
    metrics["int8_bytes"] -= 1
    metrics_path.write_text(json.dumps(metrics, indent=2))
    fp32 = digits_copy / "models/DigitsConvNet/fp32.onnx"
    fp32.write_bytes(fp32.read_bytes()[:-100])  # truncated: no longer parses
    specs = digits_copy / "furiosa/artifacts/vision/specs.yaml"
    specs.write_text(specs.read_text().replace("input: {name: input, shape: [1, 8, 8]",
                                               "input: {name: pixels, shape: [1, 8, 8]"))
    proc = verify(digits_copy, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    (model,) = report["models"]
    found = {(p["path"], p["check"]) for p in model["problems"]}
    assert found == {
        ("models/DigitsConvNet/fp32.onnx", "md5"),
        ("models/DigitsConvNet/fp32.onnx", "size"),
        ("models/DigitsConvNet/fp32.onnx", "onnx"),
        ("models/DigitsConvNet/metrics.json", "md5"),
        ("models/DigitsConvNet/metrics.json", "size"),
        ("models/DigitsConvNet/int8.onnx", "tensors"),
        ("models/DigitsConvNet/fp32.onnx", "file-size"),
        ("models/DigitsConvNet/int8.onnx", "file-size"),
        ("models/DigitsConvNet/fp32.onnx", "provenance"),  # truncated: unreadable, so unknown
        ("models/DigitsConvNet/int8.onnx", "provenance"),  # its fp32_md5 is not the truncated file's
    }, model["problems"]
    assert report["problems"] == len(model["problems"]) and report["ok"] is False
    tensors = next(p for p in model["problems"] if p["check"] == "tensors")
    assert "expected pixels float32 [N, 1, 8, 8]" in tensors["message"] and "got input float32" in tensors["message"]
    size = next(p for p in model["problems"] if p["check"] == "file-size" and "int8" in p["path"])
    assert size["expected"] == metrics["int8_bytes"] and size["actual"] == metrics["int8_bytes"] + 1


def test_parameter_count_mismatch_alone(digits_copy):
    metrics_path = digits_copy / "models/DigitsConvNet/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["parameters"] += 5
    metrics_path.write_text(json.dumps(metrics))
    report = verify_model(digits_copy, "DigitsConvNet")
    checks = sorted(p.check for p in report.problems)
    assert checks == ["md5", "parameters", "size"]  # metrics.json itself changed, and the count differs
    (param,) = [p for p in report.problems if p.check == "parameters"]
    assert (param.expected, param.actual) == (metrics["parameters"], metrics["parameters"] - 5)


def test_no_lock_no_build_and_unknown_names(digits_copy, tmp_path):
    (digits_copy / "dvc.lock").unlink()
    proc = verify(digits_copy, "DigitsConvNet")
    assert proc.returncode == 1 and "dvc.lock: no dvc.lock" in proc.stdout
    bare = copy_repo(tmp_path / "bare")
    (bare / "dvc.lock").unlink(missing_ok=True)
    nothing = verify(bare)
    assert nothing.returncode == 1 and "no model is built" in nothing.stderr
    named = verify(bare, "MLCommonsResNet50", "--json")
    assert named.returncode == 1
    checks = {p["check"] for p in json.loads(named.stdout)["models"][0]["problems"]}
    assert checks == {"lock", "missing"}
    unknown = verify(bare, "NoSuchNet")
    assert unknown.returncode == 1 and "no catalog entry 'NoSuchNet'" in unknown.stderr


def test_missing_or_inconsistent_provenance_is_a_problem(digits_copy):
    import onnx

    from furiosa.artifacts.provenance import PREFIX

    clean = json.loads(verify(digits_copy, "digits-conv", "--json").stdout)["models"][0]
    assert clean["weights"] == "train" and any(c.startswith("provenance ") for c in clean["checked"])
    path = digits_copy / "models/DigitsConvNet/int8.onnx"
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == PREFIX + "fp32_md5":
            prop.value = "0" * 32
    onnx.save(model, str(path))
    report = json.loads(verify(digits_copy, "digits-conv", "--json").stdout)["models"][0]
    assert any(p["check"] == "provenance" and "quantized from an fp32 binary" in p["message"]
               for p in report["problems"])
    del model.metadata_props[:]
    onnx.save(model, str(path))
    proc = verify(digits_copy, "digits-conv")
    assert proc.returncode == 1 and "provenance unknown" in proc.stdout and "weights UNKNOWN" in proc.stdout
