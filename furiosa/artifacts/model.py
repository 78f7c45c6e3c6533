"""The model object every loader returns: ONNX bytes plus pre/postprocessing and a runner.

It satisfies furiosa-registry 0.5.x, which sets ``name``, ``description`` and ``version``
on it and reads the ONNX bytes from ``model``. No torch here.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from furiosa.artifacts.errors import ArtifactsError, ModelBinaryError
from furiosa.artifacts.onnx_io import TensorInfo, cpu_session, graph_io, run_batched


class Model:
    """A catalog model ready to run: ``preprocess`` -> ONNX Runtime -> ``postprocess``."""

    def __init__(self, *, name: str, family: str, version: Optional[str], description: Optional[str],
                 source: bytes, precision: str, path: Optional[Path] = None, synthetic: bool = False,
                 provenance: Any = None):
        from furiosa.artifacts.provenance import Provenance, read_provenance

        self.name = name
        self.family = family
        self.version = version
        self.description = description
        self.source = source
        self.precision = precision
        self.path = path
        prov = provenance if provenance is not None else read_provenance(source)
        if synthetic and not prov.synthetic:
            prov = Provenance("synthetic", prov.props, "the loader was told the weights are synthetic")
        #: what the binary says about its weights (:class:`furiosa.artifacts.provenance.Provenance`)
        self.provenance = prov

    @property
    def weights(self) -> str:
        """Where the weights came from: ``official``, ``train``, ``synthetic`` or ``unknown`` (fail closed)."""
        return self.provenance.kind

    @property
    def synthetic(self) -> bool:
        """True when the binary was built from synthetic (seeded random) weights."""
        return self.provenance.synthetic

    @property
    def deployable(self) -> bool:
        """True only when the binary proves real weights (official or trained); never for unknown provenance."""
        return self.provenance.kind in ("official", "train")

    def __repr__(self) -> str:
        mark = "" if self.deployable else f", {self.weights} weights"
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
        return graph_io(self.source, what=self._what)

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

    @property
    def _what(self) -> str:
        return f"{self.name} {self.precision} binary" + (f" {self.path}" if self.path else "")

    @cached_property
    def session(self) -> Any:
        """An ONNX Runtime CPU session over :attr:`source` (created on first use).

        Raises:
            UnsafePathError: the binary names external data (see :func:`furiosa.artifacts.onnx_io.read_model`).
            ModelBinaryError: it is not a valid ONNX model, or ONNX Runtime cannot load it.
        """
        try:
            return cpu_session(self.source, what=self._what)
        except ArtifactsError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail/InvalidGraph/... share no public base
            message = " ".join(str(exc).split())[:300]
            raise ModelBinaryError(f"{self._what}: ONNX Runtime cannot load it ({message}): re-fetch it with "
                                   "`furiosa-artifacts pull` or rebuild it") from None

    def output_by_name(self, outputs: Dict[str, Any], name: str) -> Any:
        """``outputs[name]``, or a ModelBinaryError naming the outputs the binary has."""
        if name not in outputs:
            raise ModelBinaryError(f"{self._what} has no output {name!r} (specs.yaml names it; the binary has "
                                   f"{', '.join(map(repr, outputs))}): rebuild the binary or fix specs.yaml")
        return outputs[name]

    def infer(self, tensor: Any, *, batch_size: int = 8) -> Dict[str, Any]:
        """Run a preprocessed batch (N, ...) through ONNX Runtime in chunks of ``batch_size``; outputs by name."""
        return run_batched(self.session, tensor, batch_size=batch_size)

    def run(self, images: Any, *, batch_size: int = 8) -> List[Any]:
        """Preprocess, infer in batches of ``batch_size`` and postprocess; one result per image."""
        tensor, contexts = self.preprocess(images)
        return self.postprocess(self.infer(tensor, batch_size=batch_size), contexts)

