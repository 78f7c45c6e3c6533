"""The weights stage: official download, local file, training, or explicitly requested synthetic init.

Official and local files are read by :func:`furiosa.artifacts.weights_io.convert_weights` (format detected
from the bytes, safe readers only, strict load). Whatever the source, the output is a plain PyTorch state_dict
in our module's layout (``weights.pt``, read back with ``torch.load(..., weights_only=True)``) plus ``weights.json``,
the provenance record every later stage copies forward. Nothing falls back from one source to
another: ``base.weights: synthetic`` is the only way to get random weights for a url/file source,
and every artifact built that way is marked ``synthetic`` and ``deployable: false``.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Dict

from furiosa.artifacts.atomic import atomic_write_bytes, atomic_write_text
from furiosa.artifacts.errors import SpecError
from furiosa.artifacts.pipeline.params import Params

log = logging.getLogger(__name__)

def create_network(name: str) -> Any:
    """A freshly initialised PyTorch module for catalog model ``name``."""
    from furiosa.artifacts.vision.models import create_model

    return create_model(name)


def _synthetic_state(name: str, seed: int, *, batches: int = 1, batch_size: int = 1) -> Dict[str, Any]:
    """Seeded random init, with BatchNorm statistics measured on seeded noise.

    Default BatchNorm statistics (mean 0, var 1) let activations of a random deep network grow layer
    after layer until float32 rounding alone breaks the export parity gate (EfficientNetV2-S: 0.5 abs).
    Measuring them on noise keeps activations normalised, like a trained network's. One noise image
    gives each channel's statistics over all its spatial positions (the noise is stationary, so more
    images change little; all four seed networks pass their export parity gate) and costs one image's
    forward pass (SSD-ResNet34 at 1200x1200: about 2 s).
    """
    import torch

    from furiosa.artifacts.vision.specs import load_spec

    torch.manual_seed(seed)
    network = create_network(name)
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches below
        generator = torch.Generator().manual_seed(seed)
        network.train()
        with torch.no_grad():
            for _ in range(batches):
                network(torch.randn(batch_size, *load_spec(name).input.shape, generator=generator))
        for norm in norms:
            norm.momentum = 0.1
    return network.eval().state_dict()


def produce_weights(params: Params, name: str, *, out: Path, record: Path, repo_root: Path,
                    progress: bool = True, data: Path | None = None) -> Dict[str, Any]:
    """Write ``out`` (state_dict) and ``record`` (provenance JSON) for model ``name``.

    ``data`` is the model's dataset directory (params ``models.<name>.data``, relative to ``repo_root`` by
    default); only a detector trained in the pipeline reads it.

    Raises:
        SpecError: invalid source section.
        DownloadError, ChecksumError, UnsafePathError: from fetching a url/file source.
        BuildError: the converted weights do not fit the network.
    """
    import torch

    from furiosa.artifacts.errors import BuildError

    model = params.model(name)
    kind = model.source["type"]
    provenance: Dict[str, Any] = {"model": name, "type": kind}
    if kind == "train":
        where = f"params.yaml: models.{name}.source.train"
        recipe = model.source.get("train") or {}
        if isinstance(recipe, dict) and recipe.get("dataset") == "digits-detection":
            from furiosa.artifacts.build.train_detector import train_detector, validate_detector_params

            train = validate_detector_params(recipe, where=where)
            dataset = Path(data) if data is not None else repo_root / model.data
            state, report = train_detector(train, data=dataset, seed=params.seed, name=name)
            provenance.update(data=model.data)
        else:
            from furiosa.artifacts.build.train import train_digits, validate_train_params

            train = validate_train_params(recipe, where=where)
            state, report = train_digits(train, seed=params.seed)
        provenance.update(source="train", synthetic=False, seed=params.seed, train=train, report=report)
    elif kind == "synthetic" or (kind in ("url", "file") and params.weights == "synthetic"):
        state = _synthetic_state(name, params.seed)
        provenance.update(source="synthetic", synthetic=True, deployable=False, seed=params.seed,
                          note="seeded random initialisation, explicitly requested: not for deployment",
                          official={k: model.source.get(k) for k in ("urls", "sha256", "sha384", "md5", "size", "path",
                                                                   "member")
                                    if model.source.get(k) is not None})
    elif kind in ("url", "file"):
        from furiosa.artifacts.sources import fetch_weights
        from furiosa.artifacts.weights_io import convert_weights

        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".weights-") as tmp:
            raw = fetch_weights(model.source, dest=Path(tmp) / "download", repo_root=repo_root, progress=progress,
                                where=f"params.yaml:models.{name}.source")
            state, report = convert_weights(raw, name)  # format from the bytes; strict load inside
        log.info("%s", report.summary())
        pins = {k: model.source[k] for k in ("sha256", "sha384", "md5") if model.source.get(k) is not None}
        provenance.update(source=kind, synthetic=False, **pins, size=model.source.get("size"),
                          urls=model.source.get("urls"), path=model.source.get("path"),
                          member=model.source.get("member"),
                          conversion={"format": report.format, "sha256": report.sha256, "bytes": report.size,
                                      "tensors_in_file": report.tensors_in_file, "keys_mapped": report.keys_mapped,
                                      "keys_filled": len(report.keys_filled)})
    else:
        raise SpecError(f"params.yaml: models.{name}.source.type: {kind!r} is not one of url, file, train, synthetic")

    network = create_network(name)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BuildError(f"{name}: the {provenance['source']} weights do not fit the network: {exc}") from None
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}, buffer)
    atomic_write_bytes(out, buffer.getvalue())
    provenance["parameters"] = int(sum(p.numel() for p in network.parameters()))
    atomic_write_text(record, json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n")
    return provenance


def load_weights(name: str, path: Path) -> Any:
    """The network of ``name`` with the state_dict at ``path`` (``weights_only=True``), in eval mode."""
    import torch

    network = create_network(name)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return network.eval()


def read_provenance(path: Path) -> Dict[str, Any]:
    """The ``weights.json`` written by :func:`produce_weights`."""
    return json.loads(Path(path).read_text("utf-8"))
