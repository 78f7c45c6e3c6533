"""Stage `quantize`: ONNX Runtime static quantization (pre-process step, QDQ/QOperator, per-channel) to int8."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage, stage_parser
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.stages import quantize_stage


def main(args: argparse.Namespace) -> None:
    quantize_stage(load_params(args.params), args.model, fp32=args.fp32, calibration=args.calibration,
                   out=args.out, report=args.report)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="int8 ONNX to write")
    parser.add_argument("--report", type=Path, required=True, help="quantization report JSON to write")
    sys.exit(run_stage(main, parser))
