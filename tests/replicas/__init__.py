"""Faithful replicas of the official weight files, built in the test session from the real formats.

``REPLICAS`` maps a catalog name to a builder ``build(dest_dir, *, seed=0) -> Replica`` that writes a file in the
official file's real format under its real file name (``Replica.path.name``) and returns what it holds. Builders
never use our own export path: they follow the published layouts (see each module). Other readers' replicas
(SSD-ResNet34 ONNX, SSD-MobileNet TF tarball) register here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional


@dataclass
class Replica:
    """A replica file and what our network should read from it."""

    model: str
    path: Path  # written under the official file's real name
    member: Optional[str] = None  # the weights file inside an archive (params.yaml source.member)
    expected: Dict[str, Any] = field(default_factory=dict)  # our-network state dict the file holds (may be empty)
    notes: Dict[str, Any] = field(default_factory=dict)


Builder = Callable[..., Replica]


def _registry() -> Dict[str, Builder]:
    from replicas import ssd_mobilenet_tf, ssd_r34_onnx

    return {
        "MLCommonsSSDResNet34": ssd_r34_onnx.build,
        "MLCommonsSSDMobileNet": ssd_mobilenet_tf.build,
    }


REPLICAS: Dict[str, Builder] = _registry()
