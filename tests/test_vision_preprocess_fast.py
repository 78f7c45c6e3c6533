"""Batch preprocessing: threads change nothing (bit-identical), and ``fast=True`` stays within its stated deviation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from furiosa.artifacts.vision.preprocess import preprocess, preprocess_image
from furiosa.artifacts.vision.specs import list_specs, load_spec

# fast=True's largest deviation from the exact path, in 0..255 pixel units (docs/performance.md measures it on
# the 48 sample crops: up to 42 for Pillow-backend classifiers at edges, < 1 for the cv2-backend SSDs)
FAST_MAX = {"pil": 64.0, "cv2": 1.0}
FAST_MEAN = 3.0


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    """scikit-learn's two bundled photographs (427x640 JPEGs), as files at a few sizes."""
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for i, image in enumerate(load_sample_images().images):
        for j, size in enumerate([(640, 427), (800, 534), (333, 500)]):
            path = root / f"photo_{i}_{j}.jpg"
            Image.fromarray(image).resize(size).save(path, quality=90)
            paths.append(path)
    return paths


def _pixels(x: np.ndarray, spec) -> np.ndarray:
    """Normalised tensors back to 0..255 pixel units."""
    std = np.asarray(spec.preprocess.std, np.float32).reshape(-1, 1, 1)
    return x * std * spec.preprocess.scale


@pytest.mark.parametrize("name", list_specs())
def test_threads_are_bit_identical_to_one_image_at_a_time(name, photos):
    spec = load_spec(name)
    threaded, contexts = preprocess(photos, spec, threads=3)
    single, single_contexts = preprocess(photos, spec, threads=1)
    np.testing.assert_array_equal(threaded, single)
    assert contexts == single_contexts
    with Image.open(photos[1]) as image:
        one, context = preprocess_image(image.convert("RGB"), spec)
    np.testing.assert_array_equal(one, threaded[1])
    assert context == contexts[1]


@pytest.mark.parametrize("name", [n for n in list_specs() if load_spec(n).preprocess.color == "RGB"])
def test_fast_path_deviation_is_bounded(name, photos):
    spec = load_spec(name)
    exact, contexts = preprocess(photos, spec, threads=1)
    fast, fast_contexts = preprocess(photos, spec, threads=2, fast=True)
    deviation = np.abs(_pixels(fast - exact, spec))
    assert deviation.max() <= FAST_MAX[spec.preprocess.resize.backend]
    assert deviation.mean() <= FAST_MEAN
    assert deviation.max() > 0  # the fast path really is another path
    if spec.task == "detection":  # boxes map back to the same original pixels
        assert fast_contexts == contexts
