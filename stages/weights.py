"""Stage `weights`: fetch (url/file), train, or synthesise (only when asked) a model's weights."""

import argparse
import sys
from pathlib import Path

from furiosa.artifacts.pipeline.cli import run_stage, stage_parser
from furiosa.artifacts.pipeline.params import load_params
from furiosa.artifacts.pipeline.weights import produce_weights


def main(args: argparse.Namespace) -> None:
    produce_weights(load_params(args.params), args.model, out=args.out, record=args.record,
                    repo_root=args.params.resolve().parent, data=args.data)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="state_dict to write (weights.pt)")
    parser.add_argument("--record", type=Path, required=True, help="provenance JSON to write (weights.json)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the model's dataset directory (models.<name>.data; a trained detector reads it)")
    sys.exit(run_stage(main, parser))
