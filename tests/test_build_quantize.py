"""furiosa.artifacts.build.quantize: settings validation and ONNX Runtime static quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from furiosa.artifacts.build.calibrate import calibration_from_array, synthetic_calibration
from furiosa.artifacts.build.export import export_onnx
from furiosa.artifacts.build.quantize import QuantSettings, quantize_model
from furiosa.artifacts.errors import BuildError, SpecError

U8S8 = {"method": "MinMax", "per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
        "quant_format": "QDQ"}


def _tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


class _TinyDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU())
        self.loc = nn.Conv2d(16, 2 * 4, 3, padding=1)
        self.conf = nn.Conv2d(16, 2 * 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        n = x.shape[0]
        return (self.loc(f).permute(0, 2, 3, 1).reshape(n, -1, 4),
                self.conf(f).permute(0, 2, 3, 1).reshape(n, -1, 3))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quantize")
    export_onnx(_tiny_classifier(), input_shape=(1, 3, 32, 32), input_name="input", output_names=["logits"],
                out=root / "fp32.onnx", opset=17)
    synthetic_calibration(count=8, image_size=(32, 32), seed=0, out=root / "cal.npz")
    return {"root": root, "fp32": root / "fp32.onnx", "cal": root / "cal.npz"}


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})


def test_u8s8_qdq_per_channel(built: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    settings = QuantSettings.from_params({**U8S8, "calibration_batch_size": 4})
    report = quantize_model(built["fp32"], calibration=built["cal"], out=out, settings=settings)

    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out))
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(out)
    assert report.quantized_ops["QuantizeLinear"] > 0
    # weights stored as int8 with one scale per output channel
    int8_weights = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert int8_weights
    scales = {i.name: i for i in model.graph.initializer}
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] in {w.name for w in int8_weights}]
    assert all(len(scales[n.input[1]].dims) == 1 and scales[n.input[1]].dims[0] > 1 for n in per_channel)
    # activations unsigned
    q_zero_points = [scales[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q_zero_points and all(z.data_type == onnx.TensorProto.UINT8 for z in q_zero_points)

    assert report.int8_size == out.stat().st_size < built["fp32"].stat().st_size
    assert report.size_ratio == pytest.approx(report.int8_size / report.fp32_size)
    assert report.calibration["synthetic"] is True and report.settings["activation_type"] == "QUInt8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx"]  # work files cleaned up

    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    fp32, int8 = _run(built["fp32"], x)[0], _run(out, x)[0]
    assert int8.shape == fp32.shape and np.abs(int8 - fp32).max() < 0.1 * np.abs(fp32).max() + 1e-3


def test_qoperator_format(built: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "qop.onnx"
    report = quantize_model(built["fp32"], calibration=built["cal"], out=out,
                            settings=QuantSettings(**{**U8S8, "quant_format": "QOperator"}))
    assert "QLinearConv" in report.quantized_ops and "QLinearConv" in _ops(out)


def test_detector_with_two_outputs_and_strided_calibration(tmp_path: Path) -> None:
    export_onnx(_TinyDetector(), input_shape=(1, 3, 32, 32), input_name="input", output_names=["loc", "conf"],
                out=tmp_path / "det.onnx", opset=17)
    calibration_from_array(np.random.default_rng(1).normal(size=(8, 3, 32, 32)), out=tmp_path / "cal.npz")
    settings = QuantSettings.from_params(
        {**U8S8, "calibration_batch_size": 2, "extra_options": {"CalibStridedMinMax": 2}})
    quantize_model(tmp_path / "det.onnx", calibration=tmp_path / "cal.npz", out=tmp_path / "det8.onnx",
                   settings=settings)
    loc, conf = _run(tmp_path / "det8.onnx", np.zeros((2, 3, 32, 32), np.float32))
    assert loc.shape == (2, 128, 4) and conf.shape == (2, 128, 3)


@pytest.mark.parametrize("method", ["Entropy", "Percentile"])
def test_histogram_methods(built: dict[str, Path], tmp_path: Path, method: str) -> None:
    settings = QuantSettings(**{**U8S8, "method": method, "calibration_batch_size": 2})
    report = quantize_model(built["fp32"], calibration=built["cal"], out=tmp_path / "h.onnx", settings=settings)
    assert report.settings["method"] == method and report.quantized_ops["QuantizeLinear"] > 0


def test_nodes_to_exclude(built: dict[str, Path], tmp_path: Path) -> None:
    first_conv = next(n.name for n in onnx.load(str(built["fp32"])).graph.node if n.op_type == "Conv")
    out = tmp_path / "excl.onnx"
    quantize_model(built["fp32"], calibration=built["cal"], out=out,
                   settings=QuantSettings(**U8S8, nodes_to_exclude=[first_conv]))
    model = onnx.load(str(out))
    conv = next(n for n in model.graph.node if n.name == first_conv)
    weights = {i.name: i for i in model.graph.initializer}
    assert weights[conv.input[1]].data_type == onnx.TensorProto.FLOAT  # left in fp32

    with pytest.raises(SpecError, match="'/no/such/Conv'"):
        quantize_model(built["fp32"], calibration=built["cal"], out=tmp_path / "typo.onnx",
                       settings=QuantSettings(**U8S8, nodes_to_exclude=["/no/such/Conv"]))
    assert not (tmp_path / "typo.onnx").exists()


def test_build_errors(built: dict[str, Path], tmp_path: Path) -> None:
    settings = QuantSettings(**U8S8)
    with pytest.raises(BuildError, match="does not exist"):
        quantize_model(tmp_path / "none.onnx", calibration=built["cal"], out=tmp_path / "o.onnx", settings=settings)
    synthetic_calibration(count=2, image_size=(16, 16), seed=0, out=tmp_path / "small.npz")
    with pytest.raises(BuildError, match=r"\(3, 16, 16\)"):
        quantize_model(built["fp32"], calibration=tmp_path / "small.npz", out=tmp_path / "o.onnx", settings=settings)
    with pytest.raises(BuildError, match="no quantized operators"):
        quantize_model(built["fp32"], calibration=built["cal"], out=tmp_path / "o.onnx",
                       settings=QuantSettings(**U8S8, op_types_to_quantize=["LSTM"]))
    assert not (tmp_path / "o.onnx").exists()


# ---------------------------------------------------------------------------- settings


def test_settings_round_trip_and_defaults() -> None:
    settings = QuantSettings.from_params({**U8S8, "extra_options": {"CalibStridedMinMax": 4},
                                          "nodes_to_exclude": ["a"], "op_types_to_quantize": ["Conv"]})
    assert settings.nodes_to_exclude == ("a",) and settings.op_types_to_quantize == ("Conv",)
    assert settings.reduce_range is False and settings.calibration_batch_size == 1
    assert settings.extra_options == {"CalibStridedMinMax": 4}
    assert QuantSettings.from_params(settings.to_dict()) == settings


def test_settings_name_unknown_and_missing_keys() -> None:
    params = {k: v for k, v in U8S8.items() if k != "weight_type"}
    params["per_chanel"] = True
    with pytest.raises(SpecError) as info:
        QuantSettings.from_params(params, where="params.yaml models.tiny.quantize")
    message = str(info.value)
    assert "params.yaml models.tiny.quantize" in message
    assert "'per_chanel'" in message and "'weight_type'" in message and "missing" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("method", "minmax", "'method': 'minmax' is not one of MinMax, Entropy, Percentile"),
        ("activation_type", "QInt4", "'activation_type'"),
        ("weight_type", "int8", "'weight_type'"),
        ("quant_format", "QLinear", "'quant_format'"),
        ("per_channel", "yes", "'per_channel' must be true or false"),
        ("reduce_range", 1, "'reduce_range'"),
        ("nodes_to_exclude", "conv1", "'nodes_to_exclude' must be a list of strings"),
        ("op_types_to_quantize", [], "'op_types_to_quantize' is empty"),
        ("extra_options", ["CalibStridedMinMax"], "'extra_options'"),
        ("calibration_batch_size", 0, "'calibration_batch_size'"),
    ],
)
def test_settings_reject_bad_values(field: str, value: object, expected: str) -> None:
    with pytest.raises(SpecError, match=expected.replace("(", r"\(")):
        QuantSettings.from_params({**U8S8, field: value})


def test_settings_reject_non_mapping() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        QuantSettings.from_params(["MinMax"])  # type: ignore[arg-type]
