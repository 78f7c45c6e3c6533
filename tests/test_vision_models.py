"""Networks: output shapes, reference state-dict layouts, head order vs numpy anchors, ONNX export parity."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from furiosa.artifacts.errors import ModelNotFoundError
from furiosa.artifacts.vision.anchors import generate_anchors, tf_ssd_box_specs
from furiosa.artifacts.vision.models import create_model, list_models
from furiosa.artifacts.vision.specs import list_specs, load_spec

CLASSIFIERS = ["MLCommonsResNet50", "EfficientNetV2_S", "DigitsConvNet"]
DETECTORS = ["MLCommonsSSDResNet34", "MLCommonsSSDMobileNet", "DigitsSSD"]
#: Full-size networks whose export or forward pass takes tens of CPU seconds: the full suite's tier.
HEAVY = {"MLCommonsResNet50", "EfficientNetV2_S", "MLCommonsSSDResNet34"}


def _tiers(names, heavy=HEAVY):
    return [pytest.param(n, marks=pytest.mark.slow) if n in heavy else n for n in names]


def _seeded(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name)


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(x)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def test_every_spec_has_a_network():
    assert sorted(list_models()) == sorted(list_specs())
    with pytest.raises(ModelNotFoundError, match="MLCommonsSSDMobileNet"):
        create_model("SSDMobileNetV2")


@pytest.mark.parametrize("name", _tiers(CLASSIFIERS + ["MLCommonsSSDMobileNet", "DigitsSSD"], {"EfficientNetV2_S"}))
def test_output_shapes(name):
    spec = load_spec(name)
    outputs = _outputs(_seeded(name), torch.randn(2, *spec.input.shape))
    if spec.task == "classification":
        assert [o.shape for o in outputs] == [(2, spec.num_classes)]
    else:
        count = spec.postprocess.anchors.count
        assert [o.shape for o in outputs] == [(2, count, 4), (2, count, spec.num_classes)]


def test_num_classes_override():
    assert create_model("MLCommonsSSDMobileNet", num_classes=3).predictors[0].classification.out_channels == 9


def test_parameter_counts():
    counts = {n: sum(p.numel() for p in create_model(n).parameters()) for n in list_models()}
    assert counts["MLCommonsResNet50"] == 25_557_032  # torchvision resnet50
    assert counts["EfficientNetV2_S"] == 21_458_488  # timm: 21.46 M
    # OpenVINO's 20.058 M for resnet34-ssd1200.onnx also counts BN statistics and the default boxes
    assert counts["MLCommonsSSDResNet34"] == 19_972_534
    assert counts["MLCommonsSSDResNet34"] + 9_856 + 15_130 * 4 + 15_130 == 20_058_040


def test_ssd_mobilenet_state_dict_layout_of_the_reference():
    state = create_model("MLCommonsSSDMobileNet").state_dict()
    assert len(state) == 107
    expected = {
        "backbone.0.0.weight": (32, 3, 3, 3), "backbone.0.0/BatchNorm.bias": (32,),
        "backbone.1.depthwise.weight": (32, 1, 3, 3), "backbone.1.depthwise/BatchNorm.scale": (32,),
        "backbone.1.depthwise/BatchNorm.bias": (32,), "backbone.1.pointwise.weight": (64, 32, 1, 1),
        "backbone.1.pointwise/BatchNorm.bias": (64,), "backbone.13.pointwise.weight": (1024, 1024, 1, 1),
        "extras.0.0.weight": (256, 1024, 1, 1), "extras.0.2.weight": (512, 256, 3, 3), "extras.3.2.bias": (128,),
        "predictors.0.classification.weight": (3 * 91, 512, 1, 1), "predictors.0.regression.weight": (12, 512, 1, 1),
        "predictors.5.classification.bias": (6 * 91,), "predictors.5.regression.weight": (24, 128, 1, 1),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected


def test_ssd_resnet34_state_dict_layout_of_the_reference():
    state = create_model("MLCommonsSSDResNet34").state_dict()
    expected = {
        "model.layer1.0.weight": (64, 3, 7, 7), "model.layer1.1.running_var": (64,),
        "model.layer1.4.0.conv1.weight": (64, 64, 3, 3), "model.layer1.5.0.downsample.0.weight": (128, 64, 1, 1),
        "model.layer2.0.0.conv1.weight": (256, 128, 3, 3), "model.layer2.0.0.downsample.1.weight": (256,),
        "model.layer2.0.5.bn2.bias": (256,),
        "additional_blocks.0.0.weight": (256, 256, 1, 1), "additional_blocks.0.2.weight": (512, 256, 3, 3),
        "additional_blocks.4.2.bias": (256,),
        "loc.0.weight": (16, 256, 3, 3), "loc.5.bias": (16,), "conf.1.weight": (6 * 81, 512, 3, 3),
        "conf.5.bias": (4 * 81,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert not any(k.startswith(("model.layer3", "model.fc", "encoder")) for k in state)


def test_ssd_resnet34_layer3_runs_at_stride_1():
    trunk = create_model("MLCommonsSSDResNet34").model
    block = trunk.layer2[0][0]
    assert block.conv1.stride == (1, 1) and block.downsample[0].stride == (1, 1)
    with torch.no_grad():
        assert trunk(torch.zeros(1, 3, 240, 240))[0].shape == (1, 256, 30, 30)  # 1200 -> 150


def _coordinate_map(x: torch.Tensor, step: int) -> torch.Tensor:
    """Channel 0 = row // step, channel 1 = column // step, other channels 0."""
    out = torch.zeros_like(x)
    rows = torch.arange(x.shape[2], dtype=x.dtype) / step
    cols = torch.arange(x.shape[3], dtype=x.dtype) / step
    out[:, 0] = rows[:, None]
    out[:, 1] = cols[None, :]
    return out


