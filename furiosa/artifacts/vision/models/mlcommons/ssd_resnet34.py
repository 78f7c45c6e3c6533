"""SSD-ResNet34 (1200x1200, COCO 81 classes, 15130 default boxes) as in MLPerf ``models/ssd_r34.py``.

Trunk (``models/base_model_r34.py`` ``ResNet34``): torchvision resnet34 children up to layer2 as
``model.layer1`` (conv1, bn1, relu, maxpool, layer1, layer2) and its layer3 as ``model.layer2`` with the first
block's conv1 and downsample at stride 1 (256 ch, 150x150 at 1200). Extras (1x1 conv + ReLU, 3x3 conv + ReLU):
256->256->512 s2, 512->256->512 s2, 512->128->256 s2, 256->128->256 s2 pad 0, 256->128->256 s1 pad 0 give
75, 38, 19, 9, 7. Heads: 3x3 convs, stride 3, padding 1 (the reference's ``strides[0]``/``strides[1]``),
giving 50, 25, 13, 7, 3, 3 with (4, 6, 6, 6, 4, 4) boxes per cell.

State-dict keys equal the reference module's (``model.layer1.0.weight``, ``model.layer2.0.0.conv1.weight``,
``additional_blocks.0.0.weight``, ``loc.0.weight``, ``conf.5.bias``). ``forward`` returns the raw heads
``loc`` (N, 15130, 4) as (tx, ty, tw, th) and ``conf`` (N, 15130, 81) logits: the reference's
``bbox_view`` layout (N, 4, A) / (N, 81, A) transposed, rows ordered like ``anchors.generate_anchors``
(layer, box size, row, column).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from furiosa.artifacts.vision.models import register_model

_EXTRAS = [  # (in, mid, out, stride, padding) of the 3x3 conv
    (256, 256, 512, 2, 1), (512, 256, 512, 2, 1), (512, 128, 256, 2, 1), (256, 128, 256, 2, 0),
    (256, 128, 256, 1, 0)]
_OUT_CHANNELS = [256, 512, 512, 256, 256, 256]
_NUM_DEFAULTS = [4, 6, 6, 6, 4, 4]
_HEAD_STRIDE = 3


class ResNet34Trunk(nn.Module):
    """torchvision resnet34 through layer3, with layer3 at stride 1."""

    def __init__(self) -> None:
        super().__init__()
        rn34 = torchvision.models.resnet34(weights=None)
        children = list(rn34.children())
        self.layer1 = nn.Sequential(*children[:6])
        self.layer2 = nn.Sequential(*children[6:7])
        for block in self.layer2[0]:
            block.conv1.stride = (1, 1)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.layer2(self.layer1(x))]


class SSDResNet34(nn.Module):
    """SSD-ResNet34; ``forward(images)`` -> (loc, conf) raw head outputs."""

    def __init__(self, num_classes: int = 81) -> None:
        super().__init__()
        self.label_num = num_classes
        self.model = ResNet34Trunk()
        self.additional_blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(i, mid, kernel_size=1), nn.ReLU(inplace=True),
                          nn.Conv2d(mid, o, kernel_size=3, padding=p, stride=s), nn.ReLU(inplace=True))
            for i, mid, o, s, p in _EXTRAS])
        self.loc = nn.ModuleList([nn.Conv2d(c, n * 4, kernel_size=3, padding=1, stride=_HEAD_STRIDE)
                                  for n, c in zip(_NUM_DEFAULTS, _OUT_CHANNELS)])
        self.conf = nn.ModuleList([nn.Conv2d(c, n * num_classes, kernel_size=3, padding=1, stride=_HEAD_STRIDE)
                                   for n, c in zip(_NUM_DEFAULTS, _OUT_CHANNELS)])
        for layer in [*self.additional_blocks, *self.loc, *self.conf]:  # as the reference's _init_weights
            for param in layer.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model(images)
        x = features[-1]
        for block in self.additional_blocks:
            x = block(x)
            features.append(x)
        n = images.shape[0]
        locs = [head(f).reshape(n, 4, -1) for f, head in zip(features, self.loc)]
        confs = [head(f).reshape(n, self.label_num, -1) for f, head in zip(features, self.conf)]
        return torch.cat(locs, 2).permute(0, 2, 1), torch.cat(confs, 2).permute(0, 2, 1)


@register_model("MLCommonsSSDResNet34")
def ssd_resnet34(*, num_classes: int = 81) -> SSDResNet34:
    """A randomly initialised SSD-ResNet34 for 1200x1200 inputs."""
    return SSDResNet34(num_classes=num_classes)
