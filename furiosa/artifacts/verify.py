"""``furiosa-artifacts verify``: the built files are what dvc.lock, metrics.json and specs.yaml say.

Like torchvision's ``test_schema_meta_validation``, every check runs and every problem is collected
before anything is reported. For each model, on the files present in the workspace:

1. ``md5``/``size``: every output of the model recorded in ``dvc.lock`` is hashed again and compared;
2. ``onnx``: ``onnx.checker.check_model(full_check=True)`` on ``fp32.onnx`` and ``int8.onnx``;
3. ``parameters``/``file-size``: the fp32 parameter count (``count_onnx_params``) and both file sizes
   against ``metrics.json``;
4. ``tensors``: each binary's graph inputs and outputs against the model's spec (name, type, shape;
   the batch axis may be dynamic);
5. ``provenance``: each binary carries readable provenance (``metadata_props``, see
   :mod:`furiosa.artifacts.provenance`) naming this model and its precision, and the int8 binary's
   ``fp32_md5`` is the md5 of the fp32 binary beside it. Missing provenance is a problem (fail closed);
   :attr:`ModelReport.weights` says what the binaries claim (``unknown`` when they do not agree).

Outputs recorded in ``dvc.lock`` but absent from the workspace (a consumer that pulled only the int8
binary) are listed as skipped, not as problems. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from furiosa.artifacts.facts import code_entry, read_metrics, read_model_spec
from furiosa.artifacts.catalog.entries import read_entries
from furiosa.artifacts.errors import ArtifactsError, BinaryNotFoundError, LockFileError, UnsafePathError
from furiosa.artifacts.layout import PRECISIONS, binary_relpath, metrics_relpath, model_dir

__all__ = ["ModelReport", "Problem", "built_models", "reports_json", "verify_model", "verify_models"]

_READ_LOCK = object()  # verify_model's default: read dvc.lock itself


@dataclass(frozen=True)
class Problem:
    """One mismatch: which file, which check, what was expected and what was found."""

    model: str
    path: str  # relative to the repository root
    check: str  # lock | missing | md5 | size | onnx | parameters | file-size | tensors | metrics
    message: str
    expected: Any = None
    actual: Any = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class ModelReport:
    """What :func:`verify_model` checked, skipped and found wrong for one model."""

    model: str
    checked: List[str] = field(default_factory=list)  # "md5 models/X/int8.onnx", ...
    skipped: List[str] = field(default_factory=list)  # "models/X/weights.pt: not in the workspace", ...
    problems: List[Problem] = field(default_factory=list)
    weights: str = "unknown"  # official | train | synthetic | unknown, from the binaries' provenance

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "weights": self.weights, "checked": self.checked, "skipped": self.skipped,
                "problems": [p.as_dict() for p in self.problems]}


def built_models(root: Path) -> List[str]:
    """Code entries of ``root``'s catalog with at least one ONNX binary or metrics.json in the workspace."""
    root = Path(root)
    names = [e.name for e in read_entries(root, validate=False) if e.format == "code"]
    paths = {n: [binary_relpath(n, p) for p in PRECISIONS] + [metrics_relpath(n)] for n in names}
    return [n for n in names if any((root / rel).is_file() for rel in paths[n])]


def _md5(path: Path) -> str:
    from furiosa.artifacts.sources.cache import hash_file

    return hash_file(path, ("md5",))["md5"]


def _check_lock(root: Path, name: str, outputs: Optional[Dict[str, Any]], report: ModelReport) -> None:
    prefix = model_dir(name) + "/"
    if outputs is None:
        report.problems.append(Problem(name, "dvc.lock", "lock", "no dvc.lock: the md5 of the built files cannot be "
                                       "checked; build with `furiosa-artifacts build` (or `dvc repro`) to record them"))
        return
    mine = sorted((o for o in outputs.values() if o.path.startswith(prefix) and not o.is_dir), key=lambda o: o.path)
    if not mine:
        report.problems.append(Problem(name, "dvc.lock", "lock", f"dvc.lock records no output under {prefix}: "
                                       f"rebuild with `dvc repro evaluate@{name}`"))
        return
    for out in mine:
        path = root / out.path
        if not path.is_file():
            report.skipped.append(f"{out.path}: not in the workspace (`furiosa-artifacts pull` or `dvc pull`)")
            continue
        size = path.stat().st_size
        actual = _md5(path)
        report.checked.append(f"md5 {out.path}")
        if out.size is not None and size != out.size:
            report.problems.append(Problem(name, out.path, "size", f"size mismatch: expected {out.size} bytes "
                                           f"(dvc.lock), got {size} bytes", out.size, size))
        if actual != out.md5:
            report.problems.append(Problem(name, out.path, "md5", f"md5 mismatch: expected {out.md5} (dvc.lock), "
                                           f"got {actual}", out.md5, actual))


