"""Stage `export`: fp32 ONNX with the full onnx checker and the PyTorch vs ONNX Runtime parity gate."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage, stage_parser
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.stages import export_stage


def main(args: argparse.Namespace) -> None:
    export_stage(load_params(args.params), args.model, weights=args.weights, out=args.out, report=args.report,
                 record=args.record)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True,
                        help="weights.json of the weights stage (the provenance stamped into the ONNX)")
    parser.add_argument("--out", type=Path, required=True, help="fp32 ONNX to write")
    parser.add_argument("--report", type=Path, required=True, help="export report JSON to write")
    sys.exit(run_stage(main, parser))
