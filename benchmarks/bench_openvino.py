"""ONNX Runtime vs OpenVINO, fp32 and int8, and the SSD post-processing worst case (issue 18).

    python benchmarks/bench_openvino.py [--models A,B] [--pairs N] [--write-readme]

For every model with int8 targets in params.yaml ``benchmarks.int8_latency_ratio_max``: ORT fp32 and ORT int8
(the catalog's binaries, the pipeline's ``cpu_session``), OpenVINO fp32 (the same fp32.onnx, inference precision
pinned to f32 so AMX machines do not silently run bf16) and OpenVINO's own int8 (NNCF post-training quantization
of the fp32 file, calibrated on the same ``models/<name>/calibration.npz``), at batch 1 and 8 (SSD-ResNet34: 2),
with ``base.latency.threads`` threads, the four run in turn (rotating order) for ``--pairs`` rounds: medians of
wall time. Also: which operators remain float in the ORT-optimised int8 graph (node counts by type), the CPU and
its int8 ISA (VNNI or not, AMX or not, from /proc/cpuinfo flags), and the SSD decode + NMS worst case (every
anchor over the score threshold) against ``benchmarks.nms_worst_case_ms_max``.

Results go to benchmarks/results/openvino.json keyed by ISA (a run on another machine kind adds rows, a rerun on
the same kind replaces them); ``--write-readme`` regenerates the README table between its markers.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import bench_tools  # noqa: E402

RESULTS = HERE / "results" / "openvino.json"
README = REPO / "README.md"
START, END = "<!-- openvino:start", "<!-- openvino:end -->"
LARGE_BATCH = {"MLCommonsSSDResNet34": 2}
# ops that hold or move int8 data once ORT has fused the QDQ graph; the rest of the compute runs in float
INT8_OPS = {"QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat",
            "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu",
            "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere", "MatMulInteger", "ConvInteger",
            "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QuantizeLinear", "DequantizeLinear", "MaxPool",
            "NhwcMaxPool"}  # NhwcMaxPool: the uint8 max pool ORT makes of DQ -> MaxPool -> Q
SHAPE_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Gather", "Concat",
             "Slice", "Constant", "ReorderInput", "ReorderOutput", "Pad"}
TRIED = ("QDQ with QuantizeBias false (ORT quantizes biases at fusion), per-channel int8 weights (QInt8) with "
         "uint8 activations (U8S8: signed activations are no faster than fp32 here), MinMax calibration, TF "
         "'same' Pads folded into the Convs so ORT fuses every Conv (build/_fold.py), QOperator (same speed as "
         "QDQ for ResNet50, 0.33 vs 0.355 for SSD-MobileNet; not portable), per-tensor weights, symmetric and "
         "asymmetric, to move ORT's QLinearConv off its symmetric-weight VNNI kernels (MlasConvSym) onto the "
         "general U8S8 QGEMM that has an AMX kernel: ResNet50 batch 1 int8/fp32 0.55 and 0.56 vs 0.45 for the "
         "shipped per-channel file (AMX Xeon, 2 threads), so no gain. OpenVINO's lead on AMX machines is its "
         "AMX int8 convolutions (oneDNN), which ORT's CPU provider does not use for convolutions")


def isa(flags: dict[str, bool]) -> str:
    """The int8 instruction set the targets are keyed by: vnni (AVX512-VNNI or AVX-VNNI) or avx2."""
    return "vnni" if flags.get("avx512_vnni") or flags.get("avx_vnni") else "avx2"


def _flags() -> dict[str, bool]:
    machine = bench_tools.machine()
    return machine, machine["flags"]


def float_ops(int8_path: Path) -> dict[str, int]:
    """Node counts by type of the ORT-optimised int8 graph that compute in float (not int8, not data movement)."""
    from furiosa.artifacts.onnx_io import cpu_session, read_model

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        cpu_session(int8_path, optimized_model_filepath=optimized)
        graph = read_model(optimized).graph
    counts = collections.Counter(n.op_type for n in graph.node if n.op_type not in INT8_OPS | SHAPE_OPS)
    return dict(counts.most_common())


def _ov_compile(core: Any, model: Any, batch: int, threads: int, *, precision: str | None) -> Any:
    model = model.clone()
    model.reshape({model.input(0).get_any_name(): [batch, *list(model.input(0).get_partial_shape())[1:]]})
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return core.compile_model(model, "CPU", config)


def nncf_int8(core: Any, fp32: Path, calibration: np.ndarray) -> tuple[Any, float]:
    """OpenVINO's own int8: NNCF post-training quantization of ``fp32`` on the calibration tensors."""
    import nncf

    model = core.read_model(str(fp32))
    start = time.perf_counter()
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration))
    return quantized, time.perf_counter() - start


