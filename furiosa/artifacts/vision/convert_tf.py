"""TF frozen GraphDef (TF Object Detection API SSD-MobileNet) -> our network's state dict, without TensorFlow.

The published ``ssd_mobilenet_v1_coco_2018_01_28.tar.gz`` holds ``frozen_inference_graph.pb``: a ``GraphDef``
whose variables were turned into ``Const`` nodes (each read through an ``Identity`` ``.../read`` node) and whose
batch norms are still separate ops over ``.../BatchNorm/{gamma,beta,moving_mean,moving_variance}``. It is parsed
with the message classes of :mod:`furiosa.artifacts.vision.tf_proto` (plain protobuf, no code runs), and its
constants are mapped with the rules of MLPerf ``python/models/convert_tf_weights.py``:

- ``FeatureExtractor/MobilenetV1/Conv2d_0`` -> ``backbone.0.0``; ``.../Conv2d_N_depthwise`` and
  ``.../Conv2d_N_pointwise`` -> ``backbone.N.depthwise`` / ``backbone.N.pointwise``;
- ``.../Conv2d_13_pointwise_1_Conv2d_K_1x1_C`` -> ``extras.{K-2}.0``, ``..._2_Conv2d_K_3x3_s2_C`` -> ``extras.{K-2}.2``;
- ``BoxPredictor_i/BoxEncodingPredictor`` / ``ClassPredictor`` -> ``predictors.i.regression`` / ``classification``;
- kernels transposed HWIO -> OIHW (``(3, 2, 0, 1)``), depthwise HWCM -> OIHW (``(2, 3, 0, 1)``).

Batch norm is folded as TF computes it (``batchnorm/mul = rsqrt(moving_variance + eps) * gamma``,
``batchnorm/sub = beta - moving_mean * mul``) into the layout our network (like MLPerf's) expects: the scale is
multiplied into regular and pointwise kernels, whose ``/BatchNorm.bias`` (or conv ``bias`` for the extras)
takes ``sub``; depthwise layers keep ``/BatchNorm.scale`` and ``/BatchNorm.bias``. ``eps`` is read from the graph
(the scalar added to ``moving_variance``, or a FusedBatchNorm ``epsilon``), else 0.001 as in the OD API config.
A graph whose batch norms were already folded to ``batchnorm/mul`` and ``batchnorm/sub`` constants is read too.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
import torch
from google.protobuf.message import DecodeError

from furiosa.artifacts.errors import BuildError
from furiosa.artifacts.vision.tf_proto import messages, tensor_to_array

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
PathLike = Union[str, "os.PathLike[str]"]
GRAPH_MEMBER = "frozen_inference_graph.pb"
DEFAULT_EPSILON = 0.001  # TF OD API ssd_mobilenet_v1_coco.config batch_norm.epsilon
_BN_PARTS = ("gamma", "beta", "moving_mean", "moving_variance")
_ROOT = "FeatureExtractor/MobilenetV1/"


@dataclass
class _Layer:
    """The TF constants of one conv layer (its variable scope) and where they go in our network."""

    scope: str
    prefix: str
    depthwise: bool = False
    kernel: Optional[str] = None
    bias: Optional[str] = None
    norm: dict[str, str] = field(default_factory=dict)


def _our_prefix(scope: str) -> Optional[str]:
    """Our module prefix for a TF variable scope (MLPerf convert_tf_weights rules), or None."""
    if m := re.fullmatch(r"BoxPredictor_(\d+)/(BoxEncodingPredictor|ClassPredictor)", scope):
        return f"predictors.{m.group(1)}.{'regression' if m.group(2) == 'BoxEncodingPredictor' else 'classification'}"
    if not scope.startswith(_ROOT):
        return None
    rest = scope[len(_ROOT):]
    if m := re.fullmatch(r"Conv2d_13_pointwise_[12]_Conv2d_(\d+)_(\d)x\d(?:_s\d)?_\d+", rest):
        return f"extras.{int(m.group(1)) - 2}.{0 if m.group(2) == '1' else 2}"
    if rest == "Conv2d_0":
        return "backbone.0.0"
    if m := re.fullmatch(r"Conv2d_(\d+)_(depthwise|pointwise)", rest):
        return f"backbone.{m.group(1)}.{m.group(2)}"
    return None


def read_frozen_graph(path: PathLike) -> Any:
    """The ``GraphDef`` in ``path``: a ``.pb`` file, or a TF model tarball holding ``*/frozen_inference_graph.pb``.

    The archive member is read into memory, never extracted. Raises BuildError when the file is missing,
    not a GraphDef, or an archive without that member.
    """
    where = os.fspath(path)
    try:
        if tarfile.is_tarfile(where):
            with tarfile.open(where, "r:*") as archive:
                members = [m for m in archive.getmembers()
                           if m.isfile() and os.path.basename(m.name) == GRAPH_MEMBER]
                if len(members) != 1:
                    raise BuildError(f"{where}: expected one {GRAPH_MEMBER} in the archive, found "
                                     f"{len(members)}; pass the .pb file itself")
                handle = archive.extractfile(members[0])
                data = handle.read() if handle is not None else b""
                where = f"{where}:{members[0].name}"
        else:
            with open(where, "rb") as handle:
                data = handle.read()
    except FileNotFoundError as exc:
        raise BuildError(f"TF frozen graph not found: {where}") from exc
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BuildError(f"cannot read {where}: {exc}") from exc
    try:
        graph = messages()["GraphDef"].FromString(data)
    except DecodeError as exc:
        raise BuildError(f"{where} is not a TF GraphDef (protobuf): {exc}") from exc
    if not any(node.op == "Const" for node in graph.node):
        raise BuildError(f"{where}: no Const nodes: not a frozen TF GraphDef (export the graph with its "
                         f"variables frozen, e.g. the OD API's frozen_inference_graph.pb)")
    return graph


def graph_constants(graph: Any, *, where: str = "graph") -> dict[str, np.ndarray]:
    """Float ``Const`` node values by node name, with ``Identity`` outputs (``.../read``) as aliases."""
    constants: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op == "Const" and "value" in node.attr and node.attr["value"].tensor.dtype in (1, 2, 19):
            try:
                constants[node.name] = tensor_to_array(node.attr["value"].tensor).astype(np.float32)
            except ValueError as exc:
                raise BuildError(f"{where}: Const node {node.name!r}: {exc}") from exc
    for node in graph.node:
        if node.op == "Identity" and node.input and node.input[0] in constants:
            constants[node.name] = constants[node.input[0]]
    return constants


def _epsilons(graph: Any, constants: dict[str, np.ndarray]) -> dict[str, float]:
    """Batch-norm epsilon by ``moving_variance`` Const name, read from the graph's own ops."""
    alias = {n.name: n.input[0] for n in graph.node if n.op == "Identity" and n.input}

    def origin(name: str) -> str:
        name = name.split(":")[0].lstrip("^")
        while name in alias:
            name = alias[name]
        return name

    found: dict[str, float] = {}
    for node in graph.node:
        inputs = [origin(i) for i in node.input if not i.startswith("^")]
        if node.op in ("Add", "AddV2") and len(inputs) == 2:
            for var, eps in (inputs, inputs[::-1]):
                if var.endswith("/moving_variance") and eps in constants and constants[eps].size == 1:
                    found[var] = float(constants[eps].reshape(()))
        elif node.op.startswith("FusedBatchNorm") and len(inputs) >= 5 and "epsilon" in node.attr:
            found[inputs[4]] = float(node.attr["epsilon"].f)
    return found


