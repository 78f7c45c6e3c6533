"""int8 vs fp32 evaluation, quality gates, and ``metrics.json`` (DESIGN.md contract 7).

Metrics are a flat mapping of names to numbers (``int8_vs_fp32_top1_agreement``, ``size_ratio``, ...)
plus the ``weights`` and ``gates`` sections that :func:`apply_gates` adds. A gate key is
``<metric>_min`` or ``<metric>_max`` from :data:`GATES`. Three kinds of numbers are kept apart:
accuracy measured on a labelled dataset (``fp32_top1``, ``int8_map``, ...; the gates in
:data:`DATASET_GATES` read them and bind only when a real dataset is configured), the published
figure it is compared with (``fp32_published_gap``), and int8-vs-fp32 agreement
(``int8_vs_fp32_*``, measurable on any images). Models built from synthetic weights record the
same metrics but their gates are reported ``not_applicable``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from furiosa.artifacts.atomic import atomic_write_text
from furiosa.artifacts.errors import BuildError, GateError, SpecError
from furiosa.artifacts.onnx_io import cpu_session, parameter_counts

__all__ = [
    "DATASET_GATES",
    "GATES",
    "WEIGHT_SOURCES",
    "agreement_classification",
    "agreement_detection",
    "apply_gates",
    "check_gates",
    "count_onnx_params",
    "file_size",
    "latency_ratio",
    "measure_latency",
    "onnx_param_counts",
    "write_metrics",
]

# gate key -> (metric it reads, "min" or "max")
GATES: dict[str, tuple[str, str]] = {
    # accuracy on a labelled dataset (MLPerf's rule: int8 keeps >= 99% of fp32; fp32 near the published figure)
    "int8_accuracy_ratio_min": ("int8_accuracy_ratio", "min"),
    "accuracy_drop_max": ("accuracy_drop", "max"),
    "fp32_published_gap_max": ("fp32_published_gap", "max"),
    # the same per figure: fp32 floors (a model trained here) and int8 / fp32 ratios
    **{f"fp32_{k}_min": (f"fp32_{k}", "min") for k in ("top1", "top5", "map", "map50")},
    **{f"int8_{k}_ratio_min": (f"int8_{k}_ratio", "min") for k in ("top1", "top5", "map", "map50")},
    # classification: int8 vs fp32 agreement on the same inputs
    "int8_vs_fp32_top1_agreement_min": ("int8_vs_fp32_top1_agreement", "min"),
    "int8_vs_fp32_top5_overlap_min": ("int8_vs_fp32_top5_overlap", "min"),
    # detection: int8 detections matched to fp32 ones
    "int8_vs_fp32_detection_f1_min": ("int8_vs_fp32_detection_f1", "min"),
    "int8_vs_fp32_detection_precision_min": ("int8_vs_fp32_detection_precision", "min"),
    "int8_vs_fp32_detection_recall_min": ("int8_vs_fp32_detection_recall", "min"),
    "int8_vs_fp32_mean_iou_min": ("int8_vs_fp32_mean_iou", "min"),
    # deployment
    "int8_latency_ratio_max": ("int8_latency_ratio", "max"),
    "size_ratio_max": ("size_ratio", "max"),
}
#: Gates that need a labelled dataset (and, for fp32_published_gap, a published figure): reported
#: ``not_applicable`` while the evaluation set is the offline sample photos.
DATASET_GATES = frozenset({"int8_accuracy_ratio_min", "accuracy_drop_max", "fp32_published_gap_max",
                           *(f"fp32_{k}_min" for k in ("top1", "top5", "map", "map50")),
                           *(f"int8_{k}_ratio_min" for k in ("top1", "top5", "map", "map50"))})
WEIGHT_SOURCES = ("url", "file", "train", "synthetic")


# --------------------------------------------------------------------------- agreement


def agreement_classification(fp32_logits: np.ndarray, int8_logits: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """How often int8 picks fp32's class: ``int8_vs_fp32_top1_agreement`` and, with >= k classes,
    ``int8_vs_fp32_top5_overlap``, the mean fraction of fp32's top-k classes also in int8's top-k.
    Inputs are (N, classes) scores. Raises SpecError on mismatched or empty shapes.
    """
    a, b = np.asarray(fp32_logits), np.asarray(int8_logits)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise SpecError(f"logits must be two (N, classes) arrays of one shape, got {a.shape} and {b.shape}")
    result = {"int8_vs_fp32_top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
              "num_samples": int(a.shape[0])}
    if a.shape[1] >= k:
        top_a, top_b = np.argsort(-a, axis=1)[:, :k], np.argsort(-b, axis=1)[:, :k]
        overlap = [len(set(x) & set(y)) / k for x, y in zip(top_a.tolist(), top_b.tolist())]
        result[f"int8_vs_fp32_top{k}_overlap"] = float(np.mean(overlap))
    return result


def agreement_detection(fp32_dets: Sequence[Any], int8_dets: Sequence[Any], *, iou: float = 0.5) -> dict[str, float]:
    """Match int8 detections to fp32 ones per image (same class, IoU >= ``iou``), greedy by int8 score.

    Each image's detections are a (K, 6) array ``[x1, y1, x2, y2, score, class]``, a
    sequence of ``(box_xyxy, score, class)``, a ``(boxes, scores, classes)`` tuple, or a
    mapping with ``boxes``, ``scores`` and ``classes`` (or ``labels``). Returns (each
    prefixed ``int8_vs_fp32_``) ``detection_precision`` (matched / int8 count),
    ``detection_recall`` (matched / fp32 count), ``detection_f1``, ``mean_iou`` of the
    matches, and the counts (unprefixed). With no
    detections on either side the sets agree: precision, recall, F1 and mean IoU are 1.0;
    with detections but no match they are 0.0. Raises SpecError on malformed input.
    """
    if len(fp32_dets) != len(int8_dets):
        raise SpecError(f"fp32 has detections for {len(fp32_dets)} images, int8 for {len(int8_dets)}")
    matched, n_ref, n_int8, ious = 0, 0, 0, []
    for image, (ref_raw, new_raw) in enumerate(zip(fp32_dets, int8_dets)):
        ref, new = _dets(ref_raw, f"fp32 image {image}"), _dets(new_raw, f"int8 image {image}")
        n_ref, n_int8 = n_ref + len(ref), n_int8 + len(new)
        if not len(ref) or not len(new):
            continue
        overlap = _iou_matrix(new[:, :4], ref[:, :4])
        overlap[new[:, 5][:, None] != ref[:, 5][None, :]] = -1.0
        taken = np.zeros(len(ref), dtype=bool)
        for i in np.argsort(-new[:, 4], kind="stable"):
            candidates = np.where(taken, -1.0, overlap[i])
            j = int(candidates.argmax())
            if candidates[j] >= iou:
                taken[j] = True
                matched += 1
                ious.append(float(candidates[j]))
    if n_ref == n_int8 == 0:
        precision = recall = f1 = mean_iou = 1.0
    else:
        precision = matched / n_int8 if n_int8 else 0.0
        recall = matched / n_ref if n_ref else 0.0
        f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
        mean_iou = float(np.mean(ious)) if ious else 0.0
    return {"int8_vs_fp32_detection_precision": precision, "int8_vs_fp32_detection_recall": recall,
            "int8_vs_fp32_detection_f1": f1, "int8_vs_fp32_mean_iou": mean_iou, "num_fp32_detections": n_ref,
            "num_int8_detections": n_int8,
            "num_matched": matched}


def _dets(value: Any, where: str) -> np.ndarray:
    if isinstance(value, Mapping):
        classes = value.get("classes", value.get("labels"))
        if "boxes" not in value or "scores" not in value or classes is None:
            raise SpecError(f"{where}: a detection mapping needs boxes, scores and classes (or labels)")
        value = (value["boxes"], value["scores"], classes)
    if isinstance(value, tuple) and len(value) == 3 and _is_matrix(value[0]):
        boxes, scores, classes = (np.asarray(v, dtype=np.float64) for v in value)
        if boxes.shape[1:] != (4,) or scores.shape != (len(boxes),) or classes.shape != (len(boxes),):
            raise SpecError(f"{where}: boxes (K, 4), scores (K,), classes (K,) expected, got "
                            f"{boxes.shape}, {scores.shape}, {classes.shape}")
        return np.column_stack([boxes, scores, classes]) if len(boxes) else np.zeros((0, 6))
    if isinstance(value, np.ndarray) and value.ndim == 2:
        array = value.astype(np.float64)
    else:
        try:
            array = np.array([[*np.asarray(box, dtype=np.float64).reshape(4), float(score), float(cls)]
                              for box, score, cls in value], dtype=np.float64).reshape(-1, 6)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: detections must be (box_xyxy, score, class) triples: {exc}") from exc
    if array.ndim != 2 or array.shape[1] != 6:
        raise SpecError(f"{where}: detections must be (K, 6) [x1, y1, x2, y2, score, class], got {array.shape}")
    return array


def _is_matrix(value: Any) -> bool:
    try:
        return np.asarray(value, dtype=np.float64).ndim == 2
    except (TypeError, ValueError):  # a ragged (box, score, class) triple
        return False


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# --------------------------------------------------------------------------- speed and size


def measure_latency(
    onnx_path: Path, input_feed: Mapping[str, np.ndarray], *, batch: int, warmup: int, repeats: int, threads: int,
) -> dict[str, float]:
    """Median and p90 wall time (ms) of one ``session.run`` at ``batch`` on the CPU provider.

    ``intra_op_num_threads`` is pinned to ``threads`` (inter-op sequential) and reported.
    Each input's first axis is cut or tiled to ``batch``. Raises SpecError for
    non-positive counts or an empty feed.
    """
    session, feed = _latency_setup(onnx_path, input_feed, batch=batch, warmup=warmup, repeats=repeats,
                                   threads=threads)
    _warm_up(session, feed, warmup)
    return _summary(_timed(session, feed, repeats), batch=batch, threads=threads, warmup=warmup)


MIN_BUDGET_REPEATS = 2  # a time budget never cuts a round below this many runs per side


def budget_repeats(repeats: int, rounds: int, pair_seconds: float, budget_s: float | None) -> int:
    """Runs per side and round that fit ``budget_s`` seconds of timed runs, given one fp32 + int8 pair's time.

    ``repeats`` when there is no budget or it is enough; never below :data:`MIN_BUDGET_REPEATS` (or
    ``repeats`` when that is smaller). A 1200x1200 SSD-ResNet34 pair takes ~1.6 s on 2 cores: 5 x 2 rounds
    would be 16 s, an 8 s budget makes it 2 x 2.
    """
    if budget_s is None or pair_seconds <= 0:
        return repeats
    fit = int(budget_s // (rounds * pair_seconds))
    return max(min(repeats, MIN_BUDGET_REPEATS), min(repeats, fit))


def latency_ratio(
    fp32_path: Path, int8_path: Path, input_feed: Mapping[str, np.ndarray], *,
    batch: int, warmup: int, repeats: int, threads: int, rounds: int = 3, budget_s: float | None = None,
) -> dict[str, Any]:
    """Measure fp32 and int8 head to head, alternating ``rounds`` blocks of ``repeats`` runs.

    Returns ``fp32`` and ``int8`` latency summaries (as :func:`measure_latency`) over all
    rounds and ``int8_latency_ratio`` = int8 median / fp32 median. Alternating in one
    process keeps machine noise from favouring one side. With ``budget_s``, the last warmup
    pair's time decides how many of the ``repeats`` fit (:func:`budget_repeats`); the summaries'
    ``repeats`` say how many ran. Raises SpecError as :func:`measure_latency`.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise SpecError(f"rounds must be a positive integer, got {rounds!r}")
    setups = [_latency_setup(p, input_feed, batch=batch, warmup=warmup, repeats=repeats, threads=threads)
              for p in (fp32_path, int8_path)]
    pair = sum(_warm_up(session, feed, warmup) for session, feed in setups)
    repeats = budget_repeats(repeats, rounds, pair, budget_s)
    times: list[list[float]] = [[], []]
    for _ in range(rounds):
        for side, (session, feed) in enumerate(setups):
            times[side] += _timed(session, feed, repeats)
    fp32, int8 = (_summary(t, batch=batch, threads=threads, warmup=warmup) for t in times)
    return {"fp32": fp32, "int8": int8, "int8_latency_ratio": int8["median_ms"] / fp32["median_ms"],
            "rounds": rounds, "budget_s": budget_s}


