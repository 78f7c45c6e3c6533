"""Offline sample photos for calibration and int8-vs-fp32 evaluation.

scikit-learn ships two real photographs (``load_sample_images``: a temple in China and a flower,
public-domain/CC images). Seeded random crops and flips of them make a small, reproducible image
directory that needs no download. It is a stand-in for the MLPerf calibration lists (500 ImageNet /
COCO images): point ``calibration.data`` at your own directory for deployment-grade calibration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from furiosa.artifacts.atomic import atomic_path, atomic_write_text

MANIFEST = "manifest.json"


def write_samples(out: Path, *, count: int, size: Sequence[int], seed: int) -> List[Path]:
    """Write ``count`` JPEG crops of sklearn's sample photos into ``out``; returns their paths (sorted)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(img) for img in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths, entries = [], []
    for index in range(count):
        which = int(rng.integers(len(photos)))
        photo = photos[which]
        h, w = photo.shape[:2]
        area = rng.uniform(0.25, 1.0) * h * w
        aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        ch = int(min(h, round(np.sqrt(area / aspect))))
        cw = int(min(w, round(np.sqrt(area * aspect))))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = photo[top:top + ch, left:left + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        image = Image.fromarray(np.ascontiguousarray(crop)).resize((int(size[1]), int(size[0])), Image.BILINEAR)
        path = out / f"sample_{index:04d}.jpg"
        with atomic_path(path) as tmp:
            image.save(tmp, format="JPEG", quality=95)
        paths.append(path)
        entries.append({"file": path.name, "photo": which, "crop": [top, left, ch, cw]})
    manifest: Dict[str, Any] = {"source": "sklearn.datasets.load_sample_images", "seed": seed, "images": entries}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return paths


def sample_files(directory: Path) -> List[Path]:
    """The sample images of ``directory`` in their stable order."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
