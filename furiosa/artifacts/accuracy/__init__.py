"""Accuracy on standard validation sets, by MLPerf's rule: the code behind `furiosa-artifacts evaluate` and
the pipeline's evaluate stage.

* :func:`evaluate_imagenet`: an ImageNet-style folder (images + MLPerf ``val_map.txt``, ``file label`` per
  line) -> top-1 / top-5 per precision.
* :func:`evaluate_coco`: a COCO-style folder (images + ``instances_*.json``) -> mAP@[.5:.95] and mAP@.5 per
  precision, scored by the official COCO API (``pycocotools``, the ``eval`` extra).

Both run the catalog model end to end (our preprocessing, ONNX Runtime, our postprocessing) for every
precision on the same decoded images, and return an :class:`AccuracyReport`.
"""

from furiosa.artifacts.accuracy.coco import evaluate_coco
from furiosa.artifacts.accuracy.datasets import (AccuracyReport, read_image_list, read_val_map,
                                                 write_imagenet_folder)
from furiosa.artifacts.accuracy.imagenet import evaluate_imagenet

__all__ = ["AccuracyReport", "evaluate_coco", "evaluate_imagenet", "read_image_list", "read_val_map",
           "write_imagenet_folder"]
