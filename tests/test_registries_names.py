"""Catalog names <-> DVC artifact names, catalog versions -> GTO semver, and the docs' names table."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT
from furiosa.artifacts.catalog.entries import find_entry, lookup, normalize_name, read_entries
from furiosa.artifacts.errors import ModelNotFoundError
from furiosa.artifacts.registries.names import DVC_NAME_PATTERN, catalog_name, dvc_name, semver, words
from test_registries_support import CODE_MODELS, DOC, doc_blocks

ENTRIES = read_entries(REPO_ROOT, validate=False)
CODE = [e.name for e in ENTRIES if e.format == "code"]
EXPECTED = {
    "MLCommonsResNet50": "mlcommons-resnet50",
    "EfficientNetV2_S": "efficientnetv2-s",
    "MLCommonsSSDResNet34": "mlcommons-ssd-resnet34",
    "MLCommonsSSDMobileNet": "mlcommons-ssd-mobilenet",
    "DigitsConvNet": "digits-convnet",
    "DigitsSSD": "digits-ssd",
}


def test_the_catalog_models_have_the_documented_names():
    assert {n: dvc_name(n) for n in CODE} == EXPECTED
    assert {n: dvc_name(n, "fp32") for n in CODE} == {n: f"{v}-fp32" for n, v in EXPECTED.items()}


@pytest.mark.parametrize("name,want", [
    ("ViT_B16", "vit-b16"), ("YOLOv5s", "yolov5s"), ("ResNet50_INT8", "resnet50-int8"), ("SSDLite320", "ssdlite320"),
    ("RetinaNet", "retinanet"), ("Net2", "net2"),
])
def test_other_names_follow_the_same_rule(name, want):
    assert dvc_name(name) == want
    assert "".join(words(name)) == name.replace("_", "")  # words only drop separators


@pytest.mark.parametrize("name", CODE)
def test_dvc_names_satisfy_dvc_and_round_trip(name):
    for precision in ("int8", "fp32"):
        artifact = dvc_name(name, precision)
        assert DVC_NAME_PATTERN.match(artifact)
        assert catalog_name(artifact, CODE) == (name, precision)
    assert catalog_name(name, CODE) == (name, "int8")


@pytest.mark.parametrize("name", CODE)
def test_the_loose_catalog_lookup_accepts_dvc_names(name):
    assert normalize_name(dvc_name(name)) == normalize_name(name)
    assert find_entry(ENTRIES, dvc_name(name)).name == name
    # the fp32 suffix is undone by catalog_name, which the lookup tries too (it fixes the precision)
    assert find_entry(ENTRIES, dvc_name(name, "fp32")).name == name
    assert lookup(ENTRIES, dvc_name(name, "fp32")) == (find_entry(ENTRIES, name), "fp32")


def test_unknown_dvc_name_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError, match="mlcommons-resnet50-fp32"):
        catalog_name("resnet50", CODE)


def test_bad_precision_and_unmappable_names_raise():
    with pytest.raises(ValueError, match="precision"):
        dvc_name("DigitsConvNet", "fp16")
    with pytest.raises(ValueError, match="rename"):
        dvc_name("_")


@pytest.mark.parametrize("version,want", [
    ("v1.5", "v1.5.0"), ("v2.0", "v2.0.0"), ("v1.1", "v1.1.0"), ("v1.0", "v1.0.0"), ("v2", "v2.0.0"),
    ("1.5", "v1.5.0"), ("v1.5.1", "v1.5.1"), ("v1.5.1-rc1", "v1.5.1-rc1"),
])
def test_catalog_versions_map_to_semver(version, want):
    assert semver(version) == want


def test_malformed_version_raises():
    with pytest.raises(ValueError, match="vMAJOR.MINOR"):
        semver("latest")


def test_docs_names_table_matches_the_mapping():
    rows = re.findall(r"^\| `(\w+)` \| `([a-z0-9-]+)`, `([a-z0-9-]+)` \| (v[\d.]+) \| (v[\d.]+) \|$",
                      DOC.read_text("utf-8"), re.M)
    assert [(name, dvc_name(name), dvc_name(name, "fp32"), e["version"], semver(e["version"]))
            for name, e in ((e["name"], e) for e in CODE_MODELS)] == rows


def test_every_docs_command_block_is_run_by_a_test():
    text = DOC.read_text("utf-8")
    assert text.count("```sh") == len(doc_blocks())  # every sh block has a run marker
    ran = set()
    for path in REPO_ROOT.glob("tests/test_registries_*.py"):
        ran |= set(re.findall(r"run_block\(\"([\w.-]+)\"", path.read_text("utf-8")))
        ran |= set(re.findall(r"BLOCK = \"([\w.-]+)\"", path.read_text("utf-8")))
    assert set(doc_blocks()) <= ran
