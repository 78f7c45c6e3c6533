"""Peak memory of one weight conversion, measured in a fresh process (used by a test and by
benchmarks/bench_convert.py). Run as ``python -c CONVERT_PEAK_SCRIPT FILE MODEL [MEMBER]``; it prints one JSON
line: format, seconds, base_kib (after building the network), peak_kib."""

CONVERT_PEAK_SCRIPT = """
import json, resource, sys, time
from furiosa.artifacts.vision.models import create_model
from furiosa.artifacts.weights_io import convert_weights
create_model(sys.argv[2])
def peak():  # this process's high-water RSS in KiB: VmHWM (ru_maxrss keeps the forking parent's peak)
    try:
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = peak()
start = time.perf_counter()
_, report = convert_weights(sys.argv[1], sys.argv[2], member=sys.argv[3] or None)
seconds = time.perf_counter() - start
print(json.dumps({"format": report.format, "seconds": seconds, "base_kib": base,
                  "peak_kib": peak()}))
"""
