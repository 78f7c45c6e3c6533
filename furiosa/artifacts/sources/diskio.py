"""Chunked writes of the sources package: the chunk size, the one writer hook, disk-full detection and the
name of a resumable partial file.

Downloads stream into ``<final>.incomplete`` beside their final name and are resumed from it; everything
else is written through :mod:`furiosa.artifacts.atomic` (a temporary sibling, fsynced, renamed with
:func:`os.replace`), so a reader never sees a partial file under the final name.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from furiosa.artifacts.atomic import TEMP_SUFFIX

__all__ = ["CHUNK_SIZE", "DISK_FULL_ERRNOS", "finish_file", "incomplete_path", "is_disk_full", "write_chunk"]

CHUNK_SIZE = 1 << 20
DISK_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


def incomplete_path(final: Path) -> Path:
    """The stable partial-file name used for ``final`` (same directory, ``.incomplete`` suffix)."""
    return final.with_name(final.name + TEMP_SUFFIX)


def write_chunk(fh: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to ``fh``; the single place where bytes hit the disk (a test hook)."""
    fh.write(data)


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def finish_file(fh: BinaryIO) -> None:
    """Flush and fsync an open file (a partial kept for a resume, or a temporary before its commit)."""
    fh.flush()
    os.fsync(fh.fileno())
