"""ONNX graph I/O and ONNX Runtime sessions: the one reader and the one runner of the package.

:func:`read_model` is the safe loader (catalog binaries are single files: a tensor with external data is
refused), :func:`graph_io` lists a graph's inputs and outputs as :class:`TensorInfo` (one convention:
numpy dtype names, ``-1`` for a dynamic dimension), :func:`parameter_counts` counts its weights,
:func:`cpu_session` builds every ONNX Runtime session and :func:`run_batched` runs one in batches.

No torch here; onnx and onnxruntime are imported on first use (``ORT_ERRORS`` too), so importing this
module stays cheap for the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple, Union

from furiosa.artifacts.errors import ModelBinaryError, UnsafePathError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import onnx
    import onnxruntime as ort

__all__ = ["ORT_ERRORS", "TensorInfo", "cpu_session", "graph_io", "parameter_count", "parameter_counts",
           "read_model", "run_batched"]

Source = Union[Path, str, bytes]  # a file (path) or the model's bytes

#: What ONNX Runtime and its quantization tools raise for a bad model or argument (a tuple for ``except``);
#: built on first access by the module ``__getattr__`` below, which imports onnx and onnxruntime.
ORT_ERRORS: Tuple[type, ...]


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type and shape of a graph input/output.

    ``datatype`` is the numpy dtype name (``float32``, ``uint8``; ``undefined`` when the graph gives none);
    ``shape`` has ``-1`` for a dynamic dimension, whose ONNX ``dim_param`` name (``""`` when it has none) is
    kept in ``dim_params`` (not compared, not shown: see :meth:`symbolic_shape`).
    """

    name: str
    datatype: str
    shape: Tuple[int, ...]
    dim_params: Tuple[str, ...] = field(default=(), compare=False, repr=False)

    def symbolic_shape(self, unnamed: str = "?") -> Tuple[Union[int, str], ...]:
        """The shape with each dynamic dimension as its ``dim_param`` name, ``unnamed`` when it has none."""
        params = self.dim_params + ("",) * (len(self.shape) - len(self.dim_params))
        return tuple(dim if dim != -1 else (param or unnamed) for dim, param in zip(self.shape, params))


def read_model(source: Source, *, what: Optional[str] = None) -> "onnx.ModelProto":
    """The ModelProto in ``source`` (a file or its bytes), refusing tensors stored outside it.

    A session is built from bytes, so ONNX Runtime would resolve an external-data ``location`` (``.env``,
    ``../secrets``) against the caller's working directory and hand the file back as a tensor. Catalog
    binaries are single files: any tensor with external data (graph, subgraphs, node attributes) is refused.
    ``what`` names the model in messages (default: the path, or "the model").

    Raises:
        ModelBinaryError: ``source`` is not an ONNX model (re-fetch or rebuild it).
        UnsafePathError: a tensor names external data.
        OSError: the file cannot be read.
    """
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    if what is None:
        what = "the model" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ModelBinaryError(f"{what} is not a valid ONNX model ({type(exc).__name__}): re-fetch it with "
                               "`furiosa-artifacts pull` or rebuild it") from None
    for tensor in _get_all_tensors(proto):
        if uses_external_data(tensor) or len(tensor.external_data):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise UnsafePathError(f"{what}: tensor {tensor.name[:80]!r} keeps its data in the external file "
                                  f"{location[:200]!r}; catalog binaries must be self-contained (refused: it "
                                  "would be read relative to the current directory)")
    return proto


def _model(model_or_source: Any, what: Optional[str]) -> "onnx.ModelProto":
    if isinstance(model_or_source, (bytes, str, os.PathLike)):
        return read_model(model_or_source, what=what)
    return model_or_source


def _tensor_info(value: Any) -> TensorInfo:
    from onnx.helper import tensor_dtype_to_np_dtype

    tensor = value.type.tensor_type
    datatype = tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "undefined"
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    params = tuple("" if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim)
    return TensorInfo(value.name, datatype, dims, params)


def graph_io(model_or_source: Any, *, what: Optional[str] = None) -> Tuple[List[TensorInfo], List[TensorInfo]]:
    """(inputs, outputs) of a ModelProto, or of the model in a file or bytes (read by :func:`read_model`).

    Inputs exclude initializers (exporters before torch 1.3 listed every weight as a graph input too).

    Raises:
        ModelBinaryError, UnsafePathError, OSError: as :func:`read_model`, for a file or bytes.
    """
    graph = _model(model_or_source, what).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [_tensor_info(v) for v in graph.input if v.name not in initializers]
    return inputs, [_tensor_info(v) for v in graph.output]


# Inputs that are scales or zero points, by operator (0-based input positions).
_QPARAM_INPUTS: Dict[str, frozenset] = {
    "QuantizeLinear": frozenset({1, 2}), "DequantizeLinear": frozenset({1, 2}),
    "QLinearConv": frozenset({1, 2, 4, 5, 6, 7}), "QLinearMatMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearAdd": frozenset({1, 2, 4, 5, 6, 7}), "QLinearMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QGemm": frozenset({1, 2, 4, 5, 7, 8}),
    "QLinearSigmoid": frozenset({1, 2, 3, 4}), "QLinearLeakyRelu": frozenset({1, 2, 3, 4}),
    "QLinearGlobalAveragePool": frozenset({1, 2, 3, 4}), "QLinearAveragePool": frozenset({1, 2, 3, 4}),
    "QLinearSoftmax": frozenset({1, 2, 3, 4}), "QLinearReduceMean": frozenset({1, 2, 3, 4}),
}


