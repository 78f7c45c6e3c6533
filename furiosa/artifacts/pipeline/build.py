"""`furiosa-artifacts build`: choose the weight mode, run `dvc repro`, push, and summarise the metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from furiosa.artifacts.atomic import update_file
from furiosa.artifacts.errors import BuildError, SpecError
from furiosa.artifacts.layout import metrics_relpath
from furiosa.artifacts.pipeline.params import (
    LOCAL_PARAMS_FILE,
    PARAMS_FILE,
    WEIGHT_MODES,
    load_params,
    read_local_weights,
)


def set_weight_mode(root: Path, mode: Optional[str] = None) -> bool:
    """Write the weight mode into the untracked ``params.local.yaml`` (never the tracked params.yaml).

    ``mode`` None keeps the current override, or writes params.yaml's own ``base.weights`` when there is
    none (the weights stage lists that file, so it must exist). Returns whether the file changed.

    Raises:
        SpecError: unknown mode, or params.yaml / params.local.yaml is invalid.
    """
    root = Path(root)
    local = root / LOCAL_PARAMS_FILE
    current = read_local_weights(local)
    if mode is None:
        mode = current or load_params(root / PARAMS_FILE).weights
    if mode not in WEIGHT_MODES:
        raise SpecError(f"--weights must be one of {', '.join(WEIGHT_MODES)}, got {mode!r}")
    if current == mode:
        return False
    update_file(local, "# local build overrides (git-ignored), written by `furiosa-artifacts build --weights`\n"
                       f"base:\n  weights: {mode}\n")
    read_local_weights(local)  # what we wrote must still validate
    return True


def dvc_env() -> Dict[str, str]:
    """Environment for DVC subprocesses: this interpreter's bin first (stages run `python`), no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def dvc(root: Path, *args: str) -> None:
    """Run ``dvc ARGS`` in ``root``, streaming its output to stderr. Raises BuildError on failure.

    The BuildError's message ends with the ``error: ...`` lines the stages printed (the cause and its fix).
    """
    exe = Path(sys.executable).parent / "dvc"
    command = [str(exe) if exe.exists() else "dvc", *args]
    print(f"+ dvc {' '.join(args)}", file=sys.stderr, flush=True)
    errors: List[str] = []
    sys.stdout.flush()
    # DVC's progress goes to our stderr: stdout stays for the summary (machine-readable with --json)
    with subprocess.Popen(command, cwd=root, env=dvc_env(), stdout=sys.stderr, stderr=subprocess.PIPE, text=True,
                          errors="replace") as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            if line.startswith("error:") or errors and line.startswith(("  ", "To fix")):
                errors.append(line.rstrip())
    if proc.returncode != 0:
        cause = ("\n" + "\n".join(errors[-12:])) if errors else " (see its output above)"
        raise BuildError(f"`dvc {' '.join(args)}` failed with exit code {proc.returncode}{cause}")


def refusal(params: Any, name: str) -> Optional[str]:
    """Why ``name`` cannot be built from official weights, known before anything runs (None: it can be tried).

    An unpinned url source is refused with the fix (pin, mirror, or ``--weights synthetic``).
    """
    source = params.model(name).source
    if params.weights != "official" or source.get("type") != "url":
        return None
    from furiosa.artifacts.sources import source_pin

    try:
        source_pin(source, f"{PARAMS_FILE}: models.{name}.source")
    except SpecError as exc:
        return str(exc)
    return None


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


def format_outcomes(outcomes: List[Dict[str, Any]]) -> str:
    """One block per model: built, or refused/failed with the reason and its fix."""
    lines = []
    for o in outcomes:
        lines.append(f"{o['model']:24} {o['status']}")
        if o.get("error"):
            lines.extend(f"    {line}" for line in str(o["error"]).splitlines())
    return "\n".join(lines)


#: what the pipeline imports, and the distribution that provides it (all in the ``build`` extra)
BUILD_MODULES = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "dvc": "dvc", "sklearn": "scikit-learn",
                 "onnxscript": "onnxscript"}


def check_build_extra() -> None:
    """Raise BuildError naming the missing packages and the extra to install, before anything is changed."""
    import importlib.util

    missing = [dist for module, dist in BUILD_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise BuildError(f"`furiosa-artifacts build` needs the build extra ({', '.join(missing)} not installed): "
                         "install it with `pip install 'furiosa-artifacts[build]'` (from a clone: "
                         "`pip install -e '.[build]'`); nothing was changed")


def build(root: Path, *, weights: Optional[str] = None, models: Sequence[str] = (),
          push: bool = True) -> Dict[str, Any]:
    """Run the pipeline for ``models`` (all when empty); return ``{"models": outcomes, "summary": rows}``.

    With official weights every model is tried on its own (``dvc repro evaluate@NAME``), so one model's missing
    pin or unreachable file does not stop the others; each outcome is ``built``, ``refused`` (nothing ran: the
    message says the fix) or ``failed`` (the stage's error). A synthetic build runs all targets at once.

    Raises:
        SpecError: bad weight mode or params; BuildError: DVC failed (synthetic mode) or pushing failed.
    """
    root = Path(root)
    check_build_extra()
    if set_weight_mode(root, weights):
        print(f"{LOCAL_PARAMS_FILE}: base.weights set to '{load_params(root / PARAMS_FILE).weights}' (git-ignored; "
              "params.yaml is unchanged)", file=sys.stderr)
    params = load_params(root / PARAMS_FILE)
    for name in models:
        params.model(name)
    names = list(models) or list(params.models)
    outcomes: List[Dict[str, Any]] = []
    if params.weights == "official":
        for name in names:
            reason = refusal(params, name)
            if reason is not None:
                print(f"{name}: refused: {reason}", file=sys.stderr)
                outcomes.append({"model": name, "status": "refused", "error": reason})
                continue
            try:
                dvc(root, "repro", f"evaluate@{name}")
                outcomes.append({"model": name, "status": "built"})
            except BuildError as exc:
                outcomes.append({"model": name, "status": "failed", "error": str(exc)})
        built = [o["model"] for o in outcomes if o["status"] == "built"]
        if push and built:
            dvc(root, "push", *[f"evaluate@{name}" for name in built])
    else:
        targets = [f"evaluate@{name}" for name in models]
        dvc(root, "repro", *targets)
        if push:
            dvc(root, "push", *targets)
        outcomes = [{"model": name, "status": "built"} for name in names]
    from furiosa.artifacts.docs import update_docs

    for path in update_docs(root):  # model cards carry this build's metrics
        print(f"updated {path}", file=sys.stderr)
    built = [o["model"] for o in outcomes if o["status"] == "built"]
    return {"models": outcomes, "summary": summary(root, built)}
