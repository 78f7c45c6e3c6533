"""Pad -> Conv folding before QDQ quantization: same outputs, no float Pad left for ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from furiosa.artifacts.build._fold import fold_pads_into_convs


def _model(pads: list[int], *, value: float | None = None, conv_pads: list[int] | None = None,
           mode: str = "constant") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
             numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")]
    pad_inputs = ["x", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "value"))
        pad_inputs.append("value")
    conv_attrs = {"strides": [2, 2]} | ({"pads": conv_pads} if conv_pads else {})
    graph = helper.make_graph(
        [helper.make_node("Pad", pad_inputs, ["padded"], mode=mode),
         helper.make_node("Conv", ["padded", "w"], ["y"], **conv_attrs)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None, None])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


def test_tf_same_padding_folds_exactly():
    x = np.random.default_rng(1).normal(size=(1, 3, 10, 10)).astype(np.float32)
    for pads, conv_pads in (([0, 0, 0, 0, 0, 0, 1, 1], None), ([0, 0, 1, 2, 0, 0, 1, 0], [1, 0, 0, 1])):
        model = _model(pads, conv_pads=conv_pads)
        before = _run(model, x)
        assert fold_pads_into_convs(model) == 1
        assert [n.op_type for n in model.graph.node] == ["Conv"]
        assert "pads" not in {i.name for i in model.graph.initializer}
        onnx.checker.check_model(model)
        np.testing.assert_array_equal(_run(model, x), before)


def test_pads_that_cannot_fold_stay():
    for model in (_model([0, 0, 0, 0, 0, 0, 1, 1], value=1.0),  # not zeros
                  _model([0, 0, 0, 0, 0, 0, 1, 1], mode="reflect"),
                  _model([0, 1, 0, 0, 0, 0, 1, 1]),  # a channel pad
                  _model([0, 0, -1, 0, 0, 0, 1, 1])):  # a crop
        assert fold_pads_into_convs(model) == 0
        assert [n.op_type for n in model.graph.node] == ["Pad", "Conv"]
    zero_value = _model([0, 0, 0, 0, 0, 0, 1, 1], value=0.0)
    assert fold_pads_into_convs(zero_value) == 1
