#!/usr/bin/env python3
"""Conversion time and peak memory of each official weights format, on the faithful replicas of tests/replicas.

    python benchmarks/bench_convert.py            # every model with a replica builder
    python benchmarks/bench_convert.py --json     # machine-readable

Each replica is written to a temporary directory (removed afterwards) and converted in a fresh child process
(``convert_weights``: detect, read, map, strict load); the child reports the seconds of the conversion and
the high-water RSS (VmHWM, else ``ru_maxrss``) before (after importing torch and building the network) and after it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    from replicas import REPLICAS
    from replicas.peak import CONVERT_PEAK_SCRIPT

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        for name, builder in REPLICAS.items():
            replica = builder(Path(tmp) / name, seed=0)
            out = subprocess.run([sys.executable, "-c", CONVERT_PEAK_SCRIPT, str(replica.path), name, replica.member or ""],
                                 capture_output=True, text=True, check=True, cwd=REPO,
                                 env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
            row = {"model": name, "file": replica.path.name, "bytes": replica.path.stat().st_size,
                   **json.loads(out.stdout.strip().splitlines()[-1])}
            row["peak_growth_mib"] = (row["peak_kib"] - row["base_kib"]) / 1024
            rows.append(row)
            replica.path.unlink()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['model']:24} {r['format']:18} {r['bytes'] / 1e6:7.1f} MB  {r['seconds']:6.2f} s  "
                  f"peak RSS {r['peak_kib'] / 1024:7.0f} MiB (+{r['peak_growth_mib']:.0f} MiB for the conversion)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