def _mark_mobilenet_heads(model) -> None:
    for k, head in enumerate(model.predictors):
        head.register_forward_pre_hook(lambda m, args: (_coordinate_map(args[0], 1),))
        with torch.no_grad():
            reg, cls = head.regression, head.classification
            for param in (*reg.parameters(), *cls.parameters()):
                param.zero_()
            for a in range(reg.out_channels // 4):  # loc row: (row, col, anchor, layer)
                reg.weight[a * 4 + 0, 0] = 1.0
                reg.weight[a * 4 + 1, 1] = 1.0
                reg.bias[a * 4 + 2] = a
                reg.bias[a * 4 + 3] = k
                cls.bias[a * 91:(a + 1) * 91] = torch.arange(91) + 1000 * a


def _mark_resnet34_heads(model) -> None:
    for k, (loc, conf) in enumerate(zip(model.loc, model.conf)):
        nd = loc.out_channels // 4
        for conv in (loc, conf):  # 3x3, stride 3, padding 1: output (r, c) reads its centre tap at (3r, 3c)
            conv.register_forward_pre_hook(lambda m, args: (_coordinate_map(args[0], 3),))
        with torch.no_grad():
            for param in (*loc.parameters(), *conf.parameters()):
                param.zero_()
            for d in range(nd):  # reference bbox_view: channel = coordinate * nd + d, class * nd + d
                loc.weight[0 * nd + d, 0, 1, 1] = 1.0
                loc.weight[1 * nd + d, 1, 1, 1] = 1.0
                loc.bias[2 * nd + d] = d
                loc.bias[3 * nd + d] = k
                conf.bias[torch.arange(81) * nd + d] = torch.arange(81, dtype=torch.float32) + 1000 * d


def _mark_digits_ssd_heads(model) -> None:
    for k, (loc, conf) in enumerate(zip(model.loc, model.conf)):
        nd = loc.out_channels // 4
        classes = conf.out_channels // nd
        for conv in (loc, conf):  # 3x3, stride 1, padding 1: output (r, c) reads its centre tap at (r, c)
            conv.register_forward_pre_hook(lambda m, args: (_coordinate_map(args[0], 1),))
        with torch.no_grad():
            for param in (*loc.parameters(), *conf.parameters()):
                param.zero_()
            for d in range(nd):  # DigitsSSD: channel = d * 4 + coordinate, d * classes + class
                loc.weight[d * 4 + 0, 0, 1, 1] = 1.0
                loc.weight[d * 4 + 1, 1, 1, 1] = 1.0
                loc.bias[d * 4 + 2] = d
                loc.bias[d * 4 + 3] = k
                conf.bias[d * classes:(d + 1) * classes] = torch.arange(classes, dtype=torch.float32) + 1000 * d


MARKERS = {"MLCommonsSSDMobileNet": _mark_mobilenet_heads, "MLCommonsSSDResNet34": _mark_resnet34_heads,
           "DigitsSSD": _mark_digits_ssd_heads}


@pytest.mark.parametrize("name", _tiers(DETECTORS))
def test_head_rows_follow_the_numpy_anchor_order(name):
    spec = load_spec(name)
    model = create_model(name)
    anchor_spec = spec.postprocess.anchors
    anchors = generate_anchors(anchor_spec)
    MARKERS[name](model)
    loc, conf = _outputs(model, torch.zeros(1, *spec.input.shape))
    row, col, box, layer = np.rint(loc[0].T).astype(int)
    assert np.array_equal(np.rint(conf[0] - 1000 * box[:, None]), np.tile(np.arange(spec.num_classes), (len(box), 1)))
    grid = np.array([anchor_spec.feature_maps[k][0] for k in layer])
    if name == "MLCommonsSSDMobileNet":
        y1, x1, y2, x2 = anchors.T
        np.testing.assert_allclose((y1 + y2) / 2, (row + 0.5) / grid, atol=1e-6)
        np.testing.assert_allclose((x1 + x2) / 2, (col + 0.5) / grid, atol=1e-6)
        specs = tf_ssd_box_specs(anchor_spec)
        sizes = np.array([(s / np.sqrt(r), s * np.sqrt(r)) for s, r in (specs[k][a] for k, a in zip(layer, box))])
        np.testing.assert_allclose(np.stack([y2 - y1, x2 - x1], 1), sizes, atol=1e-6)
    else:
        cx, cy, w, h = anchors.T
        size = anchor_spec.image_size[0]
        fk = np.array([size // anchor_spec.steps[k] for k in layer])
        np.testing.assert_allclose(cy, np.clip((row + 0.5) / fk, 0, 1), atol=1e-6)
        np.testing.assert_allclose(cx, np.clip((col + 0.5) / fk, 0, 1), atol=1e-6)
        for k in range(len(anchor_spec.feature_maps)):  # models/ssd_r34.py DefaultBoxes: (sk1, sk1), (sk3, sk3),
            sk1, sk2 = anchor_spec.scales[k] / size, anchor_spec.scales[k + 1] / size  # then (w, h), (h, w) per ratio
            sizes = [(sk1, sk1), (np.sqrt(sk1 * sk2),) * 2]
            for ratio in anchor_spec.aspect_ratios[k]:
                sizes += [(sk1 * np.sqrt(ratio), sk1 / np.sqrt(ratio)), (sk1 / np.sqrt(ratio), sk1 * np.sqrt(ratio))]
            sel = layer == k
            np.testing.assert_allclose(np.stack([w[sel], h[sel]], 1), np.clip(np.array(sizes)[box[sel]], 0, 1),
                                       atol=1e-6)
    assert np.all(np.diff(layer) >= 0)


def _calibrate_batch_norm(model: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """Running statistics from one seeded random batch, so a randomly initialised deep net is well
    conditioned in float32 (raw random EfficientNetV2-S differs from its own float64 run by 1.6e-3)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(2, *shape, generator=torch.Generator().manual_seed(1)))
    model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, ONNX path, input): each network exported once per test module."""
    cache: dict[str, tuple[torch.nn.Module, Path, torch.Tensor]] = {}

    def get(name: str):
        if name not in cache:
            spec = load_spec(name)
            model = _seeded(name)
            if name == "EfficientNetV2_S":
                _calibrate_batch_norm(model, spec.input.shape)
            batch = 1 if name == "MLCommonsSSDResNet34" else 2
            x = torch.randn(batch, *spec.input.shape, generator=torch.Generator().manual_seed(2))
            path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
            axes = {n: {0: "N"} for n in (spec.input.name, *spec.output_names)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x[:1],), str(path), dynamo=False, opset_version=17,
                                  input_names=[spec.input.name], output_names=list(spec.output_names),
                                  dynamic_axes=axes)
            cache[name] = (model, path, x)
        return cache[name]

    return get


@pytest.mark.parametrize("name", _tiers(CLASSIFIERS + DETECTORS))
def test_onnx_runtime_matches_pytorch(exported, name):
    """rtol 1e-3, atol 1e-5 scaled by max(1, max |output|) (random-init logits reach ~200); raw heads."""
    spec = load_spec(name)
    model, path, x = exported(name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [spec.input.name]
    assert [o.name for o in session.get_outputs()] == list(spec.output_names)
    got = session.run(None, {spec.input.name: x.numpy()})
    for ours, ref in zip(got, _outputs(model, x)):
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
