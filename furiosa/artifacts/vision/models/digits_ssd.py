"""DigitsSSD: a small single-shot detector for the generated digits dataset (pipeline/digits_detection.py).

Trained inside the pipeline, it exercises the detection chain of the SSDs offline: the same anchor generator
(``default_boxes``), box coder, per-class NMS and specs.yaml entry as MLCommonsSSDResNet34. The network is
SSD in miniature: a strided conv backbone, two feature maps (strides 8 and 16), and per map a 3x3 conv head
for box offsets and one for class scores, flattened in the ``default_boxes`` order (box size, then row and
column) and concatenated over maps, as MLPerf's ``SSD_R34.bbox_view`` does.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from furiosa.artifacts.vision.models import register_model


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DigitsSSD(nn.Module):
    """conv backbone -> feature maps at strides 8 and 16 -> loc (N, A, 4) and conf (N, A, classes)."""

    def __init__(self, num_classes: int = 11, in_channels: int = 1,
                 boxes_per_location: Sequence[int] = (4, 4), channels: Tuple[int, ...] = (16, 32, 64, 96)):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.num_classes = num_classes
        self.boxes_per_location = tuple(boxes_per_location)
        self.stem = nn.Sequential(_conv(in_channels, c1, 2), _conv(c1, c1), _conv(c1, c2, 2), _conv(c2, c2))  # stride 4
        self.block1 = nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3))  # stride 8
        self.block2 = nn.Sequential(_conv(c3, c4, 2), _conv(c4, c4))  # stride 16
        self.loc = nn.ModuleList(nn.Conv2d(c, n * 4, 3, padding=1)
                                 for c, n in zip((c3, c4), self.boxes_per_location))
        self.conf = nn.ModuleList(nn.Conv2d(c, n * num_classes, 3, padding=1)
                                  for c, n in zip((c3, c4), self.boxes_per_location))

    @staticmethod
    def _flatten(x: torch.Tensor, n: int, width: int) -> torch.Tensor:
        # (N, n * width, H, W) -> (N, n * H * W, width): box size slowest, then row, column (default_boxes order)
        b, _, h, w = x.shape
        return x.view(b, n, width, h, w).permute(0, 1, 3, 4, 2).reshape(b, n * h * w, width)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # (N, 1, H, W)
        f1 = self.block1(self.stem(x))
        f2 = self.block2(f1)
        locs, confs = [], []
        for feature, loc, conf, n in zip((f1, f2), self.loc, self.conf, self.boxes_per_location):
            locs.append(self._flatten(loc(feature), n, 4))
            confs.append(self._flatten(conf(feature), n, self.num_classes))
        return torch.cat(locs, 1), torch.cat(confs, 1)


@register_model("DigitsSSD")
def digits_ssd(*, num_classes: int) -> DigitsSSD:
    """DigitsSSD with its spec's input channels and anchors per location (randomly initialised)."""
    from furiosa.artifacts.vision.anchors import anchors_per_location
    from furiosa.artifacts.vision.specs import load_spec

    spec = load_spec("DigitsSSD")
    return DigitsSSD(num_classes=num_classes, in_channels=spec.input.channels,
                     boxes_per_location=anchors_per_location(spec.postprocess.anchors))
