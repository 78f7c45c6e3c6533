"""Stage `digits_detection`: the generated COCO-format detection dataset (scikit-learn digits on textures)."""

import argparse
import json
import sys
from pathlib import Path

from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.pipeline.cli import run_stage
from furiosa.artifacts.pipeline.digits_detection import DatasetParams, write_dataset
from furiosa.artifacts.pipeline.params import load_params


def main(args: argparse.Namespace) -> None:
    section = load_params(args.params).digits_detection
    if section is None:
        raise SpecError(f"{args.params}: no digits_detection section; add it (see params.yaml) or drop the stage")
    print(json.dumps(write_dataset(args.out, DatasetParams.from_params(section)), sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    sys.exit(run_stage(main, parser))
