"""ResNet50-v1.5: the torchvision ``resnet50`` architecture (stride 2 in the 3x3 conv of each bottleneck)."""

from __future__ import annotations

import torchvision

from furiosa.artifacts.vision.models import register_model


@register_model("MLCommonsResNet50")
def resnet50(*, num_classes: int = 1000) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet50 (keys match ``resnet50-19c8e357.pth``)."""
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)