def parameter_counts(model_or_source: Any, *, what: Optional[str] = None) -> Dict[str, int]:
    """Element counts of a model's initializers: ``params`` and ``quantization_params``.

    ``params`` are weights and biases (float, int8/uint8 weights, int32 quantized biases); scales and zero
    points feeding Q/DQ and QLinear* operators are counted in ``quantization_params`` instead, so ``params``
    of an int8 model is comparable to its fp32 model (per-channel scales would otherwise inflate it).
    int64/bool/string initializers (shapes, axes) are neither. The torchscript exporter folds BatchNorm
    into Conv, so ``params`` is below the PyTorch module's parameter count.

    Raises:
        ModelBinaryError, UnsafePathError, OSError: as :func:`read_model`, for a file or bytes.
    """
    import numpy as np
    from onnx import TensorProto

    graph = _model(model_or_source, what).graph
    qparams = set()
    for node in _all_nodes(graph):
        positions = _QPARAM_INPUTS.get(node.op_type)
        if positions is None and node.op_type == "QLinearConcat":
            positions = frozenset(i for i in range(len(node.input)) if i < 2 or (i - 2) % 3)
        for i, name in enumerate(node.input):
            if positions and i in positions:
                qparams.add(name)
    skipped = {TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING}
    counts = {"params": 0, "quantization_params": 0}
    for init in graph.initializer:
        if init.data_type in skipped:
            continue
        key = "quantization_params" if init.name in qparams else "params"
        counts[key] += int(np.prod(init.dims, dtype=np.int64))
    return counts


def parameter_count(model_or_source: Any, *, what: Optional[str] = None) -> int:
    """Weights and biases, scales and zero points excluded (``params`` of :func:`parameter_counts`)."""
    return parameter_counts(model_or_source, what=what)["params"]


def _all_nodes(graph: Any) -> Iterable[Any]:
    from onnx import AttributeProto

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def cpu_session(source: Source, *, threads: Optional[int] = None, optimized_model_filepath: Optional[Path] = None,
                what: Optional[str] = None, spinning: bool = True) -> "ort.InferenceSession":
    """A CPUExecutionProvider session with all graph optimisations, sequential execution and quiet logging.

    ``source`` is a file or the model's bytes; bytes are checked by :func:`read_model` first (ONNX Runtime
    would read their external data relative to the current directory). ``threads`` pins
    ``intra_op_num_threads`` (inter-op is sequential with 1 thread); None leaves ONNX Runtime's default
    (one per physical core). ``optimized_model_filepath`` saves the optimised graph there. ``spinning=False``
    makes idle intra-op threads sleep instead of busy-waiting: for sessions that take turns (latency
    comparisons), where one session's spinning threads would steal the cores the running one needs.

    Raises:
        ModelBinaryError, UnsafePathError: bytes that :func:`read_model` refuses.
        One of :data:`ORT_ERRORS`: ONNX Runtime cannot load the model.
    """
    import onnxruntime as ort

    if isinstance(source, bytes):
        read_model(source, what=what)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if optimized_model_filepath is not None:
        options.optimized_model_filepath = str(optimized_model_filepath)
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = source if isinstance(source, bytes) else os.fspath(source)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_batched(session: Any, array: "np.ndarray", *, batch_size: Optional[int] = None) -> Dict[str, "np.ndarray"]:
    """Every output of ``session`` on ``array`` (fed to its first input), by name, in the session's order.

    With ``batch_size`` the first axis is run in chunks of that many and the outputs concatenated along it
    (an empty ``array`` then raises ValueError); None runs it in one call.
    """
    import numpy as np

    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    if batch_size is None:
        return dict(zip(names, session.run(None, {input_name: array})))
    parts: Dict[str, List[Any]] = {n: [] for n in names}
    for start in range(0, len(array), batch_size):
        for name, value in zip(names, session.run(None, {input_name: array[start:start + batch_size]})):
            parts[name].append(value)
    return {name: np.concatenate(values, axis=0) for name, values in parts.items()}


def _ort_errors() -> Tuple[type, ...]:
    import onnx
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    # The pybind errors subclass Exception directly, so they are listed one by one.
    return (
        ValueError, RuntimeError, TypeError, KeyError, IndexError,
        AssertionError,  # the quantizer asserts on graphs it cannot handle (EfficientNetV2-S in QOperator form)
        onnx.checker.ValidationError,
        state.Fail, state.InvalidArgument, state.InvalidGraph, state.InvalidProtobuf,
        state.NoSuchFile, state.NotImplemented, state.RuntimeException,
    )


def __getattr__(name: str) -> Any:
    """:data:`ORT_ERRORS`, built on first access."""
    if name == "ORT_ERRORS":
        errors = _ort_errors()
        globals()[name] = errors
        return errors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