def _layers(constants: dict[str, np.ndarray]) -> dict[str, _Layer]:
    layers: dict[str, _Layer] = {}
    for name in constants:
        if m := re.fullmatch(r"(.*)/BatchNorm/(gamma|beta|moving_mean|moving_variance)", name):
            scope, part = m.group(1), m.group(2)
        elif m := re.fullmatch(r"(.*)/(weights|depthwise_weights|biases)", name):
            scope, part = m.group(1), m.group(2)
        else:
            continue
        prefix = _our_prefix(scope)
        if prefix is None:
            continue
        layer = layers.setdefault(scope, _Layer(scope, prefix))
        if part in _BN_PARTS:
            layer.norm[part] = name
        elif part == "biases":
            layer.bias = name
        else:
            layer.kernel, layer.depthwise = name, part == "depthwise_weights"
    return layers


def _folded_norm(layer: _Layer, constants: dict[str, np.ndarray], eps: dict[str, float],
                 where: str) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(scale, bias) of the layer's batch norm as TF computes it, or None when it has none."""
    if "moving_variance" in layer.norm or "moving_mean" in layer.norm:
        missing = [p for p in ("moving_mean", "moving_variance") if p not in layer.norm]
        if missing:
            raise BuildError(f"{where}: {layer.scope}/BatchNorm has no {', '.join(missing)} constant")
        var = constants[layer.norm["moving_variance"]]
        mean = constants[layer.norm["moving_mean"]]
        gamma = constants[layer.norm["gamma"]] if "gamma" in layer.norm else np.ones_like(var)  # scale: false
        beta = constants[layer.norm["beta"]] if "beta" in layer.norm else np.zeros_like(var)  # center: false
        epsilon = np.float32(eps.get(layer.norm["moving_variance"], DEFAULT_EPSILON))
        scale = (np.float32(1.0) / np.sqrt(var + epsilon)).astype(np.float32) * gamma
        return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)
    ops_scopes = [layer.scope, layer.scope.replace(_ROOT, _ROOT + "MobilenetV1/", 1)]
    for scope in ops_scopes:  # batch norm already folded to constants (MLPerf's convert_tf_weights input)
        mul, sub = f"{scope}/BatchNorm/batchnorm/mul", f"{scope}/BatchNorm/batchnorm/sub"
        if mul in constants and sub in constants:
            return constants[mul], constants[sub]
    return None


