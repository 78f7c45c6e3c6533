"""Storage and distribution of the built binaries.

- :func:`resolve_binary` / :func:`resolve_binaries`: a binary's verified bytes by its md5 from
  ``dvc.lock``, without DVC: workspace, DVC cache, the shared cache, then the DVC remote
  (local directory, HTTP(S) or S3-compatible), cached under ``$FURIOSA_ARTIFACTS_HOME``.
- :func:`publish_lfs`: the catalog and its binaries pushed to a Git LFS-backed repository.
"""

from __future__ import annotations

from furiosa.artifacts.errors import PublishError
from furiosa.artifacts.storage.lockfile import LockedOutput, object_key, read_outputs
from furiosa.artifacts.storage.publish import PublishReport, publish_lfs
from furiosa.artifacts.storage.remote import Remote, read_remote
from furiosa.artifacts.storage.resolver import (
    SOURCES,
    PullReport,
    ResolvedFile,
    checkout,
    resolve_binaries,
    resolve_binary,
)

__all__ = [
    "SOURCES",
    "LockedOutput",
    "PublishError",
    "PublishReport",
    "PullReport",
    "Remote",
    "ResolvedFile",
    "checkout",
    "object_key",
    "publish_lfs",
    "read_outputs",
    "read_remote",
    "resolve_binaries",
    "resolve_binary",
]
