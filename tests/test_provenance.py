"""Provenance inside the binary: ONNX ``metadata_props`` written by the build, read fail-closed everywhere.

Tiny ONNX models made with ``onnx.helper`` (the real format) stand in for built binaries; the real
build's binaries are checked in test_consumer_fetch.py and by ``verify`` in test_client_verify.py.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import furiosa.artifacts as fa
from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.errors import ProvenanceWarning, SyntheticWeightsWarning, UnknownProvenanceWarning
from furiosa.artifacts.model import Model
from furiosa.artifacts.provenance import PREFIX, metadata_props, params_digest, read_provenance, stamp, weights_kind

DIGITS_PROPS = {"name": "DigitsConvNet", "version": "v1.0", "precision": "int8", "weights": "train",
                "weights_sha256": "ab" * 32, "fp32_md5": "cd" * 16, "params_sha256": "ef" * 32}


def tiny_onnx(path: Path, *, extra_props: dict | None = None) -> Path:
    """A valid one-node ONNX model (Identity) with optional foreign metadata_props."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (extra_props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def test_stamp_then_read_round_trips_and_keeps_foreign_props(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx", extra_props={"producer.note": "kept", PREFIX + "weights": "official"})
    stamp(path, DIGITS_PROPS)
    prov = read_provenance(path)
    assert prov.kind == "train" and prov.known and not prov.synthetic
    assert prov.get("name") == "DigitsConvNet" and prov.get("fp32_md5") == "cd" * 16
    # onnx itself reads the same keys; the foreign one survives, our old one was replaced, not duplicated
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["producer.note"] == "kept" and props[PREFIX + "weights"] == "train"
    assert [p.key for p in onnx.load(str(path)).metadata_props].count(PREFIX + "weights") == 1
    assert metadata_props(path.read_bytes()) == props
    onnx.checker.check_model(str(path), full_check=True)


@pytest.mark.parametrize("bad", [{"weights": "random"}, {"weights": "train", "colour": "red"}])
def test_stamp_refuses_unknown_kinds_and_keys(tmp_path, bad):
    with pytest.raises(ValueError):
        stamp(tiny_onnx(tmp_path / "m.onnx"), bad)


def test_missing_unreadable_or_unknown_provenance_reads_as_unknown(tmp_path):
    bare = read_provenance(tiny_onnx(tmp_path / "bare.onnx"))
    assert bare.kind == "unknown" and not bare.known and "no furiosa.artifacts provenance" in bare.error
    odd = read_provenance(tiny_onnx(tmp_path / "odd.onnx", extra_props={PREFIX + "weights": "official-ish"}))
    assert odd.kind == "unknown" and "official-ish" in odd.error
    for garbage in (b"", b"\xff" * 64, b"not an onnx file at all"):
        assert read_provenance(garbage).kind == "unknown"
    assert read_provenance(tmp_path / "absent.onnx").kind == "unknown"
    truncated = (tmp_path / "bare.onnx").read_bytes()[:-3]
    assert read_provenance(truncated).kind == "unknown"


def test_metrics_can_only_make_a_binary_look_worse(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    stamp(path, DIGITS_PROPS)
    assert weights_kind(path, metrics={"weights": {"source": "synthetic"}}).kind == "synthetic"
    assert weights_kind(path, metrics={"weights": {"source": "train"}}).kind == "train"
    bare = tiny_onnx(tmp_path / "bare.onnx")
    assert weights_kind(bare, metrics={"weights": {"source": "official"}}).kind == "unknown"


def test_params_digest_is_order_independent_and_sensitive():
    assert params_digest({"a": 1, "b": [1, 2]}) == params_digest({"b": [1, 2], "a": 1})
    assert params_digest({"a": 1}) != params_digest({"a": 2})


def test_model_object_is_deployable_only_when_the_binary_proves_real_weights(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    unknown = Model(name="X", family="f", version="v1", description=None, source=path.read_bytes(), precision="int8")
    assert unknown.weights == "unknown" and not unknown.deployable and not unknown.synthetic
    assert "unknown weights" in repr(unknown)
    stamp(path, {**DIGITS_PROPS, "weights": "synthetic"})
    synthetic = Model(name="X", family="f", version="v1", description=None, source=path.read_bytes(),
                      precision="int8")
    assert synthetic.synthetic and not synthetic.deployable and synthetic.weights == "synthetic"
    stamp(path, DIGITS_PROPS)
    real = Model(name="X", family="f", version="v1", description=None, source=path.read_bytes(), precision="int8")
    assert real.deployable and real.weights == "train" and "weights" not in repr(real)


def _catalog(tmp_path: Path, binary: Path) -> Path:
    """A catalog (DigitsConvNet's entry) whose int8 binary is ``binary`` and that has no metrics.json."""
    root = tmp_path / "catalog"
    root.mkdir()
    for rel in ("artifacts.yaml", "params.yaml"):
        shutil.copy(REPO_ROOT / rel, root / rel)
    (root / "models" / "DigitsConvNet").mkdir(parents=True)
    shutil.copy(binary, root / "models" / "DigitsConvNet" / "int8.onnx")
    return root


@pytest.mark.parametrize("kind, warning", [(None, UnknownProvenanceWarning), ("synthetic", SyntheticWeightsWarning),
                                           ("train", None)])
def test_load_warns_unless_the_binary_proves_real_weights(tmp_path, kind, warning):
    path = tiny_onnx(tmp_path / "m.onnx")
    if kind:
        stamp(path, {**DIGITS_PROPS, "weights": kind})
    root = _catalog(tmp_path, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = fa.load("digits-convnet", root=root)
    ours = [w for w in caught if issubclass(w.category, ProvenanceWarning)]
    if warning is None:
        assert ours == [] and model.deployable
    else:
        assert [w.category for w in ours] == [warning] and not model.deployable
        assert ours[0].filename == __file__  # attributed to the caller's line, not to our internals
    assert model.weights == (kind or "unknown")


def test_list_and_show_report_unknown_provenance_never_as_real(tmp_path):
    root = _catalog(tmp_path, tiny_onnx(tmp_path / "m.onnx"))
    rows = json.loads(run_cli(["list", "--json", "--root", str(root)], check=True).stdout)
    digits = next(r for r in rows if r["name"] == "DigitsConvNet")
    assert digits["weights"] == "unknown" and digits["int8"] is True
    table = run_cli(["list", "digits-conv", "--root", str(root)], check=True).stdout
    assert table.splitlines()[1].split()[-1] == "UNKNOWN"
    shown = run_cli(["show", "digits-conv", "--json", "--root", str(root)])
    facts = json.loads(shown.stdout)
    assert facts["provenance"]["weights"] == "unknown" and "provenance UNKNOWN" in shown.stderr
