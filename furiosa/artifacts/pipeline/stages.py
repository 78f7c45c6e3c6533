"""One function per pipeline stage; ``stages/*.py`` parse arguments and call these.

Every output path comes in as an argument (dvc.yaml names them once); every output is written
atomically by the build library.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence

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
    from furiosa.artifacts.atomic import atomic_write_text
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


def _select(files: Sequence[Any], section: Dict[str, Any], where: str) -> List[Any]:
    offset, count = int(section.get("offset", 0)), section["count"]
    chosen = list(files)[offset:None if count is None else offset + int(count)]
    if not chosen or (count is not None and len(chosen) < int(count)):
        raise BuildError(f"{where}: asked for {count or 'all'} images from offset {offset}, only {len(chosen)} "
                         f"available in {section['path']}; raise samples.count in params.yaml or lower the count")
    return chosen


def _digits(params: Params, name: str) -> Any:
    from furiosa.artifacts.build.digits_split import digits_split

    train = params.model(name).source.get("train") or {}
    return digits_split(seed=params.seed, test_fraction=float(train["test_fraction"]))


def dataset_files(section: Dict[str, Any], *, where: str) -> List[Path]:
    """The image files a calibration/evaluation section selects (list, else val_map order / sorted files)."""
    from furiosa.artifacts.accuracy.datasets import read_image_list, read_val_map
    from furiosa.artifacts.build.calibrate import IMAGE_EXTENSIONS

    root = Path(section["path"])
    directory = root / section["images"] if section["data"] == "coco" else root
    if not directory.is_dir():
        raise BuildError(f"{where}.path: {directory} is not a directory (a {section['data']} dataset)")
    if section.get("list"):
        names = read_image_list(Path(section["list"]))
    elif section["data"] == "imagenet" and (root / section["val_map"]).is_file():
        names = [name for name, _ in read_val_map(root / section["val_map"])]
    else:
        names = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    files = [directory / n for n in _select(names, section, where)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BuildError(f"{where}: {len(missing)} selected images are missing from {directory}, e.g. {missing[:3]}")
    return files


def calibrate_stage(params: Params, name: str, *, out: Path) -> Dict[str, Any]:
    """Write the calibration set (``calibration.npz``) for ``name`` from its params' calibration dataset."""
    from furiosa.artifacts.build.calibrate import calibration_from_images
    from furiosa.artifacts.vision.preprocess import preprocess

    section = params.model(name).calibration
    spec = _spec(name)
    files = dataset_files(section, where=f"params.yaml: models.{name}.calibration")
    directory = files[0].parent
    info = calibration_from_images(directory, preprocess=lambda rgb: preprocess(rgb, spec)[0][0], out=out,
                                   names=[f.name for f in files])
    return {**info.to_dict(), "dataset": section["data"], "dataset_path": section["path"]}


def quantize_stage(params: Params, name: str, *, fp32: Path, calibration: Path, out: Path,
                   report: Path) -> Dict[str, Any]:
    """Quantize the fp32 ONNX of ``name`` to int8 with the settings in params."""
    from furiosa.artifacts.atomic import atomic_write_text
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
    from furiosa.artifacts.onnx_io import cpu_session, run_batched

    return run_batched(cpu_session(path, threads=threads), tensor, batch_size=batch)


AGREEMENT_MAX_DETECTIONS = 100  # COCOeval maxDets: uncapped specs compare their best 100 per image (small IoU matrix)


def _detections(per_image: List[List[Any]]) -> List[np.ndarray]:
    return [np.array([[*d.box, d.score, d.category_id] for d in dets], dtype=np.float64).reshape(-1, 6)
            for dets in per_image]


def _models(name: str, fp32: Path, int8: Path) -> Dict[str, Any]:
    from furiosa.artifacts.model import Model

    return {p: Model(name=name, family="", version=None, description=None, source=Path(path).read_bytes(),
                     precision=p, path=Path(path)) for p, path in (("fp32", fp32), ("int8", int8))}


def accuracy_metrics(report: Any, published: Dict[str, Any] | None) -> Dict[str, Any]:
    """Flat accuracy metrics (``fp32_top1`` ...), int8/fp32 ratios per figure (``int8_map50_ratio`` ...),
    the ratio and drop on the primary metric (top1 or map: ``int8_accuracy_ratio``, ``accuracy_drop``), and
    the gap to the published fp32 figure, from an :class:`AccuracyReport`."""
    primary = "top1" if report.kind == "imagenet" else "map"
    flat: Dict[str, Any] = {f"{p}_{k}": v for p, values in report.metrics.items() for k, v in values.items()}
    flat.update({f"int8_{k}_ratio": report.metrics["int8"][k] / v if v > 0 else 0.0
                 for k, v in report.metrics["fp32"].items()})
    fp32, int8 = report.metrics["fp32"][primary], report.metrics["int8"][primary]
    flat.update(int8_accuracy_ratio=int8 / fp32 if fp32 > 0 else 0.0, accuracy_drop=fp32 - int8)
    if published is not None and published["metric"] == primary:
        flat["fp32_published_gap"] = abs(fp32 - float(published["value"]))
    flat["accuracy"] = {**report.to_dict(), "metric": primary, "published": published}
    return flat


