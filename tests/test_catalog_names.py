"""Names a user types: unique parts, DVC artifact names, ambiguity, "did you mean"; and ``--version``.

Names used here stay unambiguous when more models join the catalog (``digits`` alone would not once a
second Digits model exists): ``resnet50``, ``ssd-resnet34``, ``ssd-mobile``, ``digits-conv``.
"""

from __future__ import annotations

import pytest

from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.catalog.entries import find_entry, lookup, read_entries
from furiosa.artifacts.errors import ModelNotFoundError

ENTRIES = read_entries(REPO_ROOT, validate=False)


@pytest.mark.parametrize("typed, name, precision", [
    ("MLCommonsResNet50", "MLCommonsResNet50", None),
    ("mlcommons_resnet50", "MLCommonsResNet50", None),
    ("resnet50", "MLCommonsResNet50", None),
    ("ResNet-50", "MLCommonsResNet50", None),
    ("ssd-resnet34", "MLCommonsSSDResNet34", None),
    ("ssd-mobile", "MLCommonsSSDMobileNet", None),
    ("digits-conv", "DigitsConvNet", None),
    ("mlcommons-resnet50-fp32", "MLCommonsResNet50", "fp32"),
    ("digits-convnet-fp32", "DigitsConvNet", "fp32"),
    ("MLCommonsResNet50_INT8", "MLCommonsResNet50_INT8", None),
])
def test_names_resolve(typed, name, precision):
    entry, fixed = lookup(ENTRIES, typed)
    assert (entry.name, fixed) == (name, precision)
    assert find_entry(ENTRIES, typed).name == name


def test_an_ambiguous_part_lists_the_candidates():
    with pytest.raises(ModelNotFoundError) as info:
        lookup(ENTRIES, "resnet")
    message = str(info.value)
    assert "ambiguous" in message and "MLCommonsResNet50" in message and "MLCommonsSSDResNet34" in message


@pytest.mark.parametrize("typo, meant", [("resnt50", "MLCommonsResNet50"), ("efficinetnet", "EfficientNetV2_S"),
                                         ("MLComonsSSDMobileNet", "MLCommonsSSDMobileNet")])
def test_typos_get_did_you_mean(typo, meant):
    with pytest.raises(ModelNotFoundError) as info:
        lookup(ENTRIES, typo)
    assert f"did you mean {meant}" in str(info.value)


def test_nothing_close_lists_the_known_names():
    with pytest.raises(ModelNotFoundError) as info:
        lookup(ENTRIES, "yolov8")
    assert "did you mean" not in str(info.value) and "known names:" in str(info.value)


def test_cli_show_and_verify_take_the_same_names_and_explain_misses():
    proc = run_cli(["show", "resnt50"])
    assert proc.returncode == 1 and "did you mean MLCommonsResNet50" in proc.stderr
    proc = run_cli(["show", "resnet", "--json"])
    assert proc.returncode == 1 and "ambiguous" in proc.stdout


def test_version_names_the_package_and_its_catalog():
    proc = run_cli(["--version"], check=True)
    assert proc.stdout.startswith("furiosa-artifacts ") and "catalog:" in proc.stdout
