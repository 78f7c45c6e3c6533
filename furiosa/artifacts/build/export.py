"""PyTorch -> ONNX fp32 export with the export quality gate (DESIGN.md contract 7).

The exported file is checked with ``onnx.checker`` (full check) and then run through
ONNX Runtime on the same seeded random input as the eager PyTorch module; any
output outside ``|ort - torch| <= atol + rtol * |torch|`` fails the stage with a
:class:`~furiosa.artifacts.errors.GateError`. Nothing is left under the output name
unless every check passed.

Models are written as a single protobuf file: external data (needed above 2 GiB)
is not supported, and a model whose parameters exceed that limit is refused up front.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import torch

from furiosa.artifacts.atomic import atomic_path
from furiosa.artifacts.errors import BuildError, GateError, SpecError
from furiosa.artifacts.onnx_io import ORT_ERRORS, cpu_session, graph_io, read_model

__all__ = ["ExportReport", "export_onnx"]

log = logging.getLogger(__name__)

# protobuf cannot serialise a message of 2 GiB or more.
_PROTOBUF_LIMIT = 2**31 - 1

Exporter = Literal["torchscript", "dynamo"]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` did and measured."""

    # output
    path: Path
    file_size: int
    opset: int
    exporter: str
    # interface
    input_name: str
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    dynamic_batch: bool
    # parity gate
    rtol: float
    atol: float
    parity_batches: tuple[int, ...]
    max_abs_diff: dict[str, float]
    max_rel_diff: dict[str, float]
    # model
    param_count: int
    export_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings, tuples as lists)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["input_shape"] = list(self.input_shape)
        d["output_names"] = list(self.output_names)
        d["parity_batches"] = list(self.parity_batches)
        return d


def export_onnx(
    model: torch.nn.Module,
    *,
    input_shape: tuple[int, ...],
    input_name: str,
    output_names: Sequence[str],
    out: Path,
    opset: int,
    dynamic_batch: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-5,
    seed: int = 0,
    exporter: Exporter = "torchscript",
    provenance: Mapping[str, str] | None = None,
) -> ExportReport:
    """Export ``model`` (put in eval mode) to ``out`` and gate it on ONNX Runtime parity.

    ``input_shape`` includes the batch dimension. With ``dynamic_batch`` the batch axis
    of the input and of every output is symbolic (``"batch"``) and parity is checked at
    ``input_shape[0]`` and ``input_shape[0] + 1``. ``exporter="torchscript"`` (the
    default) is torch's ``dynamo=False`` path: fast here and it honours any opset.
    ``"dynamo"`` exports at opset >= 18 with torch 2.14 and converts down, which can fail;
    an output whose opset differs from ``opset`` raises BuildError. ``provenance`` is written into the
    file's ``metadata_props`` (see :func:`furiosa.artifacts.provenance.stamp`) before it is renamed into place.

    Raises SpecError for invalid arguments, BuildError when export or the ONNX checker
    fails or the model is too large for one protobuf file, and GateError when an
    output differs from eager PyTorch beyond ``rtol``/``atol``.
    """
    shape, names = _validate(input_shape, input_name, output_names, opset, rtol, atol, exporter)
    out = Path(out)
    model = model.eval()
    param_count = sum(p.numel() for p in model.parameters())
    param_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if param_bytes >= _PROTOBUF_LIMIT:
        raise BuildError(
            f"{type(model).__name__} holds {param_bytes} bytes of parameters; single-file ONNX is limited "
            "to 2 GiB and external data is not supported by export_onnx"
        )

    batches = (shape[0], shape[0] + 1) if dynamic_batch else (shape[0],)
    with atomic_path(out) as tmp:
        start = time.perf_counter()
        _export(model, tmp, shape=shape, input_name=input_name, output_names=names,
                opset=opset, dynamic_batch=dynamic_batch, seed=seed, exporter=exporter)
        export_seconds = time.perf_counter() - start
        _check(tmp, input_name=input_name, output_names=names, opset=opset, where=out)
        abs_diff, rel_diff = _parity(model, tmp, shape=shape, input_name=input_name,
                                     output_names=names, batches=batches, rtol=rtol, atol=atol, seed=seed,
                                     where=out)
        if provenance is not None:
            from furiosa.artifacts.provenance import stamp

            stamp(tmp, provenance)
        size = tmp.stat().st_size
    log.info("exported %s (%d params, %d bytes) in %.1f s; parity max abs diff %s",
             out, param_count, size, export_seconds, abs_diff)
    return ExportReport(
        path=out, file_size=size, opset=opset, exporter=exporter,
        input_name=input_name, input_shape=shape, output_names=names, dynamic_batch=dynamic_batch,
        rtol=rtol, atol=atol, parity_batches=batches, max_abs_diff=abs_diff, max_rel_diff=rel_diff,
        param_count=param_count, export_seconds=export_seconds,
    )


