"""Every exception class of this package (a test fails when one is defined anywhere else).

Each error a caller may see subclasses :class:`ArtifactsError` and the builtin that fits, so callers that
catch ``ValueError`` or ``FileNotFoundError`` keep working, and each message says what to do next. The
classes at the end are internal control flow: they are caught inside the package and never reach a caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional


class ArtifactsError(Exception):
    """Base class of all furiosa-artifacts errors."""


class CatalogError(ArtifactsError, ValueError):
    """The catalog (artifacts.yaml) cannot be read or is invalid."""


class CatalogReadError(CatalogError):
    """The catalog file is missing, unreadable, or not YAML of the expected shape."""


class ModelNotFoundError(ArtifactsError, LookupError):
    """No catalog entry matches the requested name/version."""


class SpecError(ArtifactsError, ValueError):
    """A model specification (specs.yaml) or build parameter is invalid."""


class ImageError(ArtifactsError, ValueError):
    """An input image cannot be decoded or has an unsupported shape/dtype."""


class BinaryNotFoundError(ArtifactsError, FileNotFoundError):
    """A model binary (ONNX file) is not present where the catalog says it is."""


class OfflineError(BinaryNotFoundError):
    """A binary is not cached and ``$FURIOSA_ARTIFACTS_OFFLINE`` forbids fetching it over the network."""


class UnsafePathError(ArtifactsError, ValueError):
    """A path from the catalog or an archive would escape its root directory."""


class UntrustedCodeError(ArtifactsError, PermissionError):
    """Loading a catalog entry would import Python code from a repository that is not trusted."""


class UnreadableFileError(ArtifactsError):
    """An input file the command needs (dvc.lock, .dvc/config) cannot be read or parsed: CLIs exit 2."""


class LockFileError(BinaryNotFoundError, UnreadableFileError):
    """dvc.lock exists but is not readable YAML of the expected shape (restore it from git)."""


class ModelBinaryError(ArtifactsError, ValueError):
    """A model binary is not a usable ONNX model (corrupt, external data, outputs unlike its spec)."""


class DownloadError(ArtifactsError, OSError):
    """A download failed (network, HTTP status, all mirrors exhausted)."""


class ConfigFileError(DownloadError, UnreadableFileError):
    """The DVC configuration (.dvc/config, .dvc/config.local) cannot be read or parsed."""


class FileWriteError(ArtifactsError, OSError):
    """A file cannot be written atomically: no temporary file can be made beside it (its directory is
    read-only or cannot be created, the disk is full). Nothing was written; ``errno`` and ``strerror`` are
    those of the failed call, ``filename`` the file that was to be written."""

    def __str__(self) -> str:
        return (f"cannot write {self.filename}: {self.strerror}; make its directory writable (or free space) "
                "and retry")


class ChecksumError(ArtifactsError, ValueError):
    """A file's size or hash does not match the pinned value."""


class BuildError(ArtifactsError, RuntimeError):
    """A pipeline stage failed (export parity, quantization, ...)."""


class GateError(BuildError):
    """A quality gate from params.yaml was missed."""


class WeightsFormatError(BuildError):
    """A weights file is in no supported format, or is corrupt for the format its bytes announce."""


class UnsafeWeightsError(WeightsFormatError):
    """A weights file would run code when read (a pickle naming a global outside the tensor allow-list)."""


class ReleaseError(ArtifactsError, RuntimeError):
    """A version or stage cannot be registered (dirty tree, stale dvc.yaml, synthetic build, GTO error)."""


class PublishError(ArtifactsError, RuntimeError):
    """Publishing to the Git LFS repository failed (git/git-lfs missing, push refused, ...)."""


class ProvenanceWarning(UserWarning):
    """A loaded model's weights are not known to be real (base class of the two below)."""


class SyntheticWeightsWarning(ProvenanceWarning):
    """The model was built from synthetic (seeded random) weights: its predictions are meaningless."""


class UnknownProvenanceWarning(ProvenanceWarning):
    """The binary carries no readable provenance: nothing proves it was built from real weights."""


# --------------------------------------------------------------------------- internal control flow
# Raised and caught inside the package; a caller never sees these.


class YamlPolicyError(Exception):
    """The catalog YAML uses what the catalog policy forbids (alias, anchor, custom tag, deep nesting);
    ``mark`` is ruamel's position of the offending event. The reader turns it into a CatalogReadError."""

    def __init__(self, mark: Any, message: str):
        super().__init__(message)
        self.mark, self.message = mark, message


class Transient(Exception):
    """A transfer attempt failed in a way worth retrying on the same source (after backoff); ``restart``
    drops the partial file first, ``retry_after`` is the server's requested wait in seconds."""

    def __init__(self, reason: str, *, restart: bool = False, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason, self.restart, self.retry_after = reason, restart, retry_after


class Permanent(Exception):
    """A transfer attempt failed for good on this source: move on to the next one."""


class DeadlineExceeded(Exception):
    """The download's overall deadline passed (a slow drip, or retries): stop, keep the partial to resume."""


class LocalWriteError(Exception):
    """Writing the partial file failed: a local problem no other source can fix (``error`` is the OSError)."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(str(error))
        self.path, self.error = path, error


class GaveUp(Exception):
    """The retry loop stopped: a non-retryable error, or the retries ran out (the message says which)."""


class RemoteFailure(Exception):
    """An object could not be fetched from a DVC remote; ``kind`` is a key of
    :data:`furiosa.artifacts.storage._fetch.FAILURE_HINTS` (``unreachable``, ``forbidden``, ``missing``, ``error``)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason
