"""Every catalog model end to end through our client: image -> preprocess -> ONNX Runtime -> postprocess.

Uses the binaries the main job built (`furiosa-artifacts build`); the four seed models are built from
synthetic weights there, so these tests check shapes, types, coordinates and label sets, not accuracy
(the trained DigitsConvNet's accuracy is checked for real).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import REPO_ROOT
from furiosa.artifacts.catalog.entries import find_entry, read_entries
from furiosa.artifacts.layout import binary_relpath
from furiosa.artifacts.loader import load_from_repo
from furiosa.artifacts.vision.labels import label_set
from furiosa.artifacts.vision.postprocess import Classification, Detection

pytestmark = pytest.mark.slow  # real DVC/git/LFS/S3/venv or built binaries: the full suite's tier

CODE_ENTRIES = [e.name for e in read_entries(REPO_ROOT) if e.format == "code"]
TRAINED = ("DigitsConvNet", "DigitsSSD")  # trained inside the pipeline, real weights even offline


def scene(width: int = 500, height: int = 375) -> Image.Image:
    """A drawn test picture: sky, ground, a red box and a blue disc."""
    image = Image.new("RGB", (width, height), (135, 180, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height * 2 // 3, width, height], fill=(90, 140, 60))
    draw.rectangle([60, 120, 220, 300], fill=(200, 30, 30))
    draw.ellipse([300, 80, 440, 220], fill=(30, 60, 200))
    return image


@pytest.fixture(scope="module", params=CODE_ENTRIES)
def model(request):
    path = REPO_ROOT / binary_relpath(request.param, "int8")
    if not path.is_file():
        pytest.fail(f"{path} is not built: run the README's main command first")
    return load_from_repo(request.param)


def test_model_object_carries_catalog_facts_and_bytes(model):
    entry = find_entry(read_entries(REPO_ROOT), model.name)
    assert (model.name, model.family, model.version) == (entry.name, entry.family, entry.version)
    assert model.model == model.source == (REPO_ROOT / binary_relpath(model.name, "int8")).read_bytes()
    assert model.inputs[0].name == model.spec.input.name
    assert model.inputs[0].shape[1:] == tuple(model.spec.input.shape)
    assert [o.name for o in model.outputs] == list(model.spec.output_names)
    assert model.synthetic == (model.name not in TRAINED)  # the offline build marks the seed models
    assert "synthetic" in repr(model) if model.synthetic else "synthetic" not in repr(model)


def test_run_returns_well_formed_results(model):
    images = [scene(), np.asarray(scene(320, 480)), scene().convert("L")]
    results = model.run(images, batch_size=2)
    assert len(results) == 3
    if model.spec.task == "classification":
        names = label_set(model.spec.labels).names
        for top in results:
            assert 1 <= len(top) <= 5 and all(isinstance(c, Classification) for c in top)
            scores = [c.score for c in top]
            assert scores == sorted(scores, reverse=True) and 0 <= sum(scores) <= 1.0 + 1e-5
            assert all(names[c.label_id] == c.label for c in top)
    else:
        labels = label_set(model.spec.labels)
        names = dict(zip(labels.category_ids, labels.names))
        for dets in results:  # boxes are in original pixels, unclipped as in the MLPerf reference
            cap = model.spec.postprocess.max_detections
            assert cap is None or len(dets) <= cap
            for d in dets:
                assert isinstance(d, Detection)
                x1, y1, x2, y2 = d.box
                assert np.isfinite(d.box).all() and x1 <= x2 and y1 <= y2
                assert 1 <= d.category_id <= max(labels.category_ids) and names[d.category_id] == d.category_name
                assert d.score > model.spec.postprocess.score_threshold


def test_fp32_and_int8_agree_on_the_input_contract():
    fp32 = load_from_repo("MLCommonsResNet50", precision="fp32")
    int8 = load_from_repo("MLCommonsResNet50")
    assert fp32.precision == "fp32" and len(fp32.source) > 3 * len(int8.source)
    assert fp32.inputs == int8.inputs


def test_trained_digits_model_reads_a_drawn_digit():
    digits = load_from_repo("DigitsConvNet")
    image = Image.new("L", (64, 64), 0)  # light ink on a dark ground, as the training data
    ImageDraw.Draw(image).line([(32, 8), (32, 56)], fill=255, width=9)  # a "1"
    top = digits.run(image)[0]
    assert top[0].label in ("1", "7", "4")  # a vertical stroke; 8x8 digits make 1/7/4 close


def test_alias_and_loose_names_resolve():
    entries = read_entries(REPO_ROOT)
    assert find_entry(entries, "MLCommonsSSDMobilenet").name == "MLCommonsSSDMobileNet"
    assert find_entry(entries, "mlcommons-ssd-resnet34").name == "MLCommonsSSDResNet34"
    with pytest.raises(LookupError, match="known names"):
        find_entry(entries, "ResNet152")


def test_library_list_and_load():
    import furiosa.artifacts as fa

    assert fa.list_models("*ssd*") == ["MLCommonsSSDResNet34", "MLCommonsSSDMobileNet", "DigitsSSD"]
    assert fa.list_models("*SSD-ResNet34") == ["MLCommonsSSDResNet34"]
    assert fa.list_models(task="classification") == ["MLCommonsResNet50", "EfficientNetV2_S", "DigitsConvNet"]
    assert fa.list_models("nothing*") == []
    model = fa.load("mlcommons_ssd_mobilenet", precision="fp32")
    assert model.name == "MLCommonsSSDMobileNet" and model.precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        fa.load("DigitsConvNet", precision="int4")
