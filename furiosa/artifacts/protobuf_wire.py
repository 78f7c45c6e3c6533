"""The protobuf wire format, just enough to peek at a message without its schema (no onnx, no torch)."""

from __future__ import annotations

from typing import Union


def read_varint(buf: Union[bytes, memoryview], pos: int) -> tuple[int, int]:
    """The base-128 varint starting at ``pos`` in ``buf`` and the position after it.

    Raises:
        ValueError: the buffer ends inside the varint, or it is longer than 10 bytes (64 bits).
    """
    value = shift = 0
    while pos < len(buf) and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")