def _validate(
    input_shape: Sequence[int], input_name: str, output_names: Sequence[str], opset: int,
    rtol: float, atol: float, exporter: str,
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise SpecError(f"input_shape must be positive integers with the batch first, got {input_shape!r}")
    if not input_name:
        raise SpecError("input_name must be a non-empty string")
    if isinstance(output_names, str):
        raise SpecError(f"output_names must be a sequence of names, got the string {output_names!r}")
    names = tuple(output_names)
    if not names or len(set(names)) != len(names) or not all(names) or input_name in names:
        raise SpecError(f"output_names must be unique non-empty names other than the input's, got {names!r}")
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 7:
        raise SpecError(f"opset must be an integer >= 7, got {opset!r}")
    if not (rtol >= 0 and atol >= 0):
        raise SpecError(f"rtol and atol must be >= 0, got rtol={rtol!r} atol={atol!r}")
    if exporter not in ("torchscript", "dynamo"):
        raise SpecError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    return shape, names


def _random_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def _export(
    model: torch.nn.Module, path: Path, *, shape: tuple[int, ...], input_name: str,
    output_names: tuple[str, ...], opset: int, dynamic_batch: bool, seed: int, exporter: Exporter,
) -> None:
    example = _random_input(shape, seed)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        try:
            if exporter == "torchscript":
                axes = {n: {0: "batch"} for n in (input_name, *output_names)} if dynamic_batch else None
                torch.onnx.export(
                    model, (example,), str(path), dynamo=False, opset_version=opset,
                    input_names=[input_name], output_names=list(output_names), dynamic_axes=axes,
                    do_constant_folding=True, export_params=True,
                )
            else:
                dims = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
                torch.onnx.export(
                    model, (example,), str(path), dynamo=True, opset_version=opset,
                    input_names=[input_name], output_names=list(output_names), dynamic_shapes=dims,
                    external_data=False, verbose=False,
                )
        except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as exc:
            raise BuildError(f"torch.onnx.export ({exporter}) of {type(model).__name__} failed: {exc}") from exc
    for w in caught:
        # TracerWarnings flag Python-side control flow frozen into the graph: worth seeing.
        level = logging.WARNING if issubclass(w.category, torch.jit.TracerWarning) else logging.DEBUG
        log.log(level, "torch.onnx.export: %s: %s", w.category.__name__, w.message)


def _check(path: Path, *, input_name: str, output_names: tuple[str, ...], opset: int, where: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise BuildError(f"onnx.checker rejected the export for {where}: {exc}") from exc
    model = read_model(path)
    got_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got_opset != opset:
        raise BuildError(f"export for {where} has opset {got_opset}, params ask for {opset}; "
                         "use the torchscript exporter or an opset this exporter supports")
    graph_inputs, graph_outputs = graph_io(model)
    inputs = [i.name for i in graph_inputs]
    outputs = tuple(o.name for o in graph_outputs)
    if inputs != [input_name] or outputs != output_names:
        raise BuildError(f"export for {where} has inputs {inputs} and outputs {list(outputs)}, "
                         f"expected [{input_name!r}] and {list(output_names)}; does forward() return "
                         f"{len(output_names)} tensor(s)?")


def _flatten(result: Any) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flatten(item)]
    raise BuildError(f"forward() returned {type(result).__name__}; return a tensor or a tuple of tensors")


def _parity(
    model: torch.nn.Module, path: Path, *, shape: tuple[int, ...], input_name: str,
    output_names: tuple[str, ...], batches: tuple[int, ...], rtol: float, atol: float, seed: int, where: Path,
) -> tuple[dict[str, float], dict[str, float]]:
    try:
        session = cpu_session(path)
    except ORT_ERRORS as exc:
        raise BuildError(f"ONNX Runtime cannot load the export for {where}: {exc}") from exc
    abs_diff = {n: 0.0 for n in output_names}
    rel_diff = {n: 0.0 for n in output_names}
    failures = []
    for batch in batches:
        x = _random_input((batch, *shape[1:]), seed)
        with torch.no_grad():
            expected = [t.detach().cpu().numpy() for t in _flatten(model(x))]
        try:
            got = session.run(list(output_names), {input_name: x.numpy()})
        except ORT_ERRORS as exc:
            raise BuildError(f"ONNX Runtime failed to run the export for {where} at batch {batch}: {exc}") from exc
        if len(expected) != len(output_names):
            raise BuildError(f"eager forward() returned {len(expected)} tensors, output_names has {len(output_names)}")
        for name, ref, val in zip(output_names, expected, got):
            if ref.shape != val.shape:
                failures.append(f"output {name!r} at batch {batch}: ONNX shape {val.shape} != PyTorch {ref.shape}")
                continue
            ref64, val64 = ref.astype(np.float64), val.astype(np.float64)
            err = np.abs(val64 - ref64)
            if not np.all(np.isfinite(val64) == np.isfinite(ref64)):
                failures.append(f"output {name!r} at batch {batch}: non-finite values differ")
                continue
            err = np.where(np.isfinite(err), err, 0.0)
            max_abs = float(err.max(initial=0.0))
            # relative to max(|torch|, atol) so that values near zero do not dominate
            floor = max(atol, float(np.finfo(np.float32).tiny))
            max_rel = float((err / np.maximum(np.abs(ref64), floor)).max(initial=0.0))
            abs_diff[name] = max(abs_diff[name], max_abs)
            rel_diff[name] = max(rel_diff[name], max_rel)
            outside = int(np.count_nonzero(err > atol + rtol * np.abs(ref64)))
            if outside:
                failures.append(
                    f"output {name!r} at batch {batch}: {outside}/{err.size} values outside tolerance, "
                    f"max abs error {max_abs:.3g}, max rel error {max_rel:.3g} (rtol {rtol:g}, atol {atol:g})"
                )
    if failures:
        raise GateError(f"ONNX Runtime vs PyTorch parity failed for {where}: " + "; ".join(failures))
    return abs_diff, rel_diff
