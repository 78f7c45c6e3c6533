"""``furiosa-artifacts convert NAME FILE --out weights.pt``: a local weights file -> our network's state dict.

For users with their own copy of an official file, or a fine-tuned one. The format is detected from the bytes
(:mod:`furiosa.artifacts.weights_io`), the tensors are loaded strictly into catalog model NAME's network (the
weights stage runs the same code) and the state dict is written atomically with ``torch.save`` so that
``torch.load(weights_only=True)`` reads it. Exit codes: 0 converted; 1 the file cannot be converted (unknown or
corrupt format, would run code, does not fit the network); 2 bad usage (unknown model, no such file).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from furiosa.artifacts.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_json_option, fail
from furiosa.artifacts.errors import ArtifactsError


def _cmd_convert(args: argparse.Namespace) -> int:
    from furiosa.artifacts.vision.models import list_models

    if args.name not in list_models():
        return fail(f"unknown model {args.name!r}; catalog models: {', '.join(list_models())}", as_json=args.json,
                    code=EXIT_USAGE)
    path = Path(args.file)
    if not path.is_file():
        return fail(f"{path}: no such file", as_json=args.json, code=EXIT_USAGE)
    import torch

    from furiosa.artifacts.atomic import atomic_write_bytes
    from furiosa.artifacts.weights_io import convert_weights

    try:
        state, report = convert_weights(path, args.name, member=args.member)
    except ArtifactsError as exc:
        return fail(str(exc), as_json=args.json, code=EXIT_FAILED)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(args.out), buffer.getvalue())
    if args.json:
        print(json.dumps({"ok": True, "out": str(args.out), **report.as_dict()}, indent=2))
    else:
        print(report.summary())
        if report.keys_filled:
            print(f"  filled (absent from the file): {', '.join(report.keys_filled[:5])}"
                  + (" ..." if len(report.keys_filled) > 5 else ""))
        print(f"wrote {args.out}")
    return EXIT_OK


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``convert`` subcommand to the main parser's subparsers."""
    from furiosa.artifacts.weights_io.detect import FORMATS

    convert = sub.add_parser(
        "convert", help="convert a local weights file (any supported format) into a catalog model's state dict",
        description="Read FILE in whatever supported format its bytes show, map it onto catalog model NAME's "
        "network, load it strictly, and save the state dict with torch.save (read it back with "
        "torch.load(weights_only=True)). Formats: " + "; ".join(FORMATS.values()) + ". No pickled code is run.",
        epilog="Exit codes: 0 converted, 1 the file cannot be converted, 2 bad usage.")
    convert.add_argument("name", metavar="NAME", help="catalog model name (e.g. MLCommonsResNet50)")
    convert.add_argument("file", metavar="FILE", help="the weights file (.pth, .safetensors, .onnx, .pb, .tar.gz)")
    convert.add_argument("--out", required=True, help="where to write the state dict (written atomically)")
    convert.add_argument("--member", help="the weights file inside a tar/tar.gz archive")
    add_json_option(convert, help="print the conversion report as JSON")
    convert.set_defaults(func=_cmd_convert)