def _check_onnx(path: Path, relpath: str, name: str, report: ModelReport) -> Optional[Any]:
    """Load and run the full checker; returns the loaded model (None when it does not even parse)."""
    import onnx

    from furiosa.artifacts.onnx_io import read_model

    report.checked.append(f"onnx {relpath}")
    try:
        model = read_model(path, what=relpath)
    except (ValueError, OSError) as exc:  # ModelBinaryError and UnsafePathError are ValueErrors
        report.problems.append(Problem(name, relpath, "onnx", f"not a readable ONNX model: {exc}"))
        return None
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.problems.append(Problem(name, relpath, "onnx", f"onnx.checker (full check) failed: {first}"))
    return model


def _tensor(info: Any) -> Dict[str, Any]:
    return {"name": info.name, "datatype": info.datatype, "shape": [None if d == -1 else d for d in info.shape]}


def _check_tensors(model: Any, spec: Any, relpath: str, name: str, report: ModelReport) -> None:
    from furiosa.artifacts.onnx_io import graph_io

    report.checked.append(f"tensors {relpath}")
    graph_inputs, graph_outputs = graph_io(model)
    inputs = [_tensor(i) for i in graph_inputs]
    expected_in = {"name": spec.input.name, "datatype": spec.input.dtype, "shape": [None, *spec.input.shape]}
    shown = "[N, " + ", ".join(str(d) for d in spec.input.shape) + "]"
    if len(inputs) != 1:
        report.problems.append(Problem(name, relpath, "tensors", f"expected one input {spec.input.name} "
                                       f"{spec.input.dtype} {shown} (specs.yaml), got {len(inputs)}: "
                                       f"{[i['name'] for i in inputs]}", expected_in, inputs))
    else:
        got = inputs[0]
        same_shape = len(got["shape"]) == len(expected_in["shape"]) and got["shape"][1:] == expected_in["shape"][1:]
        if got["name"] != spec.input.name or got["datatype"] != spec.input.dtype or not same_shape:
            report.problems.append(Problem(
                name, relpath, "tensors",
                f"input does not match specs.yaml: expected {spec.input.name} {spec.input.dtype} {shown}, got "
                f"{got['name']} {got['datatype']} {['N' if d is None else d for d in got['shape']]}", expected_in, got))
    outputs = [o.name for o in graph_outputs]
    if outputs != list(spec.output_names):
        report.problems.append(Problem(name, relpath, "tensors", f"outputs do not match specs.yaml: expected "
                                       f"{list(spec.output_names)}, got {outputs}", list(spec.output_names), outputs))


def _check_provenance(name: str, present: Dict[str, Path], report: ModelReport) -> None:
    from furiosa.artifacts.provenance import read_provenance

    kinds = set()
    for precision, path in present.items():
        relpath = binary_relpath(name, precision)
        report.checked.append(f"provenance {relpath}")
        prov = read_provenance(path)
        kinds.add(prov.kind)
        if not prov.known:
            report.problems.append(Problem(name, relpath, "provenance", f"provenance unknown: {prov.error}; "
                                           f"rebuild it with `dvc repro quantize@{name}` (or pull a current build)"))
            continue
        for key, expected in (("name", name), ("precision", precision)):
            if prov.get(key) != expected:
                report.problems.append(Problem(name, relpath, "provenance", f"the binary says {key} "
                                               f"{prov.get(key)!r}, expected {expected!r}", expected, prov.get(key)))
        if precision == "int8" and "fp32" in present:
            actual = _md5(present["fp32"])
            if prov.get("fp32_md5") != actual:
                report.problems.append(Problem(name, relpath, "provenance", f"quantized from an fp32 binary with md5 "
                                               f"{prov.get('fp32_md5')}, but {binary_relpath(name, 'fp32')} has md5 "
                                               f"{actual}", prov.get("fp32_md5"), actual))
    report.weights = kinds.pop() if len(kinds) == 1 else "unknown"


