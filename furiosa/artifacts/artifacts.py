"""Code-format entry points (furiosa-registry ``format: code``): one function per catalog name.

GENERATED from artifacts.yaml by `furiosa-artifacts generate`: edit the catalog, not this file
(`furiosa-artifacts lint` reports drift). The registry imports this module from a copy of the catalog
repository, calls the function named like the entry and then sets ``name``, ``description`` and
``version`` from the catalog. Keep it importable without torch.
"""

from __future__ import annotations

from furiosa.artifacts.loader import load_from_repo
from furiosa.artifacts.model import Model


def MLCommonsResNet50(*, precision: str = "int8") -> Model:
    """ResNet50-v1.5 image classifier (ImageNet-1k, 224x224), the MLPerf Inference reference model, with
    torchvision preprocessing and top-k postprocessing.
    """
    return load_from_repo("MLCommonsResNet50", precision=precision)


def EfficientNetV2_S(*, precision: str = "int8") -> Model:
    """EfficientNetV2-S image classifier (ImageNet-1k, 384x384), timm tf_efficientnetv2_s.in1k (export-friendly
    TF SAME padding), with bicubic resize and top-k postprocessing.
    """
    return load_from_repo("EfficientNetV2_S", precision=precision)


def MLCommonsSSDResNet34(*, precision: str = "int8") -> Model:
    """SSD object detector with a ResNet34 backbone at 1200x1200 (COCO, 81 classes), the MLPerf Inference
    reference "SSD-Large", with anchor decoding and per-class NMS in numpy.
    """
    return load_from_repo("MLCommonsSSDResNet34", precision=precision)


def MLCommonsSSDMobileNet(*, precision: str = "int8") -> Model:
    """SSD object detector with a MobileNet-v1 backbone at 300x300 (COCO, 91 classes), the MLPerf Inference
    reference "SSD-Small", with TF-style anchor decoding and per-class NMS in numpy.
    """
    return load_from_repo("MLCommonsSSDMobileNet", precision=precision)


def DigitsConvNet(*, precision: str = "int8") -> Model:
    """Small CNN for 8x8 handwritten digits (scikit-learn's bundled copy of the UCI digits), trained inside the
    pipeline so the whole chain runs offline with real accuracy numbers.
    """
    return load_from_repo("DigitsConvNet", precision=precision)


def DigitsSSD(*, precision: str = "int8") -> Model:
    """Small single-shot detector (64x64 grayscale, 10 digit classes) trained inside the pipeline on a generated
    COCO-format dataset of scikit-learn's digits on textured grounds; SSD anchors, box coder and NMS in numpy,
    scored with pycocotools.
    """
    return load_from_repo("DigitsSSD", precision=precision)
