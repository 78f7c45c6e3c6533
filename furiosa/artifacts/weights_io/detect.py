"""Which weights format a file is in, from its first bytes (never from its name)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from furiosa.artifacts.errors import WeightsFormatError
from furiosa.artifacts.protobuf_wire import read_varint

__all__ = ["FORMATS", "detect_format"]

#: format -> what it is (messages and ``convert --help``)
FORMATS = {
    "torch_zip": "PyTorch zip checkpoint (torch.save since 1.6), read with torch.load(weights_only=True)",
    "torch_legacy_tar": "PyTorch pre-1.0 tar checkpoint, read by a restricted unpickler",
    "torch_legacy_pickle": "PyTorch 0.4-1.5 pickle checkpoint, read with torch.load(weights_only=True)",
    "safetensors": "safetensors (Hugging Face Hub), read with the safetensors package",
    "onnx": "ONNX model, initializers mapped by graph structure",
    "tf_graphdef": "TensorFlow frozen GraphDef, read without TensorFlow",
    "tar_gz": "gzip-compressed tar archive: name the weights file inside it (source.member / --member)",
}
_HEAD = 4096
# torch.serialization MAGIC_NUMBER pickled at protocol 2 (LONG1 of 10 bytes), after the PROTO opcode
_TORCH_PICKLE_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _protobuf_fields(data: bytes, limit: int = 8) -> list[tuple[int, int]]:
    """(field number, wire type) of the first top-level fields of a protobuf message, or [] if it is none."""
    fields, pos = [], 0
    try:
        while pos < len(data) and len(fields) < limit:
            tag, pos = read_varint(data, pos)
            number, wire = tag >> 3, tag & 7
            if number == 0 or wire not in (0, 1, 2, 5):
                return []
            fields.append((number, wire))
            if wire == 0:
                _, pos = read_varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                length, pos = read_varint(data, pos)
                pos += length
    except ValueError:
        pass  # the head ends inside a field: judge on what was read
    return fields


def _looks_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= size - 8 or head[8:9] != b"{":
        return False
    if length + 8 <= len(head):
        try:
            json.loads(head[8:8 + length])
        except ValueError:
            return False
    return True


def detect_format(path: Path) -> str:
    """The format of the weights file at ``path`` (a key of :data:`FORMATS`), judged from its bytes.

    ONNX ``ModelProto`` starts with ``ir_version`` (field 1, varint) and carries ``graph`` (field 7); a TF
    ``GraphDef`` starts with ``node`` (field 1, length-delimited) and has no field above 4.

    Raises:
        FileNotFoundError: no such file.
        WeightsFormatError: the bytes match no supported format (the message lists them).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if head.startswith(b"PK\x03\x04"):
        return "torch_zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "torch_legacy_tar"
    if head.startswith(b"\x1f\x8b"):
        return "tar_gz"
    if head.startswith(_TORCH_PICKLE_MAGIC):
        return "torch_legacy_pickle"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise WeightsFormatError(
            f"{path}: a bare Python pickle (not a torch.save checkpoint): refusing to unpickle it, it could run "
            "code; save the state dict with torch.save or safetensors in a trusted environment")
    if _looks_safetensors(head, size):
        return "safetensors"
    fields = _protobuf_fields(head)
    if fields:
        numbers = {n for n, _ in fields}
        if fields[0] == (1, 0) or (7, 2) in fields:
            return "onnx"
        if fields[0] == (1, 2) and all(wire == 2 or n == 3 for n, wire in fields) and max(numbers) <= 4:
            return "tf_graphdef"
    raise WeightsFormatError(
        f"{path}: the bytes match no supported weights format (first bytes {head[:16].hex()}); supported: "
        + "; ".join(FORMATS.values()))
