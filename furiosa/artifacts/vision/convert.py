"""Source weights -> state dicts of our networks (``furiosa.artifacts.vision.models``). Imports torch.

``load_state_dict_file`` reads plain state-dict checkpoints (torchvision ``resnet50-19c8e357.pth``, timm
``tf_efficientnetv2_s-eb54923e.pth``) with ``torch.load(weights_only=True)``: no pickled module is ever run.

ONNX files are read by ``convert_onnx`` and TF frozen graphs by ``convert_tf``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Union

import torch

from furiosa.artifacts.errors import BuildError

StateDict = dict[str, torch.Tensor]


def load_state_dict_file(path: Union[str, "os.PathLike[str]"]) -> StateDict:
    """A plain state dict (tensors by key) from a ``.pth`` file, loaded with ``weights_only=True``.

    A checkpoint wrapping the state dict under ``state_dict`` or ``model`` is unwrapped. Raises BuildError
    when the file is missing, holds a pickled module or anything but a mapping of tensors.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise BuildError(f"weights file not found: {os.fspath(path)}") from exc
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
        raise BuildError(f"{os.fspath(path)} is not a plain state dict (a pickled module is never unpickled "
                         f"here: extract its state_dict once in a trusted environment): {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise BuildError(f"{os.fspath(path)} does not hold a mapping of tensors")
    return {str(k): v for k, v in data.items()}


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "weights") -> None:
    """``module.load_state_dict(state, strict=True)``, raising BuildError that lists missing/unexpected keys."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BuildError(f"{source} do not fit {type(module).__name__}: {exc}") from exc
