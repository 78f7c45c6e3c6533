"""PyTorch's pre-1.0 ``.tar`` checkpoints, read without running pickled code.

``torch.load(..., weights_only=True)`` refuses this format ("Cannot use weights_only=True with files saved in
the legacy .tar format"), and ``weights_only=False`` would run whatever the pickles name. This reader follows
the byte layout of ``torch/serialization.py`` ``_legacy_load`` (torchvision's 2017 ``resnet50-19c8e357.pth``):

- ``sys_info``: a pickled dict (``protocol_version`` 1000, ``little_endian``, ``type_sizes``);
- ``storages``: a pickled count; per storage a pickled ``(key, location, storage_type)``, an int64 element count
  and the raw little-endian data; then a pickled list of ``(view_key, root_key, offset, numel)`` views;
- ``tensors``: a pickled count; per tensor a pickled ``(key, storage_key, tensor_type)``, an int32 ndim, 4 pad
  bytes, ndim int64 sizes, ndim int64 strides, an int64 storage offset;
- ``pickle``: the state dict, whose tensors are persistent ids naming the keys above.

Every pickle goes through :class:`RestrictedUnpickler`: ``find_class`` admits only ``collections.OrderedDict``,
the legacy ``torch.nn.parameter.Parameter`` (rebuilt as a plain tensor), ``torch._utils._rebuild_tensor_v2`` /
``_rebuild_parameter`` (bounds-checked re-implementations) and the ``torch.<Type>Storage`` / ``<Type>Tensor``
names; any other global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafeWeightsError` before
anything is called. Storages stream from the tar member straight into their tensors (one copy in memory);
nothing is extracted to disk.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from furiosa.artifacts.errors import UnsafeWeightsError, WeightsFormatError

__all__ = ["RestrictedUnpickler", "is_legacy_tar", "read_legacy_tar"]

MEMBERS = ("sys_info", "pickle", "tensors", "storages")
_TYPES = {"Float": torch.float32, "Double": torch.float64, "Half": torch.float16, "BFloat16": torch.bfloat16,
          "Long": torch.int64, "Int": torch.int32, "Short": torch.int16, "Char": torch.int8, "Byte": torch.uint8,
          "Bool": torch.bool}
_MAX_NDIM = 16


class _LegacyParameter:
    """Stands in for ``torch.nn.parameter.Parameter`` as the 2017 pickles build it (NEWOBJ then BUILD with
    ``(data, grad, backward_hooks, requires_grad, ...)``): only the data tensor is kept."""

    data: Optional[torch.Tensor] = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or not state or not isinstance(state[0], torch.Tensor):
            raise UnsafeWeightsError("a legacy Parameter's state does not start with a tensor")
        self.data = state[0]


def _rebuild_tensor_v2(storage: Any, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise UnsafeWeightsError("_rebuild_tensor_v2 got something other than a storage")
    return _view(storage, offset, size, stride, what="tensor")


def _rebuild_parameter(data: Any, *_: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafeWeightsError("_rebuild_parameter got something other than a tensor")
    return data


_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.nn.parameter", "Parameter"): _LegacyParameter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
for _name, _dtype in _TYPES.items():
    _ALLOWED[("torch", f"{_name}Storage")] = _dtype
    _ALLOWED[("torch", f"{_name}Tensor")] = _dtype


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a legacy state dict needs; everything else raises.

    ``persistent`` maps persistent ids (the legacy keys) to tensors; without it a persistent id raises.
    """

    def __init__(self, file: io.BufferedIOBase, *, where: str,
                 persistent: Optional[Callable[[Any], Any]] = None) -> None:
        super().__init__(file, encoding="latin1")
        self._where = where
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"{self._where}: refusing the pickled global {module}.{name} (only tensor/storage rebuild "
                "globals are allowed; a weights file never needs code): the file is not a plain state dict"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafeWeightsError(f"{self._where}: unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _load(f: Any, where: str, persistent: Optional[Callable[[Any], Any]] = None) -> Any:
    try:
        return RestrictedUnpickler(f, where=where, persistent=persistent).load()
    except UnsafeWeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise WeightsFormatError(f"{where}: corrupt pickle ({type(exc).__name__}: {exc})") from None


def _view(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *, what: str) -> torch.Tensor:
    """``storage.as_strided(size, stride, offset)`` after checking that every element lies inside it."""
    ints = [offset, *size, *stride]
    if len(size) != len(stride) or len(size) > _MAX_NDIM or not all(isinstance(v, int) and v >= 0 for v in ints):
        raise WeightsFormatError(f"{what}: bad sizes/strides/offset {size} {stride} {offset}")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel():
            raise WeightsFormatError(f"{what}: reaches element {last} of a storage of {storage.numel()}")
    return storage.as_strided(tuple(size), tuple(stride), offset)


def is_legacy_tar(head: bytes) -> bool:
    """Whether the first 512+ bytes are a POSIX tar header (``ustar`` magic at offset 257)."""
    return len(head) >= 262 and head[257:262] == b"ustar"


def _read_exact(f: Any, n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise WeightsFormatError(f"{where}: truncated ({len(data)} of {n} bytes)")
    return data


def _storages(f: Any, where: str) -> Dict[Any, torch.Tensor]:
    count = _load(f, where)
    if not isinstance(count, int) or count < 0:
        raise WeightsFormatError(f"{where}: storage count is {count!r}")
    storages: Dict[Any, torch.Tensor] = {}
    for _ in range(count):
        header = _load(f, where)
        if not (isinstance(header, tuple) and len(header) == 3 and isinstance(header[2], torch.dtype)):
            raise WeightsFormatError(f"{where}: storage header {header!r} is not (key, location, storage type)")
        key, _location, dtype = header
        (numel,) = struct.unpack("<q", _read_exact(f, 8, where))
        if numel < 0:
            raise WeightsFormatError(f"{where}: storage {key!r} has {numel} elements")
        tensor = torch.empty(numel, dtype=dtype)
        nbytes = numel * tensor.element_size()
        buffer = memoryview(tensor.view(torch.uint8).numpy()) if nbytes else memoryview(b"")
        got = 0
        while got < nbytes:  # stream from the tar member into the tensor: no second copy
            n = f.readinto(buffer[got:])
            if not n:
                raise WeightsFormatError(f"{where}: storage {key!r} truncated ({got} of {nbytes} bytes)")
            got += n
        storages[key] = tensor
    views = _load(f, where)
    if not isinstance(views, list):
        raise WeightsFormatError(f"{where}: storage views are {type(views).__name__}, not a list")
    for view in views:
        if not (isinstance(view, tuple) and len(view) == 4 and view[1] in storages):
            raise WeightsFormatError(f"{where}: bad storage view {view!r}")
        target, root, offset, numel = view
        storages[target] = _view(storages[root], offset, (numel,), (1,), what=f"{where}: view {target!r}")
    if f.read(1):
        raise WeightsFormatError(f"{where}: unexpected bytes after the storage views")
    return storages


def _tensors(f: Any, storages: Dict[Any, torch.Tensor], where: str) -> Dict[Any, torch.Tensor]:
    count = _load(f, where)
    if not isinstance(count, int) or count < 0:
        raise WeightsFormatError(f"{where}: tensor count is {count!r}")
    tensors: Dict[Any, torch.Tensor] = {}
    for _ in range(count):
        header = _load(f, where)
        if not (isinstance(header, tuple) and len(header) == 3):
            raise WeightsFormatError(f"{where}: tensor header {header!r} is not (key, storage key, type)")
        key, storage_key, _type = header
        if storage_key not in storages:
            raise WeightsFormatError(f"{where}: tensor {key!r} names the missing storage {storage_key!r}")
        (ndim,) = struct.unpack("<i", _read_exact(f, 4, where))
        if not 0 <= ndim <= _MAX_NDIM:
            raise WeightsFormatError(f"{where}: tensor {key!r} has ndim {ndim}")
        _read_exact(f, 4, where)  # legacy encoding treated ndim as 8 bytes
        size = struct.unpack(f"<{ndim}q", _read_exact(f, 8 * ndim, where))
        stride = struct.unpack(f"<{ndim}q", _read_exact(f, 8 * ndim, where))
        (offset,) = struct.unpack("<q", _read_exact(f, 8, where))
        tensors[key] = _view(storages[storage_key], offset, size, stride, what=f"{where}: tensor {key!r}")
    return tensors


def _flatten(obj: Any, where: str) -> Dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise WeightsFormatError(f"{where}: the pickle holds a {type(obj).__name__}, not a state dict")
    out: Dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, _LegacyParameter):
            value = value.data
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsFormatError(f"{where}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value
    return out


def read_legacy_tar(path: Path) -> Dict[str, torch.Tensor]:
    """The state dict in a pre-1.0 PyTorch ``.tar`` checkpoint, without running pickled code.

    Raises:
        UnsafeWeightsError: a pickle names a global outside the tensor/storage allow-list.
        WeightsFormatError: not a legacy PyTorch tar, a member is missing/not a file, or a member is corrupt.
    """
    path = Path(path)
    try:
        tar = tarfile.open(path, mode="r:")
    except tarfile.TarError as exc:
        raise WeightsFormatError(f"{path}: not a readable tar archive: {exc}") from None
    with tar:
        try:
            members = {m.name: m for m in tar.getmembers()}
        except tarfile.TarError as exc:
            raise WeightsFormatError(f"{path}: corrupt tar archive: {exc}") from None
        missing = [name for name in MEMBERS if name not in members or not members[name].isfile()]
        if missing:
            raise WeightsFormatError(f"{path}: a legacy PyTorch tar needs the regular-file members "
                                     f"{', '.join(MEMBERS)}; missing {', '.join(missing)}")

        def member(name: str) -> Any:
            return io.BufferedReader(tar.extractfile(members[name]), buffer_size=1 << 20)  # type: ignore[arg-type]

        with member("sys_info") as f:
            info = _load(f, f"{path}[sys_info]")
        if not isinstance(info, dict) or info.get("protocol_version") != 1000 or info.get("little_endian") is not True:
            raise WeightsFormatError(f"{path}[sys_info]: expected protocol_version 1000, little endian; got {info!r}")
        with member("storages") as f:
            storages = _storages(f, f"{path}[storages]")
        with member("tensors") as f:
            tensors = _tensors(f, storages, f"{path}[tensors]")
        del storages

        def persistent(pid: Any) -> torch.Tensor:
            if isinstance(pid, (str, bytes)) and pid.isdigit():
                pid = int(pid)
            if pid not in tensors:
                raise WeightsFormatError(f"{path}[pickle]: persistent id {pid!r} names no tensor")
            return tensors[pid]

        with member("pickle") as f:
            state = _load(f, f"{path}[pickle]", persistent)
    return _flatten(state, f"{path}[pickle]")
