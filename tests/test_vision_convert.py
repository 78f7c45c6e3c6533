"""Weight conversion: ONNX initializers -> our state dicts (round trips), and plain .pth state dicts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch
import torchvision
from onnx import helper, numpy_helper

from furiosa.artifacts.errors import BuildError
from furiosa.artifacts.vision.convert import load_into, load_state_dict_file
from furiosa.artifacts.vision.convert_onnx import state_dict_from_onnx
from furiosa.artifacts.vision.models import create_model
from furiosa.artifacts.vision.specs import load_spec


def _perturbed(name: str, seed: int = 0) -> torch.nn.Module:
    """A random network whose every tensor differs from its default init (so no two are equal)."""
    torch.manual_seed(seed)
    model = create_model(name)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor) * 0.1)
    return model


def _export(model: torch.nn.Module, name: str, path: Path, *, fold: bool = False) -> Path:
    spec = load_spec(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *spec.input.shape),), str(path), dynamo=False, opset_version=17,
                          do_constant_folding=fold, input_names=[spec.input.name],
                          output_names=list(spec.output_names))
    return path


def _renamed(path: Path, out: Path) -> Path:
    """The same graph with every initializer renamed w0, w1, ... (as an exporter without names would)."""
    model = onnx.load(str(path))
    names = {init.name: f"w{i}" for i, init in enumerate(model.graph.initializer)}
    for init in model.graph.initializer:
        init.name = names[init.name]
    for node in model.graph.node:
        for i, value in enumerate(node.input):
            node.input[i] = names.get(value, value)
    onnx.save(model, str(out))
    return out


def _assert_same_state(state: dict, model: torch.nn.Module) -> None:
    expected = model.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def _assert_same_outputs(state: dict, model: torch.nn.Module, name: str) -> None:
    fresh = create_model(name)
    load_into(fresh, state)
    x = torch.randn(1, *load_spec(name).input.shape)
    with torch.no_grad():
        for a, b in zip(fresh(x), model(x)):
            assert torch.equal(a, b)


def test_mobilenet_round_trip_by_names(tmp_path):
    model = _perturbed("MLCommonsSSDMobileNet")
    state = state_dict_from_onnx(_export(model, "MLCommonsSSDMobileNet", tmp_path / "m.onnx"), "MLCommonsSSDMobileNet")
    _assert_same_state(state, model)
    _assert_same_outputs(state, model, "MLCommonsSSDMobileNet")


def test_mobilenet_round_trip_with_merged_equal_initializers(tmp_path):
    torch.manual_seed(0)
    model = create_model("MLCommonsSSDMobileNet")  # zero biases / unit scales: the exporter merges them
    path = _export(model, "MLCommonsSSDMobileNet", tmp_path / "m.onnx")
    assert len(onnx.load(str(path)).graph.initializer) < len(model.state_dict())
    _assert_same_state(state_dict_from_onnx(path, "MLCommonsSSDMobileNet"), model)


def test_mobilenet_round_trip_by_structure(tmp_path):
    model = _perturbed("MLCommonsSSDMobileNet", seed=1)
    path = _renamed(_export(model, "MLCommonsSSDMobileNet", tmp_path / "m.onnx"), tmp_path / "renamed.onnx")
    _assert_same_state(state_dict_from_onnx(path, "MLCommonsSSDMobileNet"), model)


def _tf_name(key: str) -> tuple[str, str]:
    """TF object-detection name and layout of one of our SSD-MobileNet keys (what convert_tf_weights reads)."""
    parts = key.split(".")
    if parts[0] == "predictors":
        head = "BoxEncodingPredictor" if parts[2] == "regression" else "ClassPredictor"
        return f"BoxPredictor_{parts[1]}/{head}/{'weights' if parts[3] == 'weight' else 'biases'}", "HWIO"
    if parts[0] == "extras":
        block, conv, kind = int(parts[1]), parts[2], parts[3]
        mid, out = [(256, 512), (128, 256), (128, 256), (64, 128)][block]
        layer = (f"Conv2d_13_pointwise_1_Conv2d_{block + 2}_1x1_{mid}" if conv == "0"
                 else f"Conv2d_13_pointwise_2_Conv2d_{block + 2}_3x3_s2_{out}")
        return f"FeatureExtractor/MobilenetV1/{layer}/{'weights' if kind == 'weight' else 'biases'}", "HWIO"
    layer, rest = parts[1], parts[2]
    base = "Conv2d_0" if layer == "0" else f"Conv2d_{layer}_{rest.split('/')[0]}"
    if rest.endswith("/BatchNorm"):
        op = "mul" if parts[3] == "scale" else "sub"
        return f"FeatureExtractor/MobilenetV1/MobilenetV1/{base}/BatchNorm/batchnorm/{op}", ""
    if rest == "depthwise":
        return f"FeatureExtractor/MobilenetV1/{base}/depthwise_weights/read:0", "HWCM"
    return f"FeatureExtractor/MobilenetV1/{base}/weights", "HWIO"


def test_mobilenet_from_tf_names_and_layouts(tmp_path):
    model = _perturbed("MLCommonsSSDMobileNet", seed=2)
    initializers = []
    for key, value in model.state_dict().items():
        name, layout = _tf_name(key)
        array = value.numpy()
        if layout == "HWIO":
            array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
        elif layout == "HWCM":
            array = array.transpose(2, 3, 0, 1)
        if key == "predictors.0.regression.weight":
            array = value.numpy()  # some converters already store OIHW: taken as is
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
    graph = helper.make_graph([], "tf", [], [], initializer=initializers)
    onnx.save(helper.make_model(graph), str(tmp_path / "tf.onnx"))
    _assert_same_state(state_dict_from_onnx(tmp_path / "tf.onnx", "MLCommonsSSDMobileNet"), model)


@pytest.mark.slow  # a full-size SSD-ResNet34 export, tens of CPU seconds
def test_resnet34_round_trips(tmp_path):
    """By names, then with every initializer renamed (structure); a BN-folded export is refused."""
    name = "MLCommonsSSDResNet34"
    model = _perturbed(name)
    path = _export(model, name, tmp_path / "r34.onnx")
    _assert_same_state(state_dict_from_onnx(path, name), model)
    _assert_same_state(state_dict_from_onnx(_renamed(path, tmp_path / "renamed.onnx"), name), model)
    folded = onnx.load(str(_export(model, name, tmp_path / "folded.onnx", fold=True)))
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}
    with pytest.raises(BuildError, match="folded"):
        state_dict_from_onnx(tmp_path / "folded.onnx", name)


def test_unreadable_onnx(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(BuildError, match="cannot read"):
        state_dict_from_onnx(tmp_path / "x.onnx", "MLCommonsSSDMobileNet")


@pytest.mark.slow  # builds the full-size ResNet50 and EfficientNetV2-S twice
def test_plain_state_dicts_load_into_our_networks(tmp_path):
    torch.manual_seed(0)
    for name, official in [("MLCommonsResNet50", torchvision.models.resnet50(weights=None)),
                           ("EfficientNetV2_S", timm.create_model("tf_efficientnetv2_s", pretrained=False))]:
        torch.save(official.state_dict(), tmp_path / "w.pth")
        state = load_state_dict_file(tmp_path / "w.pth")
        model = create_model(name)
        load_into(model, state)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in official.state_dict().items())
    torch.save({"state_dict": official.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    assert list(load_state_dict_file(tmp_path / "wrapped.pth")) == list(official.state_dict())


def test_pickled_modules_and_bad_files_are_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(BuildError, match="pickled module"):
        load_state_dict_file(tmp_path / "module.pth")
    with pytest.raises(BuildError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(BuildError, match="mapping of tensors"):
        load_state_dict_file(tmp_path / "list.pth")
    with pytest.raises(BuildError, match="do not fit"):
        load_into(create_model("MLCommonsSSDMobileNet"), {"x": torch.zeros(1)})
