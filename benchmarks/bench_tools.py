"""Tool measurements: preprocessing vs torchvision, `furiosa-artifacts lint`, `dvc status`/`dvc repro`, hashing."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _repo_on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_runs(cmd: list[str], *, runs: int, cwd: Path, timeout: float = 300) -> dict[str, Any]:
    times, codes, tail = [], [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        times.append(time.perf_counter() - start)
        codes.append(proc.returncode)
        tail = (proc.stdout + proc.stderr).strip()[-400:]
    return {"command": " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)),
            "median_seconds": statistics.median(times), "min_seconds": min(times), "runs": runs,
            "returncodes": sorted(set(codes)), "output_tail": tail}


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


# --------------------------------------------------------------------------- preprocessing


def _torchvision_transform(spec: Any):
    """torchvision's transforms for a spec's ``preprocess`` block (the reference each backend reproduces)."""
    import torch
    import torchvision.transforms as T

    p = spec.preprocess
    modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
             "nearest": T.InterpolationMode.NEAREST}
    # ours: (pixel / scale - mean) / std; torchvision's tensors hold pixel / 255
    mean = [m * p.scale / 255.0 for m in p.mean]
    std = [s * p.scale / 255.0 for s in p.std]
    if p.resize.backend == "pil":  # PIL resize + crop, then ToTensor (x / 255) and Normalize
        size = p.resize.size[0] if p.resize.mode == "short_side" else list(p.resize.size)
        steps = [T.Resize(size, interpolation=modes[p.resize.interpolation])]
        if p.crop is not None:
            steps.append(T.CenterCrop(list(p.crop)))
        return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])
    # cv2 backend (float32 bilinear resize without antialiasing) = tensor Resize(antialias=False) on floats
    return T.Compose([T.PILToTensor(), T.ConvertImageDtype(torch.float32),
                      T.Resize(list(p.resize.size), interpolation=modes[p.resize.interpolation], antialias=False),
                      T.Normalize(mean, std)])


def bench_preprocessing(specs: list[str], *, images: int, rounds: int, threads: int) -> dict[str, Any]:
    """Images/s of our numpy preprocessing and torchvision's transforms on the same images.

    Two inputs: decoded PIL images in memory (the transform alone) and file paths (JPEG decode included,
    ``Image.open(...).convert("RGB")`` for torchvision). torch and OpenCV are pinned to ``threads``.
    Rounds alternate ours / torchvision; the median round counts. Outputs are compared (max abs diff). Each
    side runs in batches of ``PREPROCESS_BATCH`` images, as a serving loop would.
    """
    import numpy as np
    import torch
    from PIL import Image

    _repo_on_path()
    from furiosa.artifacts.vision.preprocess import preprocess
    from furiosa.artifacts.vision.specs import load_spec

    torch.set_num_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - only the cv2-backend specs need it
        pass
    files = sorted((REPO / "data" / "samples").glob("*.jpg"))[:images]
    if not files:
        return {"status": "skipped", "reason": "no images in data/samples: run `dvc repro samples` first"}
    decoded = []
    for f in files:
        with Image.open(f) as im:
            decoded.append(im.convert("RGB"))
    out: dict[str, Any] = {"status": "ok", "images": len(files), "image_size": list(decoded[0].size[::-1]),
                           "threads": threads, "rounds": rounds, "specs": {}}
    for name in specs:
        spec = load_spec(name)
        tf = _torchvision_transform(spec)
        runs = {
            "decoded": {"ours": lambda: [preprocess(b, spec, threads=threads)[0] for b in _batches(decoded)],
                        "ours_fast": lambda: [preprocess(b, spec, threads=threads, fast=True)[0]
                                              for b in _batches(decoded)],
                        "torchvision": lambda: [torch.stack([tf(im) for im in b]).numpy() for b in _batches(decoded)]},
            "files": {"ours": lambda: [preprocess(b, spec, threads=threads)[0] for b in _batches(files)],
                      "ours_fast": lambda: [preprocess(b, spec, threads=threads, fast=True)[0]
                                            for b in _batches(files)],
                      "torchvision": lambda: [torch.stack([tf(Image.open(f).convert("RGB")) for f in b]).numpy()
                                              for b in _batches(files)]},
        }
        ours, theirs = np.concatenate(runs["decoded"]["ours"]()), np.concatenate(runs["decoded"]["torchvision"]())
        entry: dict[str, Any] = {"backend": spec.preprocess.resize.backend,
                                 "max_abs_diff": float(np.abs(ours - theirs).max()),
                                 "output_shape": list(ours.shape)}
        del ours, theirs
        for kind, fns in runs.items():
            times: dict[str, list[float]] = {k: [] for k in fns}
            for r in range(rounds):
                for key in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                    times[key].append(_timed(fns[key]))
            rate = {k: len(files) / statistics.median(v) for k, v in times.items()}
            entry[kind] = {"ours_images_per_s": rate["ours"], "ours_fast_images_per_s": rate["ours_fast"],
                           "torchvision_images_per_s": rate["torchvision"],
                           "speedup": rate["ours"] / rate["torchvision"],
                           "fast_speedup": rate["ours_fast"] / rate["torchvision"]}
        entry["fast_deviation"] = _fast_deviation(files, spec)  # after the timings: it holds two batches
        out["specs"][name] = entry
    return out


PREPROCESS_BATCH = 8  # images per preprocess call: the benchmark's large batch (48 SSD-ResNet34 inputs are 0.8 GB)


def _batches(items: list[Any]) -> list[list[Any]]:
    return [items[i:i + PREPROCESS_BATCH] for i in range(0, len(items), PREPROCESS_BATCH)]


def _fast_deviation(files: list[Path], spec: Any) -> dict[str, float]:
    """How far ``fast=True`` lands from the exact path on ``files``, in 0..255 pixel units (normalisation
    undone), one image at a time (a 1200x1200 batch of 48 is 0.8 GB per copy)."""
    import numpy as np

    from furiosa.artifacts.vision.preprocess import preprocess

    p = spec.preprocess
    shape = [1] * (1 + len(spec.input.shape))
    shape[1 if spec.input.layout == "NCHW" else -1] = len(p.std)
    to_pixels = (np.asarray(p.std, dtype=np.float32) * np.float32(p.scale)).reshape(shape)
    worst, total, count = 0.0, 0.0, 0
    for f in files:
        pixels = np.abs(preprocess(f, spec)[0] - preprocess(f, spec, fast=True)[0]) * to_pixels
        worst, total, count = max(worst, float(pixels.max())), total + float(pixels.sum(dtype=np.float64)), count + pixels.size
    return {"max": worst, "mean": total / count}


# --------------------------------------------------------------------------- lint and dvc


def bench_lint(*, runs: int) -> dict[str, Any]:
    exe = _tool("furiosa-artifacts")
    cmd = [exe, "lint"] if exe else [sys.executable, "-m", "furiosa.artifacts.cli", "lint"]
    return {"status": "ok", **_median_runs(cmd, runs=runs, cwd=REPO)}


def _dvc_stale(dvc: str, cwd: Path) -> tuple[dict[str, Any] | None, str]:
    proc = subprocess.run([dvc, "status", "--json"], cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return None, (proc.stderr or proc.stdout).strip()[-400:]
    return json.loads(proc.stdout or "{}"), ""


def _copy_repo(dest: Path) -> None:
    """Git-visible files, dvc.lock, .dvc/config, and the pipeline outputs (models/, data/); no DVC cache."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in [r for r in listed if r] + ["dvc.lock", "params.local.yaml", ".dvc/config", ".dvcignore"]:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for tree in ("models", "data"):
        if (REPO / tree).is_dir():
            shutil.copytree(REPO / tree, dest / tree, dirs_exist_ok=True)