def _check_metrics(name: str, metrics: Dict[str, Any], present: Dict[str, Path], loaded: Sequence[str],
                   report: ModelReport) -> None:
    from furiosa.artifacts.build.evaluate import count_onnx_params, file_size

    relpath = metrics_relpath(name)
    if "fp32" in loaded:  # an unreadable file is reported by the onnx check already
        report.checked.append(f"parameters {binary_relpath(name, 'fp32')}")
        try:
            count = count_onnx_params(present["fp32"])
        except ArtifactsError as exc:
            count = None
            report.problems.append(Problem(name, binary_relpath(name, "fp32"), "parameters", str(exc)))
        if count is not None and count != metrics.get("parameters"):
            report.problems.append(Problem(name, binary_relpath(name, "fp32"), "parameters",
                                           f"parameter count mismatch: expected {metrics.get('parameters')} "
                                           f"({relpath}), got {count}", metrics.get("parameters"), count))
    for precision, path in present.items():
        key = f"{precision}_bytes"
        size = file_size(path)
        report.checked.append(f"file-size {binary_relpath(name, precision)}")
        if size != metrics.get(key):
            report.problems.append(Problem(name, binary_relpath(name, precision), "file-size",
                                           f"file size mismatch: expected {metrics.get(key)} bytes ({relpath} "
                                           f"{key}), got {size} bytes", metrics.get(key), size))


def verify_model(root: Path, name: str, *, outputs: Any = _READ_LOCK) -> ModelReport:
    """Run every check on model ``name`` (a catalog name, matched loosely) in the workspace at ``root``.

    ``outputs`` are dvc.lock's outputs (``read_outputs``) when the caller has read them already (None: there
    is no dvc.lock); by default dvc.lock is read here. Problems are collected, never raised.

    Raises:
        ModelNotFoundError: ``name`` is not a model of the catalog.
        SpecError, CatalogReadError: specs.yaml or the catalog cannot be read.
    """
    from furiosa.artifacts.errors import SpecError
    from furiosa.artifacts.storage.lockfile import contained_file

    root = Path(root)
    entry, _ = code_entry(read_entries(root, validate=False), name)
    name = entry.name
    report = ModelReport(name)
    if outputs is _READ_LOCK:
        outputs = _recorded_outputs(root)
    _check_lock(root, name, outputs, report)
    spec = read_model_spec(root, name)
    present = {}
    for precision in ("fp32", "int8"):
        try:
            path = contained_file(root, binary_relpath(name, precision), what="binary")
        except UnsafePathError as exc:  # a workspace symlink out of the repository: never read it
            report.problems.append(Problem(name, binary_relpath(name, precision), "missing", str(exc)))
            continue
        if path is not None:
            present[precision] = path
    if not present:
        report.problems.append(Problem(name, model_dir(name), "missing", "no ONNX binary of this model in the "
                                       "workspace: run `furiosa-artifacts pull` or `furiosa-artifacts build`"))
    loaded = []
    for precision, path in present.items():
        model = _check_onnx(path, binary_relpath(name, precision), name, report)
        if model is not None:
            loaded.append(precision)
            _check_tensors(model, spec, binary_relpath(name, precision), name, report)
    _check_provenance(name, present, report)
    try:
        metrics = read_metrics(root, name)
    except (SpecError, UnsafePathError) as exc:
        report.problems.append(Problem(name, metrics_relpath(name), "metrics", str(exc)))
        return report
    if metrics is None:
        report.skipped.append(f"{metrics_relpath(name)}: not in the workspace (parameter count and sizes unchecked)")
    else:
        _check_metrics(name, metrics, present, loaded, report)
    return report


def verify_models(root: Path, names: Sequence[str] = ()) -> List[ModelReport]:
    """:func:`verify_model` for each of ``names`` (default: every built model), dvc.lock read once.

    Raises:
        ModelNotFoundError: a name is not in the catalog.
        BinaryNotFoundError: no name given and no model is built in ``root``.
    """

    root = Path(root)
    entries = read_entries(root, validate=False)
    wanted: List[str] = []
    for name in names or built_models(root):
        canonical = code_entry(entries, name)[0].name
        if canonical not in wanted:
            wanted.append(canonical)
    if not wanted:
        raise BinaryNotFoundError(f"no model is built in {root}: nothing to verify; run `furiosa-artifacts build` "
                                  "or `dvc pull` first")
    outputs = _recorded_outputs(root)
    return [verify_model(root, name, outputs=outputs) for name in wanted]


def _recorded_outputs(root: Path) -> Any:
    """dvc.lock's recorded outputs, or None when there is no dvc.lock (LockFileError when it is unreadable:
    an error, exit 2, not "nothing recorded")."""
    from furiosa.artifacts.storage.lockfile import read_outputs

    try:
        return read_outputs(root)
    except LockFileError:
        raise
    except BinaryNotFoundError:
        return None


def reports_json(reports: Sequence[ModelReport]) -> str:
    """The JSON document ``verify --json`` prints."""
    problems = sum(len(r.problems) for r in reports)
    return json.dumps({"ok": problems == 0, "problems": problems, "models": [r.as_dict() for r in reports]}, indent=2)
