"""`furiosa-artifacts build`: choose the weight mode, run `dvc repro`, push, and summarise the metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from furiosa.artifacts.docs import write_atomic
from furiosa.artifacts.errors import BuildError, SpecError
from furiosa.artifacts.layout import metrics_relpath
from furiosa.artifacts.pipeline.params import PARAMS_FILE, WEIGHT_MODES, load_params


def set_weight_mode(root: Path, mode: str) -> bool:
    """Set ``base.weights`` in params.yaml (comments kept); returns whether the file changed.

    Raises:
        SpecError: unknown mode, or params.yaml is invalid.
    """
    if mode not in WEIGHT_MODES:
        raise SpecError(f"--weights must be one of {', '.join(WEIGHT_MODES)}, got {mode!r}")
    path = Path(root) / PARAMS_FILE
    if load_params(path).weights == mode:
        return False
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 4096
    data = yaml.load(path.read_text("utf-8"))
    data["base"]["weights"] = mode
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    write_atomic(path, buffer.getvalue())
    load_params(path)  # what we wrote must still validate
    return True


def dvc_env() -> Dict[str, str]:
    """Environment for DVC subprocesses: this interpreter's bin first (stages run `python`), no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def dvc(root: Path, *args: str) -> None:
    """Run ``dvc ARGS`` in ``root``, streaming its output. Raises BuildError on failure."""
    exe = Path(sys.executable).parent / "dvc"
    command = [str(exe) if exe.exists() else "dvc", *args]
    print(f"+ dvc {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run(command, cwd=root, env=dvc_env())
    if proc.returncode != 0:
        raise BuildError(f"`dvc {' '.join(args)}` failed with exit code {proc.returncode} (see its output above)")


def summary(root: Path, names: Sequence[str]) -> List[Dict[str, Any]]:
    """One row per model from its metrics.json (models not built yet are skipped)."""
    rows = []
    for name in names:
        path = Path(root) / metrics_relpath(name)
        if not path.is_file():
            continue
        m = json.loads(path.read_text("utf-8"))
        quality = (f"top1 {m['fp32_top1']:.3f}->{m['int8_top1']:.3f}" if "int8_top1" in m
                   else f"mAP {m['fp32_map']:.3f}->{m['int8_map']:.3f}" if "int8_map" in m
                   else f"int8/fp32 top1 agree {m['int8_vs_fp32_top1_agreement']:.2f}"
                   if "int8_vs_fp32_top1_agreement" in m
                   else f"int8/fp32 det F1 {m.get('int8_vs_fp32_detection_f1', 0):.2f}")
        statuses = {g["status"] for g in (m.get("gates") or {}).values()}
        rows.append({"model": name, "weights": m["weights"]["source"], "fp32_mb": m["fp32_bytes"] / 1e6,
                     "int8_mb": m["int8_bytes"] / 1e6, "size_ratio": m["size_ratio"],
                     "latency_ratio": m["int8_latency_ratio"], "quality": quality,
                     "gates": ",".join(sorted(statuses)) or "none"})
    return rows


def format_summary(rows: List[Dict[str, Any]]) -> str:
    """A plain-text table of :func:`summary` rows; synthetic rows are flagged."""
    lines = [f"{'model':24} {'weights':10} {'fp32 MB':>8} {'int8 MB':>8} {'size':>6} {'latency':>8}  quality / gates"]
    for r in rows:
        flag = "  << SYNTHETIC: not for deployment" if r["weights"] == "synthetic" else ""
        lines.append(f"{r['model']:24} {r['weights']:10} {r['fp32_mb']:8.1f} {r['int8_mb']:8.1f} "
                     f"{r['size_ratio']:6.2f} {r['latency_ratio']:8.2f}  {r['quality']} / {r['gates']}{flag}")
    return "\n".join(lines)


def build(root: Path, *, weights: Optional[str] = None, models: Sequence[str] = (), push: bool = True) -> List[Dict[str, Any]]:
    """Run the pipeline for ``models`` (all when empty) and return the summary rows.

    Raises:
        SpecError: bad weight mode or params; BuildError: DVC failed.
    """
    root = Path(root)
    if weights is not None and set_weight_mode(root, weights):
        print(f"params.yaml: base.weights set to '{weights}' (see `git diff params.yaml`)", file=sys.stderr)
    params = load_params(root / PARAMS_FILE)
    for name in models:
        params.model(name)
    targets = [f"evaluate@{name}" for name in models]
    dvc(root, "repro", *targets)
    if push:
        dvc(root, "push", *targets)
    from furiosa.artifacts.docs import update_docs

    for path in update_docs(root):  # model cards carry this build's metrics
        print(f"updated {path}", file=sys.stderr)
    return summary(root, list(models) or list(params.models))
