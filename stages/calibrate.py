"""Stage `calibrate`: the preprocessed calibration set (npz) from the model's calibration dataset in params.yaml."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage, stage_parser
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.stages import calibrate_stage


def main(args: argparse.Namespace) -> None:
    calibrate_stage(load_params(args.params), args.model, out=args.out)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="calibration npz to write")
    sys.exit(run_stage(main, parser))
