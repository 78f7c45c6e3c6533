"""furiosa.artifacts.onnx_io on small real ONNX models built here with onnx.helper."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from furiosa.artifacts.errors import ModelBinaryError, UnsafePathError
from furiosa.artifacts.onnx_io import (
    ORT_ERRORS,
    TensorInfo,
    cpu_session,
    graph_io,
    parameter_count,
    parameter_counts,
    read_model,
    run_batched,
)

RNG = np.random.default_rng(0)
W = RNG.standard_normal((3, 2)).astype(np.float32)
B = RNG.standard_normal(2).astype(np.float32)


def _linear(*, external: str | None = None) -> onnx.ModelProto:
    """``y = x @ W + b`` and ``z = reshape(relu(y), [-1, 2])``, batch dimension ``N``.

    ``W`` is listed among the graph inputs too (as exporters before torch 1.3 wrote initializers); the
    int64 ``shape`` initializer is not a parameter. With ``external``, ``W`` keeps its bytes in that file.
    """
    weight = numpy_helper.from_array(W, "W")
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", str(W.nbytes))):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"]),
             helper.make_node("Relu", ["y"], ["r"]), helper.make_node("Reshape", ["r", "shape"], ["z"])]
    graph = helper.make_graph(
        nodes, "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 2])],
        [weight, numpy_helper.from_array(B, "b"), numpy_helper.from_array(np.array([-1, 2], np.int64), "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _dequantized() -> onnx.ModelProto:
    """``y = x @ dequantize(Wq)``: 6 int8 weights, a scale and a zero point."""
    inits = [numpy_helper.from_array(np.arange(6, dtype=np.int8).reshape(3, 2), "Wq"),
             numpy_helper.from_array(np.array(0.5, np.float32), "scale"),
             numpy_helper.from_array(np.array(0, np.int8), "zero")]
    nodes = [helper.make_node("DequantizeLinear", ["Wq", "scale", "zero"], ["W"]),
             helper.make_node("MatMul", ["x", "W"], ["y"])]
    graph = helper.make_graph(nodes, "dq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def linear_file(tmp_path: Path) -> Path:
    path = tmp_path / "linear.onnx"
    path.write_bytes(_linear().SerializeToString())
    return path


def test_graph_io_excludes_initializers_and_marks_dynamic_dimensions(linear_file: Path) -> None:
    onnx.checker.check_model(_linear(), full_check=True)
    for source in (linear_file, str(linear_file), linear_file.read_bytes(), _linear()):
        inputs, outputs = graph_io(source)
        assert inputs == [TensorInfo("x", "float32", (-1, 3))]
        assert outputs == [TensorInfo("y", "float32", (-1, 2)), TensorInfo("z", "float32", (-1, 2))]
    assert inputs[0].symbolic_shape() == ("N", 3)
    assert outputs[1].symbolic_shape() == ("?", 2) and outputs[1].symbolic_shape("") == ("", 2)
    assert repr(inputs[0]) == "TensorInfo(name='x', datatype='float32', shape=(-1, 3))"


def test_model_keeps_its_tensor_info_import_path() -> None:
    from furiosa.artifacts.model import TensorInfo as FromModel

    assert FromModel is TensorInfo


def test_parameter_counts_skip_shapes_and_quantization_parameters(linear_file: Path) -> None:
    assert parameter_counts(linear_file) == {"params": 8, "quantization_params": 0}
    assert parameter_count(_linear()) == 8
    assert parameter_counts(_dequantized().SerializeToString()) == {"params": 6, "quantization_params": 2}


def test_run_batched_gives_the_unbatched_results(linear_file: Path) -> None:
    x = RNG.standard_normal((10, 3)).astype(np.float32)
    session = cpu_session(linear_file.read_bytes())
    whole = run_batched(session, x)
    assert list(whole) == ["y", "z"]
    np.testing.assert_allclose(whole["y"], x @ W + B, rtol=1e-5, atol=1e-6)
    for batch_size in (1, 4, 10, 64):
        batched = run_batched(session, x, batch_size=batch_size)
        assert list(batched) == ["y", "z"]
        for name in whole:
            np.testing.assert_allclose(batched[name], whole[name], rtol=1e-6, atol=1e-7)


def test_cpu_session_from_a_file_pins_threads_and_saves_the_optimised_graph(linear_file: Path, tmp_path: Path) -> None:
    optimized = tmp_path / "optimized.onnx"
    session = cpu_session(linear_file, threads=1, optimized_model_filepath=optimized)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 1
    assert optimized.is_file() and graph_io(optimized)[0][0].name == "x"


def test_sessions_that_take_turns_do_not_spin(linear_file: Path) -> None:
    entry = "session.intra_op.allow_spinning"
    quiet = cpu_session(linear_file, threads=2, spinning=False).get_session_options()
    assert quiet.get_session_config_entry(entry) == "0"
    default = cpu_session(linear_file, threads=2).get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):  # ONNX Runtime's default: spin
        default.get_session_config_entry(entry)


@pytest.mark.parametrize("location", [".env", "../cwd/.env", "/etc/hostname"])
def test_external_data_is_refused_everywhere(location: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes(W.tobytes())  # there for ONNX Runtime to find, if it ever looked
    source = _linear(external=location).SerializeToString()
    path = tmp_path / "external.onnx"
    path.write_bytes(source)
    message = f"tensor 'W' keeps its data in the external file {location!r}; catalog binaries must be self-contained"
    for call in (lambda: read_model(source, what="the test model"), lambda: graph_io(source, what="the test model"),
                 lambda: parameter_counts(source, what="the test model"),
                 lambda: cpu_session(source, what="the test model")):
        with pytest.raises(UnsafePathError, match="^the test model: " + re.escape(message)):
            call()
    with pytest.raises(UnsafePathError, match=f"^{re.escape(str(path))}: "):
        read_model(path)


def test_a_non_onnx_file_is_a_model_binary_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not an onnx file at all")
    expected = (r"is not a valid ONNX model \(DecodeError\): re-fetch it with `furiosa-artifacts pull` "
                "or rebuild it$")
    with pytest.raises(ModelBinaryError, match=f"^{re.escape(str(path))} {expected}"):
        read_model(path)
    with pytest.raises(ModelBinaryError, match=f"^the model {expected}"):
        graph_io(path.read_bytes())
    with pytest.raises(ModelBinaryError, match=f"^int8 binary {expected}"):
        cpu_session(path.read_bytes(), what="int8 binary")
    with pytest.raises(ORT_ERRORS):
        cpu_session(path)  # a file goes to ONNX Runtime as it is
    with pytest.raises(FileNotFoundError):
        read_model(tmp_path / "missing.onnx")
