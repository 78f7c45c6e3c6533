"""Code-format entry points (furiosa-registry ``format: code``): one function per catalog name.

The registry imports this module from a copy of the catalog repository, calls the function
named like the entry and then sets ``name``, ``description`` and ``version`` from the catalog.
Keep it importable without torch.
"""

from __future__ import annotations

from furiosa.artifacts.loader import load_from_repo
from furiosa.artifacts.model import Model


def MLCommonsResNet50(*, precision: str = "int8") -> Model:
    """MLPerf ResNet50-v1.5, ImageNet classifier (224x224)."""
    return load_from_repo("MLCommonsResNet50", precision=precision)


def EfficientNetV2_S(*, precision: str = "int8") -> Model:
    """EfficientNetV2-S (timm tf_efficientnetv2_s), ImageNet classifier (384x384)."""
    return load_from_repo("EfficientNetV2_S", precision=precision)


def MLCommonsSSDResNet34(*, precision: str = "int8") -> Model:
    """MLPerf SSD-ResNet34, COCO detector (1200x1200, 81 classes)."""
    return load_from_repo("MLCommonsSSDResNet34", precision=precision)


def MLCommonsSSDMobileNet(*, precision: str = "int8") -> Model:
    """MLPerf SSD-MobileNet-v1, COCO detector (300x300, 91 classes)."""
    return load_from_repo("MLCommonsSSDMobileNet", precision=precision)


def DigitsConvNet(*, precision: str = "int8") -> Model:
    """DigitsConvNet, 8x8 handwritten digit classifier trained in the pipeline (scikit-learn digits)."""
    return load_from_repo("DigitsConvNet", precision=precision)


def DigitsSSD(*, precision: str = "int8") -> Model:
    """DigitsSSD, a small SSD detector for digits (64x64) trained in the pipeline on a generated COCO dataset."""
    return load_from_repo("DigitsSSD", precision=precision)
