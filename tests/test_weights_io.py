"""Weights in their real formats: the legacy-tar ResNet50 file at full size, timm's Hub safetensors, format
detection from the bytes, and hostile pickles that must run nothing.

The replicas come from ``tests/replicas`` (built in the test session from the real formats, never committed):
the ResNet50 file keeps the real header fixture's ``sys_info``/``pickle``/``tensors`` members byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from furiosa.artifacts.cli import main as cli_main

torch = pytest.importorskip("torch")

from replicas import REPLICAS  # noqa: E402
from replicas import resnet50_legacy_tar as legacy  # noqa: E402
from replicas.peak import CONVERT_PEAK_SCRIPT  # noqa: E402

from furiosa.artifacts.errors import BuildError, UnsafeWeightsError, WeightsFormatError  # noqa: E402
from furiosa.artifacts.vision.models import create_model  # noqa: E402
from furiosa.artifacts.vision.specs import load_spec  # noqa: E402
from furiosa.artifacts.weights_io import convert_weights, detect_format  # noqa: E402
from furiosa.artifacts.weights_io.legacy_tar import read_legacy_tar  # noqa: E402

pytestmark = pytest.mark.skipif(not legacy.HEAD.is_file(), reason=f"needs the real header fixture {legacy.HEAD}")


@pytest.fixture(scope="module")
def resnet_replica(tmp_path_factory):
    return REPLICAS["MLCommonsResNet50"](tmp_path_factory.mktemp("resnet50"), seed=0)


@pytest.fixture(scope="module")
def effnet_replica(tmp_path_factory):
    return REPLICAS["EfficientNetV2_S"](tmp_path_factory.mktemp("effnet"), seed=0)


def run_cli(args, capsys):
    """The real CLI entry point, in process: (exit code, stdout, stderr)."""
    code = cli_main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def resnet_converted(resnet_replica):
    return convert_weights(resnet_replica.path, "MLCommonsResNet50")


def _logits(name: str, state: dict) -> torch.Tensor:
    network = create_model(name)
    network.load_state_dict(state, strict=True)
    x = torch.randn(1, *load_spec(name).input.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return network.eval()(x)


def test_resnet50_replica_is_the_real_layout_at_full_size(resnet_replica):
    head = legacy.HEAD.read_bytes()
    data = resnet_replica.path.read_bytes()
    storages = legacy.members(head)["storages"]
    assert len(data) == legacy.REAL_SIZE == 102502400 and len(data) % 10240 == 0
    assert data[:storages.offset_data] == head[:storages.offset_data]  # sys_info, pickle, tensors, headers verbatim
    # every storage record header the real head shows sits at the same offset with the same bytes
    records = legacy.real_storage_prefix(head)
    assert len(records) >= 4
    for key, count, start in records:
        at = storages.offset_data + start
        header = legacy._storage_header(key) + struct.pack("<q", count)
        assert data[at:at + len(header)] == head[at:at + len(header)] == header
    with tarfile.open(resnet_replica.path) as tar:
        assert [(m.name, m.size) for m in tar.getmembers()] == [
            ("sys_info", 116), ("pickle", 16456), ("tensors", 20989), ("storages", 102454237)]


def test_weights_only_torch_load_refuses_the_legacy_tar(resnet_replica):
    with pytest.raises(Exception, match="legacy .tar format"):
        torch.load(resnet_replica.path, map_location="cpu", weights_only=True)


def test_legacy_tar_converts_strict_and_gives_the_same_logits(resnet_replica, resnet_converted):
    state, report = resnet_converted
    assert report.format == "torch_legacy_tar" and report.tensors_in_file == 267 and report.keys_mapped == 267
    assert len(report.keys_filled) == 53 and all(k.endswith("num_batches_tracked") for k in report.keys_filled)
    assert report.size == 102502400 and len(report.sha256) == 64
    for key, value in resnet_replica.expected.items():
        assert torch.equal(state[key], value), key
    expected = {**create_model("MLCommonsResNet50").state_dict(), **resnet_replica.expected}
    ours, theirs = _logits("MLCommonsResNet50", state), _logits("MLCommonsResNet50", expected)
    assert ours.shape == (1, 1000) and torch.isfinite(ours).all() and ours.std() > 0
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


def _legacy_tar(path: Path, members: dict) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _real_member(name: str) -> bytes:
    head = legacy.HEAD.read_bytes()
    info = legacy.members(head)[name]
    return head[info.offset_data:info.offset_data + info.size]


def _empty_storages_and_tensors() -> dict:
    return {"sys_info": _real_member("sys_info"), "storages": pickle.dumps(0, 2) + pickle.dumps([], 2),
            "tensors": pickle.dumps(0, 2)}


def test_malicious_pickle_member_is_refused_without_running(tmp_path: Path, capsys):
    marker = tmp_path / "pwned"
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # GLOBAL os.system, then REDUCE
    path = _legacy_tar(tmp_path / "evil.pth", {**_empty_storages_and_tensors(), "pickle": evil})
    assert detect_format(path) == "torch_legacy_tar"
    with pytest.raises(UnsafeWeightsError, match=r"os\.system"):
        read_legacy_tar(path)
    with pytest.raises(UnsafeWeightsError):
        convert_weights(path, "MLCommonsResNet50")
    assert not marker.exists(), "the pickle's code ran"
    code, _out, err = run_cli(["convert", "MLCommonsResNet50", str(path), "--out", str(tmp_path / "w.pt")], capsys)
    assert code == 1 and "os.system" in err and not (tmp_path / "w.pt").exists()
    assert not marker.exists()


def test_real_pickle_with_a_swapped_global_is_refused(tmp_path: Path):
    """The real file's own pickle member, with its Parameter global replaced by builtins.eval."""
    real = _real_member("pickle")
    evil = real.replace(b"ctorch.nn.parameter\nParameter\n", b"cbuiltins\neval\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n")
    assert evil != real
    path = _legacy_tar(tmp_path / "evil.pth", {**_empty_storages_and_tensors(), "pickle": evil})
    with pytest.raises(UnsafeWeightsError):
        read_legacy_tar(path)


