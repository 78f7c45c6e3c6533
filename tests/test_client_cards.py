"""Model cards (docs/models/<name>.md + .png): content, determinism, and `docs --check` staleness.

Cards are generated from the workspace's build, so staleness is tested on a copy: generate, mutate a
metric or a param, see `docs --check` flag the card, regenerate, see it clean.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO_ROOT, copy_repo, run_cli
from furiosa.artifacts.docs import stale_docs
from furiosa.artifacts.facts import card_relpath
from furiosa.artifacts.loader import is_synthetic
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.render.markdown import render_card
from furiosa.artifacts.render.plot import PLOT_DPI, PLOT_SIZE, render_plot
from furiosa.artifacts.storage.lockfile import read_outputs

pytestmark = pytest.mark.slow  # needs the built binaries (the README's main command)

DIGITS_FILES = [f"models/DigitsConvNet/{f}" for f in ("fp32.onnx", "int8.onnx", "metrics.json")]


@pytest.fixture()
def digits_copy(tmp_path: Path) -> Path:
    for rel in [*DIGITS_FILES, "dvc.lock"]:
        if not (REPO_ROOT / rel).is_file():
            pytest.fail(f"{rel} is not built: run the README's main command first")
    return copy_repo(tmp_path / "repo", extra=DIGITS_FILES)


def test_card_has_the_provenance_chain_and_flags_synthetic():
    card = render_card(REPO_ROOT, "MLCommonsResNet50")
    assert card == render_card(REPO_ROOT, "mlcommons-resnet50")  # deterministic, loose name
    assert str(REPO_ROOT) not in card
    lock = read_outputs(REPO_ROOT)
    sha256 = load_params(REPO_ROOT / "params.yaml").model("MLCommonsResNet50").source["sha256"]
    chain = [sha256, lock["models/MLCommonsResNet50/fp32.onnx"].md5, lock["models/MLCommonsResNet50/int8.onnx"].md5]
    positions = [card.index(digest) for digest in chain]
    assert positions == sorted(positions)
    if is_synthetic(REPO_ROOT, "MLCommonsResNet50"):
        assert "**SYNTHETIC WEIGHTS" in card and "not for deployment" in card and "**not used by this build**" in card
    assert "| input | `input` | float32 | [N, 3, 224, 224] (NCHW) |" in card
    assert "center crop 224x224" in card and "## Int8 vs fp32 agreement" in card
    assert "| int8_vs_fp32_top1_agreement |" in card
    # published accuracy, accuracy measured here and agreement are three separate sections
    assert card.index("## Published accuracy") < card.index("## Accuracy measured here") < card.index(
        "## Int8 vs fp32 agreement")
    assert "76.014%" in card and "MLPerf Inference reference" in card
    assert "license: see the publication/source" in card
    assert "![fp32 vs int8 latency and size of MLCommonsResNet50](MLCommonsResNet50.png)" in card
    digits = render_card(REPO_ROOT, "DigitsConvNet")
    assert "SYNTHETIC" not in digits and "| pass |" in digits
    measured = digits[digits.index("## Accuracy measured here"):digits.index("## Int8 vs fp32 agreement")]
    metrics = json.loads((REPO_ROOT / "models/DigitsConvNet/metrics.json").read_text())
    assert f"On {metrics['accuracy']['count']} images of the imagenet dataset `data/DigitsConvNet/heldout`" in measured
    assert f"| fp32 | {metrics['fp32_top1']:.4f} | {metrics['fp32_top5']:.4f} |" in measured
    assert f"| int8 | {metrics['int8_top1']:.4f} |" in measured
    assert "trained inside the pipeline" in digits


def test_plot_is_a_deterministic_png_without_metadata():
    png = render_plot(REPO_ROOT, "MLCommonsSSDMobileNet")
    assert png is not None and png == render_plot(REPO_ROOT, "MLCommonsSSDMobileNet")
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"matplotlib" not in png
    image = Image.open(io.BytesIO(png))
    assert image.size == (int(PLOT_SIZE[0] * PLOT_DPI), int(PLOT_SIZE[1] * PLOT_DPI))


def test_unbuilt_model_gets_a_card_without_build_results(digits_copy):
    card = render_card(digits_copy, "EfficientNetV2_S")
    assert "Not built in this workspace" in card and "SYNTHETIC" not in card
    assert "model.safetensors" in card and "58906b9a6161ef085fe6305455bf488faa94f21a" in card
    assert "sha256 `b8a4b5462df66612e3c0e63781f73f7890ccdac8bcd950b4fc0ba0c0f29bda1f`" in card
    assert "published by timm" in card
    assert render_plot(digits_copy, "EfficientNetV2_S") is None


def test_docs_check_flags_a_card_whose_metrics_or_params_changed(digits_copy):
    shutil.rmtree(digits_copy / "docs" / "models", ignore_errors=True)  # `docs` creates the directory
    first = run_cli(["docs", "--root", str(digits_copy)])
    assert first.returncode == 0 and f"updated {digits_copy / card_relpath('DigitsConvNet', 'png')}" in first.stdout
    assert run_cli(["docs", "--check", "--root", str(digits_copy)]).returncode == 0
    assert not (digits_copy / card_relpath("MLCommonsResNet50", "png")).exists()  # not built in the copy

    metrics_path = digits_copy / "models/DigitsConvNet/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["int8_latency_ms"] *= 2
    metrics_path.write_text(json.dumps(metrics))
    proc = run_cli(["docs", "--check", "--root", str(digits_copy)])
    assert proc.returncode == 1
    assert sorted(proc.stdout.splitlines()) == [
        f"{digits_copy / card_relpath('DigitsConvNet')}: stale generated content: run `furiosa-artifacts docs`",
        f"{digits_copy / card_relpath('DigitsConvNet', 'png')}: stale generated content: run `furiosa-artifacts docs`",
    ]
    assert run_cli(["docs", "--root", str(digits_copy)]).returncode == 0
    assert run_cli(["docs", "--check", "--root", str(digits_copy)]).returncode == 0

    params = digits_copy / "params.yaml"
    params.write_text(params.read_text().replace("quantization: {method: MinMax, per_channel: true, activation_type: "
                                                 "QUInt8, weight_type: QInt8, quant_format: QDQ}\n    evaluation: "
                                                 "{data: imagenet, path: data/DigitsConvNet/heldout",
                                                 "quantization: {method: MinMax, per_channel: false, activation_type: "
                                                 "QUInt8, weight_type: QInt8, quant_format: QDQ}\n    evaluation: "
                                                 "{data: imagenet, path: data/DigitsConvNet/heldout", 1))
    assert stale_docs(digits_copy) == [digits_copy / card_relpath("DigitsConvNet")]
    assert run_cli(["docs", "--root", str(digits_copy)]).returncode == 0
    assert ", per channel" not in (digits_copy / card_relpath("DigitsConvNet")).read_text()
    assert stale_docs(digits_copy) == []
