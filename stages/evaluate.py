"""Stage `evaluate`: accuracy on the model's evaluation dataset, int8 vs fp32 agreement, latency and size into
metrics.json; enforces the gates."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage, stage_parser
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.stages import evaluate_stage


def main(args: argparse.Namespace) -> None:
    evaluate_stage(load_params(args.params), args.model, fp32=args.fp32, int8=args.int8,
                   weights_record=args.weights_record, export_report=args.export_report,
                   quantize_report=args.quantize_report, out=args.out)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    for flag in ("--fp32", "--int8", "--weights-record", "--export-report", "--quantize-report"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    sys.exit(run_stage(main, parser))
