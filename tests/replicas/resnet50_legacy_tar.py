"""A full-size replica of torchvision's 2017 ``resnet50-19c8e357.pth`` (PyTorch pre-1.0 tar format).

Built from ``/work/shared/fixtures/resnet50-19c8e357.head.pth``, the real file's first 358,400 bytes: its
``sys_info``, ``pickle`` and ``tensors`` members and the tar headers (PAX + ustar, also the ``storages`` member's
header with its real size) are kept byte for byte. The ``storages`` member is written per ``_legacy_load``
(``torch/serialization.py``): a pickled count, then per storage a pickled ``(key, 'cpu', torch.FloatStorage)``,
an int64 element count and the raw float32 data, then a pickled empty list of views. Storages follow the order
the real file's first records show (parsed from the head), then the ``tensors`` member's order; their data are
seeded random values. The tar is padded to its 10240-byte record like the real file (102,502,400 bytes).

This parser is independent of the reader under test (pickletools and struct only).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import struct
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from replicas import Replica

HEAD = Path(os.environ.get("FURIOSA_SHARED_FIXTURES", "/work/shared/fixtures")) / "resnet50-19c8e357.head.pth"
REAL_NAME = "resnet50-19c8e357.pth"
REAL_SIZE = 102502400
RECORD = 10240


class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Inert(pickle.Unpickler):
    """Reads the header tuples only: every global becomes an inert marker."""

    def find_class(self, module: str, name: str) -> Any:
        return _Global(module, name)


def members(head: bytes) -> Dict[str, tarfile.TarInfo]:
    """The tar members whose headers lie in ``head``."""
    tar = tarfile.open(fileobj=io.BytesIO(head), mode="r:")
    found = {}
    while True:
        try:
            info = tar.next()
        except tarfile.ReadError:
            break
        if info is None:
            break
        found[info.name] = info
    return found


def tensor_table(head: bytes) -> List[Tuple[int, int, tuple, tuple, int]]:
    """(tensor key, storage key, sizes, strides, offset) per tensor of the ``tensors`` member."""
    info = members(head)["tensors"]
    f = io.BytesIO(head[info.offset_data:info.offset_data + info.size])
    rows = []
    for _ in range(_Inert(f).load()):
        key, storage_key, _type = _Inert(f).load()
        (ndim,) = struct.unpack("<i", f.read(4))
        f.read(4)
        sizes = struct.unpack(f"<{ndim}q", f.read(8 * ndim))
        strides = struct.unpack(f"<{ndim}q", f.read(8 * ndim))
        (offset,) = struct.unpack("<q", f.read(8))
        rows.append((key, storage_key, sizes, strides, offset))
    assert not f.read(), "trailing bytes in the tensors member"
    return rows


def state_names(head: bytes) -> Dict[int, str]:
    """tensor key -> state-dict name, from the ``pickle`` member's opcodes (name, then persistent id)."""
    info = members(head)["pickle"]
    strings: List[str] = []
    names = {}
    for op, arg, _pos in pickletools.genops(head[info.offset_data:info.offset_data + info.size]):
        if op.name in ("BINUNICODE", "SHORT_BINUNICODE"):
            strings.append(arg)
        elif op.name == "BINPERSID":
            names[int(strings[-1])] = strings[-2]
    return names


def real_storage_prefix(head: bytes) -> List[Tuple[int, int, int]]:
    """(storage key, element count, header offset in the member) of the real records whose headers are in ``head``."""
    info = members(head)["storages"]
    data = head[info.offset_data:]
    f = io.BytesIO(data)
    _Inert(f).load()
    found = []
    while True:
        start = f.tell()
        try:
            key, _location, _type = _Inert(f).load()
        except Exception:
            break
        raw = f.read(8)
        if len(raw) < 8:
            break
        (count,) = struct.unpack("<q", raw)
        found.append((key, count, start))
        f.seek(4 * count, 1)
        if f.tell() > len(data):
            break
    return found


def _storage_header(key: int) -> bytes:
    # byte-identical to the real file's records (checked by the tests against the head)
    return (b"\x80\x02" + pickle.dumps(key, protocol=2)[2:-1]
            + b"X\x03\x00\x00\x00cpuq\x00ctorch\nFloatStorage\nq\x01\x87q\x02.")


def _values(name: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if name.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape).astype("<f4")
    if name.endswith("running_mean") or name.endswith("bias"):
        return (rng.standard_normal(shape) * 0.1).astype("<f4")
    if len(shape) == 1:  # BatchNorm weight
        return rng.uniform(0.5, 1.5, shape).astype("<f4")
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype("<f4")


def build(dest: Path, *, seed: int = 0, head_path: Path = HEAD) -> Replica:
    """Write ``dest/resnet50-19c8e357.pth`` and return it with the state dict (our keys) it holds."""
    import torch

    head = Path(head_path).read_bytes()
    info = members(head)["storages"]
    rows = tensor_table(head)
    names = state_names(head)
    by_storage = {storage_key: (key, sizes) for key, storage_key, sizes, _strides, _offset in rows}
    order = [key for key, _count, _start in real_storage_prefix(head)]
    order += [storage_key for _key, storage_key, *_ in rows if storage_key not in order]
    rng = np.random.default_rng(seed)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / REAL_NAME
    expected: Dict[str, Any] = {}
    with open(path, "wb") as out:
        out.write(head[:info.offset_data])  # sys_info, pickle, tensors and the storages headers, verbatim
        written = out.write(pickle.dumps(len(order), protocol=2))
        for storage_key in order:
            key, sizes = by_storage[storage_key]
            values = _values(names[key], sizes, rng)
            written += out.write(_storage_header(storage_key))
            written += out.write(struct.pack("<q", values.size))
            written += out.write(values.tobytes())
            expected[names[key]] = torch.from_numpy(values.copy())
        written += out.write(b"\x80\x02]q\x00.")  # no storage views
        if written != info.size:
            raise AssertionError(f"storages member is {written} bytes, the real header says {info.size}")
        out.write(b"\0" * (-written % 512) + b"\0" * 1024)
        out.write(b"\0" * (-out.tell() % RECORD))
    size = path.stat().st_size
    if size != REAL_SIZE:
        raise AssertionError(f"replica is {size} bytes, the real file {REAL_SIZE}")
    return Replica(model="MLCommonsResNet50", path=path, expected=expected,
                   notes={"storage_order": order, "head_bytes": len(head)})