def evaluate_stage(params: Params, name: str, *, fp32: Path, int8: Path, weights_record: Path,
                   export_report: Path, quantize_report: Path, out: Path) -> Dict[str, Any]:
    """Measure int8 against fp32 (accuracy on a labelled dataset, agreement, latency, size), apply the gates,
    write metrics."""
    from furiosa.artifacts.accuracy import evaluate_coco, evaluate_imagenet
    from furiosa.artifacts.build.evaluate import (apply_gates, agreement_classification, agreement_detection,
                                                  count_onnx_params, file_size, latency_ratio, write_metrics)
    from furiosa.artifacts.vision.preprocess import preprocess

    model: ModelParams = params.model(name)
    spec = _spec(name)
    provenance = read_provenance(weights_record)
    threads = int(params.latency["threads"])
    section, where = model.evaluation, f"params.yaml: models.{name}.evaluation"
    metrics: Dict[str, Any] = {"model": name, "task": spec.task, "evaluation_data": section["data"],
                               "evaluation_path": section["path"]}
    first = dataset_files({**section, "count": 1, "list": None}, where=where)
    if section["data"] == "samples":
        files = dataset_files(section, where=where)
        tensor, contexts = preprocess(files, spec)
        log.info("%s: int8 vs fp32 agreement on %d sample photos (no labelled dataset configured)", name, len(files))
        ref, new = _run(fp32, tensor, threads=threads), _run(int8, tensor, threads=threads)
        metrics["evaluation_inputs"] = int(len(tensor))
        if spec.task == "classification":
            key = spec.output_names[0]
            metrics.update(agreement_classification(ref[key], new[key]))
        else:
            from furiosa.artifacts.vision.postprocess import FROM_SPEC, postprocess

            # the cap is applied after NMS (best first), so no Python object is made for the rows it drops
            cap = FROM_SPEC if spec.postprocess.max_detections else AGREEMENT_MAX_DETECTIONS
            ref_dets = postprocess(ref, contexts, spec, max_detections=cap)
            new_dets = postprocess(new, contexts, spec, max_detections=cap)
            metrics.update(agreement_detection(_detections(ref_dets), _detections(new_dets)))
    else:
        models = _models(name, fp32, int8)
        root = Path(section["path"])
        count, offset = section["count"], int(section["offset"])
        if section["data"] == "imagenet":
            report = evaluate_imagenet(models, root, val_map=root / section["val_map"], limit=count, offset=offset,
                                       progress=False)
            metrics.update(agreement_classification(report.outputs["fp32"], report.outputs["int8"]))
        else:
            report = evaluate_coco(models, root / section["images"], root / section["annotations"], limit=count,
                                   offset=offset, skip_empty=bool(section.get("skip_empty_images", False)),
                                   progress=False)
            cap = None if spec.postprocess.max_detections else AGREEMENT_MAX_DETECTIONS  # rows come best first
            metrics.update(agreement_detection([d[:cap] for d in report.outputs["fp32"]],
                                               [d[:cap] for d in report.outputs["int8"]]))
        metrics["evaluation_inputs"] = report.count
        metrics.update(accuracy_metrics(report, model.published))
    tensor, _ = preprocess(first, spec)
    lat = params.latency
    timing = latency_ratio(fp32, int8, {spec.input.name: tensor[:1]}, batch=int(lat["batch"]),
                           warmup=int(lat["warmup"]), repeats=int(lat["repeats"]), threads=threads,
                           rounds=int(lat["rounds"]), budget_s=lat.get("budget_s"))
    metrics.update(fp32_latency_ms=timing["fp32"]["median_ms"], int8_latency_ms=timing["int8"]["median_ms"],
                   int8_latency_ratio=timing["int8_latency_ratio"], latency=timing)
    sizes = {"fp32_bytes": file_size(fp32), "int8_bytes": file_size(int8)}
    metrics.update(sizes, size_ratio=sizes["int8_bytes"] / sizes["fp32_bytes"],
                   parameters=count_onnx_params(fp32))
    metrics["export"] = json.loads(Path(export_report).read_text("utf-8"))
    metrics["quantization"] = json.loads(Path(quantize_report).read_text("utf-8"))
    metrics["provenance"] = provenance
    result = apply_gates(name, metrics, model.gates, weights_source=provenance["source"],
                         real_dataset=model.real_evaluation)
    write_metrics(out, result)
    return result
