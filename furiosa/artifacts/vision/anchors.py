"""SSD anchors in numpy, in the order the detection heads emit their predictions. No torch import.

* ``tf_ssd``: TF object detection ``create_ssd_anchors`` + ``MultipleGridAnchorGenerator`` as ported in
  MLPerf ``models/anchor_generator.py``: corners ``(y1, x1, y2, x2)``, normalised, not clipped; order
  feature map, then row, column, box spec (box spec fastest). Computed in float32 like the torch port.
* ``default_boxes``: MLPerf ``models/ssd_r34.py`` ``DefaultBoxes``: ``(cx, cy, w, h)`` normalised and clamped
  to [0, 1]; order feature map, then box size, row, column (spatial fastest). Computed in float64 and
  stored as float32 like the reference's ``torch.tensor`` of Python floats.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.vision.specs import AnchorSpec, DefaultBoxSpec, TfSsdAnchorSpec


def tf_ssd_box_specs(spec: TfSsdAnchorSpec) -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) pairs per layer, as ``create_ssd_anchors`` builds them."""
    n = len(spec.feature_maps)
    if n == 1:
        scales = [spec.min_scale, 1.0]
    else:
        scales = [spec.min_scale + (spec.max_scale - spec.min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    layers = []
    for layer, (scale, scale_next) in enumerate(zip(scales[:-1], scales[1:])):
        if layer == 0 and spec.reduce_boxes_in_lowest_layer:
            layers.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        box_specs = [(scale, ratio) for ratio in spec.aspect_ratios]
        if spec.interpolated_scale_aspect_ratio > 0.0:
            box_specs.append((float(np.sqrt(scale * scale_next)), spec.interpolated_scale_aspect_ratio))
        layers.append(box_specs)
    return layers


def _tf_ssd(spec: TfSsdAnchorSpec) -> np.ndarray:
    grids = []
    for (grid_h, grid_w), box_specs in zip(spec.feature_maps, tf_ssd_box_specs(spec)):
        scales = np.array([s for s, _ in box_specs], dtype=np.float32)
        ratios = np.sqrt(np.array([r for _, r in box_specs], dtype=np.float32))
        heights = scales / ratios * np.float32(1.0)
        widths = scales * ratios * np.float32(1.0)
        stride_y, stride_x = 1.0 / float(grid_h), 1.0 / float(grid_w)
        y_centers = np.arange(grid_h, dtype=np.float32) * np.float32(stride_y) + np.float32(0.5 * stride_y)
        x_centers = np.arange(grid_w, dtype=np.float32) * np.float32(stride_x) + np.float32(0.5 * stride_x)
        shape = (grid_h, grid_w, len(box_specs))
        cy = np.broadcast_to(y_centers[:, None, None], shape)
        cx = np.broadcast_to(x_centers[None, :, None], shape)
        h = np.broadcast_to(heights[None, None, :], shape)
        w = np.broadcast_to(widths[None, None, :], shape)
        half_h, half_w = np.float32(0.5) * h, np.float32(0.5) * w
        grids.append(np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1).reshape(-1, 4))
    return np.concatenate(grids).astype(np.float32)


def _default_boxes(spec: DefaultBoxSpec) -> np.ndarray:
    fig_h, fig_w = spec.image_size
    boxes = []
    for idx, (feat_h, feat_w) in enumerate(spec.feature_maps):
        fk_h = fig_h // spec.steps[idx]
        fk_w = fig_w // spec.steps[idx]
        sk1 = spec.scales[idx] / fig_w
        sk2 = spec.scales[idx + 1] / fig_h
        sk3 = math.sqrt(sk1 * sk2)
        sizes = [(sk1, sk1), (sk3, sk3)]
        for alpha in spec.aspect_ratios[idx]:
            w, h = sk1 * math.sqrt(alpha), sk1 / math.sqrt(alpha)
            sizes += [(w, h), (h, w)]
        for w, h in sizes:
            for i, j in itertools.product(range(feat_h), range(feat_w)):
                boxes.append(((j + 0.5) / fk_w, (i + 0.5) / fk_h, w, h))
    return np.clip(np.array(boxes, dtype=np.float64), 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _cached(spec: AnchorSpec) -> np.ndarray:
    anchors = _tf_ssd(spec) if isinstance(spec, TfSsdAnchorSpec) else _default_boxes(spec)
    if len(anchors) != spec.count:
        raise SpecError(f"anchors: {spec.kind} generates {len(anchors)} boxes but the spec says count {spec.count}")
    anchors.setflags(write=False)
    return anchors


def generate_anchors(spec: AnchorSpec) -> np.ndarray:
    """(A, 4) float32 anchors for ``spec`` (read-only, cached).

    Raises SpecError when the generated count differs from ``spec.count``.
    """
    return _cached(spec)


def anchors_per_location(spec: AnchorSpec) -> list[int]:
    """Boxes per feature-map cell, per layer (what each detection head must predict)."""
    if isinstance(spec, TfSsdAnchorSpec):
        return [len(layer) for layer in tf_ssd_box_specs(spec)]
    return [2 + 2 * len(ratios) for ratios in spec.aspect_ratios]
