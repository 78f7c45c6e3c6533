"""Hostile model binaries from an untrusted catalog: external data, corrupt bytes, outputs unlike the spec.

The binaries are real ONNX files built with ``onnx.helper``; sessions are real ONNX Runtime sessions and the
CLI is run in-process through ``furiosa.artifacts.cli.main`` against a scratch catalog repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from furiosa.artifacts.cli import main
from furiosa.artifacts.errors import ModelBinaryError, UnsafePathError
from furiosa.artifacts.model import Model

REPO = Path(__file__).resolve().parents[1]
SECRET = b"API_KEY=s3cr3t-value-never-to-leak\n"
MODEL = "DigitsConvNet"  # input 'input' [N, 1, 8, 8], output 'logits' [N, 10] (specs.yaml)


def _digits_onnx(*, output: str = "logits", external: str | None = None) -> bytes:
    """A real classifier with DigitsConvNet's interface: logits = flatten(input) @ W (+ a leak when asked).

    With ``external``, one more initializer ``leak`` keeps its bytes in that external file and is added
    to the outputs as a second graph output, the way a hostile catalog would exfiltrate a file."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 10])
    weights = helper.make_tensor("W", TensorProto.FLOAT, [64, 10],
                                 np.random.default_rng(0).normal(size=640).astype(np.float32).tolist())
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 64])
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W"], [output])]
    initializers, outputs = [weights, shape], [y]
    if external is not None:
        leak = TensorProto(name="leak", data_type=TensorProto.UINT8, dims=[len(SECRET)])
        leak.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", str(len(SECRET)))):
            entry = leak.external_data.add()
            entry.key, entry.value = key, value
        initializers.append(leak)
        nodes.append(helper.make_node("Identity", ["leak"], ["leaked"]))
        outputs.append(helper.make_tensor_value_info("leaked", TensorProto.UINT8, [len(SECRET)]))
    graph = helper.make_graph(nodes, "digits", [x], outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture()
def scratch(tmp_path: Path, monkeypatch) -> Path:
    """A catalog repository (our artifacts.yaml) whose DigitsConvNet int8 binary the test writes; cwd holds .env."""
    root = tmp_path / "catalog"
    (root / "furiosa" / "artifacts").mkdir(parents=True)
    shutil.copyfile(REPO / "artifacts.yaml", root / "artifacts.yaml")
    shutil.copyfile(REPO / "furiosa" / "artifacts" / "artifacts.py", root / "furiosa" / "artifacts" / "artifacts.py")
    (root / "models" / MODEL).mkdir(parents=True)
    work = tmp_path / "cwd"
    work.mkdir()
    (work / ".env").write_bytes(SECRET)
    monkeypatch.chdir(work)
    from PIL import Image

    Image.new("L", (8, 8), 200).save(work / "digit.png")
    return root


def _predict(root: Path, capsys) -> tuple[int, str]:
    code = main(["predict", MODEL, "digit.png", "--root", str(root), "--json"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_attack_is_real_onnx_runtime_reads_external_data_from_the_cwd(scratch: Path) -> None:
    """Control: a session built from these bytes, without our check, does return the secret."""
    session = ort.InferenceSession(_digits_onnx(external=".env"), providers=["CPUExecutionProvider"])
    leaked = session.run(["leaked"], {"input": np.zeros((1, 1, 8, 8), np.float32)})[0]
    assert bytes(leaked) == SECRET


@pytest.mark.parametrize("location", [".env", "../cwd/.env", "/etc/hostname"])
def test_external_data_in_a_catalog_binary_is_refused_and_the_secret_never_comes_back(
        scratch: Path, capsys, location: str) -> None:
    source = _digits_onnx(external=location)
    model = Model(name=MODEL, family="x", version=None, description=None, source=source, precision="int8")
    with pytest.raises(UnsafePathError, match="external file .*self-contained"):
        model.session  # noqa: B018
    with pytest.raises(UnsafePathError):
        model.run(np.zeros((8, 8), np.uint8))
    with pytest.raises(UnsafePathError):
        model.inputs  # noqa: B018 - the graph is never even inspected with external data
    (scratch / "models" / MODEL / "int8.onnx").write_bytes(source)
    code, output = _predict(scratch, capsys)
    assert code == 1 and "self-contained" in output
    assert "s3cr3t" not in output and "Traceback" not in output


def test_a_corrupted_binary_is_a_clear_error_not_a_traceback(scratch: Path, capsys) -> None:
    good = _digits_onnx()
    (scratch / "models" / MODEL / "int8.onnx").write_bytes(good[: len(good) // 2])
    code, output = _predict(scratch, capsys)
    assert code == 1 and "not a valid ONNX model" in output and "pull" in output
    assert "Traceback" not in output
    (scratch / "models" / MODEL / "int8.onnx").write_bytes(b"\x08\x07" + b"\xff" * 300)
    model = Model(name=MODEL, family="x", version=None, description=None,
                  source=(scratch / "models" / MODEL / "int8.onnx").read_bytes(), precision="int8")
    with pytest.raises(ModelBinaryError):
        model.session  # noqa: B018


def test_a_binary_whose_output_is_not_the_specs_is_reported_per_image(scratch: Path, capsys) -> None:
    (scratch / "models" / MODEL / "int8.onnx").write_bytes(_digits_onnx(output="scores"))
    code, output = _predict(scratch, capsys)
    assert code == 1 and "has no output 'logits'" in output and "'scores'" in output
    assert "Traceback" not in output


def test_a_good_binary_still_predicts(scratch: Path, capsys) -> None:
    (scratch / "models" / MODEL / "int8.onnx").write_bytes(_digits_onnx())
    code, output = _predict(scratch, capsys)
    assert code == 0 and '"classifications"' in output
    onnx.checker.check_model(onnx.load_model_from_string(_digits_onnx()))