def bench_model(name: str, *, threads: int, pairs: int) -> dict[str, Any]:
    """ORT fp32/int8 vs OpenVINO fp32/NNCF int8 medians at batch 1 and the large batch, plus float ops left."""
    import openvino as ov

    from furiosa.artifacts.onnx_io import cpu_session

    root = REPO / "models" / name
    with np.load(root / "calibration.npz", allow_pickle=False) as data:
        calibration = np.ascontiguousarray(data["data"], dtype=np.float32)
    core = ov.Core()
    ov_fp32 = core.read_model(str(root / "fp32.onnx"))
    ov_int8, nncf_seconds = nncf_int8(core, root / "fp32.onnx", calibration)
    # the engines take turns: idle ORT threads must not spin on the cores the running one needs
    sessions = {"ort_fp32": cpu_session(root / "fp32.onnx", threads=threads, spinning=False),
                "ort_int8": cpu_session(root / "int8.onnx", threads=threads, spinning=False)}
    input_name = sessions["ort_fp32"].get_inputs()[0].name
    out: dict[str, Any] = {"nncf_quantize_seconds": round(nncf_seconds, 1), "batches": {},
                           "float_ops_in_int8": float_ops(root / "int8.onnx")}
    for batch in (1, LARGE_BATCH.get(name, 8)):
        x = np.ascontiguousarray(np.resize(calibration[:batch], (batch, *calibration.shape[1:])))
        runners = {
            "ort_fp32": lambda s=sessions["ort_fp32"]: s.run(None, {input_name: x}),
            "ort_int8": lambda s=sessions["ort_int8"]: s.run(None, {input_name: x}),
        }
        for key, model, precision in (("ov_fp32", ov_fp32, "f32"), ("ov_int8", ov_int8, None)):
            request = _ov_compile(core, model, batch, threads, precision=precision).create_infer_request()
            runners[key] = lambda r=request: r.infer({0: x})
        for run in runners.values():
            run()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in runners}
        keys = list(runners)
        rounds = max(2, pairs if batch == 1 else pairs // 3) // (2 if name in LARGE_BATCH else 1)
        for r in range(rounds):
            for key in keys[r % 4:] + keys[:r % 4]:
                start = time.perf_counter()
                runners[key]()
                times[key].append((time.perf_counter() - start) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        out["batches"][str(batch)] = {
            "rounds": rounds, "median_ms": {k: round(v, 2) for k, v in med.items()},
            "ort_int8_over_fp32": round(med["ort_int8"] / med["ort_fp32"], 3),
            "ov_int8_over_fp32": round(med["ov_int8"] / med["ov_fp32"], 3),
            "ort_int8_over_ov_int8": round(med["ort_int8"] / med["ov_int8"], 3),
            "ov_fp32_over_ort_fp32": round(med["ov_fp32"] / med["ort_fp32"], 3),
        }
    return out


def worst_case_inputs(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw SSD heads (1, A, 4), (1, A, C) where every anchor is over the score threshold: for sigmoid scores
    every class, for softmax (at most 1 / threshold classes can pass) 19 classes per anchor at ~1/19."""
    from furiosa.artifacts.vision.specs import load_spec

    spec = load_spec(name)
    count = spec.postprocess.anchors.count
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 0.5, (1, count, 4)).astype(np.float32)
    if spec.postprocess.score == "sigmoid":
        conf = rng.normal(3, 0.5, (1, count, spec.num_classes)).astype(np.float32)
    else:
        per_anchor = int(1 / spec.postprocess.score_threshold) - 1
        conf = np.full((1, count, spec.num_classes), -20.0, np.float32)
        picks = np.argsort(rng.random((count, spec.num_classes - 1)), axis=1)[:, :per_anchor] + 1
        np.put_along_axis(conf[0], picks, (5 + rng.random(picks.shape) * 1e-3).astype(np.float32), axis=1)
    return loc, conf


def bench_nms(names: list[str], *, repeats: int = 5, with_oracle: bool = True) -> dict[str, Any]:
    """Decode + scores + per-class NMS per image on the worst case (``detect_arrays``): median wall ms; also
    ``detect`` once (one Python Detection per kept box) and the old loop once."""
    from furiosa.artifacts.vision.postprocess import detect, detect_arrays
    from furiosa.artifacts.vision.preprocess import ImageContext
    from furiosa.artifacts.vision.specs import load_spec

    out = {}
    for name in names:
        spec = load_spec(name)
        loc, conf = worst_case_inputs(name)
        h, w = spec.input.size
        context = [ImageContext(original_size=(480, 640), resized_size=(h, w), crop_offset=(0, 0), input_size=(h, w))]
        detect_arrays(loc, conf, spec)
        times, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.thread_time()
            ((boxes, _, _),) = detect_arrays(loc, conf, spec)
            cpu.append((time.thread_time() - start_cpu) * 1e3)
            times.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        detect(loc, conf, context, spec)
        objects_ms = (time.perf_counter() - start) * 1e3
        row = {"median_ms": round(statistics.median(times), 1), "cpu_ms": round(min(cpu), 1), "detections": len(boxes),
               "candidates": int(_candidates(conf, spec)), "with_detection_objects_ms": round(objects_ms, 1)}
        if with_oracle:
            row["old_loop_ms"] = round(_oracle_ms(loc, conf, spec), 1)
        out[name] = row
    return out


def bench_nms_isolated(names: list[str]) -> dict[str, Any]:
    """:func:`bench_nms` in a fresh interpreter: after the engines have run, this process's allocator state
    (and any worker thread still winding down) adds 10-30% to the post-processing's own time."""
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import bench_openvino; "
            "print(json.dumps(bench_openvino.bench_nms(sys.argv[3].split(','))))")
    proc = subprocess.run([sys.executable, "-c", code, str(HERE), str(REPO), ",".join(names)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _candidates(conf: np.ndarray, spec: Any) -> int:
    from furiosa.artifacts.vision.postprocess import class_scores

    return int((class_scores(conf[0], spec.postprocess.score)[:, 1:] > spec.postprocess.score_threshold).sum())


def _oracle_ms(loc: np.ndarray, conf: np.ndarray, spec: Any) -> float:
    """The pre-issue-18 per-class Python loop (kept as tests/nms_oracle.py), same decode, once."""
    sys.path.insert(0, str(REPO / "tests"))
    import nms_oracle

    from furiosa.artifacts.vision.anchors import generate_anchors
    from furiosa.artifacts.vision.boxes import decode
    from furiosa.artifacts.vision.postprocess import class_scores

    post = spec.postprocess
    start = time.perf_counter()
    boxes = decode(loc[0], generate_anchors(post.anchors), post.box_coder)
    nms_oracle.multiclass_nms(boxes, class_scores(conf[0], post.score), score_threshold=post.score_threshold,
                               iou_threshold=post.nms_iou, eps=post.nms_eps, per_class_top_k=post.per_class_top_k,
                               max_detections=post.max_detections)
    return (time.perf_counter() - start) * 1e3


def markdown(results: dict[str, Any]) -> str:
    """The README table: one row per model per ISA measured, targets from params.yaml."""
    lines = ["| model | CPU (int8 ISA) | batch | ORT fp32 ms | ORT int8 ms | ORT int8/fp32 | target | OpenVINO fp32 ms "
             "| OpenVINO int8 (NNCF) ms | ORT int8 / OpenVINO int8 | status | float ops left in our int8 graph |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for key, run in sorted(results.get("runs", {}).items()):
        cpu = f"{run['machine']['cpu_model']} ({key}{', AMX' if run['machine']['amx'] else ''})"
        for name, model in run["models"].items():
            target = run["targets"]["int8_latency_ratio_max"].get(name)
            for batch, b in model["batches"].items():
                ok_ratio = target is None or b["ort_int8_over_fp32"] <= target
                ok_ov = b["ort_int8_over_ov_int8"] <= run["targets"]["int8_vs_openvino_int8_max"]
                status = "met" if ok_ratio and ok_ov else "missed: " + ", ".join(
                    x for x, ok in (("int8/fp32", ok_ratio), ("vs OpenVINO", ok_ov)) if not ok)
                ops = ", ".join(f"{k} {v}" for k, v in model["float_ops_in_int8"].items()) or "none"
                m = b["median_ms"]
                lines.append(f"| {name} | {cpu} | {batch} | {m['ort_fp32']:.1f} | {m['ort_int8']:.1f} | "
                             f"{b['ort_int8_over_fp32']:.3f} | <= {target} | {m['ov_fp32']:.1f} | {m['ov_int8']:.1f} | "
                             f"{b['ort_int8_over_ov_int8']:.3f} | {status} | {ops} |")
                if status != "met":
                    notes.append(f"{name} batch {batch} on {key}")
        nms = run.get("nms", {})
        if nms:
            limit = run["targets"]["nms_worst_case_ms_max"]
            lines.append("")
            lines.append(f"SSD decode + NMS worst case on {cpu} (every anchor over the threshold; target <= {limit} "
                         "ms per image): " + "; ".join(
                             f"{n} {r.get('cpu_ms', '?')} ms CPU time of the calling thread (best of 5; "
                             "the engines' idle threads excluded; wall median "
                             f"{r['median_ms']} ms) for {r['candidates']} candidates, {r['detections']} kept "
                             f"({r['with_detection_objects_ms']:.0f} ms with Detection objects)"
                             + (f" (old per-class loop: {r['old_loop_ms']:.0f} ms)" if "old_loop_ms" in r else "")
                             for n, r in nms.items()) + ".")
        lines.append("")
        lines.append(f"Run {run['created']}, threads {run['threads']}, load average at start/end "
                     f"{run['load_average'][0]:.2f} / {run['load_average'][1]:.2f} "
                     "(a shared machine: other jobs ran at the same time, so absolute times are noisy).")
    if notes:
        lines.append("")
        lines.append("Missed targets: " + "; ".join(notes) + ". The float operators left in our int8 graph are "
                     "listed per row; tried: " + TRIED + ".")
    return "\n".join(lines)


def write_readme(results: dict[str, Any], path: Path = README) -> None:
    from furiosa.artifacts.atomic import atomic_write_text

    text = path.read_text("utf-8")
    block = (f"{START} (generated by `python benchmarks/bench_openvino.py --write-readme`; do not edit) -->\n\n"
             f"{markdown(results)}\n\n{END}")
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## ONNX Runtime vs OpenVINO (int8)\n\n" + block + "\n"
    atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated catalog names (default: every model with targets)")
    parser.add_argument("--pairs", type=int, default=12, help="measurement rounds at batch 1 (default 12)")
    parser.add_argument("--skip-nms", action="store_true")
    parser.add_argument("--nms-only", action="store_true", help="rerun only the NMS worst case of this ISA's run")
    parser.add_argument("--write-readme", action="store_true", help="regenerate the README table")
    parser.add_argument("--readme-only", action="store_true", help="README table from the existing json")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"schema_version": 1, "runs": {}}
    if not args.readme_only:
        from furiosa.artifacts.atomic import atomic_write_text
        from furiosa.artifacts.pipeline.params import load_params
        import yaml

        raw = yaml.safe_load((REPO / "params.yaml").read_text("utf-8"))
        targets = raw["benchmarks"]
        machine, flags = _flags()
        key = isa(flags)
        threads = int(load_params(REPO / "params.yaml").latency["threads"])
        names = args.models.split(",") if args.models else list(targets["int8_latency_ratio_max"][key])
        load = [os.getloadavg()[0]]
        print(f"CPU {machine['cpu_model']}: int8 ISA {key}, AMX {machine['amx']}; threads {threads}", flush=True)
        run = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
               "threads": threads, "models": {},
               "targets": {"int8_latency_ratio_max": targets["int8_latency_ratio_max"][key],
                           "int8_vs_openvino_int8_max": targets["int8_vs_openvino_int8_max"],
                           "nms_worst_case_ms_max": targets["nms_worst_case_ms_max"]}}
        if args.nms_only:
            run = results["runs"][key]
            names = []
        for name in names:
            print(f"[openvino] {name} ...", flush=True)
            run["models"][name] = bench_model(name, threads=threads, pairs=args.pairs)
            print(json.dumps(run["models"][name]), flush=True)
        if not args.skip_nms:
            print("[nms] worst case ...", flush=True)
            run["nms"] = bench_nms_isolated(["MLCommonsSSDMobileNet", "MLCommonsSSDResNet34"])
            print(json.dumps(run["nms"]), flush=True)
        if args.nms_only:
            run["nms_load_average"] = load + [os.getloadavg()[0]]
        else:
            run["load_average"] = load + [os.getloadavg()[0]]
        results["runs"][key] = run
        atomic_write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    if args.write_readme or args.readme_only:
        write_readme(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
