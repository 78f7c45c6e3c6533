"""Real-format weight files -> our networks: replicas of MLPerf's resnet34-ssd1200.onnx and the TF OD API
ssd_mobilenet_v1_coco frozen graph (tests/replicas), converted, loaded strict, raw heads compared with the file's
own graph (ONNX Runtime on the cut graph; a numpy execution of the TF graph)."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from replicas import REPLICAS, Replica
from replicas.ssd_mobilenet_tf import HEAD_OUTPUTS, MEMBER, build_graph, run_heads

from furiosa.artifacts.errors import BuildError
from furiosa.artifacts.vision.convert_onnx import cut_at_heads, state_dict_from_onnx
from furiosa.artifacts.vision.convert_tf import read_frozen_graph, state_dict_from_frozen_graph
from furiosa.artifacts.vision.models import create_model
from furiosa.artifacts.vision.tf_proto import array_to_tensor, messages, tensor_to_array

R34, MOBILENET = "MLCommonsSSDResNet34", "MLCommonsSSDMobileNet"


@pytest.fixture(scope="session")
def replica_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("replicas")


@pytest.fixture(scope="session")
def r34(replica_dir) -> Replica:
    replica = REPLICAS[R34](replica_dir, seed=0)
    assert replica.path.name == "resnet34-ssd1200.onnx" and replica.member is None
    return replica


@pytest.fixture(scope="session")
def r34_onnx(r34) -> Path:
    return r34.path


@pytest.fixture(scope="session")
def mobilenet(replica_dir) -> Replica:
    replica = REPLICAS[MOBILENET](replica_dir, seed=0)
    assert replica.path.name == "ssd_mobilenet_v1_coco_2018_01_28.tar.gz" and replica.member == MEMBER
    assert len(replica.expected) == 24 + 13  # predictor kernels and biases, depthwise kernels
    return replica


@pytest.fixture(scope="session")
def mobilenet_tar(mobilenet) -> Path:
    return mobilenet.path


@pytest.fixture(scope="session")
def mobilenet_pb(replica_dir) -> Path:
    return build_graph(replica_dir / "pb")


def _network(name: str, state: dict) -> torch.nn.Module:
    network = create_model(name)
    network.load_state_dict(state, strict=True)
    return network.eval()


# ------------------------------------------------------------------------------------------ SSD-ResNet34 ONNX


@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
def test_r34_replica_has_the_published_layout(r34_onnx):
    model = onnx.load(str(r34_onnx))
    assert [i.name for i in model.graph.input] == ["image"]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 1200, 1200]
    assert [o.name for o in model.graph.output] == ["bboxes", "labels", "scores"]
    assert model.opset_import[0].version == 11
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["NonMaxSuppression"] == 1 and ops["Softmax"] == 1 and ops["Exp"] == 1 and ops["TopK"] == 1
    names = [i.name for i in model.graph.initializer]
    assert len(names) == 218 and sum(n.endswith("num_batches_tracked") for n in names) == 29
    assert all(node.name.startswith(f"{node.op_type}_") for node in model.graph.node)


@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
def test_r34_replica_converts_and_reproduces_its_raw_heads(r34, r34_onnx):
    state = state_dict_from_onnx(r34_onnx, R34)
    reference = r34.expected  # the state dict of the seeded MLPerf SSD_R34 the replica was exported from
    assert list(state) == list(create_model(R34).state_dict())
    assert set(state) == set(reference) and all(torch.equal(state[k], reference[k]) for k in reference)
    network = _network(R34, state)

    cut, heads = cut_at_heads(onnx.load(str(r34_onnx)), R34)
    assert heads.roles == ("loc.{}", "conf.{}")
    assert not {"NonMaxSuppression", "Softmax", "TopK", "Exp"} & {n.op_type for n in cut.graph.node}
    image = np.random.default_rng(0).standard_normal((1, 3, 1200, 1200)).astype(np.float32)
    session = ort.InferenceSession(cut.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(heads.outputs(), {"image": image})
    loc = np.concatenate([o.reshape(1, 4, -1) for o in outputs[:6]], 2).transpose(0, 2, 1)
    conf = np.concatenate([o.reshape(1, 81, -1) for o in outputs[6:]], 2).transpose(0, 2, 1)
    with torch.no_grad():
        ours_loc, ours_conf = network(torch.from_numpy(image))
    assert loc.shape == (1, 15130, 4) and conf.shape == (1, 15130, 81)
    # float32 through 36 convs at 1200x1200, oneDNN vs MLAS accumulation order: ~1e-5 typical, 1e-4 at worst
    np.testing.assert_allclose(ours_loc.numpy(), loc, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ours_conf.numpy(), conf, atol=1e-4, rtol=1e-4)
    assert np.abs(conf).max() > 1.0  # the comparison is not between near-zero tensors


@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
def test_r34_replica_without_names_maps_by_structure(r34, r34_onnx, tmp_path):
    """Initializers renamed to numbers: the heads are aligned by role (the reference interleaves loc/conf
    convs, our network does not), the rest by consumption order. Initializers listed as graph inputs as well."""
    model = onnx.load(str(r34_onnx))
    renamed = {init.name: str(9000 + i) for i, init in enumerate(model.graph.initializer)}
    for init in model.graph.initializer:
        init.name = renamed[init.name]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    # and, as exporters before torch 1.3 wrote them, every initializer listed as a graph input too
    model.graph.input.extend(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
                             for init in model.graph.initializer)
    onnx.save(model, str(tmp_path / "numbered.onnx"))
    cut, _ = cut_at_heads(model, R34)
    assert [i.name for i in cut.graph.input] == ["image"]
    state = state_dict_from_onnx(tmp_path / "numbered.onnx", R34)
    reference = r34.expected
    assert all(torch.equal(state[k], reference[k]) for k in reference if not k.endswith("num_batches_tracked"))


def test_graph_without_matching_heads_is_refused(tmp_path):
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((8, 3, 1, 1), np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 8, -1], np.int64), "s")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Reshape", ["c", "s"], ["r"]),
             helper.make_node("Concat", ["r", "r"], ["y"], axis=2)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              initializer=[weight, shape])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    with pytest.raises(BuildError, match=r"other\.onnx.*not cut at its raw heads.*head convs"):
        state_dict_from_onnx(tmp_path / "other.onnx", MOBILENET)


# ----------------------------------------------------------------------------------- SSD-MobileNet frozen graph


def test_mobilenet_tarball_has_the_published_layout(mobilenet_tar):
    assert mobilenet_tar.name == "ssd_mobilenet_v1_coco_2018_01_28.tar.gz"
    with tarfile.open(mobilenet_tar) as archive:
        assert MEMBER in archive.getnames()
    graph = read_frozen_graph(mobilenet_tar)
    ops = {node.name: node.op for node in graph.node}
    assert ops["FeatureExtractor/MobilenetV1/Conv2d_1_depthwise/depthwise_weights"] == "Const"
    assert ops["FeatureExtractor/MobilenetV1/Conv2d_1_depthwise/depthwise_weights/read"] == "Identity"
    assert ops["FeatureExtractor/MobilenetV1/Conv2d_13_pointwise_2_Conv2d_5_3x3_s2_128/BatchNorm/moving_variance"] \
        == "Const"
    assert ops["FeatureExtractor/MobilenetV1/MobilenetV1/Conv2d_0/BatchNorm/batchnorm/mul_1"] == "Mul"
    assert ops["BoxPredictor_5/ClassPredictor/biases"] == "Const"


def test_mobilenet_frozen_graph_converts_and_matches_the_graph_executed(mobilenet, mobilenet_tar, mobilenet_pb):
    state = state_dict_from_frozen_graph(mobilenet_tar, MOBILENET)
    from_pb = state_dict_from_frozen_graph(mobilenet_pb, MOBILENET)
    assert list(state) == list(create_model(MOBILENET).state_dict())
    assert all(torch.equal(state[k], from_pb[k]) for k in state)
    assert all(torch.equal(state[k], v) for k, v in mobilenet.expected.items())
    network = _network(MOBILENET, state)

    image = np.random.default_rng(1).integers(0, 256, (1, 300, 300, 3), dtype=np.uint8)
    heads = run_heads(mobilenet_pb.read_bytes(), image)  # TF ops (unfused batch norm, SAME padding) in numpy
    loc = np.concatenate([heads[n].reshape(1, -1, 4) for n in HEAD_OUTPUTS[:6]], 1)
    conf = np.concatenate([heads[n].reshape(1, -1, 91) for n in HEAD_OUTPUTS[6:]], 1)
    x = torch.from_numpy((image.astype(np.float32) * np.float32(2 / 255) - 1).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        ours_loc, ours_conf = network(x)
    assert loc.shape == (1, 1917, 4) and conf.shape == (1, 1917, 91)
    assert np.abs(conf).max() > 1.0  # the comparison is not between near-zero tensors
    np.testing.assert_allclose(ours_loc.numpy(), loc, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours_conf.numpy(), conf, atol=1e-4, rtol=0)


def _edited(pb: Path, out: Path, edit) -> Path:
    graph = messages()["GraphDef"].FromString(pb.read_bytes())
    edit(graph)
    out.write_bytes(graph.SerializeToString())
    return out


def test_mobilenet_batch_norm_epsilon_is_read_from_the_graph(mobilenet_pb, tmp_path):
    def set_eps(graph):
        for node in graph.node:
            if node.name.endswith("/BatchNorm/batchnorm/add/y"):
                node.attr["value"].tensor.CopyFrom(array_to_tensor(np.float32(0.25)))

    state = state_dict_from_frozen_graph(_edited(mobilenet_pb, tmp_path / "eps.pb", set_eps), MOBILENET)
    graph = messages()["GraphDef"].FromString(mobilenet_pb.read_bytes())
    consts = {n.name: tensor_to_array(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}
    scope = "FeatureExtractor/MobilenetV1/Conv2d_3_depthwise/BatchNorm"
    expected = consts[f"{scope}/gamma"] / np.sqrt(consts[f"{scope}/moving_variance"].astype(np.float64) + 0.25)
    np.testing.assert_allclose(state["backbone.3.depthwise/BatchNorm.scale"].numpy(), expected, rtol=1e-6)


def test_mobilenet_graph_missing_a_layer_or_mis_shaped_is_refused(mobilenet_pb, tmp_path):
    def dropping(prefix):
        def drop(graph):
            keep = [n for n in graph.node if not n.name.startswith(prefix)]
            del graph.node[:]
            graph.node.extend(keep)
        return drop

    dropped = _edited(mobilenet_pb, tmp_path / "drop.pb", dropping("BoxPredictor_5/ClassPredictor/"))
    with pytest.raises(BuildError, match=r"drop\.pb: 2 of .* not found in the graph.*predictors\.5\.classification"):
        state_dict_from_frozen_graph(dropped, MOBILENET)
    dropped = _edited(mobilenet_pb, tmp_path / "drop_w.pb", dropping("BoxPredictor_5/ClassPredictor/weights"))
    with pytest.raises(BuildError, match=r"ClassPredictor .*no weights.*predictors\.5\.classification\.weight"):
        state_dict_from_frozen_graph(dropped, MOBILENET)

    def reshape_kernel(graph):
        for node in graph.node:
            if node.name == "FeatureExtractor/MobilenetV1/Conv2d_2_pointwise/weights":
                node.attr["value"].tensor.CopyFrom(array_to_tensor(np.zeros((1, 1, 64, 100), np.float32)))

    with pytest.raises(BuildError, match=r"Conv2d_2_pointwise/weights has shape \(100, 64, 1, 1\)"):
        state_dict_from_frozen_graph(_edited(mobilenet_pb, tmp_path / "shape.pb", reshape_kernel), MOBILENET)


def test_not_a_frozen_graph_is_refused(tmp_path):
    (tmp_path / "junk.pb").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(BuildError, match=r"junk\.pb"):
        state_dict_from_frozen_graph(tmp_path / "junk.pb", MOBILENET)
    with pytest.raises(BuildError, match="not found"):
        state_dict_from_frozen_graph(tmp_path / "missing.pb", MOBILENET)
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("model/saved_model.pb")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(BuildError, match="frozen_inference_graph.pb"):
        state_dict_from_frozen_graph(tmp_path / "other.tar.gz", MOBILENET)


def test_mobilenet_graph_with_batch_norm_already_folded_to_constants(mobilenet_pb, tmp_path):
    """A graph optimised after freezing keeps ``batchnorm/mul`` and ``batchnorm/sub`` as constants (what MLPerf's
    convert_tf_weights reads) and drops gamma/beta/moving_*: the same weights come out."""
    graph = messages()["GraphDef"].FromString(mobilenet_pb.read_bytes())
    consts = {n.name: tensor_to_array(n.attr["value"].tensor).astype(np.float64) for n in graph.node if n.op == "Const"}
    folded = messages()["GraphDef"]()
    for node in graph.node:
        if "/BatchNorm/" in node.name and not node.name.endswith(("batchnorm/mul", "batchnorm/sub", "batchnorm/mul_1",
                                                                  "batchnorm/add_1")):
            continue  # the variables and the ops computing mul/sub from them
        if node.name.endswith(("batchnorm/mul", "batchnorm/sub")):
            var_scope = node.name.split("/BatchNorm/")[0].replace("MobilenetV1/MobilenetV1/", "MobilenetV1/")
            bn = {p: consts[f"{var_scope}/BatchNorm/{p}"] for p in ("gamma", "beta", "moving_mean", "moving_variance")}
            mul = bn["gamma"] / np.sqrt(bn["moving_variance"] + 0.001)
            value = mul if node.name.endswith("mul") else bn["beta"] - bn["moving_mean"] * mul
            folded.node.add(name=node.name, op="Const").attr["value"].tensor.CopyFrom(array_to_tensor(value))
            continue
        folded.node.add().CopyFrom(node)
    (tmp_path / "folded.pb").write_bytes(folded.SerializeToString())
    assert not any(n.name.endswith("/moving_variance") for n in folded.node)
    expected = state_dict_from_frozen_graph(mobilenet_pb, MOBILENET)
    state = state_dict_from_frozen_graph(tmp_path / "folded.pb", MOBILENET)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=1e-6, atol=1e-7)
