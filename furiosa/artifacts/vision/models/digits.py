"""DigitsConvNet: a small CNN for scikit-learn's bundled 8x8 handwritten digits.

It is the catalog's one model trained inside the pipeline, so the whole chain (train, export,
calibrate, quantize, evaluate) runs offline with real accuracy numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from furiosa.artifacts.vision.models import register_model


class DigitsConvNet(nn.Module):
    """conv3x3(16) -> ReLU -> conv3x3(32) -> ReLU -> maxpool2 -> fc(128) -> ReLU -> fc(classes)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 8, 8) in [0, 1]
        return self.classifier(self.features(x))


@register_model("DigitsConvNet")
def digits_convnet(*, num_classes: int = 10) -> DigitsConvNet:
    """DigitsConvNet with ``num_classes`` outputs (randomly initialised)."""
    return DigitsConvNet(num_classes=num_classes)
