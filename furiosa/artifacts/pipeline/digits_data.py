"""The trained digits model's splits as ImageNet-style folders (its calibration and evaluation datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np

from furiosa.artifacts.pipeline.params import Params


def digits_data_stage(params: Params, name: str, *, out: Path) -> Dict[str, Any]:
    """Write ``out/train`` and ``out/heldout``: PNGs + MLPerf-style val_map.txt of the digits split.

    8-bit grey images (sklearn's 0..16 ink levels scaled to 0..255, so the model's preprocessing, luma / 255,
    gives back the training values to within 1/510) and labels 0..9.
    """
    from furiosa.artifacts.accuracy.datasets import write_imagenet_folder
    from furiosa.artifacts.build.digits_split import digits_split

    train = params.model(name).source.get("train") or {}
    split = digits_split(seed=params.seed, test_fraction=float(train["test_fraction"]))
    counts = {}
    for part, (x, y) in {"train": (split.x_train, split.y_train), "heldout": (split.x_test, split.y_test)}.items():
        pixels = np.round(np.asarray(x)[:, 0] * 255.0).astype(np.uint8)
        write_imagenet_folder(Path(out) / part, pixels, [int(v) for v in y], prefix=f"digit_{part}")
        counts[part] = int(len(y))
    return counts
