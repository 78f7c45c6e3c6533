"""The model object every loader returns: ONNX bytes plus pre/postprocessing and a runner.

It satisfies furiosa-registry 0.5.x, which sets ``name``, ``description`` and ``version``
on it and reads the ONNX bytes from ``model``. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from furiosa.artifacts.errors import BinaryNotFoundError


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type and shape (``-1`` for a dynamic dimension) of a graph input/output."""

    name: str
    datatype: str
    shape: Tuple[int, ...]


class Model:
    """A catalog model ready to run: ``preprocess`` -> ONNX Runtime -> ``postprocess``."""

    def __init__(self, *, name: str, family: str, version: Optional[str], description: Optional[str],
                 source: bytes, precision: str, path: Optional[Path] = None, synthetic: bool = False):
        self.name = name
        self.family = family
        self.version = version
        self.description = description
        self.source = source
        self.precision = precision
        self.path = path
        self.synthetic = synthetic

    def __repr__(self) -> str:
        mark = ", synthetic weights" if self.synthetic else ""
        return (f"Model(name={self.name!r}, version={self.version!r}, precision={self.precision!r}, "
                f"{len(self.source)} bytes{mark})")

    @property
    def model(self) -> bytes:
        """The ONNX bytes (the furiosa-registry ``Model.model`` field)."""
        return self.source

    @cached_property
    def spec(self) -> Any:
        """Run-time facts (input size, labels, pre/postprocessing) from specs.yaml."""
        from furiosa.artifacts.vision.specs import load_spec

        return load_spec(self.name)

    @cached_property
    def _graph_io(self) -> Tuple[List[TensorInfo], List[TensorInfo]]:
        import onnx

        graph = onnx.load_model_from_string(self.source).graph
        initializers = {init.name for init in graph.initializer}

        def info(value: Any) -> TensorInfo:
            tensor = value.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            return TensorInfo(value.name, onnx.TensorProto.DataType.Name(tensor.elem_type).lower(), dims)

        inputs = [info(v) for v in graph.input if v.name not in initializers]
        return inputs, [info(v) for v in graph.output]

    @property
    def inputs(self) -> List[TensorInfo]:
        """Graph inputs (excluding initializers)."""
        return self._graph_io[0]

    @property
    def outputs(self) -> List[TensorInfo]:
        """Graph outputs."""
        return self._graph_io[1]

    def preprocess(self, images: Any) -> Tuple[Any, List[Any]]:
        """Images (paths, PIL images, HWC uint8 arrays, or a list) -> (NCHW float32 batch, contexts)."""
        from furiosa.artifacts.vision.preprocess import preprocess

        return preprocess(images, self.spec)

    def postprocess(self, outputs: Any, contexts: Sequence[Any]) -> List[Any]:
        """Raw ONNX outputs (+ contexts from :meth:`preprocess`) -> one result list per image."""
        from furiosa.artifacts.vision.postprocess import postprocess

        return postprocess(outputs, contexts, self.spec)

    @cached_property
    def session(self) -> Any:
        """An ONNX Runtime CPU session over :attr:`source` (created on first use)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(self.source, options, providers=["CPUExecutionProvider"])

    def infer(self, tensor: Any, *, batch_size: int = 8) -> Dict[str, Any]:
        """Run a preprocessed batch (N, ...) through ONNX Runtime in chunks of ``batch_size``; outputs by name."""
        import numpy as np

        input_name = self.session.get_inputs()[0].name
        output_names = [o.name for o in self.session.get_outputs()]
        chunks: Dict[str, List[Any]] = {n: [] for n in output_names}
        for start in range(0, len(tensor), batch_size):
            values = self.session.run(None, {input_name: tensor[start:start + batch_size]})
            for key, value in zip(output_names, values):
                chunks[key].append(value)
        return {key: np.concatenate(parts, axis=0) for key, parts in chunks.items()}

    def run(self, images: Any, *, batch_size: int = 8) -> List[Any]:
        """Preprocess, infer in batches of ``batch_size`` and postprocess; one result per image."""
        tensor, contexts = self.preprocess(images)
        return self.postprocess(self.infer(tensor, batch_size=batch_size), contexts)


def read_binary(root: Path, relpath: str) -> bytes:
    """Bytes of a model binary inside ``root``.

    Raises:
        BinaryNotFoundError: the file is absent, with the commands that produce it.
    """
    path = Path(root) / relpath
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BinaryNotFoundError(
            f"{path} is not built yet: run `dvc pull` to fetch it, or build it with "
            f"`furiosa-artifacts build` (official weights) / `furiosa-artifacts build --weights synthetic` (offline)"
        ) from None
