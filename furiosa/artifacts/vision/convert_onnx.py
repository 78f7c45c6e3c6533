"""ONNX files -> state dicts of our networks (``furiosa.artifacts.vision.models``). Imports torch and onnx.

A published detector ONNX file often ends in its own post-processing: MLPerf's ``resnet34-ssd1200.onnx`` decodes
the boxes and runs NonMaxSuppression inside the graph (outputs ``bboxes``, ``labels``, ``scores``). Our networks
stop at the raw heads, so the file is first cut there (:func:`cut_at_heads`): a raw head is a Conv whose output
reaches a Concat through shape-only ops (Reshape, Transpose, Flatten, ...), and every input of that Concat is
such a head. Names (``Conv_338``) are never used to find them; which Concat holds the box heads and which the
class heads is told by the heads' weight shapes, compared with our own network's. Whatever follows the heads
(decode, NMS, default boxes) is ignored.

The initializers of the cut graph are then mapped onto our module's state-dict keys, trying in turn:

1. ``names``: initializer names equal to our keys (optionally under a prefix such as ``module.``), following
   Identity aliases. This is what a PyTorch export of the reference module gives (MLPerf's SSD-ResNet34 file
   carries the unfolded ``SSD_R34`` state dict, ``num_batches_tracked`` included).
2. ``tf`` (SSD-MobileNet only): TF object-detection names (``FeatureExtractor/MobilenetV1/Conv2d_1_depthwise/...``,
   ``BoxPredictor_0/ClassPredictor/...``) mapped with the rules of MLPerf ``models/convert_tf_weights.py``,
   transposing TF layouts (HWIO, depthwise HWCM) to PyTorch OIHW where the array is not already OIHW.
3. ``structure``: the order in which Conv / BatchNormalization / Add / Mul / Gemm nodes of the cut graph consume
   initializers is aligned with the same order in an in-memory export of our module (names ignored); the head
   convs are aligned by the role :func:`cut_at_heads` found for them, not by their place in the node order.

A file whose batch norms were folded into the convolutions cannot be split back and is refused with BuildError.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from furiosa.artifacts.errors import BuildError
from furiosa.artifacts.vision.specs import load_spec

StateDict = dict[str, torch.Tensor]
PathLike = Union[str, "os.PathLike[str]"]
_PASSTHROUGH = {"Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Cast"}
_SHAPE_ONLY = {"Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Cast"}
_CONSUMERS = {"Conv", "BatchNormalization", "Add", "Mul", "Sub", "Div", "Gemm", "MatMul", "PRelu"}


@dataclass(frozen=True)
class Heads:
    """The raw head convs of a detector graph: ``groups[g][level]`` is a Conv node's output name.

    ``roles[g]`` is the state-dict prefix pattern of that group in our network (``loc.{}``, ``conf.{}``,
    ``predictors.{}.regression``, ...), ``weights[g][level]`` the name of that Conv's weight initializer.
    """

    groups: tuple[tuple[str, ...], ...]
    roles: tuple[str, ...]
    weights: tuple[tuple[str, ...], ...]
    biases: tuple[tuple[Optional[str], ...], ...]

    def outputs(self) -> list[str]:
        """Head output names, group after group (ours: box heads first)."""
        return [name for group in self.groups for name in group]


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


def _load(path: PathLike) -> onnx.ModelProto:
    try:
        return onnx.load(os.fspath(path))
    except FileNotFoundError as exc:
        raise BuildError(f"ONNX file not found: {os.fspath(path)}") from exc
    except (OSError, DecodeError, ValueError) as exc:
        raise BuildError(f"cannot read ONNX file {os.fspath(path)}: {exc}") from exc


# ---------------------------------------------------------------------------------------------------- heads


def _head_groups(model: onnx.ModelProto, tensors: Mapping[str, np.ndarray]) -> list[list[onnx.NodeProto]]:
    """Conv nodes feeding Concats through shape-only ops, one list per such Concat (in input order)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    groups = []
    for node in model.graph.node:
        if node.op_type != "Concat" or len(node.input) < 2:
            continue
        convs = []
        for name in node.input:
            current = producer.get(name)
            while current is not None and current.op_type in _SHAPE_ONLY:
                current = producer.get(current.input[0])
            if current is None or current.op_type != "Conv" or len(current.input) < 2 \
                    or current.input[1] not in tensors:
                break
            convs.append(current)
        else:
            groups.append(convs)
    return groups


