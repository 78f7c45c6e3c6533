"""ONNX Runtime helpers shared by the build modules."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _state

__all__ = ["ORT_ERRORS", "cpu_session"]

# What ONNX Runtime and its quantization tools raise for a bad model or argument.
# The pybind errors subclass Exception directly, so they are listed one by one.
ORT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, RuntimeError, TypeError, KeyError, IndexError,
    AssertionError,  # the quantizer asserts on graphs it cannot handle (EfficientNetV2-S in QOperator form)
    onnx.checker.ValidationError,
    _state.Fail, _state.InvalidArgument, _state.InvalidGraph, _state.InvalidProtobuf,
    _state.NoSuchFile, _state.NotImplemented, _state.RuntimeException,
)


def cpu_session(path: Path, *, threads: int | None = None) -> ort.InferenceSession:
    """A CPUExecutionProvider session with all graph optimisations and quiet logging.

    ``threads`` pins ``intra_op_num_threads`` (inter-op is sequential with 1 thread);
    None leaves ONNX Runtime's default (one per physical core).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
