"""What every ``furiosa-artifacts`` subcommand shares: exit codes, the error emitter, ``--json`` and ``--root``.

Exit codes: 0 success; 1 problems found (lint/verify) or a command failed; 2 bad usage or unreadable input
(argparse exits 2 on bad usage itself); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
JSON_HELP = "machine-readable output"
ROOT_HELP = "repository root (default: .)"
FOUND_ROOT_HELP = ("repository root (default: . when it holds artifacts.yaml, else the repository this package is "
                   "installed from)")
MESSAGE_LIMIT = 4000  # characters of an error message shown; a hostile value never floods the terminal


def exit_code(exc: BaseException) -> int:
    """2 when an input file (dvc.lock, .dvc/config) is unreadable, else 1."""
    from furiosa.artifacts.errors import UnreadableFileError

    return EXIT_USAGE if isinstance(exc, UnreadableFileError) else EXIT_FAILED


def _sanitized(message: str) -> str:
    """``message`` with URL credentials redacted, cut at :data:`MESSAGE_LIMIT`, non-printables escaped."""
    from furiosa.artifacts.catalog.yaml_io import printable
    from furiosa.artifacts.storage.remote import redact

    message = redact(message)
    if len(message) > MESSAGE_LIMIT:
        message = f"{message[:MESSAGE_LIMIT]}... ({len(message) - MESSAGE_LIMIT} more characters)"
    return printable(message)


def fail(message: str, *, as_json: bool, code: int = EXIT_FAILED, sanitize: bool = False,
         fields: Optional[Dict[str, Any]] = None) -> int:
    """Report an error and return ``code``: ``{"ok": false, "error": ..., **fields}`` on stdout with
    ``--json``, else ``error: ...`` on stderr.

    ``sanitize`` for messages that may quote catalog, lock-file or remote content: URL credentials are
    redacted, the message is cut at :data:`MESSAGE_LIMIT` characters and non-printables are escaped.
    """
    if sanitize:
        message = _sanitized(message)
    if as_json:
        print(json.dumps({"ok": False, "error": message, **(fields or {})}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def add_json_option(parser: argparse.ArgumentParser, help: str = JSON_HELP) -> None:
    """``--json``: machine-readable output (``args.json``)."""
    parser.add_argument("--json", action="store_true", help=help)


def add_root_option(parser: argparse.ArgumentParser, *, default: Optional[str] = None,
                    help: Optional[str] = None) -> None:
    """``--root``: the repository a command reads. Without a ``default`` it is found by :func:`repo_root`."""
    if help is None:
        help = FOUND_ROOT_HELP if default is None else ROOT_HELP
    parser.add_argument("--root", default=default, help=help)


def repo_root(value: Optional[str]) -> Path:
    """``--root``, else ``.`` when it holds artifacts.yaml, else the repository this package comes from."""
    from furiosa.artifacts.catalog.entries import CATALOG_FILE
    from furiosa.artifacts.layout import package_repo_root

    if value is not None:
        return Path(value)
    return Path(".") if Path(CATALOG_FILE).is_file() else package_repo_root()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
