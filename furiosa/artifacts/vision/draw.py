"""Drawing results onto images (``furiosa-artifacts predict --out``): boxes and labels, and a warning banner.

Pillow only (no torch, no ONNX Runtime). The results are what :mod:`furiosa.artifacts.vision.postprocess`
returns: ``Classification`` (``label``, ``score``) or ``Detection`` (``box`` in image pixels,
``category_id``, ``category_name``, ``score``).
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["PALETTE", "annotate", "box_color", "mark_provenance"]

# box colours of detections, by COCO category id (tab10, then a few more distinct ones)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (255, 215, 0), (0, 128, 128))
MIN_DRAW_SIDE = 256  # images smaller than this are scaled up (nearest) before drawing, so labels stay legible
WARNING_BANNER = (200, 0, 0)  # red


def box_color(category_id: int) -> tuple:
    """The RGB colour detections of ``category_id`` are drawn in."""
    return PALETTE[category_id % len(PALETTE)]


def annotate(image: str, results: Sequence[Any], task: str) -> Any:
    """The image (EXIF-oriented RGB, scaled up when tiny) with boxes and labels drawn, as a PIL image.

    Boxes are clipped to the image; the best detection is drawn last, so it is on top.
    """
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    with Image.open(image) as raw:
        canvas = ImageOps.exif_transpose(raw).convert("RGB")
    scale = max(1, -(-MIN_DRAW_SIDE // max(canvas.size)))
    if scale > 1:
        canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.Resampling.NEAREST)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    width, height = canvas.size
    line = max(2, round(min(width, height) / 200))

    def label(x: float, y: float, text: str, color: tuple) -> None:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 4, bottom - top + 4
        x = min(max(0, x), max(0, width - w))
        y = y - h if y - h >= 0 else min(y, max(0, height - h))
        draw.rectangle((x, y, x + w, y + h), fill=color)
        draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)

    if task == "classification":
        for rank, r in enumerate(results):
            label(0, rank * 16 + 16, f"{rank + 1}. {r.label} {r.score:.2f}", (0, 0, 0))
        return canvas
    for det in reversed(results):
        x1, y1, x2, y2 = (v * scale for v in det.box)
        x1, x2 = max(0.0, min(x1, width - 1.0)), max(0.0, min(x2, width - 1.0))
        y1, y2 = max(0.0, min(y1, height - 1.0)), max(0.0, min(y2, height - 1.0))
        if x2 <= x1 or y2 <= y1:
            continue  # entirely outside the image
        color = box_color(det.category_id)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        label(x1, y1, f"{det.category_name} {det.score:.2f}", color)
    return canvas


def mark_provenance(canvas: Any, kind: str) -> Any:
    """Draw a red banner across the bottom of ``canvas`` saying the weights are ``kind`` (synthetic/unknown)."""
    from PIL import ImageDraw, ImageFont

    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    text = ("SYNTHETIC WEIGHTS: meaningless predictions" if kind == "synthetic"
            else f"{kind.upper()} PROVENANCE: not proven real weights")
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    height = bottom - top + 6
    draw.rectangle((0, canvas.height - height, canvas.width, canvas.height), fill=WARNING_BANNER)
    draw.text((3 - left, canvas.height - height + 3 - top), text, fill=(255, 255, 255), font=font)
    return canvas
