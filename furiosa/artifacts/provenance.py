"""Provenance inside the binary: the ONNX ``metadata_props`` every binary we build carries.

The export and quantize stages write (keys under :data:`PREFIX`):

==================  =====================================================================
``name``            catalog name (``MLCommonsResNet50``)
``version``         catalog version (``v1.5``)
``precision``       ``fp32`` or ``int8``
``weights``         where the weights came from: ``official``, ``train`` or ``synthetic``
``source_sha256``   sha256 of the official weight file (url/file sources), else empty
``weights_sha256``  sha256 of the state_dict the network was exported from (``weights.pt``)
``fp32_md5``        int8 only: md5 of the fp32 ONNX it was quantized from
``params_sha256``   sha256 of the build recipe (the model's params.yaml section, seed, weight mode)
==================  =====================================================================

Readers fail closed: a binary without these keys, with an unknown ``weights`` value, or one that
cannot be parsed is ``unknown``, never real (:func:`weights_kind`). Reading parses only the
top-level protobuf fields of ``ModelProto`` (the graph is skipped by its length), so it is cheap
for any model size, and it needs neither onnx nor onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from furiosa.artifacts.protobuf_wire import read_varint

__all__ = ["KINDS", "PREFIX", "Provenance", "params_digest", "read_provenance", "stamp", "weights_kind"]

PREFIX = "furiosa.artifacts."
KEYS = ("name", "version", "precision", "weights", "source_sha256", "weights_sha256", "fp32_md5", "params_sha256")
#: what ``weights`` may say; anything else reads as ``unknown``
KINDS = ("official", "train", "synthetic")
UNKNOWN = "unknown"
_METADATA_PROPS = 14  # ModelProto.metadata_props (repeated StringStringEntryProto {key = 1, value = 2})


@dataclass(frozen=True)
class Provenance:
    """What a binary says about itself; ``kind`` is one of :data:`KINDS` or ``unknown``."""

    kind: str
    props: Dict[str, str] = field(default_factory=dict)
    error: Optional[str] = None  # why it is unknown, when it is

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    @property
    def known(self) -> bool:
        return self.kind in KINDS

    def get(self, key: str) -> Optional[str]:
        return self.props.get(PREFIX + key) or None

    def as_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"weights": self.kind}
        out.update({key: self.get(key) for key in KEYS if key != "weights" and self.get(key)})
        if self.error:
            out["error"] = self.error
        return out


def _fields(buf: memoryview):
    """(field number, wire type, value) of each top-level field; length-delimited values as memoryviews."""
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield number, wire, value


def metadata_props(data: Union[bytes, memoryview]) -> Dict[str, str]:
    """The ``metadata_props`` of serialized ONNX ``data`` (raises ValueError when it is not protobuf)."""
    props: Dict[str, str] = {}
    saw_graph = False
    for number, wire, value in _fields(memoryview(data)):
        saw_graph |= number == 7 and wire == 2
        if number == _METADATA_PROPS and wire == 2:
            key = val = ""
            for sub, sub_wire, item in _fields(value):
                if sub_wire == 2 and sub in (1, 2):
                    text = bytes(item).decode("utf-8")
                    key, val = (text, val) if sub == 1 else (key, text)
            props[key] = val
    if not saw_graph:
        raise ValueError("no graph: not an ONNX model")
    return props


def read_provenance(source: Union[bytes, memoryview, Path, str]) -> Provenance:
    """The provenance of ONNX bytes or an ONNX file; never raises (failures read as ``unknown``)."""
    try:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
        props = {k: v for k, v in metadata_props(data).items() if k.startswith(PREFIX)}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return Provenance(UNKNOWN, {}, f"unreadable ONNX metadata: {exc}")
    kind = props.get(PREFIX + "weights", "")
    if not props:
        return Provenance(UNKNOWN, {}, "the binary carries no furiosa.artifacts provenance (built before it was "
                                       "recorded, or not by this pipeline)")
    if kind not in KINDS:
        return Provenance(UNKNOWN, props, f"unknown weight source {kind!r} in the binary's metadata")
    return Provenance(kind, props)


def weights_kind(source: Union[bytes, Path, str], *, metrics: Optional[Mapping[str, Any]] = None) -> Provenance:
    """:func:`read_provenance`, with ``metrics.json`` of an older build as a second opinion that can only
    make things worse: a binary without provenance whose metrics say synthetic is synthetic, and a
    conflict between the two reads as synthetic."""
    prov = read_provenance(source)
    said = ((metrics or {}).get("weights") or {}).get("source") if isinstance(metrics, Mapping) else None
    if said == "synthetic" and not prov.synthetic:
        return Provenance("synthetic", prov.props, "metrics.json records synthetic weights")
    return prov


def params_digest(recipe: Mapping[str, Any]) -> str:
    """sha256 of a build recipe as canonical JSON (sorted keys)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stamp(path: Path, props: Mapping[str, Optional[str]]) -> None:
    """Write ``props`` (keys of :data:`KEYS`) into the ONNX file ``path``'s metadata_props, in place.

    Raises:
        ValueError: a key is not one of :data:`KEYS`, or ``weights`` is not one of :data:`KINDS`.
        ModelBinaryError, UnsafePathError: ``path`` is not a self-contained ONNX model
            (:func:`furiosa.artifacts.onnx_io.read_model`).
    """
    import onnx

    from furiosa.artifacts.onnx_io import read_model

    unknown = sorted(set(props) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown provenance key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    if props.get("weights") not in KINDS:
        raise ValueError(f"provenance 'weights' must be one of {', '.join(KINDS)}, got {props.get('weights')!r}")
    model = read_model(Path(path))
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key in KEYS:
        value = props.get(key)
        if value:
            entry = model.metadata_props.add()
            entry.key, entry.value = PREFIX + key, str(value)
    onnx.save(model, str(path))
