"""SSD-MobileNet-v1 (300x300, COCO 91 classes, 1917 anchors) as in MLPerf ``models/ssd_mobilenet_v1.py``.

MobileNetV1 with TF "same" padding and ReLU6. Batch norm is folded as in the TF frozen graph the reference
weights come from: regular and pointwise convs are followed by a bias only (``BiasAdd``), depthwise convs by
a per-channel scale and bias (``ScaleBias``). Feature maps: layers 11 (512 ch, 19x19) and 13 (1024 ch,
10x10), then four extra blocks (5x5, 3x3, 2x2, 1x1). Heads: 1x1 convs, (3, 6, 6, 6, 6, 6) anchors per cell.

State-dict keys equal the reference module's (``backbone.0.0.weight``, ``backbone.1.depthwise/BatchNorm.scale``,
``extras.0.2.bias``, ``predictors.5.classification.weight``, ...), so its weights load unchanged.
``forward`` returns the raw heads: ``loc`` (N, 1917, 4) as (ty, tx, th, tw) and ``conf`` (N, 1917, 91)
logits, rows ordered like ``anchors.generate_anchors`` (layer, row, column, anchor).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from furiosa.artifacts.vision.models import register_model


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: the odd pixel of padding goes to the bottom/right."""

    def _pads(self, size: int, dim: int) -> tuple[int, int]:
        stride, kernel = self.stride[dim], (self.kernel_size[dim] - 1) * self.dilation[dim] + 1
        out = (size + stride - 1) // stride
        total = max(0, (out - 1) * stride + kernel - size)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pads(int(x.shape[-2]), 0)
        left, right = self._pads(int(x.shape[-1]), 1)
        if (top, left) == (bottom, right):
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class BiasAdd(nn.Module):
    """Batch norm folded into the preceding conv: a per-channel bias (buffer ``bias``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("bias", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.view(1, -1, 1, 1)


class ScaleBias(nn.Module):
    """Batch norm folded to a per-channel scale and bias (buffers ``scale``, ``bias``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _conv_bn(inp: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("0", Conv2dSame(inp, out, 3, stride, bias=False)),
        ("0/BatchNorm", BiasAdd(out)),
        ("0/ReLU", nn.ReLU6()),
    ]))


def _conv_dw(inp: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("depthwise", Conv2dSame(inp, inp, 3, stride, groups=inp, bias=False)),
        ("depthwise/BatchNorm", ScaleBias(inp)),
        ("depthwise/ReLU", nn.ReLU6()),
        ("pointwise", nn.Conv2d(inp, out, 1, 1, 0, bias=False)),
        ("pointwise/BatchNorm", BiasAdd(out)),
        ("pointwise/ReLU", nn.ReLU6()),
    ]))


# (in, out, stride) of the 13 depthwise-separable layers after the first conv
_MOBILENET_V1 = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
                 (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2),
                 (1024, 1024, 1)]
_EXTRAS = [(1024, 256, 512), (512, 128, 256), (256, 128, 256), (256, 64, 128)]
_HEADS = [(512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6)]


class MobileNetV1Base(nn.ModuleList):
    """MobileNetV1 trunk; ``forward`` returns the outputs of ``return_layers``."""

    def __init__(self, return_layers: tuple[int, ...] = (11, 13)) -> None:
        super().__init__([_conv_bn(3, 32, 2)] + [_conv_dw(i, o, s) for i, o, s in _MOBILENET_V1])
        self.return_layers = return_layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index, layer in enumerate(self):
            x = layer(x)
            if index in self.return_layers:
                features.append(x)
        return features


class ExtraBlock(nn.Sequential):
    """1x1 conv + ReLU6, then a stride-2 3x3 "same" conv + ReLU6 (keys ``0.*`` and ``2.*``)."""

    def __init__(self, inp: int, mid: int, out: int) -> None:
        super().__init__(nn.Conv2d(inp, mid, 1), nn.ReLU6(), Conv2dSame(mid, out, 3, 2), nn.ReLU6())


class PredictionHead(nn.Module):
    """1x1 class and box convs; outputs (N, H*W*anchors, C) and (N, H*W*anchors, 4)."""

    def __init__(self, in_channels: int, num_classes: int, num_anchors: int) -> None:
        super().__init__()
        self.classification = nn.Conv2d(in_channels, num_classes * num_anchors, kernel_size=1)
        self.regression = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        conf = self.classification(x).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes)
        loc = self.regression(x).permute(0, 2, 3, 1).reshape(n, -1, 4)
        return conf, loc


class SSDMobileNetV1(nn.Module):
    """SSD-MobileNet-v1; ``forward(images)`` -> (loc, conf) raw head outputs."""

    def __init__(self, num_classes: int = 91) -> None:
        super().__init__()
        self.backbone = MobileNetV1Base()
        self.extras = nn.ModuleList([ExtraBlock(*cfg) for cfg in _EXTRAS])
        self.predictors = nn.ModuleList([PredictionHead(c, num_classes, a) for c, a in _HEADS])
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        x = features[-1]
        for block in self.extras:
            x = block(x)
            features.append(x)
        confs, locs = zip(*(head(f) for f, head in zip(features, self.predictors)))
        return torch.cat(locs, dim=1), torch.cat(confs, dim=1)


@register_model("MLCommonsSSDMobileNet")
def ssd_mobilenet_v1(*, num_classes: int = 91) -> SSDMobileNetV1:
    """A randomly initialised SSD-MobileNet-v1."""
    return SSDMobileNetV1(num_classes=num_classes)
