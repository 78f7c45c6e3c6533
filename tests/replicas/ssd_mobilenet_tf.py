"""Replica of the TF Object Detection API ``ssd_mobilenet_v1_coco_2018_01_28`` frozen graph (and its tarball).

Laid out like the published ``frozen_inference_graph.pb`` (names and node layout as OpenVINO Open Model Zoo's
``ssd_mobilenet_v1_coco`` and public dumps of the frozen graph show them):

- every variable a ``Const`` node (``FeatureExtractor/MobilenetV1/Conv2d_0/weights``,
  ``.../Conv2d_1_depthwise/depthwise_weights``, ``.../Conv2d_1_pointwise/weights``, extras
  ``.../Conv2d_13_pointwise_1_Conv2d_2_1x1_256/weights``, ``BoxPredictor_0/BoxEncodingPredictor/weights|biases``)
  read through an ``Identity`` ``.../read`` node carrying ``_class: loc:@<variable>``; float tensors stored as
  ``tensor_content``, scalars as ``float_val``;
- unfused batch norms over ``.../BatchNorm/{gamma,beta,moving_mean,moving_variance}``: ops
  ``.../MobilenetV1/MobilenetV1/Conv2d_N_*/BatchNorm/batchnorm/{add,Rsqrt,mul,mul_1,mul_2,sub,add_1}`` with the
  epsilon (0.001) in ``batchnorm/add/y`` under a control dependency on ``FeatureExtractor/Assert/Assert``;
- TF layouts (HWIO kernels, HWCM depthwise kernels), NHWC ops with ``SAME`` padding, ReLU6;
- box predictors reshaped and concatenated (``concat``, ``concat_1``), then post-processing stand-ins
  (score conversion, anchors constant, the four ``detection_*``/``num_detections`` outputs). The published
  graph's resize loop and batched-NMS while loop are not reproduced: the converter reads constants only, and
  the tests execute the graph up to the raw heads.

Values are seeded random numbers of the real shapes. ``run_heads`` executes the replica graph node by node in
numpy (float64), so a test can compare our network against the graph itself rather than against the
converter's own arithmetic.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from replicas import Replica

from furiosa.artifacts.atomic import atomic_path, atomic_write_bytes
from furiosa.artifacts.vision.tf_proto import DT_FLOAT, DT_INT32, DT_UINT8, array_to_tensor, messages, tensor_to_array

ARCHIVE_NAME = "ssd_mobilenet_v1_coco_2018_01_28.tar.gz"
MEMBER = "ssd_mobilenet_v1_coco_2018_01_28/frozen_inference_graph.pb"
_ROOT = "FeatureExtractor/MobilenetV1"
# MobileNetV1 (depth multiplier 1): (out channels, stride) of the 13 depthwise-separable layers
_SEPARABLE = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
              (512, 1), (1024, 2), (1024, 1)]
_EXTRAS = [(2, 256, 512), (3, 128, 256), (4, 128, 256), (5, 64, 128)]  # (index, 1x1 depth, 3x3 s2 depth)
_ANCHORS = [3, 6, 6, 6, 6, 6]
_CLASSES = 91
HEAD_OUTPUTS = [f"BoxPredictor_{i}/{p}/BiasAdd" for p in ("BoxEncodingPredictor", "ClassPredictor")
                for i in range(6)]


class _Writer:
    def __init__(self, seed: int) -> None:
        self.graph = messages()["GraphDef"]()
        self.graph.versions.producer = 24
        self.rng = np.random.default_rng(seed)

    def node(self, name: str, op: str, inputs: tuple[str, ...] = (), **attrs: Any) -> str:
        node = self.graph.node.add(name=name, op=op)
        node.input.extend(inputs)
        for key, value in attrs.items():
            attr = node.attr[key]
            if isinstance(value, bool):
                attr.b = value
            elif isinstance(value, bytes):
                attr.s = value
            elif isinstance(value, tuple) and value[0] == "type":
                attr.type = value[1]
            elif isinstance(value, list):
                attr.list.i.extend(value)
            elif isinstance(value, float):
                attr.f = value
            else:
                attr.tensor.CopyFrom(value)
        return name

    def const(self, name: str, array: np.ndarray, *, control: Optional[str] = None) -> str:
        return self.node(name, "Const", (f"^{control}",) if control else (), value=array_to_tensor(array),
                         dtype=("type", DT_FLOAT))

    def int_const(self, name: str, values: list[int]) -> str:
        tensor = messages()["TensorProto"](dtype=DT_INT32)
        tensor.tensor_shape.dim.add(size=len(values))
        tensor.tensor_content = np.asarray(values, dtype="<i4").tobytes()
        return self.node(name, "Const", value=tensor, dtype=("type", DT_INT32))

    def variable(self, name: str, array: np.ndarray) -> str:
        """A frozen variable: Const + ``/read`` Identity, as convert_variables_to_constants leaves them."""
        self.const(name, array)
        read = self.node(f"{name}/read", "Identity", (name,), T=("type", DT_FLOAT))
        self.graph.node[-1].attr["_class"].list.s.append(f"loc:@{name}".encode())
        return read

    def conv(self, op_scope: str, var_scope: str, x: str, shape: tuple[int, ...], stride: int, *,
             depthwise: bool = False) -> str:
        fan_in = shape[0] * shape[1] * (1 if depthwise else shape[2])
        kernel = self.rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        w = self.variable(f"{var_scope}/{'depthwise_weights' if depthwise else 'weights'}", kernel)
        attrs = dict(T=("type", DT_FLOAT), data_format=b"NHWC", padding=b"SAME", strides=[1, stride, stride, 1],
                     dilations=[1, 1, 1, 1])
        if depthwise:
            return self.node(f"{op_scope}/depthwise", "DepthwiseConv2dNative", (x, w), **attrs)
        return self.node(f"{op_scope}/Conv2D", "Conv2D", (x, w), use_cudnn_on_gpu=True, **attrs)

    def batch_norm(self, op_scope: str, var_scope: str, x: str, channels: int) -> str:
        r = self.rng
        gamma = self.variable(f"{var_scope}/BatchNorm/gamma", r.uniform(0.5, 1.5, channels).astype(np.float32))
        beta = self.variable(f"{var_scope}/BatchNorm/beta", r.uniform(-0.5, 0.5, channels).astype(np.float32))
        mean = self.variable(f"{var_scope}/BatchNorm/moving_mean", r.uniform(-0.5, 0.5, channels).astype(np.float32))
        var = self.variable(f"{var_scope}/BatchNorm/moving_variance",
                            r.uniform(0.3, 2.0, channels).astype(np.float32))
        bn, t = f"{op_scope}/BatchNorm/batchnorm", ("type", DT_FLOAT)
        eps = self.const(f"{bn}/add/y", np.float32(0.001), control="FeatureExtractor/Assert/Assert")
        self.node(f"{bn}/add", "Add", (var, eps), T=t)
        self.node(f"{bn}/Rsqrt", "Rsqrt", (f"{bn}/add",), T=t)
        self.node(f"{bn}/mul", "Mul", (f"{bn}/Rsqrt", gamma), T=t)
        self.node(f"{bn}/mul_1", "Mul", (x, f"{bn}/mul"), T=t)
        self.node(f"{bn}/mul_2", "Mul", (mean, f"{bn}/mul"), T=t)
        self.node(f"{bn}/sub", "Sub", (beta, f"{bn}/mul_2"), T=t)
        self.node(f"{bn}/add_1", "Add", (f"{bn}/mul_1", f"{bn}/sub"), T=t)
        return self.node(f"{op_scope}/Relu6", "Relu6", (f"{bn}/add_1",), T=t)

    def layer(self, op_scope: str, var_scope: str, x: str, shape: tuple[int, ...], stride: int, *,
              depthwise: bool = False) -> str:
        y = self.conv(op_scope, var_scope, x, shape, stride, depthwise=depthwise)
        return self.batch_norm(op_scope, var_scope, y, shape[2] if depthwise else shape[3])


def graph_bytes(seed: int = 0) -> bytes:
    """The serialized replica GraphDef."""
    g = _Writer(seed)
    t = ("type", DT_FLOAT)
    g.node("image_tensor", "Placeholder", dtype=("type", DT_UINT8))
    g.node("ToFloat", "Cast", ("image_tensor",), SrcT=("type", DT_UINT8), DstT=t)
    g.const("Preprocessor/mul/x", np.float32(2.0 / 255.0))
    g.node("Preprocessor/mul", "Mul", ("Preprocessor/mul/x", "ToFloat"), T=t)
    g.const("Preprocessor/sub/y", np.float32(1.0))
    x = g.node("Preprocessor/sub", "Sub", ("Preprocessor/mul", "Preprocessor/sub/y"), T=t)
    g.node("FeatureExtractor/Assert/Assert", "Assert", ())
    ops = f"{_ROOT}/MobilenetV1"
    x = g.layer(f"{ops}/Conv2d_0", f"{_ROOT}/Conv2d_0", x, (3, 3, 3, 32), 2)
    channels, features = 32, []
    for index, (out, stride) in enumerate(_SEPARABLE, start=1):
        x = g.layer(f"{ops}/Conv2d_{index}_depthwise", f"{_ROOT}/Conv2d_{index}_depthwise", x,
                    (3, 3, channels, 1), stride, depthwise=True)
        x = g.layer(f"{ops}/Conv2d_{index}_pointwise", f"{_ROOT}/Conv2d_{index}_pointwise", x,
                    (1, 1, channels, out), 1)
        channels = out
        if index in (11, 13):
            features.append((x, out))
    for index, mid, out in _EXTRAS:
        scope = f"{_ROOT}/Conv2d_13_pointwise_1_Conv2d_{index}_1x1_{mid}"
        x = g.layer(scope, scope, x, (1, 1, channels, mid), 1)
        scope = f"{_ROOT}/Conv2d_13_pointwise_2_Conv2d_{index}_3x3_s2_{out}"
        x = g.layer(scope, scope, x, (3, 3, mid, out), 2)
        channels = out
        features.append((x, out))
    boxes, classes = [], []
    for i, ((feature, depth), anchors) in enumerate(zip(features, _ANCHORS)):
        for head, width, outputs in (("BoxEncodingPredictor", 4, boxes), ("ClassPredictor", _CLASSES, classes)):
            scope = f"BoxPredictor_{i}/{head}"
            y = g.conv(scope, scope, feature, (1, 1, depth, anchors * width), 1)
            b = g.variable(f"{scope}/biases", g.rng.normal(0, 0.1, anchors * width).astype(np.float32))
            y = g.node(f"{scope}/BiasAdd", "BiasAdd", (y, b), T=t, data_format=b"NHWC")
            shape = g.int_const(f"BoxPredictor_{i}/{'Reshape' if width == 4 else 'Reshape_1'}/shape",
                                [1, -1, 1, 4] if width == 4 else [1, -1, _CLASSES])
            outputs.append(g.node(f"BoxPredictor_{i}/{'Reshape' if width == 4 else 'Reshape_1'}", "Reshape",
                                  (y, shape), T=t))
    g.int_const("concat/axis", [1])
    g.node("concat", "ConcatV2", (*boxes, "concat/axis"), T=t)
    g.int_const("concat_1/axis", [1])
    g.node("concat_1", "ConcatV2", (*classes, "concat_1/axis"), T=t)
    g.node("Squeeze", "Squeeze", ("concat",), T=t)
    g.const("Postprocessor/scale_logits/y", np.float32(1.0))
    g.node("Postprocessor/scale_logits", "RealDiv", ("concat_1", "Postprocessor/scale_logits/y"), T=t)
    g.node("Postprocessor/convert_scores", "Sigmoid", ("Postprocessor/scale_logits",), T=t)
    g.const("Postprocessor/Decode/anchors", g.rng.uniform(0, 1, (1917, 4)).astype(np.float32))
    for name, source in (("detection_boxes", "Squeeze"), ("detection_scores", "Postprocessor/convert_scores"),
                         ("detection_classes", "Postprocessor/convert_scores"),
                         ("num_detections", "Postprocessor/convert_scores")):
        g.node(name, "Identity", (source,), T=t)
    return g.graph.SerializeToString()


def build_graph(directory: Path, *, seed: int = 0) -> Path:
    """Write the replica ``frozen_inference_graph.pb`` under ``directory``; returns its path."""
    path = directory / "frozen_inference_graph.pb"
    atomic_write_bytes(path, graph_bytes(seed))
    return path


def _unfolded(graph_pb: bytes) -> dict[str, Any]:
    """The state-dict entries our network takes from the graph unchanged (no batch norm to fold): box
    predictor kernels (HWIO -> OIHW) and biases, depthwise kernels (HWCM -> OIHW)."""
    import re

    import torch

    graph = messages()["GraphDef"].FromString(graph_pb)
    expected = {}
    for node in graph.node:
        if node.op != "Const":
            continue
        if m := re.fullmatch(r"BoxPredictor_(\d)/(BoxEncodingPredictor|ClassPredictor)/(weights|biases)", node.name):
            array = tensor_to_array(node.attr["value"].tensor)
            head = "regression" if m.group(2) == "BoxEncodingPredictor" else "classification"
            key = f"predictors.{m.group(1)}.{head}.{'weight' if m.group(3) == 'weights' else 'bias'}"
            expected[key] = torch.from_numpy(array.transpose(3, 2, 0, 1).copy() if array.ndim == 4 else array)
        elif m := re.fullmatch(rf"{_ROOT}/Conv2d_(\d+)_depthwise/depthwise_weights", node.name):
            array = tensor_to_array(node.attr["value"].tensor)
            expected[f"backbone.{m.group(1)}.depthwise.weight"] = torch.from_numpy(array.transpose(2, 3, 0, 1).copy())
    return expected


def build(directory: Path, *, seed: int = 0) -> Replica:
    """Write the replica ``ssd_mobilenet_v1_coco_2018_01_28.tar.gz`` (the published layout) under ``directory``.

    ``Replica.expected`` holds the entries our network takes without batch-norm folding (see ``_unfolded``).
    """
    path = directory / ARCHIVE_NAME
    graph = graph_bytes(seed)
    members = {MEMBER: graph,
               "ssd_mobilenet_v1_coco_2018_01_28/pipeline.config":
                   b"model {\n  ssd {\n    num_classes: 90\n    feature_extractor {\n      type: \"ssd_mobilenet_v1\"\n"
                   b"      conv_hyperparams {\n        batch_norm {\n          scale: true\n          epsilon: 0.001\n"
                   b"        }\n      }\n    }\n  }\n}\n",
               "ssd_mobilenet_v1_coco_2018_01_28/checkpoint": b'model_checkpoint_path: "model.ckpt"\n'}
    with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz") as archive:
        directory_info = tarfile.TarInfo("ssd_mobilenet_v1_coco_2018_01_28")
        directory_info.type, directory_info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(directory_info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return Replica(model="MLCommonsSSDMobileNet", path=path, member=MEMBER, expected=_unfolded(graph),
                   notes={"batch_norm": "unfused, epsilon 0.001 in batchnorm/add/y"})


# ------------------------------------------------------------------------------------------- numpy executor


def _pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x: np.ndarray, w: np.ndarray, strides: list[int], *, depthwise: bool) -> np.ndarray:
    """TF Conv2D / DepthwiseConv2dNative, NHWC, SAME padding."""
    stride = strides[1]
    kh, kw = w.shape[:2]
    (top, bottom), (left, right) = _pads(x.shape[1], kh, stride), _pads(x.shape[2], kw, stride)
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    patches = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
               for i in range(kh) for j in range(kw)]
    if depthwise:
        return sum(patch * w[i // kw, i % kw, :, 0] for i, patch in enumerate(patches))
    columns = np.concatenate(patches, axis=-1)  # (N, oh, ow, kh * kw * C), rows ordered like w's (i, j, c)
    return (columns.reshape(-1, columns.shape[-1]) @ w.reshape(-1, w.shape[-1])).reshape(*columns.shape[:3], -1)


def run_heads(graph_pb: bytes, image: np.ndarray) -> dict[str, np.ndarray]:
    """Execute the replica graph on ``image`` (uint8 NHWC) in float64 numpy: the ``HEAD_OUTPUTS`` tensors."""
    graph = messages()["GraphDef"].FromString(graph_pb)
    nodes = {node.name: node for node in graph.node}
    values: dict[str, np.ndarray] = {"image_tensor": image}

    def value(name: str) -> np.ndarray:
        if name in values:
            return values[name]
        node = nodes[name]
        args = [value(i) for i in node.input if not i.startswith("^")]
        op = node.op
        if op == "Const":
            result = tensor_to_array(node.attr["value"].tensor)
            result = result.astype(np.float64) if result.dtype.kind == "f" else result
        elif op in ("Identity", "Cast"):
            result = args[0].astype(np.float64) if op == "Cast" else args[0]
        elif op in ("Add", "AddV2", "BiasAdd"):
            result = args[0] + args[1]
        elif op == "Sub":
            result = args[0] - args[1]
        elif op == "Mul":
            result = args[0] * args[1]
        elif op == "Rsqrt":
            result = 1.0 / np.sqrt(args[0])
        elif op == "Relu6":
            result = np.clip(args[0], 0.0, 6.0)
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            result = _conv(args[0], args[1], list(node.attr["strides"].list.i),
                           depthwise=op == "DepthwiseConv2dNative")
        else:
            raise NotImplementedError(f"replica executor: op {op} ({name})")
        values[name] = result
        return result

    return {name: value(name) for name in HEAD_OUTPUTS}
