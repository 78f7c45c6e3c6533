"""One function per pipeline stage; ``stages/*.py`` parse arguments and call these.

Every output path comes in as an argument (dvc.yaml names them once); every output is written
atomically by the build library.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from furiosa.artifacts.errors import BuildError
from furiosa.artifacts.pipeline.params import ModelParams, Params
from furiosa.artifacts.pipeline.weights import load_weights, read_provenance

log = logging.getLogger(__name__)


def _spec(name: str) -> Any:
    from furiosa.artifacts.vision.specs import load_spec

    return load_spec(name)


def build_provenance(params: Params, name: str, *, weights: Path, record: Path) -> Dict[str, str]:
    """The provenance the fp32 binary of ``name`` carries (see :mod:`furiosa.artifacts.provenance`)."""
    from furiosa.artifacts.catalog.entries import find_entry, read_entries
    from furiosa.artifacts.provenance import params_digest
    from furiosa.artifacts.sources.cache import hash_file

    made = read_provenance(record)
    source = made.get("source")
    kind = {"url": "official", "file": "official", "train": "train", "synthetic": "synthetic"}.get(source)
    if kind is None:
        raise BuildError(f"{record}: unknown weight source {source!r}; rebuild it with `dvc repro weights@{name}`")
    entry = find_entry(read_entries(Path(params.path).parent, validate=False), name)
    model = params.model(name)  # what the export stage depends on (dvc.yaml), nothing more
    recipe = {"network": model.network, "source": model.source, "data": model.data, "export": model.export,
              "seed": params.seed, "weights": params.weights}
    return {"name": name, "version": entry.version or "", "precision": "fp32", "weights": kind,
            "source_sha256": str(made.get("sha256") or "") if kind == "official" else "",
            "weights_sha256": hash_file(Path(weights), ("sha256",))["sha256"],
            "params_sha256": params_digest(recipe)}


def export_stage(params: Params, name: str, *, weights: Path, out: Path, report: Path,
                 record: Path | None = None) -> Dict[str, Any]:
    """Export the fp32 ONNX of ``name`` (stamped with its provenance from ``record``) and write the report."""
    from furiosa.artifacts.build._io import atomic_write_text
    from furiosa.artifacts.build.export import export_onnx

    spec, export = _spec(name), params.model(name).export
    provenance = build_provenance(params, name, weights=weights, record=record) if record is not None else None
    result = export_onnx(load_weights(name, weights), input_shape=(1, *spec.input.shape), input_name=spec.input.name,
                         output_names=list(spec.output_names), out=out, opset=int(export["opset"]),
                         rtol=float(export["rtol"]), atol=float(export["atol"]), seed=params.seed,
                         provenance=provenance)
    data = result.to_dict()
    data["path"] = str(out)
    atomic_write_text(report, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return data


def _select(files: Sequence[Path], section: Dict[str, Any], where: str) -> List[Path]:
    offset, count = int(section.get("offset", 0)), int(section["count"])
    chosen = list(files)[offset:offset + count]
    if len(chosen) < count:
        raise BuildError(f"{where}: asked for {count} images from offset {offset}, only {len(chosen)} available; "
                         "raise samples.count in params.yaml or lower the count")
    return chosen


def _digits(params: Params, name: str) -> Any:
    from furiosa.artifacts.build.train import digits_split

    train = params.model(name).source.get("train") or {}
    return digits_split(seed=params.seed, test_fraction=float(train["test_fraction"]))


def _coco_split(params: Params, name: str, kind: str) -> str | None:
    """For a model trained on a generated COCO-format dataset: its split for ``train``/``heldout``."""
    recipe = params.model(name).source.get("train") or {}
    if kind in ("train", "heldout") and isinstance(recipe, dict) and recipe.get("dataset") == "digits-detection":
        return "train" if kind == "train" else "val"
    return None


def model_inputs(params: Params, name: str, section: Dict[str, Any], *, samples: Path,
                 where: str) -> Tuple[np.ndarray, np.ndarray | None, List[Any], List[Path]]:
    """Preprocessed inputs for a calibration/evaluation section: (tensor, labels, contexts, files).

    ``samples`` is the model's data directory: the sample photos, or its generated COCO-format dataset
    (then ``train``/``heldout`` read that dataset's train/val images).
    """
    kind = section["data"]
    split = _coco_split(params, name, kind)
    if split is not None:
        from furiosa.artifacts.pipeline.digits_detection import split_files
        from furiosa.artifacts.vision.preprocess import preprocess

        files = _select(split_files(samples, split), section, where)
        tensor, contexts = preprocess(files, _spec(name))
        return tensor, None, contexts, files
    if kind in ("train", "heldout"):
        split = _digits(params, name)
        x, y = (split.x_train, split.y_train) if kind == "train" else (split.x_test, split.y_test)
        offset, count = int(section.get("offset", 0)), int(section["count"])
        return x[offset:offset + count], y[offset:offset + count], [], []
    from furiosa.artifacts.pipeline.samples import sample_files
    from furiosa.artifacts.vision.preprocess import preprocess

    files = _select(sample_files(samples), section, where)
    tensor, contexts = preprocess(files, _spec(name))
    return tensor, None, contexts, files


def calibrate_stage(params: Params, name: str, *, samples: Path, out: Path) -> Dict[str, Any]:
    """Write the calibration set (``calibration.npz``) for ``name``."""
    from furiosa.artifacts.build.calibrate import calibration_from_array, calibration_from_images
    from furiosa.artifacts.pipeline.samples import sample_files
    from furiosa.artifacts.vision.preprocess import preprocess

    section = params.model(name).calibration
    where = f"params.yaml: models.{name}.calibration"
    if section["data"] == "samples":
        spec = _spec(name)
        files = _select(sample_files(samples), section, where)
        info = calibration_from_images(samples, preprocess=lambda rgb: preprocess(rgb, spec)[0][0], out=out,
                                       names=[f.name for f in files])
    else:
        tensor, _, _, _ = model_inputs(params, name, section, samples=samples, where=where)
        info = calibration_from_array(tensor, out=out)
    return info.to_dict()


def quantize_stage(params: Params, name: str, *, fp32: Path, calibration: Path, out: Path,
                   report: Path) -> Dict[str, Any]:
    """Quantize the fp32 ONNX of ``name`` to int8 with the settings in params."""
    from furiosa.artifacts.build._io import atomic_write_text
    from furiosa.artifacts.build.quantize import QuantSettings, quantize_model
    from furiosa.artifacts.provenance import PREFIX, params_digest
    from furiosa.artifacts.provenance import read_provenance as binary_provenance
    from furiosa.artifacts.sources.cache import hash_file

    settings = QuantSettings.from_params(params.model(name).quantization,
                                         where=f"params.yaml: models.{name}.quantization")
    parent = binary_provenance(fp32)
    if not parent.known:
        raise BuildError(f"{fp32}: {parent.error}; rebuild it with `dvc repro export@{name}`")
    provenance = {k[len(PREFIX):]: v for k, v in parent.props.items()}
    section = params.model(name)
    recipe = {"fp32": parent.get("params_sha256"), "calibration": section.calibration,
              "quantization": section.quantization}
    provenance.update(precision="int8", fp32_md5=hash_file(Path(fp32), ("md5",))["md5"],
                      params_sha256=params_digest(recipe))
    result = quantize_model(fp32, calibration=calibration, out=out, settings=settings,
                            provenance=provenance).to_dict()
    atomic_write_text(report, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    return result


def _run(path: Path, tensor: np.ndarray, *, threads: int, batch: int = 8) -> Dict[str, np.ndarray]:
    from furiosa.artifacts.build._ort import cpu_session

    session = cpu_session(path, threads=threads)
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    parts: Dict[str, List[np.ndarray]] = {n: [] for n in names}
    for start in range(0, len(tensor), batch):
        for key, value in zip(names, session.run(None, {name: tensor[start:start + batch]})):
            parts[key].append(value)
    return {k: np.concatenate(v) for k, v in parts.items()}


AGREEMENT_MAX_DETECTIONS = 100  # COCOeval maxDets: uncapped specs compare their best 100 per image (small IoU matrix)


def _detections(per_image: List[List[Any]], *, cap: Optional[int] = None) -> List[np.ndarray]:
    return [np.array([[*d.box, d.score, d.category_id] for d in dets[:cap]], dtype=np.float64).reshape(-1, 6)
            for dets in per_image]


def coco_accuracy(annotations: Path, files: Sequence[Path], fp32: List[List[Any]],
                  int8: List[List[Any]]) -> Dict[str, Any]:
    """fp32 and int8 COCO mAP (pycocotools) of detections on ``files``, scored against ``annotations``.

    Images are matched to the annotation file by ``file_name``. Returns ``fp32_map``, ``fp32_map50``,
    ``int8_map``, ``int8_map50`` and the int8/fp32 ratios. Raises BuildError for a file the annotations lack.
    """
    import json as _json

    from furiosa.artifacts.build.coco_map import coco_map, detection_results

    coco = _json.loads(Path(annotations).read_text("utf-8"))
    ids = {str(image["file_name"]): int(image["id"]) for image in coco["images"]}
    missing = [f.name for f in files if f.name not in ids]
    if missing:
        raise BuildError(f"{annotations}: no image entry for {', '.join(missing[:3])}; regenerate the dataset")
    image_ids = [ids[f.name] for f in files]
    result: Dict[str, Any] = {"evaluation_annotations": str(annotations), "evaluation_images": len(image_ids)}
    for precision, dets in (("fp32", fp32), ("int8", int8)):
        scores = coco_map(annotations, detection_results(image_ids, dets), image_ids=image_ids)
        result.update({f"{precision}_{k}": v for k, v in scores.items()})
    for key in ("map", "map50"):
        reference = result[f"fp32_{key}"]
        result[f"int8_{key}_ratio"] = result[f"int8_{key}"] / reference if reference > 0 else 0.0
    return result


def evaluate_stage(params: Params, name: str, *, fp32: Path, int8: Path, samples: Path, weights_record: Path,
                   export_report: Path, quantize_report: Path, out: Path) -> Dict[str, Any]:
    """Measure int8 against fp32 (agreement, accuracy, latency, size), apply the gates, write metrics."""
    from furiosa.artifacts.build.evaluate import (apply_gates, agreement_classification, agreement_detection,
                                                  count_onnx_params, file_size, latency_ratio, write_metrics)

    model: ModelParams = params.model(name)
    spec = _spec(name)
    provenance = read_provenance(weights_record)
    threads = int(params.latency["threads"])
    tensor, labels, contexts, files = model_inputs(params, name, model.evaluation, samples=samples,
                                                   where=f"params.yaml: models.{name}.evaluation")
    log.info("%s: evaluating fp32 and int8 on %d inputs", name, len(tensor))
    ref, new = _run(fp32, tensor, threads=threads), _run(int8, tensor, threads=threads)
    metrics: Dict[str, Any] = {"model": name, "task": spec.task, "evaluation_inputs": int(len(tensor)),
                               "evaluation_data": model.evaluation["data"]}
    if spec.task == "classification":
        key = spec.output_names[0]
        metrics.update(agreement_classification(ref[key], new[key]))
        if labels is not None:
            fp32_acc = float(np.mean(ref[key].argmax(1) == labels))
            int8_acc = float(np.mean(new[key].argmax(1) == labels))
            metrics.update(fp32_accuracy=fp32_acc, int8_accuracy=int8_acc, accuracy_drop=fp32_acc - int8_acc)
    else:
        from furiosa.artifacts.vision.postprocess import postprocess

        ref_dets, new_dets = postprocess(ref, contexts, spec), postprocess(new, contexts, spec)
        cap = None if spec.postprocess.max_detections else AGREEMENT_MAX_DETECTIONS  # detections come best first
        metrics.update(agreement_detection(_detections(ref_dets, cap=cap), _detections(new_dets, cap=cap)))
        split = _coco_split(params, name, model.evaluation["data"])
        if split is not None:
            from furiosa.artifacts.pipeline.digits_detection import annotation_path

            metrics.update(coco_accuracy(annotation_path(samples, split), files, ref_dets, new_dets))
    lat = params.latency
    timing = latency_ratio(fp32, int8, {spec.input.name: tensor[:1]}, batch=int(lat["batch"]),
                           warmup=int(lat["warmup"]), repeats=int(lat["repeats"]), threads=threads,
                           rounds=int(lat["rounds"]))
    metrics.update(fp32_latency_ms=timing["fp32"]["median_ms"], int8_latency_ms=timing["int8"]["median_ms"],
                   int8_latency_ratio=timing["int8_latency_ratio"], latency=timing)
    sizes = {"fp32_bytes": file_size(fp32), "int8_bytes": file_size(int8)}
    metrics.update(sizes, size_ratio=sizes["int8_bytes"] / sizes["fp32_bytes"],
                   parameters=count_onnx_params(fp32))
    metrics["export"] = json.loads(Path(export_report).read_text("utf-8"))
    metrics["quantization"] = json.loads(Path(quantize_report).read_text("utf-8"))
    metrics["provenance"] = provenance
    result = apply_gates(name, metrics, model.gates, weights_source=provenance["source"])
    write_metrics(out, result)
    return result
