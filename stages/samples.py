"""Stage `samples`: offline sample photos (crops of scikit-learn's bundled images) for calibration/evaluation."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.samples import write_samples


def main(args: argparse.Namespace) -> None:
    s = load_params(args.params).samples
    write_samples(args.out, count=int(s["count"]), size=s["size"], seed=int(s["seed"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, required=True, help="image directory to write")
    sys.exit(run_stage(main, parser))