def _to_torch(array: np.ndarray, like: torch.Tensor, key: str, source: str, where: str) -> torch.Tensor:
    if tuple(array.shape) != tuple(like.shape):
        raise BuildError(f"{where}: {source} has shape {tuple(array.shape)} (after the TF -> PyTorch transpose); "
                         f"{key} needs {tuple(like.shape)}. Is this the graph of the same network?")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(like.dtype)


def _layer_state(layer: _Layer, constants: dict[str, np.ndarray], eps: dict[str, float], target: StateDict,
                 where: str) -> dict[str, torch.Tensor]:
    if layer.kernel is None:
        raise BuildError(f"{where}: {layer.scope} has batch-norm/bias constants but no weights or "
                         f"depthwise_weights constant (for {layer.prefix}.weight)")
    kernel = constants[layer.kernel]
    if kernel.ndim != 4:
        raise BuildError(f"{where}: {layer.kernel} is {kernel.ndim}-D; a conv kernel is 4-D")
    if layer.depthwise:  # (H, W, C, M) -> (C * M, 1, H, W)
        h, w, c, m = kernel.shape
        weight = kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, h, w)
    else:  # (H, W, I, O) -> (O, I, H, W)
        weight = kernel.transpose(3, 2, 0, 1)
    weight_key = f"{layer.prefix}.weight"
    if weight_key not in target:
        raise BuildError(f"{where}: {layer.scope} maps to {weight_key}, which the network does not have")
    _to_torch(weight, target[weight_key], weight_key, layer.kernel, where)  # shape check before folding
    bias = constants[layer.bias] if layer.bias is not None else None
    if bias is not None and bias.shape != (weight.shape[0],):
        raise BuildError(f"{where}: {layer.bias} has shape {bias.shape}, its conv {weight.shape[0]} outputs")
    out: dict[str, np.ndarray] = {}
    norm = _folded_norm(layer, constants, eps, where)
    if norm is not None:
        scale, shift = norm
        if scale.shape != (weight.shape[0],) or shift.shape != (weight.shape[0],):
            raise BuildError(f"{where}: {layer.scope}/BatchNorm has {scale.size} channels, its conv "
                             f"{weight.shape[0]}")
        if bias is not None:  # conv bias before the batch norm
            shift = shift + bias * scale
        if f"{layer.prefix}/BatchNorm.scale" in target:
            out[f"{layer.prefix}/BatchNorm.scale"], out[f"{layer.prefix}/BatchNorm.bias"] = scale, shift
        else:
            weight = weight * scale.reshape(-1, 1, 1, 1)
            key = f"{layer.prefix}/BatchNorm.bias" if f"{layer.prefix}/BatchNorm.bias" in target \
                else f"{layer.prefix}.bias"
            out[key] = shift
    elif bias is not None:
        out[f"{layer.prefix}.bias"] = bias
    out[f"{layer.prefix}.weight"] = weight
    state = {}
    for key, value in out.items():
        if key not in target:
            raise BuildError(f"{where}: {layer.scope} maps to {key}, which the network does not have")
        state[key] = _to_torch(value, target[key], key, layer.kernel if key.endswith(".weight") else layer.scope,
                               where)
    return state


def state_dict_from_frozen_graph(path: PathLike, name: str) -> StateDict:
    """The state dict of catalog model ``name``'s network, from the TF frozen graph (or model tarball) ``path``.

    Raises BuildError when the file cannot be read, a tensor does not fit, or a weight of the network is not
    found in the graph; ModelNotFoundError for an unknown model name.
    """
    from furiosa.artifacts.vision.models import create_model

    target = create_model(name).state_dict()
    where = os.fspath(path)
    graph = read_frozen_graph(path)
    constants = graph_constants(graph, where=where)
    eps = _epsilons(graph, constants)
    state: StateDict = {}
    for layer in sorted(_layers(constants).values(), key=lambda layer: layer.scope):
        state.update(_layer_state(layer, constants, eps, target, where))
    missing = [key for key in target if key not in state]
    if missing:
        raise BuildError(f"{where}: {len(missing)} of {len(target)} tensors of {name} not found in the graph "
                         f"(e.g. {', '.join(missing[:4])}); expected TF Object Detection API names such as "
                         f"{_ROOT}Conv2d_0/weights and BoxPredictor_0/ClassPredictor/biases")
    log.info("%s: %d tensors of %s from %d TF layers (batch-norm eps %s)", where, len(state), name,
             len(_layers(constants)), sorted(set(eps.values())) or [DEFAULT_EPSILON])
    return {key: state[key] for key in target}
