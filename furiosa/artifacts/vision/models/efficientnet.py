"""EfficientNetV2-S: timm ``tf_efficientnetv2_s`` (TF "same" padding; ``exportable=True`` for ONNX)."""

from __future__ import annotations

import timm
import torch

from furiosa.artifacts.vision.models import register_model


@register_model("EfficientNetV2_S")
def tf_efficientnetv2_s(*, num_classes: int = 1000) -> torch.nn.Module:
    """A randomly initialised timm tf_efficientnetv2_s (keys match ``tf_efficientnetv2_s-eb54923e.pth``)."""
    return timm.create_model("tf_efficientnetv2_s", pretrained=False, exportable=True, num_classes=num_classes)
