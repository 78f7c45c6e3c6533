"""PyTorch network code for the catalog models (the only vision package that imports torch).

``create_model(name)`` builds a randomly initialised network by catalog name; its state-dict keys match
the official weights (torchvision, timm, MLPerf reference modules) so ``load_state_dict`` takes them as is.
Classifiers return logits (N, num_classes); detectors return the raw heads ``(loc, conf)`` named by
``specs.yaml`` ``output_names``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from furiosa.artifacts.errors import ModelNotFoundError
from furiosa.artifacts.vision.specs import load_spec


def _resnet50(num_classes: int) -> torch.nn.Module:
    from furiosa.artifacts.vision.models.resnet import resnet50

    return resnet50(num_classes=num_classes)


def _efficientnetv2_s(num_classes: int) -> torch.nn.Module:
    from furiosa.artifacts.vision.models.efficientnet import tf_efficientnetv2_s

    return tf_efficientnetv2_s(num_classes=num_classes)


def _ssd_resnet34(num_classes: int) -> torch.nn.Module:
    from furiosa.artifacts.vision.models.mlcommons.ssd_resnet34 import ssd_resnet34

    return ssd_resnet34(num_classes=num_classes)


def _ssd_mobilenet(num_classes: int) -> torch.nn.Module:
    from furiosa.artifacts.vision.models.mlcommons.ssd_mobilenet import ssd_mobilenet_v1

    return ssd_mobilenet_v1(num_classes=num_classes)


def _digits(num_classes: int) -> torch.nn.Module:
    from furiosa.artifacts.vision.models.digits import DigitsConvNet

    return DigitsConvNet(num_classes=num_classes)


def _digits_ssd(num_classes: int) -> torch.nn.Module:
    from furiosa.artifacts.vision.anchors import anchors_per_location
    from furiosa.artifacts.vision.models.digits_ssd import DigitsSSD

    spec = load_spec("DigitsSSD")
    return DigitsSSD(num_classes=num_classes, in_channels=spec.input.channels,
                     boxes_per_location=anchors_per_location(spec.postprocess.anchors))


_BUILDERS: dict[str, Callable[[int], torch.nn.Module]] = {
    "MLCommonsResNet50": _resnet50,
    "EfficientNetV2_S": _efficientnetv2_s,
    "MLCommonsSSDResNet34": _ssd_resnet34,
    "MLCommonsSSDMobileNet": _ssd_mobilenet,
    "DigitsConvNet": _digits,
    "DigitsSSD": _digits_ssd,
}


def list_models() -> list[str]:
    """Catalog names that ``create_model`` can build."""
    return list(_BUILDERS)


def create_model(name: str, *, num_classes: Optional[int] = None) -> torch.nn.Module:
    """A randomly initialised network for catalog model ``name``, in eval mode.

    ``num_classes`` defaults to the spec's. Raises ModelNotFoundError for an unknown name (listing the
    known ones), SpecError if specs.yaml is invalid.
    """
    if name not in _BUILDERS:
        raise ModelNotFoundError(f"no network for {name!r}; known: {', '.join(_BUILDERS)}")
    classes = load_spec(name).num_classes if num_classes is None else num_classes
    return _BUILDERS[name](classes).eval()