def bench_dvc(*, runs: int, allow_copy: bool) -> dict[str, Any]:
    """`dvc status` and a no-op `dvc repro`, in the workspace when it is up to date, else in a copy.

    The copy (git-visible files + dvc.lock + models/ + data/, in a temporary directory) is made up to
    date with `dvc commit --force` (records the copied outputs as they are; runs nothing), so `dvc repro`
    there has nothing to do. The workspace itself is never reproduced when it is stale.
    """
    dvc = _tool("dvc")
    if dvc is None:
        return {"status": "skipped", "reason": "dvc is not installed (pip install -e '.[build]')"}
    if not (REPO / "dvc.lock").is_file():
        return {"status": "skipped", "reason": "no dvc.lock: nothing has been built in this workspace"}
    stale, error = _dvc_stale(dvc, REPO)
    result: dict[str, Any] = {"status": "ok"}
    if stale is None:
        return {"status": "error", "reason": f"`dvc status` failed in the workspace: {error}"}
    result["workspace_status"] = _median_runs([dvc, "status"], runs=runs, cwd=REPO)
    result["workspace_up_to_date"] = not stale
    result["workspace_stale_stages"] = sorted(stale)
    if not stale:
        result["where"] = "workspace"
        result["repro"] = _median_runs([dvc, "repro"], runs=runs, cwd=REPO)
        result["status_in_place"] = result["workspace_status"]
        return result
    if not allow_copy:
        return {**result, "status": "skipped",
                "reason": f"`dvc status` reports {len(stale)} stale stage(s) in the workspace, so `dvc repro` "
                          "would rebuild; not run (pass --dvc-copy to measure on an up-to-date copy)"}
    with tempfile.TemporaryDirectory(prefix="furiosa-bench-dvc-") as tmp:
        dest = Path(tmp)
        start = time.perf_counter()
        _copy_repo(dest)
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        commit = subprocess.run([dvc, "commit", "--force", "--quiet"], cwd=dest, capture_output=True, text=True,
                                timeout=600)
        result["copy_seconds"] = time.perf_counter() - start
        if commit.returncode != 0:
            return {**result, "status": "error", "reason": f"`dvc commit --force` in the copy failed: "
                                                           f"{(commit.stderr or commit.stdout).strip()[-400:]}"}
        left, error = _dvc_stale(dvc, dest)
        if left:
            return {**result, "status": "error", "reason": f"the copy is still stale after dvc commit: {sorted(left)}"}
        result["where"] = ("temporary copy (git-visible files + dvc.lock + models/ + data/) made up to date with "
                           "`dvc commit --force`, because the workspace is stale")
        result["status_in_place"] = _median_runs([dvc, "status"], runs=runs, cwd=dest)
        result["repro"] = _median_runs([dvc, "repro"], runs=runs, cwd=dest)
    return result


