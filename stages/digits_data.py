"""Stage `digits_data`: the trained digits model's train and held-out splits as ImageNet-style folders
(PNG images + MLPerf-style val_map.txt), its calibration and evaluation datasets."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage, stage_parser
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.digits_data import digits_data_stage


def main(args: argparse.Namespace) -> None:
    digits_data_stage(load_params(args.params), args.model, out=args.out)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for train/ and heldout/")
    sys.exit(run_stage(main, parser))