def _latency_setup(path: Path, input_feed: Mapping[str, np.ndarray], *, batch: int, warmup: int, repeats: int,
                   threads: int) -> tuple[Any, dict[str, np.ndarray]]:
    for name, value, low in (("batch", batch, 1), ("warmup", warmup, 0), ("repeats", repeats, 1),
                             ("threads", threads, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpecError(f"latency {name} must be an integer >= {low}, got {value!r}")
    if not input_feed:
        raise SpecError("latency input_feed is empty")
    feed = {}
    for name, value in input_feed.items():
        array = np.asarray(value)
        feed[name] = np.ascontiguousarray(array[:batch] if len(array) >= batch
                                          else np.resize(array, (batch, *array.shape[1:])))
    # no spinning: latency_ratio alternates two sessions, whose idle workers would otherwise busy-wait on the
    # cores the running one needs; measure_latency uses the same setting so both measures compare
    return cpu_session(Path(path), threads=threads, spinning=False), feed


def _warm_up(session: Any, feed: dict[str, np.ndarray], warmup: int) -> float:
    """Run ``warmup`` untimed runs; the last one's seconds (0.0 when there was none)."""
    seconds = 0.0
    for _ in range(warmup):
        start = time.perf_counter()
        session.run(None, feed)
        seconds = time.perf_counter() - start
    return seconds


def _timed(session: Any, feed: dict[str, np.ndarray], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _summary(times_ms: list[float], *, batch: int, threads: int, warmup: int) -> dict[str, float]:
    ordered = sorted(times_ms)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "mean_ms": statistics.fmean(ordered),
            "min_ms": ordered[0], "threads": threads, "batch": batch, "repeats": len(ordered), "warmup": warmup,
            "cpu_count": os.cpu_count() or 0}


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes. Raises FileNotFoundError (builtin) when missing."""
    return Path(path).stat().st_size


def onnx_param_counts(path: Path) -> dict[str, int]:
    """Element counts of an ONNX file's initializers: ``params`` and ``quantization_params``
    (see :func:`furiosa.artifacts.onnx_io.parameter_counts`). Raises BuildError for an unreadable file."""
    try:
        return parameter_counts(Path(path))
    except (OSError, ValueError) as exc:  # ModelBinaryError and UnsafePathError are ValueErrors
        raise BuildError(f"cannot read {path} as ONNX: {exc}") from exc


def count_onnx_params(path: Path) -> int:
    """Weights and biases in an ONNX file, scales and zero points excluded (see :func:`onnx_param_counts`)."""
    return onnx_param_counts(path)["params"]


# --------------------------------------------------------------------------- gates and metrics


def _validate_gates(gates: Mapping[str, Any]) -> None:
    unknown = sorted(k for k in gates if k not in GATES)
    if unknown:
        raise SpecError(f"unknown gate(s) {', '.join(map(repr, unknown))}; known gates: {', '.join(GATES)}")
    for key, threshold in gates.items():
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise SpecError(f"gate {key!r} must be a finite number, got {threshold!r}")


def check_gates(model_name: str, metrics: Mapping[str, Any], gates: Mapping[str, float]) -> None:
    """Raise GateError naming the model, metric, value and gate for every gate missed.

    A gate whose metric was not measured counts as missed. Raises SpecError for an
    unknown gate key or a non-numeric threshold, BuildError for a non-numeric metric.
    """
    _validate_gates(gates)
    failures = []
    for key, threshold in gates.items():
        metric, kind = GATES[key]
        value = metrics.get(metric)
        if value is None:
            failures.append(f"{metric} was not measured but gate {key} = {threshold} needs it")
        elif isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise BuildError(f"{model_name}: metric {metric} is {value!r}, not a number; gate {key} cannot be checked")
        elif (value < threshold) if kind == "min" else (value > threshold):
            op = "<" if kind == "min" else ">"
            failures.append(f"{metric} {value:.6g} {op} gate {key} {threshold:g}")
    if failures:
        raise GateError(f"{model_name}: quality gate(s) missed: " + "; ".join(failures))


def apply_gates(
    model_name: str, metrics: Mapping[str, Any], gates: Mapping[str, float], *, weights_source: str,
    real_dataset: bool = True,
) -> dict[str, Any]:
    """Return ``metrics`` plus ``weights`` and ``gates`` sections, enforcing gates unless synthetic.

    ``weights`` is ``{"source": ..., "deployable": source != "synthetic"}``. For synthetic
    weights every gate is recorded ``not_applicable`` (with value and threshold, nothing
    enforced). Without a ``real_dataset`` (the offline sample photos), the gates in
    :data:`DATASET_GATES` are recorded ``not_applicable`` with the reason; so is
    ``fp32_published_gap_max`` when no published figure was compared. Every other gate goes
    through :func:`check_gates` and is recorded ``pass``. Raises SpecError for an unknown
    source or gate key, GateError when a gate is missed.
    """
    if weights_source not in WEIGHT_SOURCES:
        raise SpecError(f"weights source {weights_source!r} is not one of {', '.join(WEIGHT_SOURCES)}")
    _validate_gates(gates)
    synthetic = weights_source == "synthetic"
    reasons: dict[str, str] = {}
    for key in gates:
        if synthetic:
            reasons[key] = "synthetic (random) weights"
        elif key in DATASET_GATES and not real_dataset:
            reasons[key] = "no labelled dataset configured (offline sample photos)"
        elif key == "fp32_published_gap_max" and metrics.get("fp32_published_gap") is None:
            reasons[key] = "no published accuracy to compare with"
    check_gates(model_name, metrics, {k: v for k, v in gates.items() if k not in reasons})
    report = {}
    for key, threshold in gates.items():
        entry = {"status": "not_applicable" if key in reasons else "pass", "threshold": threshold,
                 "value": metrics.get(GATES[key][0])}
        if key in reasons:
            entry["reason"] = reasons[key]
        report[key] = entry
    return {**metrics, "weights": {"source": weights_source, "deployable": not synthetic}, "gates": report}


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    """Write ``metrics`` as JSON atomically: sorted keys, floats to 6 significant digits.

    numpy scalars and arrays, tuples and paths are converted. Raises BuildError for NaN,
    infinity, or a value JSON cannot hold, naming its key.
    """
    text = json.dumps(_jsonable(metrics, "metrics"), sort_keys=True, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BuildError(f"metric {where} is {value}; metrics must be finite numbers")
        return float(f"{value:.6g}")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise BuildError(f"metric {where} has type {type(value).__name__}, which JSON cannot hold")
