"""Faithful replicas of the published weight files, generated in the test session (never committed).

``REPLICAS`` maps a catalog model name to a builder that writes the replica under the given directory, with
the published file's name, and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def _ssd_resnet34(directory: Path) -> Path:
    from replicas.ssd_r34_onnx import build

    return build(directory)


def _ssd_mobilenet(directory: Path) -> Path:
    from replicas.ssd_mobilenet_tf import build

    return build(directory)


REPLICAS: dict[str, Callable[[Path], Path]] = {
    "MLCommonsSSDResNet34": _ssd_resnet34,  # resnet34-ssd1200.onnx (MLPerf, zenodo 3228411)
    "MLCommonsSSDMobileNet": _ssd_mobilenet,  # ssd_mobilenet_v1_coco_2018_01_28.tar.gz (TF OD API)
}
