"""furiosa.artifacts.build.export: checker, parity gate, atomic output (tiny modules, no catalog)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from furiosa.artifacts.build import export as export_mod
from furiosa.artifacts.build.export import export_onnx
from furiosa.artifacts.errors import BuildError, GateError, SpecError


class TinyClassifier(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class TinyDetector(nn.Module):
    """Raw SSD-like heads: loc (N, A, 4) and conf (N, A, C), A = 2 anchors x 8 x 8 cells."""

    def __init__(self, classes: int = 5, anchors: int = 2) -> None:
        super().__init__()
        self.classes, self.anchors = classes, anchors
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.loc = nn.Conv2d(16, anchors * 4, 3, padding=1)
        self.conf = nn.Conv2d(16, anchors * classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        n = x.shape[0]
        loc = self.loc(f).permute(0, 2, 3, 1).reshape(n, -1, 4)
        conf = self.conf(f).permute(0, 2, 3, 1).reshape(n, -1, self.classes)
        return loc, conf


class ExportDiverges(nn.Module):
    """Takes a different branch while being exported, so ONNX and eager disagree."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).flatten(1)
        return y + 1.0 if torch.onnx.is_in_onnx_export() else y


def _export(model: nn.Module, out: Path, **kwargs) -> export_mod.ExportReport:
    torch.manual_seed(0)
    options = dict(input_shape=(1, 3, 32, 32), input_name="input", output_names=["logits"], out=out, opset=17)
    options.update(kwargs)
    return export_onnx(model, **options)


def test_tiny_classifier_passes_checker_and_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyClassifier()
    report = _export(model, tmp_path / "fp32.onnx")

    onnx.checker.check_model(str(report.path), full_check=True)
    assert report.path.stat().st_size == report.file_size > 0
    assert report.param_count == sum(p.numel() for p in model.parameters())
    assert report.parity_batches == (1, 2)
    assert 0 <= report.max_abs_diff["logits"] < 1e-4
    assert report.export_seconds > 0 and report.opset == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx"]  # no temporary files left

    graph = onnx.load(str(report.path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((3, 3, 32, 32), np.float32)})[0].shape == (3, 10)
    assert report.to_dict()["output_names"] == ["logits"]


def test_detector_exports_both_raw_heads(tmp_path: Path) -> None:
    report = _export(TinyDetector(), tmp_path / "det.onnx", output_names=["loc", "conf"])
    assert set(report.max_abs_diff) == {"loc", "conf"}
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    loc, conf = session.run(["loc", "conf"], {"input": np.zeros((2, 3, 32, 32), np.float32)})
    assert loc.shape == (2, 128, 4) and conf.shape == (2, 128, 5)


def test_static_batch_when_asked(tmp_path: Path) -> None:
    report = _export(TinyClassifier(), tmp_path / "static.onnx", dynamic_batch=False, input_shape=(2, 3, 32, 32))
    assert report.parity_batches == (2,)
    dim = onnx.load(str(report.path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 2


def test_parity_gate_fails_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bad.onnx"
    with pytest.raises(GateError) as info:
        _export(ExportDiverges(), out)
    message = str(info.value)
    assert "'logits'" in message and "max abs error 1" in message
    assert "rtol 0.001" in message and "atol 1e-05" in message
    assert list(tmp_path.iterdir()) == []


def test_previous_output_survives_a_failed_export(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(GateError):
        _export(ExportDiverges(), out)
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_output_count_must_match_names(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="outputs"):
        _export(TinyDetector(), tmp_path / "det.onnx", output_names=["loc", "conf", "extra"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_shape": (0, 3, 32, 32)}, "input_shape"),
        ({"output_names": "logits"}, "output_names"),
        ({"output_names": ["a", "a"]}, "output_names"),
        ({"opset": "17"}, "opset"),
        ({"rtol": -1.0}, "rtol"),
        ({"exporter": "onnxscript"}, "exporter"),
    ],
)
def test_bad_arguments_raise_spec_error(tmp_path: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        _export(TinyClassifier(), tmp_path / "x.onnx", **kwargs)


def test_models_over_the_protobuf_limit_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_mod, "_PROTOBUF_LIMIT", 1000)
    with pytest.raises(BuildError, match="external data is not supported"):
        _export(TinyClassifier(), tmp_path / "big.onnx")
    assert list(tmp_path.iterdir()) == []


def test_dynamo_exporter(tmp_path: Path) -> None:
    report = _export(TinyClassifier(), tmp_path / "dynamo.onnx", opset=18, exporter="dynamo")
    assert report.exporter == "dynamo" and report.max_abs_diff["logits"] < 1e-4
    assert {o.version for o in onnx.load(str(report.path)).opset_import if o.domain == ""} == {18}