def _our_head_roles(target: StateDict) -> list[tuple[str, list[tuple[int, ...]]]]:
    """Our network's head groups: (key pattern, weight shapes by level), box heads first."""
    roles = []
    for pattern in ("loc.{}", "conf.{}", "predictors.{}.regression", "predictors.{}.classification"):
        shapes = []
        while f"{pattern.format(len(shapes))}.weight" in target:
            shapes.append(tuple(target[f"{pattern.format(len(shapes))}.weight"].shape))
        if shapes:
            roles.append((pattern, shapes))
    return roles


def find_heads(model: onnx.ModelProto, name: str, *, source: str = "the ONNX file") -> Heads:
    """The raw head convs of ``model`` for catalog detector ``name``, found by graph structure.

    Raises BuildError when ``name`` has no head groups or the graph has no Concat of head convs whose weight
    shapes match ours.
    """
    _, target = _target(name)
    roles = _our_head_roles(target)
    if not roles:
        raise BuildError(f"{name} is not a detector: its network has no box/class head convs to cut at")
    tensors = _onnx_tensors(model)
    candidates = _head_groups(model, tensors)
    groups, weights, biases = [], [], []
    for pattern, shapes in roles:
        match = [g for g in candidates
                 if [tuple(np.shape(tensors[c.input[1]])) for c in g] == shapes]
        if len(match) != 1:
            found = [[tuple(np.shape(tensors[c.input[1]])) for c in g] for g in candidates]
            raise BuildError(
                f"{source}: expected exactly one Concat of {len(shapes)} head convs with weights {shapes} "
                f"({name} {pattern.format('i')}), found {len(match)} (head-conv Concats in the graph: {found}). "
                f"Is this an export of the {name} reference network?")
        groups.append(tuple(c.output[0] for c in match[0]))
        weights.append(tuple(c.input[1] for c in match[0]))
        biases.append(tuple(c.input[2] if len(c.input) > 2 and c.input[2] else None for c in match[0]))
    return Heads(tuple(groups), tuple(p for p, _ in roles), tuple(weights), tuple(biases))


def cut_at_heads(model: onnx.ModelProto, name: str, *, source: str = "the ONNX file") -> tuple[onnx.ModelProto,
                                                                                                Heads]:
    """``model`` cut so that its outputs are the raw head convs' outputs (box heads first, level order).

    Everything after the heads (decode, NMS, ...) and every initializer only it uses is dropped. The graph
    inputs stay those of ``model`` that the heads depend on.
    """
    heads = find_heads(model, name, source=source)
    producer = {out: node for node in model.graph.node for out in node.output}
    keep, stack, seen = set(), list(heads.outputs()), set()
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is not None and id(node) not in keep:
            keep.add(id(node))
            stack.extend(i for i in node.input if i)
    nodes = [n for n in model.graph.node if id(n) in keep]
    initializers = [i for i in model.graph.initializer if i.name in seen]
    inputs = [i for i in model.graph.input if i.name in seen and i.name not in {x.name for x in initializers}]
    outputs = [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None) for out in heads.outputs()]
    graph = helper.make_graph(nodes, f"{model.graph.name}_heads", inputs, outputs, initializer=initializers)
    cut = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return cut, heads


# ------------------------------------------------------------------------------------------------ strategies


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


def _consumption(model: onnx.ModelProto, tensors: Mapping[str, np.ndarray],
                 skip: frozenset[str] = frozenset()) -> list[tuple[str, int, str]]:
    """(op type, input index, initializer name) for each initializer use by a consumer node, in node order.

    Nodes with an output in ``skip`` (the head convs, aligned separately) are left out.
    """
    source = {}  # tensor name -> initializer it passes through unchanged
    for node in model.graph.node:
        if node.op_type in _PASSTHROUGH and node.input:
            origin = node.input[0] if node.input[0] in tensors else source.get(node.input[0])
            if origin is not None:
                source[node.output[0]] = origin
    uses = []
    for node in model.graph.node:
        if node.op_type not in _CONSUMERS or skip.intersection(node.output):
            continue
        for index, name in enumerate(node.input):
            origin = name if name in tensors else source.get(name)
            if origin is not None and np.asarray(tensors[origin]).size > 1:
                uses.append((node.op_type, index, origin))
    return uses


