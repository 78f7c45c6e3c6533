"""Static INT8 quantization with ONNX Runtime, driven by validated settings from params.yaml.

Steps: ``quant_pre_process`` (symbolic shape inference and graph optimisation) into a
temporary file, ``quantize_static`` calibrated on a calibration ``.npz``, ``onnx.checker``,
then an atomic rename to the output. On this machine kind unsigned activations with
signed weights (U8S8: ``activation_type: QUInt8``, ``weight_type: QInt8``) are what the
int8 kernels are fast for; signed activations (S8S8, ONNX Runtime's default) are no
faster than fp32 (see shared/reference/models.md), so the settings name both explicitly.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from furiosa.artifacts.build._fold import fold_pads_into_convs
from furiosa.artifacts.atomic import atomic_path
from furiosa.artifacts.build.calibrate import NpzCalibrationReader
from furiosa.artifacts.errors import BuildError, SpecError
from furiosa.artifacts.onnx_io import ORT_ERRORS, graph_io, read_model

__all__ = ["QuantSettings", "QuantizeReport", "quantize_model"]

log = logging.getLogger(__name__)

_METHODS = {"MinMax": CalibrationMethod.MinMax, "Entropy": CalibrationMethod.Entropy,
            "Percentile": CalibrationMethod.Percentile}
_TYPES = {"QUInt8": QuantType.QUInt8, "QInt8": QuantType.QInt8}
_FORMATS = {"QDQ": QuantFormat.QDQ, "QOperator": QuantFormat.QOperator}
# Operators that hold int8 data in a QOperator graph (QDQ graphs use QuantizeLinear).
_QOPERATOR_PREFIXES = ("QLinear", "QGemm", "QAttention", "ConvInteger", "MatMulInteger", "DynamicQuantize")


@dataclass(frozen=True)
class QuantSettings:
    """How one model is quantized (the ``quantize:`` block of its params).

    The five choices that decide speed and accuracy have no default, so params.yaml
    states them; the rest default to ONNX Runtime's behaviour.
    """

    # calibration
    method: str  # MinMax | Entropy | Percentile
    # numeric types and graph form
    per_channel: bool
    activation_type: str  # QUInt8 | QInt8
    weight_type: str  # QInt8 | QUInt8
    quant_format: str  # QDQ | QOperator
    # optional
    reduce_range: bool = False
    nodes_to_exclude: tuple[str, ...] = ()
    op_types_to_quantize: tuple[str, ...] | None = None
    extra_options: Mapping[str, Any] = field(default_factory=dict)  # passed to quantize_static as is
    calibration_batch_size: int = 1

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "method": tuple(_METHODS), "activation_type": tuple(_TYPES),
        "weight_type": tuple(_TYPES), "quant_format": tuple(_FORMATS),
    }

    def __post_init__(self) -> None:
        where = "quantization setting"
        for name, allowed in self.CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise SpecError(f"{where} {name!r}: {value!r} is not one of {', '.join(allowed)}")
        for name in ("per_channel", "reduce_range"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{where} {name!r} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "nodes_to_exclude", _names(self.nodes_to_exclude, f"{where} 'nodes_to_exclude'"))
        if self.op_types_to_quantize is not None:
            ops = _names(self.op_types_to_quantize, f"{where} 'op_types_to_quantize'")
            if not ops:
                raise SpecError(f"{where} 'op_types_to_quantize' is empty; leave it out to quantize every "
                                "supported operator")
            object.__setattr__(self, "op_types_to_quantize", ops)
        if not isinstance(self.extra_options, Mapping) or not all(isinstance(k, str) for k in self.extra_options):
            raise SpecError(f"{where} 'extra_options' must be a mapping with string keys, got {self.extra_options!r}")
        object.__setattr__(self, "extra_options", dict(self.extra_options))
        size = self.calibration_batch_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SpecError(f"{where} 'calibration_batch_size' must be a positive integer, got {size!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, where: str = "quantization settings") -> QuantSettings:
        """Build settings from a params mapping, naming every unknown or missing key.

        Raises SpecError (with ``where`` as the location) for unknown keys, missing
        required keys, or an invalid value.
        """
        if not isinstance(params, Mapping):
            raise SpecError(f"{where}: expected a mapping, got {type(params).__name__}")
        known = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if _is_required(f)]
        unknown = sorted(str(k) for k in params if k not in known)
        missing = [k for k in required if k not in params]
        problems = []
        if unknown:
            problems.append(f"unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
        if missing:
            problems.append(f"missing required key(s) {', '.join(map(repr, missing))}")
        if problems:
            raise SpecError(f"{where}: " + "; ".join(problems))
        try:
            return cls(**params)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain form for reports and metrics (lists, not tuples)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["nodes_to_exclude"] = list(self.nodes_to_exclude)
        if self.op_types_to_quantize is not None:
            d["op_types_to_quantize"] = list(self.op_types_to_quantize)
        d["extra_options"] = dict(self.extra_options)
        return d


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` produced."""

    path: Path
    fp32_size: int
    int8_size: int
    size_ratio: float
    quantized_ops: dict[str, int]  # op type -> count of quantize/QLinear nodes in the int8 graph
    settings: dict[str, Any]
    calibration: dict[str, Any]
    preprocess_seconds: float
    quantize_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {f.name: (str(v) if isinstance(v, Path) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}


def quantize_model(fp32: Path, *, calibration: Path, out: Path, settings: QuantSettings,
                   provenance: Mapping[str, str] | None = None) -> QuantizeReport:
    """Quantize the fp32 ONNX model ``fp32`` to ``out`` with ``settings``, calibrated on ``calibration``.

    ``provenance`` is written into the int8 file's ``metadata_props`` before it is renamed into place.

    Raises BuildError when the model or calibration set is missing or does not fit the
    model's single input, when pre-processing, quantization or the ONNX checker fails, or
    when nothing was quantized; SpecError when ``nodes_to_exclude`` names a node that is
    not in the (pre-processed) graph.
    """
    fp32, out = Path(fp32), Path(out)
    if not fp32.is_file():
        raise BuildError(f"fp32 model {fp32} does not exist; run the export stage")
    input_name, input_shape = _single_input(fp32)
    reader = NpzCalibrationReader(calibration, input_name=input_name, batch_size=settings.calibration_batch_size)
    _check_calibration_shape(reader.data.shape[1:], input_shape, calibration, fp32)
    _warn_on_known_traps(settings)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.quantize-") as workdir:
        preprocessed = Path(workdir) / "preprocessed.onnx"
        start = time.perf_counter()
        try:
            quant_pre_process(str(fp32), str(preprocessed))
        except ORT_ERRORS as exc:
            raise BuildError(f"quantization pre-processing of {fp32} failed: {exc}") from exc
        if settings.quant_format == "QDQ":  # a float Pad between DQ and Q is not fused: fold it into the Conv
            pre_model = onnx.load(str(preprocessed))
            if fold_pads_into_convs(pre_model):
                onnx.save(pre_model, str(preprocessed))
        preprocess_seconds = time.perf_counter() - start
        _check_excluded_nodes(preprocessed, settings.nodes_to_exclude)

        with atomic_path(out) as tmp:
            start = time.perf_counter()
            log.info("quantizing %s with %s", fp32, settings.to_dict())
            try:
                quantize_static(
                    str(preprocessed), str(tmp), reader,
                    quant_format=_FORMATS[settings.quant_format],
                    op_types_to_quantize=list(settings.op_types_to_quantize) if settings.op_types_to_quantize else None,
                    per_channel=settings.per_channel,
                    reduce_range=settings.reduce_range,
                    activation_type=_TYPES[settings.activation_type],
                    weight_type=_TYPES[settings.weight_type],
                    nodes_to_exclude=list(settings.nodes_to_exclude),
                    calibrate_method=_METHODS[settings.method],
                    extra_options=dict(settings.extra_options),
                    use_external_data_format=False,
                )
                onnx.checker.check_model(str(tmp), full_check=True)
                if provenance is not None:
                    from furiosa.artifacts.provenance import stamp

                    stamp(tmp, provenance)
            except ORT_ERRORS as exc:
                raise BuildError(f"quantization of {fp32} to {out} failed: {exc}") from exc
            quantize_seconds = time.perf_counter() - start
            ops = _quantized_ops(tmp)
            if not ops:
                raise BuildError(f"quantization of {fp32} produced no quantized operators; check "
                                 "op_types_to_quantize and nodes_to_exclude")
            int8_size = tmp.stat().st_size
    fp32_size = fp32.stat().st_size
    log.info("wrote %s: %d -> %d bytes (%.3f), %s, %.1f s", out, fp32_size, int8_size, int8_size / fp32_size,
             ops, quantize_seconds)
    return QuantizeReport(
        path=out, fp32_size=fp32_size, int8_size=int8_size, size_ratio=int8_size / fp32_size,
        quantized_ops=ops, settings=settings.to_dict(), calibration=reader.info.to_dict(),
        preprocess_seconds=preprocess_seconds, quantize_seconds=quantize_seconds,
    )


def _is_required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where} must be a list of strings, got {value!r}")
    return tuple(value)


