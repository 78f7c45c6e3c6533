"""Replica of MLPerf ``resnet34-ssd1200.onnx`` (zenodo 3228411), exported from the vendored reference network.

The published file takes ``image`` (1x3x1200x1200 float) and returns decoded ``bboxes``, ``labels``, ``scores``:
box decode and NonMaxSuppression run inside the graph, the raw heads are intermediate Conv outputs, and its
initializers are the unfolded ``SSD_R34`` state dict (``num_batches_tracked`` included). This replica is the same:
the reference trunk, extras, heads and ``bbox_view`` (tests/replicas/mlperf_ssd_r34.py, seeded random weights),
then the reference ``scale_back_batch`` decode against the reference default boxes, then ONNX NonMaxSuppression
(IoU 0.5, score 0.05, 200 per class) and a top-200 by score, exported with torch.onnx (TorchScript exporter,
opset 11, no constant folding). The reference's own NMS is a Python while loop that no exporter can trace, so
that last part is ours, built from the same ops the published file uses (NonMaxSuppression, Gather, TopK).
The state-dict entries the exporter drops as unused (``num_batches_tracked``) are added back as initializers,
as the 2019 exporter that made the published file kept them; nodes and intermediate tensors are renamed
the way that exporter numbered them (``Conv_338``), so nothing can lean on today's descriptive names.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from replicas import Replica
from replicas.mlperf_ssd_r34 import SSD_R34, scale_back_batch

from furiosa.artifacts.atomic import atomic_path

FILE_NAME = "resnet34-ssd1200.onnx"


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression (selected (batch, class, box) triples); eager: torchvision's per-class NMS."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou: float, threshold: float):  # type: ignore[override]
        import torchvision

        selected = []
        for cls in range(scores.shape[1]):
            score = scores[0, cls]
            index = torch.nonzero(score > threshold).flatten()
            index = index[score[index].argsort(descending=True)[:max_per_class]]
            keep = torchvision.ops.nms(boxes[0, index], score[index], iou)
            selected += [(0, cls, int(i)) for i in index[keep]]
        return torch.tensor(selected, dtype=torch.int64).reshape(-1, 3)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou, threshold):
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.int64)),
                    g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([threshold], dtype=torch.float32)))


class ExportedSSD_R34(torch.nn.Module):
    """The reference network plus the in-graph decode and NMS of the published file."""

    def __init__(self, reference: SSD_R34) -> None:
        super().__init__()
        self.reference = reference
        self.register_buffer("dboxes_xywh", reference.encoder.dboxes_xywh.clone(), persistent=False)
        self.scale_xy = float(reference.encoder.scale_xy)
        self.scale_wh = float(reference.encoder.scale_wh)

    def forward(self, image: torch.Tensor):
        locs, confs = self.reference(image)
        bboxes, probs = scale_back_batch(locs, confs, self.scale_xy, self.scale_wh, self.dboxes_xywh)
        scores = probs[:, :, 1:].permute(0, 2, 1)  # background (class 0) skipped, as decode_single does
        selected = _NonMaxSuppression.apply(bboxes, scores, 200, 0.5, 0.05)
        cls, box = selected[:, 1], selected[:, 2]
        out_scores = scores[0, cls, box]
        k = torch.clamp(torch.tensor(out_scores.shape[0]), max=200)
        top, order = torch.topk(out_scores, int(k) if not torch.jit.is_tracing() else k)
        return bboxes[0, box[order]], (cls[order] + 1), top


def reference_network(seed: int = 0) -> SSD_R34:
    """The vendored reference SSD_R34 with seeded random weights, in eval mode.

    Batch-norm affine parameters are random; running statistics are measured on seeded noise (one batch of two
    256x256 images through the trunk in train mode, the trunk being fully convolutional), so activations stay
    as normalised as a trained network's and the raw heads are O(1), not O(100).
    """
    torch.manual_seed(seed)
    network = SSD_R34()
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5, generator=generator)
            norm.bias.uniform_(-0.2, 0.2, generator=generator)
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average
        network.train()
        network.model(torch.randn(2, 3, 256, 256, generator=generator))  # every batch norm is in the trunk
        for norm in norms:
            norm.momentum = 0.1
    return network.eval()


def _number_like_torch_1x(model: onnx.ModelProto) -> None:
    """Nodes named ``Conv_338``-style and intermediate tensors numbered, as the 2019 exporter named them."""
    keep = {i.name for i in model.graph.input} | {o.name for o in model.graph.output} \
        | {i.name for i in model.graph.initializer}
    renamed: dict[str, str] = {}
    for index, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{index}"
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
        for i, name in enumerate(node.output):
            if name and name not in keep:
                renamed[name] = node.output[i] = str(len(renamed) + 1)


def build(directory: Path, *, seed: int = 0) -> Replica:
    """Write the replica ``resnet34-ssd1200.onnx`` under ``directory``.

    ``Replica.expected`` is the reference network's state dict (our network's keys are the same).
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    reference = reference_network(seed)
    exported = ExportedSSD_R34(reference).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(exported, (torch.zeros(1, 3, 1200, 1200),), str(path), dynamo=False, opset_version=11,
                          do_constant_folding=False, input_names=["image"],
                          output_names=["bboxes", "labels", "scores"])
    model = onnx.load(str(path))
    names = {i.name for i in model.graph.initializer}
    for key, value in reference.state_dict().items():
        if f"reference.{key}" in names:
            continue
        model.graph.initializer.append(numpy_helper.from_array(value.numpy(), f"reference.{key}"))
    for init in model.graph.initializer:  # the published file's names are the bare SSD_R34 keys
        if init.name.startswith("reference."):
            old, init.name = init.name, init.name[len("reference."):]
            for node in model.graph.node:
                for i, name in enumerate(node.input):
                    if name == old:
                        node.input[i] = init.name
    _number_like_torch_1x(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Replica(model="MLCommonsSSDResNet34", path=path, expected=dict(reference.state_dict()),
                   notes={"nms": "ONNX NonMaxSuppression after the reference decode (the reference NMS is a "
                                  "Python loop no exporter can trace)"})