# --------------------------------------------------------------------------- hashing


def bench_hashing(*, megabytes: int, rounds: int) -> dict[str, Any]:
    """Our streaming hash (sources.cache.hash_file, which the resolver's verify_file uses) vs coreutils.

    Same file (seeded random bytes, in the page cache after one read), rounds alternating.
    """
    import numpy as np

    _repo_on_path()
    from furiosa.artifacts.sources import diskio
    from furiosa.artifacts.sources.cache import hash_file

    with tempfile.TemporaryDirectory(prefix="furiosa-bench-hash-") as tmp:
        path = Path(tmp) / "blob.bin"
        rng = np.random.default_rng(0)
        with open(path, "wb") as fh:
            for _ in range(megabytes):
                fh.write(rng.bytes(1 << 20))
        path.read_bytes()  # page cache
        cases: dict[str, Callable[[], Any]] = {
            "hash_file md5": lambda: hash_file(path, ("md5",)),
            "hash_file sha256": lambda: hash_file(path, ("sha256",)),
            "hash_file md5+sha256": lambda: hash_file(path, ("md5", "sha256")),
        }
        for tool in ("md5sum", "sha256sum"):
            exe = shutil.which(tool)
            if exe:
                cases[tool] = lambda exe=exe: subprocess.run([exe, str(path)], check=True, capture_output=True)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for r in range(rounds):
            for key in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
                times[key].append(_timed(cases[key]))
    rates = {k: megabytes / statistics.median(v) for k, v in times.items()}
    out: dict[str, Any] = {"status": "ok", "megabytes": megabytes, "rounds": rounds, "chunk_bytes": diskio.CHUNK_SIZE,
                           "mb_per_s": rates}
    for algo in ("md5", "sha256"):
        if f"{algo}sum" in rates:
            out[f"{algo}_vs_coreutils"] = rates[f"hash_file {algo}"] / rates[f"{algo}sum"]
    return out


def machine() -> dict[str, Any]:
    """CPU model, the int8-relevant flags, core count, load, library versions."""
    import platform
    from importlib import metadata

    model, flags = "unknown", set()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except (OSError, subprocess.SubprocessError):
        pass
    if not flags and Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                break
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
              "sha_ni")
    versions = {}
    for dist in ("onnxruntime", "onnx", "numpy", "torch", "torchvision", "Pillow", "opencv-python-headless",
                 "opencv-python", "dvc"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu_model": model, "flags": {f: f in flags for f in wanted},
            "amx": any(f.startswith("amx") for f in flags), "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(), "python": platform.python_version(), "versions": versions}
