"""Every exception this package raises on purpose.

Each class also subclasses the builtin that fits, so callers that catch
``ValueError`` or ``FileNotFoundError`` keep working, and each message says what
to do next.
"""

from __future__ import annotations


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


class ChecksumError(ArtifactsError, ValueError):
    """A file's size or hash does not match the pinned value."""


class BuildError(ArtifactsError, RuntimeError):
    """A pipeline stage failed (export parity, quantization, ...)."""


class GateError(BuildError):
    """A quality gate from params.yaml was missed."""


class ProvenanceWarning(UserWarning):
    """A loaded model's weights are not known to be real (base class of the two below)."""


class SyntheticWeightsWarning(ProvenanceWarning):
    """The model was built from synthetic (seeded random) weights: its predictions are meaningless."""


class UnknownProvenanceWarning(ProvenanceWarning):
    """The binary carries no readable provenance: nothing proves it was built from real weights."""