def test_storage_header_naming_code_is_refused(tmp_path: Path):
    marker = tmp_path / "pwned"
    header = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    members = {**_empty_storages_and_tensors(), "storages": pickle.dumps(1, 2) + header, "pickle": b"}."}
    with pytest.raises(UnsafeWeightsError, match=r"os\.system"):
        read_legacy_tar(_legacy_tar(tmp_path / "evil.pth", members))
    assert not marker.exists()


def test_tensor_reaching_past_its_storage_is_refused(tmp_path: Path):
    storages = (pickle.dumps(1, 2) + b"\x80\x02K\x01X\x03\x00\x00\x00cpuq\x00ctorch\nFloatStorage\nq\x01\x87q\x02."
                + struct.pack("<q", 4) + b"\0" * 16 + pickle.dumps([], 2))
    tensors = (pickle.dumps(1, 2) + b"\x80\x02K\x02K\x01ctorch\nFloatTensor\nq\x00\x87q\x01."
               + struct.pack("<ii", 1, 0) + struct.pack("<qqq", 8, 1, 0))
    members = {"sys_info": _real_member("sys_info"), "storages": storages, "tensors": tensors, "pickle": b"}."}
    with pytest.raises(WeightsFormatError, match="reaches element 7 of a storage of 4"):
        read_legacy_tar(_legacy_tar(tmp_path / "bad.pth", members))


def test_truncated_legacy_tar_is_a_clear_error():
    with pytest.raises(WeightsFormatError, match="resnet50-19c8e357.head.pth"):
        read_legacy_tar(legacy.HEAD)


def test_timm_hub_safetensors_converts_strict_and_gives_the_same_logits(effnet_replica):
    from safetensors import safe_open

    with safe_open(str(effnet_replica.path), "pt") as f:
        keys = set(f.keys())
        assert f.metadata() == {"format": "pt"}
    assert {"conv_stem.weight", "bn1.running_var", "blocks.0.0.conv.weight", "classifier.bias"} <= keys
    state, report = convert_weights(effnet_replica.path, "EfficientNetV2_S")
    assert report.format == "safetensors" and report.tensors_in_file == len(keys) and not report.keys_filled
    import timm

    reference = timm.create_model("tf_efficientnetv2_s", pretrained=False)  # timm's own loader path
    reference.load_state_dict(effnet_replica.expected, strict=True)
    x = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(2))  # any size: fully convolutional
    network = create_model("EfficientNetV2_S")
    network.load_state_dict(state, strict=True)
    with torch.no_grad():
        ours, theirs = network.eval()(x), reference.eval()(x)
    assert torch.isfinite(ours).all() and torch.allclose(ours, theirs, atol=1e-4, rtol=0)


def test_safetensors_without_batchnorm_counters_loads(tmp_path: Path):
    replica = REPLICAS["EfficientNetV2_S"](tmp_path, seed=3, drop_counters=True)
    state, report = convert_weights(replica.path, "EfficientNetV2_S")
    assert report.keys_filled and all(k.endswith("num_batches_tracked") for k in report.keys_filled)
    assert torch.equal(state["conv_stem.weight"], replica.expected["conv_stem.weight"])


def test_format_comes_from_the_bytes_not_the_name(tmp_path: Path, effnet_replica):
    disguised = tmp_path / "weights.pth"
    disguised.write_bytes(effnet_replica.path.read_bytes())
    assert detect_format(disguised) == "safetensors"
    zipped = tmp_path / "model.safetensors"
    torch.save(create_model("DigitsConvNet").state_dict(), zipped)
    assert detect_format(zipped) == "torch_zip"
    state, report = convert_weights(zipped, "DigitsConvNet")
    assert report.format == "torch_zip" and not report.keys_filled
    onnx_named = tmp_path / "resnet.onnx"
    onnx_named.write_bytes(b"\x00" * 600)
    with pytest.raises(WeightsFormatError, match="match no supported weights format"):
        detect_format(onnx_named)


def test_a_file_that_does_not_fit_the_network_names_the_keys(tmp_path: Path):
    path = tmp_path / "w.pt"
    torch.save(create_model("DigitsConvNet").state_dict(), path)
    with pytest.raises(BuildError, match="does not fit the MLCommonsResNet50 network"):
        convert_weights(path, "MLCommonsResNet50")


def test_bare_pickle_is_refused_unread(tmp_path: Path):
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(WeightsFormatError, match="bare Python pickle"):
        convert_weights(path, "DigitsConvNet")


def test_tar_gz_member_is_read_from_a_temporary_directory(tmp_path: Path):
    inner = tmp_path / "w.pt"
    torch.save(create_model("DigitsConvNet").state_dict(), inner)
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(inner, arcname="bundle/frozen.pt")
    with pytest.raises(WeightsFormatError, match="name the weights file inside it"):
        convert_weights(archive, "DigitsConvNet")
    state, report = convert_weights(archive, "DigitsConvNet", member="bundle/frozen.pt")
    assert report.format == "tar_gz:torch_zip" and report.member == "bundle/frozen.pt"
    assert sorted(os.listdir(tmp_path)) == ["bundle.tar.gz", "w.pt"]


def test_convert_cli_handles_the_legacy_tar(tmp_path: Path, resnet_replica, capsys):
    out = tmp_path / "out" / "weights.pt"
    code, stdout, err = run_cli(["convert", "MLCommonsResNet50", str(resnet_replica.path), "--out", str(out),
                                 "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["ok"] and report["format"] == "torch_legacy_tar" and report["keys_mapped"] == 267
    network = create_model("MLCommonsResNet50")
    network.load_state_dict(torch.load(out, map_location="cpu", weights_only=True), strict=True)
    assert torch.equal(network.state_dict()["fc.weight"], resnet_replica.expected["fc.weight"])


def test_convert_cli_text_output_and_exit_codes(tmp_path: Path, capsys):
    path, out = tmp_path / "w.pth", tmp_path / "out.pt"
    torch.save(create_model("DigitsConvNet").state_dict(), path)
    code, stdout, _err = run_cli(["convert", "DigitsConvNet", str(path), "--out", str(out)], capsys)
    assert code == 0 and "torch_zip" in stdout and "keys mapped" in stdout and f"wrote {out}" in stdout
    assert run_cli(["convert", "NoSuchModel", str(path), "--out", str(out)], capsys)[0] == 2
    assert run_cli(["convert", "DigitsConvNet", str(tmp_path / "missing.pth"), "--out", str(out)], capsys)[0] == 2
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 1000)
    code, stdout, _err = run_cli(["convert", "DigitsConvNet", str(junk), "--out", str(tmp_path / "j.pt"), "--json"],
                                 capsys)
    assert code == 1 and not json.loads(stdout)["ok"] and not (tmp_path / "j.pt").exists()
    with pytest.raises(SystemExit) as usage:
        cli_main(["convert", "DigitsConvNet", str(path)])  # --out is required
    assert usage.value.code == 2




@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
def test_legacy_tar_conversion_holds_the_tensors_once_plus_the_network(resnet_replica):
    """Storages stream from the tar into their tensors: the peak grows by about the file (the storages) plus
    the network's own copy, never by an extra copy of the file."""
    proc = subprocess.run([sys.executable, "-c", CONVERT_PEAK_SCRIPT, str(resnet_replica.path), "MLCommonsResNet50",
                           ""], capture_output=True, text=True, check=True)
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    base_kib, peak_kib = measured["base_kib"], measured["peak_kib"]
    grown = (int(peak_kib) - int(base_kib)) * 1024
    assert grown < 2.5 * resnet_replica.path.stat().st_size, (base_kib, peak_kib)