def _head_keys(heads: Heads) -> list[tuple[str, Optional[str], str]]:
    """(weight initializer, bias initializer, our key prefix) of every head conv."""
    return [(w, b, role.format(level)) for role, ws, bs in zip(heads.roles, heads.weights, heads.biases)
            for level, (w, b) in enumerate(zip(ws, bs))]


def _by_structure(model: onnx.ModelProto, tensors: dict[str, np.ndarray], module: torch.nn.Module,
                  target: StateDict, name: str, heads: Optional[Heads]) -> dict[str, torch.Tensor]:
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
    ours_tensors = _onnx_tensors(ours_model)
    found: dict[str, torch.Tensor] = {}
    skip_ours: frozenset[str] = frozenset()
    skip_theirs: frozenset[str] = frozenset()
    if heads is not None:
        ours_heads = find_heads(ours_model, name, source="our export")
        skip_ours, skip_theirs = frozenset(ours_heads.outputs()), frozenset(heads.outputs())
        for weight, bias, prefix in _head_keys(heads):
            for initializer, suffix in ((weight, "weight"), (bias, "bias")):
                key = f"{prefix}.{suffix}"
                if initializer is not None and key in target \
                        and (value := _fits(tensors[initializer], target[key])) is not None:
                    found[key] = value
    ours = _consumption(ours_model, ours_tensors, skip_ours)
    theirs = _consumption(model, tensors, skip_theirs)
    if [(op, i) for op, i, _ in ours] != [(op, i) for op, i, _ in theirs]:
        return {}
    for (_, _, key), (_, _, other) in zip(ours, theirs):
        if key in target and key not in found and (value := _fits(tensors[other], target[key])) is not None:
            found[key] = value
    return found


def state_dict_from_onnx(path: PathLike, name: str) -> StateDict:
    """The state dict of catalog model ``name``'s network, taken from the initializers of ONNX file ``path``.

    For a detector the graph is first cut at its raw heads (:func:`cut_at_heads`), so in-graph decoding and
    NMS are ignored. Raises BuildError when the file cannot be read, its heads cannot be found, or no strategy
    (see the module docstring) finds every weight; ModelNotFoundError for an unknown model name.
    """
    module, target = _target(name)
    model = _load(path)
    counters = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer
                if i.name.endswith("num_batches_tracked")}
    heads, cut_error = None, None
    if _our_head_roles(target):
        try:
            model, heads = cut_at_heads(model, name, source=os.fspath(path))
        except BuildError as exc:  # no post-processing to strip (or not this network): tried uncut below
            cut_error = exc
    tensors = _onnx_tensors(model)
    wanted = {k: v for k, v in target.items() if not k.endswith("num_batches_tracked")}
    strategies: list[tuple[str, Callable[[], dict[str, torch.Tensor]]]] = [
        ("names", lambda: _by_names(tensors, wanted))]
    if name == "MLCommonsSSDMobileNet":
        strategies.append(("tf", lambda: _by_tf_names(tensors, wanted)))
    strategies.append(("structure", lambda: _by_structure(model, tensors, module, wanted, name, heads)))
    missing: dict[str, list[str]] = {}
    for strategy, run in strategies:
        found = run()
        missing[strategy] = sorted(set(wanted) - set(found))
        if not missing[strategy]:
            state = dict(found)
            for key, value in target.items():
                if key.endswith("num_batches_tracked"):
                    kept = counters.get(key) if strategy == "names" else None
                    state[key] = (torch.from_numpy(np.asarray(kept).reshape(value.shape).copy()).to(value.dtype)
                                  if kept is not None and np.size(kept) == 1 else torch.zeros_like(value))
            return {key: state[key] for key in target}
    detail = "; ".join(f"{s}: {len(m)} missing (e.g. {', '.join(m[:3])})" for s, m in missing.items())
    if cut_error is not None:
        detail += f"; the graph was not cut at its raw heads: {cut_error}"
    raise BuildError(f"{os.fspath(path)}: cannot map its initializers onto {name} ({len(wanted)} tensors): "
                     f"{detail}. Batch norms folded into convolutions cannot be split back.")
