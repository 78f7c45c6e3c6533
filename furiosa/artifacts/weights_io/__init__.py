"""Weights files in their real formats -> state dicts of our networks, without running pickled code.

:func:`convert_weights` is the one entry point (the weights stage and ``furiosa-artifacts convert`` both call
it): the format is detected from the file's bytes (:func:`detect_format`), read by a safe reader, mapped onto
the catalog model's network and loaded strictly. Readers:

- ``torch_legacy_tar`` (pre-1.0 ``.tar``): :func:`furiosa.artifacts.weights_io.legacy_tar.read_legacy_tar`;
- ``torch_zip`` / ``torch_legacy_pickle``: ``torch.load(weights_only=True)``;
- ``safetensors``: the ``safetensors`` package (no pickle at all);
- ``onnx``: ``furiosa.artifacts.vision.convert_onnx.state_dict_from_onnx`` (raw heads found by graph structure);
- ``tf_graphdef``: ``furiosa.artifacts.vision.convert_tf.state_dict_from_frozen_graph``;
- ``tar_gz``: an archive; ``member`` names the weights file inside it, read from a temporary directory.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from furiosa.artifacts.errors import BuildError, WeightsFormatError
from furiosa.artifacts.weights_io.detect import FORMATS, detect_format

__all__ = ["FORMATS", "ConversionReport", "convert_weights", "detect_format", "read_tensors"]

_WRAPPERS = ("state_dict", "model")


@dataclass
class ConversionReport:
    """What :func:`convert_weights` read and mapped."""

    model: str
    path: str
    format: str
    sha256: str
    size: int
    member: Optional[str] = None
    tensors_in_file: int = 0
    keys_mapped: int = 0
    keys_filled: List[str] = field(default_factory=list)
    prefix_stripped: str = ""
    parameters: int = 0
    seconds: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line for people."""
        filled = f", {len(self.keys_filled)} BatchNorm counters filled with 0" if self.keys_filled else ""
        member = f" member {self.member}" if self.member else ""
        return (f"{self.model}: {self.format} ({self.size:,} bytes, sha256 {self.sha256[:16]}...){member}: "
                f"{self.tensors_in_file} tensors read, {self.keys_mapped} keys mapped{filled}, strict load ok "
                f"({self.parameters:,} parameters, {self.seconds:.1f} s)")


def _torch_load(path: Path) -> Dict[str, Any]:
    import torch

    try:
        with open(path, "rb") as f:  # a file object: torch.load would otherwise dispatch on the name's suffix
            data = torch.load(f, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
        raise WeightsFormatError(f"{path}: torch.load(weights_only=True) refused it (a pickled module is never "
                                 f"unpickled here: extract its state_dict once in a trusted environment): {exc}"
                                 ) from None
    for key in _WRAPPERS:
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping):
        raise WeightsFormatError(f"{path}: holds a {type(data).__name__}, not a state dict")
    return dict(data)


def _safetensors(path: Path) -> Dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsFormatError(f"{path}: corrupt safetensors file: {exc}") from None


def read_tensors(path: Path, name: str, *, fmt: Optional[str] = None) -> Dict[str, Any]:
    """The tensors of a weights file by key, read by the safe reader of its format.

    ONNX and TF graphs are already mapped onto ``name``'s keys by their converters.

    Raises:
        WeightsFormatError: unknown or corrupt format; UnsafeWeightsError: a pickle names a forbidden global.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "torch_legacy_tar":
        from furiosa.artifacts.weights_io.legacy_tar import read_legacy_tar

        return read_legacy_tar(path)
    if fmt in ("torch_zip", "torch_legacy_pickle"):
        return _torch_load(path)
    if fmt == "safetensors":
        return _safetensors(path)
    if fmt == "onnx":
        from furiosa.artifacts.vision.convert_onnx import state_dict_from_onnx

        return dict(state_dict_from_onnx(path, name))
    if fmt == "tf_graphdef":
        from furiosa.artifacts.vision.convert_tf import state_dict_from_frozen_graph

        return dict(state_dict_from_frozen_graph(path, name))
    raise WeightsFormatError(f"{path}: {FORMATS.get(fmt, fmt)}")


def _map(tensors: Dict[str, Any], target: Dict[str, Any]) -> Tuple[Dict[str, Any], str, List[str]]:
    """Strip a common wrapper prefix (``module.``) and fill BatchNorm ``num_batches_tracked`` counters the file
    lacks (unused in eval; older PyTorch dropped them)."""
    import torch

    prefix = ""
    if tensors and not any(k in target for k in tensors):
        for candidate in ("module.", "model."):
            if all(k.startswith(candidate) for k in tensors):
                prefix = candidate
                tensors = {k[len(candidate):]: v for k, v in tensors.items()}
                break
    filled = [k for k in target if k.endswith("num_batches_tracked") and k not in tensors]
    for key in filled:
        tensors[key] = torch.zeros((), dtype=torch.long)
    return tensors, prefix, filled


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def convert_weights(path: Path, name: str, *, member: Optional[str] = None) -> Tuple[Dict[str, Any], ConversionReport]:
    """Read ``path`` in whatever supported format its bytes show, map it onto catalog model ``name``'s network,
    load it strictly, and return ``(network.state_dict(), report)``.

    ``member`` names the weights file inside a tar/tar.gz archive (e.g. the TF tarball's
    ``ssd_mobilenet_v1_coco_2018_01_28/frozen_inference_graph.pb``); it is read from a temporary directory.

    Raises:
        FileNotFoundError: no such file.
        WeightsFormatError: unsupported/corrupt format, or an archive without ``member``.
        UnsafeWeightsError: the file would run code when read.
        BuildError: the tensors do not fit the network (missing/unexpected keys, shapes).
        ModelNotFoundError / SpecError: ``name`` is not a catalog model.
    """
    from furiosa.artifacts.vision.models import create_model

    path = Path(path)
    start = time.perf_counter()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    fmt = detect_format(path)
    if member is not None:
        if fmt not in ("tar_gz", "torch_legacy_tar"):
            raise WeightsFormatError(f"{path}: member {member!r} given, but the file is {FORMATS[fmt]}, "
                                     "not a tar archive")
        from furiosa.artifacts.sources.archive import extract_member

        with tempfile.TemporaryDirectory(prefix="furiosa-weights-") as tmp:
            inner = extract_member(path, member, Path(tmp) / "member")
            state, report = convert_weights(inner, name)
        report.path, report.member, report.format = str(path), member, f"tar_gz:{report.format}"
        report.sha256, report.size = _sha256(path), path.stat().st_size
        report.seconds = time.perf_counter() - start
        return state, report
    if fmt == "tar_gz":
        raise WeightsFormatError(f"{path}: a gzip-compressed archive; name the weights file inside it "
                                 "(params.yaml `source.member`, or `convert --member PATH`)")
    tensors = read_tensors(path, name, fmt=fmt)
    network = create_model(name)
    target = network.state_dict()
    count = len(tensors)
    tensors, prefix, filled = _map(tensors, target)
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise BuildError(f"{path} ({fmt}) does not fit the {name} network: {exc}") from None
    report = ConversionReport(
        model=name, path=os.fspath(path), format=fmt, sha256=_sha256(path), size=path.stat().st_size,
        tensors_in_file=count, keys_mapped=len(target) - len(filled), keys_filled=filled, prefix_stripped=prefix,
        parameters=int(sum(p.numel() for p in network.parameters())), seconds=time.perf_counter() - start)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    return state, report
