"""Shared plumbing of the stage scripts: common arguments, logging, and error-to-exit-code mapping."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from furiosa.artifacts.errors import ArtifactsError


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` and ``--model`` already added."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="build recipe (default: params.yaml)")
    parser.add_argument("--model", required=True, help="catalog name (a key of models: in params.yaml)")
    return parser


def run_stage(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
              argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, run ``main``; ArtifactsError -> one-line 'error:' message and exit 1."""
    args = parser.parse_args(argv)
    # Our progress at INFO; third-party INFO chatter (onnxruntime.quantization logs one line per weight
    # scale it adjusts) only from WARNING up.
    logging.basicConfig(level=logging.WARNING, format=f"[{parser.prog} {getattr(args, 'model', '')}] %(message)s",
                        stream=sys.stderr)
    logging.getLogger("furiosa").setLevel(logging.INFO)
    try:
        main(args)
    except ArtifactsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
