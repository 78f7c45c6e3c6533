"""Source weights -> state dicts of our networks (``furiosa.artifacts.vision.models``). Imports torch.

``load_state_dict_file`` reads plain state-dict checkpoints (torchvision ``resnet50-19c8e357.pth``, timm
``tf_efficientnetv2_s-eb54923e.pth``) with ``torch.load(weights_only=True)``: no pickled module is ever run.

``state_dict_from_onnx`` maps the initializers of a reference ONNX file onto our module's state-dict keys,
trying in turn:

1. ``names``: initializer names equal to our keys (optionally under a prefix such as ``module.``), following
   Identity aliases. This is what a PyTorch export of the reference module without constant folding gives.
2. ``tf`` (SSD-MobileNet only): TF object-detection names (``FeatureExtractor/MobilenetV1/Conv2d_1_depthwise/...``,
   ``BoxPredictor_0/ClassPredictor/...``) mapped with the rules of MLPerf ``models/convert_tf_weights.py``,
   transposing TF layouts (HWIO, depthwise HWCM) to PyTorch OIHW where the array is not already OIHW.
3. ``structure``: the order in which Conv / BatchNormalization / Add / Mul / Gemm nodes consume initializers
   in the file is aligned with the same order in an in-memory export of our module (names ignored).

Verified here only by round trips on our own randomly initialised modules (the real
``resnet34-ssd1200.onnx`` and ``ssd_mobilenet_v1_coco_2018_01_28.onnx`` cannot be downloaded in this
environment): export -> convert -> identical tensors for ``names``; the same with every initializer renamed
for ``structure``; a synthetic file with TF names and TF layouts for ``tf``. Which strategy the real files need
(and whether a tf2onnx graph keeps enough of the TF names) is unverified. A file whose batch norms were folded
into the convolutions cannot be split back and is refused with BuildError.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from typing import Callable, Optional, Union

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from furiosa.artifacts.errors import BuildError
from furiosa.artifacts.vision.specs import load_spec

StateDict = dict[str, torch.Tensor]
_PASSTHROUGH = {"Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Cast"}
_CONSUMERS = {"Conv", "BatchNormalization", "Add", "Mul", "Sub", "Div", "Gemm", "MatMul", "PRelu"}


def load_state_dict_file(path: Union[str, "os.PathLike[str]"]) -> StateDict:
    """A plain state dict (tensors by key) from a ``.pth`` file, loaded with ``weights_only=True``.

    A checkpoint wrapping the state dict under ``state_dict`` or ``model`` is unwrapped. Raises BuildError
    when the file is missing, holds a pickled module or anything but a mapping of tensors.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise BuildError(f"weights file not found: {os.fspath(path)}") from exc
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
        raise BuildError(f"{os.fspath(path)} is not a plain state dict (a pickled module is never unpickled "
                         f"here: extract its state_dict once in a trusted environment): {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise BuildError(f"{os.fspath(path)} does not hold a mapping of tensors")
    return {str(k): v for k, v in data.items()}


def _onnx_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant outputs by name, with Identity outputs as aliases."""
    tensors = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = numpy_helper.to_array(attr.t)
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    return tensors


def _target(name: str) -> tuple[torch.nn.Module, StateDict]:
    from furiosa.artifacts.vision.models import create_model

    module = create_model(name)
    return module, module.state_dict()


def _fits(array: np.ndarray, like: torch.Tensor) -> Optional[torch.Tensor]:
    if array.size != like.numel():
        return None
    if array.shape != tuple(like.shape) and array.ndim >= 2 and like.dim() >= 2 and array.ndim == like.dim():
        return None  # same rank, other layout: not a plain reshape
    return torch.from_numpy(np.ascontiguousarray(array).reshape(tuple(like.shape)).copy()).to(like.dtype)


def _by_names(tensors: dict[str, np.ndarray], target: StateDict) -> dict[str, torch.Tensor]:
    found = {}
    for key, like in target.items():
        candidates = [key] if key in tensors else [n for n in tensors if n.endswith("." + key)]
        if len(candidates) == 1 and (value := _fits(tensors[candidates[0]], like)) is not None:
            found[key] = value
    return found


_TF_CLEAN = re.compile(r"(:0|/read|__\d+)$")


def _tf_key(name: str) -> Optional[tuple[str, bool]]:
    """Our key for a TF SSD-MobileNet tensor name (MLPerf convert_tf_weights rules), and whether TF
    stores it as (H, W, in, out) rather than depthwise (H, W, in, multiplier)."""
    while _TF_CLEAN.search(name):
        name = _TF_CLEAN.sub("", name)
    if m := re.match(r"BoxPredictor_(\d+)/(BoxEncodingPredictor|ClassPredictor)/(weights|biases)$", name):
        head = "regression" if m.group(2) == "BoxEncodingPredictor" else "classification"
        return f"predictors.{m.group(1)}.{head}.{'weight' if m.group(3) == 'weights' else 'bias'}", True
    if "FeatureExtractor/MobilenetV1" not in name:
        return None
    if "pointwise_" in name:  # extras: ..._Conv2d_2_1x1_256/weights, ..._Conv2d_2_3x3_s2_512/biases
        m = re.match(r".*Conv2d_(\d+)_(\d)x\d", name)
        if not m:
            return None
        kind = "weight" if "weight" in name else "bias"
        return f"extras.{int(m.group(1)) - 2}.{0 if m.group(2) == '1' else 2}.{kind}", True
    m = re.match(r".*Conv2d_(\d+)", name)
    if not m:
        return None
    layer = m.group(1)
    part = "0" if layer == "0" else ("pointwise" if "pointwise" in name else "depthwise")
    if "batchnorm" in name:
        if "FeatureExtractor/MobilenetV1/MobilenetV1" not in name:
            return None
        return f"backbone.{layer}.{part}/BatchNorm.{'scale' if 'mul' in name else 'bias'}", False
    return f"backbone.{layer}.{part}.weight", part != "depthwise"


def _by_tf_names(tensors: dict[str, np.ndarray], target: StateDict) -> dict[str, torch.Tensor]:
    found = {}
    for name, array in tensors.items():
        mapped = _tf_key(name)
        if mapped is None or mapped[0] not in target:
            continue
        key, dense = mapped
        like = target[key]
        if array.ndim == 4 and array.shape != tuple(like.shape):
            array = array.transpose((3, 2, 0, 1) if dense else (2, 3, 0, 1))
        value = _fits(array, like)
        if value is not None:
            found[key] = value
    return found


def _consumption(model: onnx.ModelProto, tensors: Mapping[str, np.ndarray]) -> list[tuple[str, int, str]]:
    """(op type, input index, initializer name) for each initializer use by a consumer node, in node order."""
    source = {}  # tensor name -> initializer it passes through unchanged
    for node in model.graph.node:
        if node.op_type in _PASSTHROUGH and node.input:
            origin = node.input[0] if node.input[0] in tensors else source.get(node.input[0])
            if origin is not None:
                source[node.output[0]] = origin
    uses = []
    for node in model.graph.node:
        if node.op_type not in _CONSUMERS:
            continue
        for index, name in enumerate(node.input):
            origin = name if name in tensors else source.get(name)
            if origin is not None and np.asarray(tensors[origin]).size > 1:
                uses.append((node.op_type, index, origin))
    return uses


def _by_structure(model: onnx.ModelProto, tensors: dict[str, np.ndarray], module: torch.nn.Module,
                  target: StateDict, name: str) -> dict[str, torch.Tensor]:
    spec = load_spec(name)
    with torch.no_grad():  # distinct values, so the exporter does not merge equal initializers
        generator = torch.Generator().manual_seed(0)
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, *spec.input.shape),), buffer, dynamo=False, opset_version=17,
                          do_constant_folding=False)
    ours_model = onnx.load_from_string(buffer.getvalue())
    ours = _consumption(ours_model, _onnx_tensors(ours_model))
    theirs = _consumption(model, tensors)
    if [(op, i) for op, i, _ in ours] != [(op, i) for op, i, _ in theirs]:
        return {}
    found = {}
    for (_, _, key), (_, _, other) in zip(ours, theirs):
        if key in target and key not in found and (value := _fits(tensors[other], target[key])) is not None:
            found[key] = value
    return found


def state_dict_from_onnx(path: Union[str, "os.PathLike[str]"], name: str) -> StateDict:
    """The state dict of catalog model ``name``'s network, taken from the initializers of ONNX file ``path``.

    Raises BuildError when the file cannot be read or no strategy (see the module docstring) finds every
    weight; ModelNotFoundError for an unknown model name.
    """
    module, target = _target(name)
    try:
        model = onnx.load(os.fspath(path))
    except (OSError, DecodeError, ValueError) as exc:
        raise BuildError(f"cannot read ONNX file {os.fspath(path)}: {exc}") from exc
    tensors = _onnx_tensors(model)
    wanted = {k: v for k, v in target.items() if not k.endswith("num_batches_tracked")}
    strategies: list[tuple[str, Callable[[], dict[str, torch.Tensor]]]] = [
        ("names", lambda: _by_names(tensors, wanted))]
    if name == "MLCommonsSSDMobileNet":
        strategies.append(("tf", lambda: _by_tf_names(tensors, wanted)))
    strategies.append(("structure", lambda: _by_structure(model, tensors, module, wanted, name)))
    missing: dict[str, list[str]] = {}
    for strategy, run in strategies:
        found = run()
        missing[strategy] = sorted(set(wanted) - set(found))
        if not missing[strategy]:
            state = dict(found)
            for key, value in target.items():
                if key.endswith("num_batches_tracked"):
                    state[key] = torch.zeros_like(value)
            return {key: state[key] for key in target}
    detail = "; ".join(f"{s}: {len(m)} missing (e.g. {', '.join(m[:3])})" for s, m in missing.items())
    raise BuildError(f"{os.fspath(path)}: cannot map its initializers onto {name} ({len(wanted)} tensors): "
                     f"{detail}. Batch norms folded into convolutions cannot be split back.")


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "weights") -> None:
    """``module.load_state_dict(state, strict=True)``, raising BuildError that lists missing/unexpected keys."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BuildError(f"{source} do not fit {type(module).__name__}: {exc}") from exc