def _single_input(path: Path) -> tuple[str, tuple[int | str, ...]]:
    try:
        inputs = graph_io(path)[0]
    except (OSError, ValueError) as exc:  # ModelBinaryError and UnsafePathError are ValueErrors
        raise BuildError(f"cannot read {path} as ONNX: {exc}") from exc
    if len(inputs) != 1:
        raise BuildError(f"{path} has inputs {[i.name for i in inputs]}; quantize_model handles one image input")
    return inputs[0].name, inputs[0].symbolic_shape("?")


def _check_calibration_shape(sample: tuple[int, ...], input_shape: tuple[int | str, ...],
                             calibration: Path, model: Path) -> None:
    expected = input_shape[1:]
    fits = len(sample) == len(expected) and all(not isinstance(e, int) or e in (0, s)
                                                 for s, e in zip(sample, expected))
    if not fits:
        raise BuildError(f"calibration samples in {calibration} are {tuple(sample)}, but {model} takes "
                         f"{input_shape} (batch first); rebuild the calibration set for this input size")


def _warn_on_known_traps(settings: QuantSettings) -> None:
    if settings.activation_type == "QInt8":
        log.warning("activation_type QInt8 (signed activations) is no faster than fp32 on CPUs here; "
                    "QUInt8 activations with QInt8 weights (U8S8) are what the int8 kernels are fast for")
    if "CalibMaxIntermediateOutputs" in settings.extra_options:
        log.warning("CalibMaxIntermediateOutputs is reported to lose calibration data in this onnxruntime; "
                    "prefer CalibStridedMinMax for large models")


def _check_excluded_nodes(path: Path, excluded: tuple[str, ...]) -> None:
    if not excluded:
        return
    names = {n.name for n in read_model(path).graph.node}
    unknown = [n for n in excluded if n not in names]
    if unknown:
        sample = sorted(names)[:5]
        raise SpecError(f"quantization setting 'nodes_to_exclude' names node(s) not in the pre-processed graph: "
                        f"{unknown}; node names look like {sample}")


def _quantized_ops(path: Path) -> dict[str, int]:
    graph = read_model(path).graph
    counts = Counter(n.op_type for n in graph.node
                     if n.op_type == "QuantizeLinear" or n.op_type.startswith(_QOPERATOR_PREFIXES))
    return dict(sorted(counts.items()))
