#!/usr/bin/env python3
"""Side-by-side benchmarks of the catalog and its tools (issue 7); results as JSON plus a plot.

Measures, per model: ONNX Runtime fp32 vs int8 latency at batch 1 and 8 (SSD-ResNet34: 2), alternating
in one child process on the same input (median, paired ratio) with ``intra_op_num_threads`` pinned,
plus CPU time at 1 thread (robust to other jobs on the machine); file sizes; export and quantize times
(from models/<name>/export.json and quantize.json); peak memory (ru_maxrss of a fresh child process per
precision and batch); int8 vs fp32 agreement and its gate. Then our numpy preprocessing vs torchvision,
`furiosa-artifacts lint`, `dvc status` and a no-op `dvc repro`, and hashing vs md5sum/sha256sum.

    python benchmarks/run.py                  # full run (~10 min on 2 cores): benchmarks/results/
    python benchmarks/run.py --write-docs     # ... and regenerate the tables in docs/performance.md
    python benchmarks/run.py --quick --models DigitsConvNet,MLCommonsSSDMobileNet   # smoke run, < 1 min
    python benchmarks/run.py --requantize     # int8 from the quantization settings now in params.yaml
    python benchmarks/run.py --docs-only      # docs/performance.md from the existing results.json

Writes <out>/results.json (checked against benchmarks/results.schema.json) and <out>/results.png, and
prints the ratios, the targets and the machine. Exit code 0 when it ran (missed targets are reported,
not fatal), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import bench_models  # noqa: E402
import bench_report  # noqa: E402
import bench_tools  # noqa: E402

QUICK_MODELS = ["DigitsConvNet", "MLCommonsSSDMobileNet"]
PREPROCESS_SPECS = ["MLCommonsResNet50", "MLCommonsSSDMobileNet", "EfficientNetV2_S", "MLCommonsSSDResNet34"]
QUICK_PREPROCESS_SPECS = ["MLCommonsResNet50", "MLCommonsSSDMobileNet"]
SECTIONS = ("models", "preprocessing", "tools", "hashing")
DOCS = REPO / "docs" / "performance.md"


def _params() -> Any:
    from furiosa.artifacts.pipeline.params import load_params

    return load_params(REPO / "params.yaml")


def _settings(params: Any, name: str) -> dict[str, Any] | None:
    """The quantization settings params.yaml gives ``name`` now (None when they do not validate)."""
    from furiosa.artifacts.build.quantize import QuantSettings
    from furiosa.artifacts.errors import SpecError

    try:
        return QuantSettings.from_params(params.model(name).quantization).to_dict()
    except SpecError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: few repeats, small hashing file, no dvc; models default to "
                             f"{','.join(QUICK_MODELS)}; output defaults to benchmarks/results/quick")
    parser.add_argument("--models", help="comma-separated catalog names (default: every model in params.yaml)")
    parser.add_argument("--threads", type=int, help="intra-op threads for ONNX Runtime (default: params.yaml "
                                                    "base.latency.threads)")
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results)")
    parser.add_argument("--requantize", action="store_true",
                        help="quantize and evaluate each model with the settings now in params.yaml into a "
                             "temporary directory and benchmark that int8 model (the workspace is not touched)")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS, help="leave a section out")
    parser.add_argument("--no-dvc-copy", action="store_true",
                        help="when the workspace is stale, do not measure `dvc repro` on an up-to-date copy")
    parser.add_argument("--write-docs", action="store_true", help=f"also regenerate the tables in "
                                                                  f"{DOCS.relative_to(REPO)}")
    parser.add_argument("--docs-only", action="store_true", help="only regenerate the docs from <out>/results.json")
    args = parser.parse_args(argv)
    args.out = args.out or (HERE / "results" / ("quick" if args.quick else ""))
    return args


def _say(message: str) -> None:
    print(message, flush=True)


def measure(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    params = _params()
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else (
        QUICK_MODELS if args.quick else list(params.models))
    unknown = [n for n in names if n not in params.models]
    if unknown:
        raise SystemExit(f"benchmarks/run.py: unknown model(s) {unknown}; known: {', '.join(params.models)}")
    threads = args.threads or int(params.latency["threads"])
    start = time.perf_counter()
    machine = bench_tools.machine()
    _say(f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, avx512_vnni="
         f"{machine['flags']['avx512_vnni']}, amx={machine['amx']}; onnxruntime "
         f"{machine['versions'].get('onnxruntime')}; threads={threads}")
    results: dict[str, Any] = {
        "schema_version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "load_average": {"start": list(os.getloadavg())},
        "settings": {"threads": threads, "models": names, "requantize": args.requantize, "skipped": args.skip},
        "models": {}, "preprocessing": {"status": "skipped", "reason": "--skip preprocessing"},
        "tools": {}, "hashing": {"status": "skipped", "reason": "--skip hashing"},
    }
    if "models" not in args.skip:
        with bench_models.temporary_dir() as tmp:
            for name in names:
                _say(f"[models] {name} ...")
                results["models"][name] = bench_models.bench_model(
                    name, threads=threads, quick=args.quick, requantize_dir=Path(tmp) if args.requantize else None,
                    params_settings=_settings(params, name))
                _print_model(name, results["models"][name])
    if "preprocessing" not in args.skip:
        _say("[preprocessing] ours vs torchvision ...")
        results["preprocessing"] = bench_tools.bench_preprocessing(
            QUICK_PREPROCESS_SPECS if args.quick else PREPROCESS_SPECS, images=4 if args.quick else 48,
            rounds=2 if args.quick else 5, threads=1)
    if "tools" not in args.skip:
        _say("[tools] lint, dvc ...")
        results["tools"]["lint"] = bench_tools.bench_lint(runs=2 if args.quick else 5)
        results["tools"]["dvc"] = ({"status": "skipped", "reason": "quick mode"} if args.quick
                                   else bench_tools.bench_dvc(runs=3, allow_copy=not args.no_dvc_copy))
    else:
        results["tools"] = {"lint": {"status": "skipped", "reason": "--skip tools"},
                            "dvc": {"status": "skipped", "reason": "--skip tools"}}
    if "hashing" not in args.skip:
        _say("[hashing] ...")
        results["hashing"] = bench_tools.bench_hashing(megabytes=8 if args.quick else 100,
                                                       rounds=1 if args.quick else 3)
    results["load_average"]["end"] = list(os.getloadavg())
    results["duration_seconds"] = time.perf_counter() - start
    results["targets"] = bench_report.targets(results)
    return results


def _print_model(name: str, r: dict[str, Any]) -> None:
    if r.get("status") != "ok":
        _say(f"  {name}: {r.get('status')}: {r.get('reason')}")
        return
    parts = []
    for batch, w in r["latency"]["wall"].items():
        parts.append(f"b{batch} {w['fp32']['median_ms']:.1f}->{w['int8']['median_ms']:.1f} ms "
                     f"ratio {w['ratio']:.3f} (paired {w['paired_ratio']:.3f})")
    cpu = r["latency"].get("cpu")
    if cpu:
        parts.append(f"CPU 1 thread ratio {cpu['ratio']:.3f}")
    _say(f"  {name}: {'; '.join(parts)}; size ratio {r['size_ratio']:.4f}")


def _print_summary(results: dict[str, Any]) -> None:
    m = results["machine"]
    _say(f"\nmachine: {m['cpu_model']} ({m['cpu_count']} CPUs), flags: "
         + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["flags"].items()))
    _say(f"load average start/end: {results['load_average']['start'][0]:.2f} / "
         f"{results['load_average']['end'][0]:.2f}; {results['duration_seconds']:.0f} s")
    for t in results["targets"]:
        value = "-" if t["measured"] is None else f"{t['measured']:.3f}"
        _say(f"  {t['status']:>7}  {t['what']}: {value} (target {t['comparison']} {t['target']} {t['unit']})")


def main(argv: list[str] | None = None) -> int:
    from furiosa.artifacts.atomic import atomic_write_text

    args = parse_args(argv)
    path = args.out / "results.json"
    if args.docs_only:
        if not path.is_file():
            print(f"benchmarks/run.py: {path} does not exist; run the benchmarks first", file=sys.stderr)
            return 2
        bench_report.write_docs(json.loads(path.read_text("utf-8")), DOCS)
        bench_report.write_readme(json.loads(path.read_text("utf-8")), REPO / "README.md")
        _say(f"wrote {DOCS.relative_to(REPO)}")
        return 0
    results = measure(args, argv)
    bench_report.validate(results)
    atomic_write_text(path, json.dumps(results, indent=2, sort_keys=False) + "\n")
    bench_report.plot(results, args.out / "results.png")
    _print_summary(results)
    _say(f"wrote {path} and {args.out / 'results.png'}")
    if args.write_docs:
        bench_report.write_docs(results, DOCS)
        bench_report.write_readme(results, REPO / "README.md")
        _say(f"wrote {DOCS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
