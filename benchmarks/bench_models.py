"""Model measurements: fp32 vs int8 latency (alternating, one process), peak memory, sizes, build times.

Every ONNX Runtime measurement runs in a fresh child process (``python bench_models.py latency|memory
JSON``), so one model's sessions, allocator arenas and thread pools never weigh on another's numbers, and
the child's own peak resident memory (:func:`peak_rss_mb`) is that of that measurement alone. Sessions
come from the pipeline's own ``cpu_session`` (all graph optimisations, ``intra_op_num_threads`` pinned,
sequential inter-op), the configuration the latency gate uses.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# SSD-ResNet34 at 1200x1200 takes about a second per image in fp32 on 2 cores: measure it at batch 2
# instead of 8, with fewer pairs (recorded in the results as batch and pairs).
LARGE_BATCH = {"MLCommonsSSDResNet34": 2}
PAIR_SCALE = {"MLCommonsSSDResNet34": 0.25}


# --------------------------------------------------------------------------- child side


def _session(path: str, threads: int):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from furiosa.artifacts.onnx_io import cpu_session

    return cpu_session(Path(path), threads=threads, spinning=False)  # fp32 and int8 take turns


def _input(npz: str, batch: int, name: str):
    import numpy as np

    with np.load(npz, allow_pickle=False) as data:
        array = data["data"]
    return {name: np.ascontiguousarray(np.resize(array[:batch], (batch, *array.shape[1:])), dtype=np.float32)}


def peak_rss_mb() -> tuple[float, str]:
    """This process's peak resident memory (MB) and how it was read.

    Linux: ``VmHWM`` from /proc/self/status, the high-water mark of this process image. (``ru_maxrss``
    is not used there: Linux carries the parent's peak over fork and exec, so a child started by a big
    parent would report the parent's peak.) Elsewhere: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0, "VmHWM"
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, "ru_maxrss"


def _stats(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"median_ms": statistics.median(ordered), "p10_ms": pct(0.1), "p90_ms": pct(0.9),
            "min_ms": ordered[0], "n": len(ordered)}


def _alternate(sessions: dict[str, Any], feed: dict, pairs: int, clock) -> dict[str, list[float]]:
    """``pairs`` runs of each session, alternating ABBA so drift and position favour neither side."""
    times: dict[str, list[float]] = {k: [] for k in sessions}
    order = list(sessions)
    for i in range(pairs):
        for key in (order if i % 2 == 0 else order[::-1]):
            start = clock()
            sessions[key].run(None, feed)
            times[key].append((clock() - start) * 1000.0)
    return times


def _compare(times: dict[str, list[float]]) -> dict[str, Any]:
    fp32, int8 = times["fp32"], times["int8"]
    paired = sorted(b / a for a, b in zip(fp32, int8))
    return {"fp32": _stats(fp32), "int8": _stats(int8),
            "ratio": statistics.median(int8) / statistics.median(fp32),
            "paired_ratio": statistics.median(paired),
            "paired_ratio_iqr": [paired[len(paired) // 4], paired[(3 * len(paired)) // 4]]}


def child_latency(args: dict[str, Any]) -> dict[str, Any]:
    """fp32 and int8 latency at each batch (wall clock, ``threads``), then CPU time at 1 thread, batch 1."""
    out: dict[str, Any] = {"wall": {}, "cpu": None}
    sessions = {"fp32": _session(args["fp32"], args["threads"]), "int8": _session(args["int8"], args["threads"])}
    name = sessions["fp32"].get_inputs()[0].name
    for batch, pairs in args["batches"]:
        feed = _input(args["npz"], batch, name)
        for s in sessions.values():
            for _ in range(args["warmup"]):
                s.run(None, feed)
        result = _compare(_alternate(sessions, feed, pairs, time.perf_counter))
        out["wall"][str(batch)] = {"batch": batch, "threads": args["threads"], "pairs": pairs, **result}
    if args["cpu_pairs"]:
        # CPU time of this process at 1 thread: what other jobs on the machine cannot inflate.
        sessions = {"fp32": _session(args["fp32"], 1), "int8": _session(args["int8"], 1)}
        feed = _input(args["npz"], 1, name)
        for s in sessions.values():
            s.run(None, feed)
        result = _compare(_alternate(sessions, feed, args["cpu_pairs"], time.process_time))
        out["cpu"] = {"batch": 1, "threads": 1, "pairs": args["cpu_pairs"], "clock": "process_time", **result}
    out["child_peak_rss_mb"] = peak_rss_mb()[0]
    return out


def child_memory(args: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of a process that loads one model and runs it at one batch size."""
    import numpy  # noqa: F401  (imported before the baseline, like the session's own imports)
    import onnxruntime  # noqa: F401

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from furiosa.artifacts.onnx_io import ORT_ERRORS  # noqa: F401  (imports onnx and onnxruntime)

    baseline = peak_rss_mb()[0]
    start = time.perf_counter()
    session = _session(args["model"], args["threads"])
    load_seconds = time.perf_counter() - start
    feed = _input(args["npz"], args["batch"], session.get_inputs()[0].name)
    for _ in range(2):
        session.run(None, feed)
    peak, how = peak_rss_mb()
    return {"batch": args["batch"], "threads": args["threads"], "peak_rss_mb": peak, "baseline_rss_mb": baseline,
            "model_rss_mb": peak - baseline, "session_load_seconds": load_seconds, "read_from": how}


# --------------------------------------------------------------------------- parent side


def _run_child(kind: str, args: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__)), kind, json.dumps(args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def model_paths(name: str, root: Path = REPO) -> dict[str, Path]:
    base = root / "models" / name
    return {k: base / f for k, f in (("fp32", "fp32.onnx"), ("int8", "int8.onnx"), ("npz", "calibration.npz"),
                                     ("export", "export.json"), ("quantize", "quantize.json"),
                                     ("metrics", "metrics.json"), ("weights", "weights.json"))}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def requantize(name: str, workdir: Path) -> dict[str, Any]:
    """Quantize and evaluate ``name`` with the settings now in params.yaml, into ``workdir``.

    Uses the pipeline's own stage functions (quantize_stage, evaluate_stage) on the workspace's fp32
    model and calibration set, read only; the workspace is not touched.
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from furiosa.artifacts.errors import GateError
    from furiosa.artifacts.pipeline.params import load_params
    from furiosa.artifacts.pipeline.stages import evaluate_stage, quantize_stage

    params = load_params(REPO / "params.yaml")
    src = model_paths(name)
    workdir.mkdir(parents=True, exist_ok=True)
    out = {**src, "int8": workdir / "int8.onnx", "quantize": workdir / "quantize.json",
           "metrics": workdir / "metrics.json"}
    quantize_stage(params, name, fp32=src["fp32"], calibration=src["npz"], out=out["int8"], report=out["quantize"])
    try:
        evaluate_stage(params, name, fp32=src["fp32"], int8=out["int8"], weights_record=src["weights"],
                       export_report=src["export"], quantize_report=out["quantize"],
                       out=out["metrics"])
    except GateError as exc:  # reported with the results; the benchmark goes on
        out["gate_error"] = str(exc)  # type: ignore[assignment]
    return out


def _quality(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("int8_vs_fp32_top1_agreement", "int8_vs_fp32_top5_overlap", "accuracy_drop", "int8_vs_fp32_detection_f1",
            "int8_vs_fp32_mean_iou", "int8_accuracy_ratio")
    gates = {k: {"threshold": v.get("threshold"), "value": v.get("value"), "status": v.get("status")}
             for k, v in (metrics.get("gates") or {}).items()}
    return {"metrics": {k: metrics[k] for k in keys if k in metrics}, "gates": gates,
            "weights_source": (metrics.get("weights") or {}).get("source")}


def bench_model(name: str, *, threads: int, quick: bool, requantize_dir: Path | None,
                params_settings: dict[str, Any] | None) -> dict[str, Any]:
    """Everything measured for one model (see the module docstring)."""
    paths = model_paths(name)
    missing = [str(p.relative_to(REPO)) for k, p in paths.items() if k in ("fp32", "int8", "npz") and not p.is_file()]
    if missing:
        return {"status": "skipped", "reason": f"missing {', '.join(missing)}: run `furiosa-artifacts build` or "
                                                 "`dvc pull` first"}
    result: dict[str, Any] = {"status": "ok", "int8_source": "workspace"}
    if requantize_dir is not None:
        start = time.perf_counter()
        paths = requantize(name, requantize_dir / name)
        result["int8_source"] = "requantized with params.yaml (temporary copy)"
        result["requantize_wall_seconds"] = time.perf_counter() - start
        if "gate_error" in paths:
            result["gate_error"] = paths.pop("gate_error")
    export, quantize = _read_json(paths["export"]), _read_json(paths["quantize"])
    built_settings = quantize.get("settings")
    result.update({
        "int8_path": str(paths["int8"].relative_to(REPO)) if paths["int8"].is_relative_to(REPO) else "(temporary)",
        "fp32_bytes": paths["fp32"].stat().st_size, "int8_bytes": paths["int8"].stat().st_size,
        "export_seconds": export.get("export_seconds"), "quantize_seconds": quantize.get("quantize_seconds"),
        "quantize_preprocess_seconds": quantize.get("preprocess_seconds"),
        "quantized_ops": quantize.get("quantized_ops"), "settings": built_settings,
        "settings_match_params": built_settings == params_settings if params_settings is not None else None,
    })
    result["size_ratio"] = result["int8_bytes"] / result["fp32_bytes"]
    metrics = _read_json(paths["metrics"])
    result["quality"] = _quality(metrics)
    # what the pipeline's own latency gate measured (wall time, rounds of repeats; noisy on a shared machine)
    result["pipeline_gate_latency_ratio"] = metrics.get("int8_latency_ratio")

    large = LARGE_BATCH.get(name, 8)
    scale = PAIR_SCALE.get(name, 1.0)
    pairs_1, pairs_large, cpu_pairs = (6, 2, 3) if quick else (24, 8, 8)
    batches = [[1, max(3, round(pairs_1 * scale))], [large, max(2, round(pairs_large * scale))]]
    args = {"fp32": str(paths["fp32"]), "int8": str(paths["int8"]), "npz": str(paths["npz"]), "threads": threads,
            "batches": batches, "warmup": 1 if quick else 2, "cpu_pairs": max(2, round(cpu_pairs * scale))}
    result["latency"] = _run_child("latency", args, timeout=900)
    if large != 8:
        result["latency"]["note"] = f"batch {large} instead of 8 and fewer pairs: ~1 s per 1200x1200 image in fp32"
    memory: dict[str, Any] = {"method": "peak resident memory (VmHWM of /proc/self/status on Linux, else "
                                        "ru_maxrss) of a fresh child process per (precision, batch): imports, "
                                        "session load, 1 warm-up + 2 runs; baseline = after the imports"}
    for precision in ("fp32", "int8"):
        for batch in ([1] if quick else [1, large]):
            memory[f"{precision}_b{batch}"] = _run_child(
                "memory", {"model": str(paths[precision]), "npz": str(paths["npz"]), "batch": batch,
                           "threads": threads}, timeout=600)
    result["memory"] = memory
    return result


def temporary_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="furiosa-bench-")


if __name__ == "__main__":
    kind, payload = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"latency": child_latency, "memory": child_memory}[kind](payload)))
