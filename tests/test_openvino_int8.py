"""Portable int8 (issue 18): every int8 binary of the built workspace loads and runs in OpenVINO, and its outputs
agree with ONNX Runtime's within the int8 tolerance.

The tolerance, per output tensor, on the model's calibration tensors:

* numeric: OpenVINO runs our int8 file about as accurately as ORT: mean |OpenVINO - fp32| <= 1.5 x mean
  |ORT int8 - fp32| (+ 2 output quantization steps, the scale of the DequantizeLinear that produces it), and so
  (triangle inequality) mean |OpenVINO - ORT| <= 2 steps or 2.5 x the int8 error: the two runtimes may round
  intermediate requantizations differently, but their int8 results stay as close to fp32 as int8 allows;
* task: classifiers' top-1 agreement (OpenVINO vs ORT int8) and detectors' detection F1 (same class, IoU >= 0.5)
  are at least those of ORT int8 vs fp32 minus a margin (0.25 / 0.1): with synthetic weights the logits are
  nearly flat, so int8 itself moves top-1 often; with real weights both numbers are near 1.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import REPO_ROOT
from furiosa.artifacts.build.evaluate import agreement_classification, agreement_detection
from furiosa.artifacts.onnx_io import cpu_session
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.vision.postprocess import detect_arrays
from furiosa.artifacts.vision.specs import load_spec

MODELS = list(load_params(REPO_ROOT / "params.yaml").models)
IMAGES = {"MLCommonsSSDResNet34": 1}  # 1200x1200: fewer images
_SHAPE_OPS = {"Reshape", "Transpose", "Concat", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def output_steps(path) -> dict[str, float | None]:
    """Quantization step of each graph output: the largest DequantizeLinear scale feeding it through shape ops."""
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    steps = {}
    for output in graph.output:
        pending, scales = [output.name], []
        while pending:
            node = producer.get(pending.pop())
            if node is None:
                continue
            if node.op_type == "DequantizeLinear":
                scales.append(float(np.max(numpy_helper.to_array(inits[node.input[1]]))))
            elif node.op_type in _SHAPE_OPS:
                pending += [i for i in node.input if i and i not in inits]
        steps[output.name] = max(scales) if scales else None
    return steps


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_int8_binary_runs_in_openvino_like_onnxruntime(name):
    ov = pytest.importorskip("openvino", reason="openvino is in the dev extra: pip install -e .[dev]")
    int8, fp32 = REPO_ROOT / "models" / name / "int8.onnx", REPO_ROOT / "models" / name / "fp32.onnx"
    if not int8.is_file():
        pytest.fail(f"{int8} is not built: run the README's main command first")
    with np.load(REPO_ROOT / "models" / name / "calibration.npz", allow_pickle=False) as data:
        x = np.ascontiguousarray(data["data"][:IMAGES.get(name, 4)], dtype=np.float32)
    ort_int8 = cpu_session(int8, threads=2)
    feed = {ort_int8.get_inputs()[0].name: x}
    names = [o.name for o in ort_int8.get_outputs()]
    expected = dict(zip(names, ort_int8.run(None, feed)))
    reference = dict(zip(names, cpu_session(fp32, threads=2).run(None, feed)))

    compiled = ov.Core().compile_model(str(int8), "CPU", {"INFERENCE_NUM_THREADS": 2})  # QOperator files fail here
    result = compiled({0: x})
    got = {o.get_any_name(): np.asarray(result[o]) for o in compiled.outputs}
    assert sorted(got) == sorted(names)

    steps = output_steps(int8)
    for out in names:
        assert got[out].shape == expected[out].shape, out
        gap = float(np.mean(np.abs(got[out] - expected[out])))
        int8_error = float(np.mean(np.abs(expected[out] - reference[out])))
        ov_error = float(np.mean(np.abs(got[out] - reference[out])))
        step = steps[out] or 0.0
        assert ov_error <= 1.5 * int8_error + 2 * step, (
            f"{name} {out}: OpenVINO vs fp32 mean |diff| {ov_error:.4g} > 1.5 x ORT int8's {int8_error:.4g}")
        assert gap <= max(2 * step, 2.5 * int8_error), (
            f"{name} {out}: OpenVINO vs ORT mean |diff| {gap:.4g} > 2 steps ({step:.4g}) and > 2.5 x int8 vs fp32 "
            f"{int8_error:.4g}")

    spec = load_spec(name)
    if spec.task == "classification":
        (out,) = names
        ov_vs_ort = agreement_classification(expected[out], got[out])["int8_vs_fp32_top1_agreement"]
        int8_vs_fp32 = agreement_classification(reference[out], expected[out])["int8_vs_fp32_top1_agreement"]
        assert ov_vs_ort >= int8_vs_fp32 - 0.25, (name, ov_vs_ort, int8_vs_fp32)
    else:
        def dets(outputs):
            return [(b, s, c) for b, s, c in detect_arrays(outputs["loc"], outputs["conf"], spec, max_detections=100)]
        ov_vs_ort = agreement_detection(dets(expected), dets(got))["int8_vs_fp32_detection_f1"]
        int8_vs_fp32 = agreement_detection(dets(reference), dets(expected))["int8_vs_fp32_detection_f1"]
        assert ov_vs_ort >= int8_vs_fp32 - 0.1, (name, ov_vs_ort, int8_vs_fp32)
