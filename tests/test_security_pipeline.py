"""Pipeline faults, injected for real: a stage SIGKILLed mid-write, two ``dvc repro`` at once, a corrupted DVC cache.

* A writer killed between creating and renaming its temporary file leaves nothing under the final
  name (or the previous file intact); the real ``stages/export.py`` is killed while its temporary
  ONNX file exists.
* DVC 3.67.1 (checked here, on a tiny throw-away repository whose stage holds until the test releases it, never the real pipeline):
  a second ``dvc repro`` of a stage that is running fails at once (exit 255, "is busy, it is being
  blocked by: (PID ...)", the per-output lock ``.dvc/tmp/rwlock``), also with ``--wait-for-lock``
  (that flag only waits for the repository lock); the first run finishes and records a consistent
  ``dvc.lock``. Two ``dvc repro`` of *independent* stages run in parallel and both are recorded.
* A DVC cache object whose bytes were changed is never handed out by the resolver: it is re-hashed
  (md5 and size from ``dvc.lock``) on every use and skipped (``dvc-cache: verify-failed``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from furiosa.artifacts.errors import BinaryNotFoundError, DownloadError
from furiosa.artifacts.storage import object_key, resolve_binary
from test_storage_support import (  # noqa: F401  (fixtures)
    BIN_DIR,
    dvc,
    env,
    locked,
    md5_of,
    repo,
    run,
    set_remote,
    storage_template,
    tool_env,
)

WEIGHTS = REPO_ROOT / "models" / "DigitsConvNet" / "weights.pt"


def _temporaries(directory: Path, stem: str) -> list:
    return [p for p in directory.iterdir() if p.name.startswith(f".{stem}.") and ".incomplete" in p.name]


# --------------------------------------------------------------------------- killed mid-write

WRITER = textwrap.dedent("""
    import sys, time
    from furiosa.artifacts.atomic import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"\\x01" * (1 << 20))  # the first half of the new file ...
            fh.flush()
            print("half", flush=True)
            time.sleep(60)  # ... and here the process is killed
            fh.write(b"\\x02" * (1 << 20))
""")


@pytest.mark.parametrize("previous", [None, b"old complete file"])
def test_writer_killed_mid_write_leaves_no_partial_file(tmp_path: Path, previous) -> None:
    final = tmp_path / "out" / "int8.onnx"
    if previous is not None:
        final.parent.mkdir()
        final.write_bytes(previous)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half"
        partial = _temporaries(final.parent, "int8")
        assert len(partial) == 1 and partial[0].stat().st_size == 1 << 20  # really mid-write
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stdout.close()
    if previous is None:
        assert not final.exists()
    else:
        assert final.read_bytes() == previous
    # what stays behind is a hidden temporary beside it, never a file under the final name (see SECURITY.md)
    assert [p.name.startswith(".int8.") for p in _temporaries(final.parent, "int8")] == [True]


@pytest.mark.slow
@pytest.mark.skipif(not WEIGHTS.is_file(), reason="needs the built DigitsConvNet weights (README main command)")
def test_export_stage_killed_while_writing_leaves_the_old_output(tmp_path: Path) -> None:
    out, report = tmp_path / "fp32.onnx", tmp_path / "export.json"
    out.write_bytes(b"previous build")
    proc = subprocess.Popen(
        [sys.executable, "stages/export.py", "--model", "DigitsConvNet", "--weights", str(WEIGHTS),
         "--record", str(WEIGHTS.with_name("weights.json")), "--out", str(out), "--report", str(report)],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            partial = _temporaries(tmp_path, "fp32")
            if partial and partial[0].exists() and partial[0].stat().st_size > 0:
                proc.send_signal(signal.SIGKILL)
                killed_at = partial[0].stat().st_size
                break
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert killed_at is not None, "the export finished before its temporary file was seen"
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == b"previous build"  # the final name still holds the previous, complete file
    assert not report.exists()


# --------------------------------------------------------------------------- two dvc repro at once

# Each stage announces itself with a file and then holds until the test creates `release`: the test orders
# things by those files and by process state, never by how long anything took.
GATE = """\
import os, sys, time
name = sys.argv[1]
open(f"started-{name}", "w").close()
deadline = time.monotonic() + 300  # a hang guard only: the test releases the stage as soon as it has checked
while not os.path.exists("release"):
    if time.monotonic() > deadline:
        sys.exit(f"{name}: never released")
    time.sleep(0.05)
open(f"{name}.txt", "w").write("done")
"""
SLOW_STAGES = """\
stages:
  slow:
    cmd: {python} gate.py slow
    outs: [slow.txt]
  other:
    cmd: {python} gate.py other
    outs: [other.txt]
"""


@pytest.fixture()
def slow_repo(tmp_path: Path):
    environment = tool_env(tmp_path / "tools")
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q", "-b", "main"], root, environment)
    dvc(["init", "-q"], root, environment)
    dvc(["config", "core.analytics", "false"], root, environment)
    (root / "dvc.yaml").write_text(SLOW_STAGES.format(python=sys.executable))
    (root / "gate.py").write_text(GATE)
    return root, environment


def _start(args, root: Path, environment) -> subprocess.Popen:
    return subprocess.Popen([str(BIN_DIR / "dvc"), *args], cwd=root, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(paths, procs, *, guard: float = 300.0) -> None:
    """Block until every path exists; fail at once if a process ends first (hang guard: ``guard`` s)."""
    deadline = time.monotonic() + guard
    while not all(p.exists() for p in paths):
        ended = [p for p in procs if p.poll() is not None]
        assert not ended, [p.communicate()[0] for p in ended]
        assert time.monotonic() < deadline, f"never appeared: {[str(p) for p in paths if not p.exists()]}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("wait_flag", [[], ["--wait-for-lock"]], ids=["plain", "wait-for-lock"])
def test_second_repro_of_a_running_stage_fails_fast_with_a_lock_error(slow_repo, wait_flag) -> None:
    root, environment = slow_repo
    first = _start(["repro", "slow"], root, environment)
    try:
        _wait_for([root / "started-slow"], [first])  # the first run is inside its command, holding the lock
        second = dvc([*wait_flag, "repro", "slow"], root, environment, check=False, timeout=300)
        # "fails fast": the second run gave up while the first was still held inside its command
        assert first.poll() is None, "the first run ended before the test released it"
        assert not (root / "slow.txt").exists()
        (root / "release").touch()
        first_out, _ = first.communicate(timeout=300)
    finally:
        (root / "release").touch()
        first.kill()
    assert first.returncode == 0, first_out
    assert second.returncode != 0, (second.stdout, second.stderr)
    message = second.stdout + second.stderr
    assert "is busy, it is being blocked by" in message and "rwlock" in message, message
    assert (root / "slow.txt").read_text() == "done"
    status = dvc(["status", "slow"], root, environment)
    assert "up to date" in status.stdout, status.stdout


@pytest.mark.slow
def test_independent_stages_repro_in_parallel_and_both_are_locked(slow_repo) -> None:
    root, environment = slow_repo
    procs = [_start(["repro", stage], root, environment) for stage in ("slow", "other")]
    try:
        # Both commands are running at the same moment: neither can finish before `release`, so one after
        # the other would never get here (the surviving stage's own guard would end it and fail the test).
        _wait_for([root / "started-slow", root / "started-other"], procs)
        assert [p.poll() for p in procs] == [None, None]
        (root / "release").touch()
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        (root / "release").touch()
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    lock = (root / "dvc.lock").read_text()
    assert "slow.txt" in lock and "other.txt" in lock
    assert "up to date" in dvc(["status"], root, environment).stdout


# --------------------------------------------------------------------------- corrupted DVC cache

SMALL = "models/TinyNet/int8.onnx"


def _corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_corrupted_dvc_cache_object_is_never_handed_out(repo: Path, env) -> None:
    want = locked(repo, SMALL)
    (repo / SMALL).unlink()  # not in the workspace: the DVC cache is next
    cached = repo / ".dvc" / "cache" / object_key(want["md5"])
    assert md5_of(cached) == want["md5"]
    _corrupt(cached)

    found = resolve_binary(repo, SMALL, progress=False)  # re-verified, skipped, fetched from the remote
    assert found.source == "remote" and md5_of(found.path) == want["md5"]
    assert any(s.startswith("dvc-cache: verify-failed") and "md5 mismatch" in s for s in found.steps), found.steps

    # one byte different and no good copy anywhere else: an error, never the corrupted bytes
    os.unlink(found.path)
    (repo / "empty-remote").mkdir()
    set_remote(repo, "empty", str(repo / "empty-remote"))
    with pytest.raises((BinaryNotFoundError, DownloadError)) as info:
        resolve_binary(repo, SMALL, progress=False)
    assert "missing" in str(info.value)


@pytest.mark.slow
def test_dvc_checkout_copies_a_corrupted_cache_object_but_our_resolver_refuses_it(repo: Path, env) -> None:
    """Plain DVC 3.67.1 with the same fault: ``dvc checkout`` does not re-hash the cache object and puts the
    corrupted bytes into the workspace (exit 0, no warning); ``dvc status`` re-hashes, deletes the corrupted
    object and reports "not in cache". Our resolver re-hashes the workspace file and takes the remote's copy."""
    want = locked(repo, SMALL)
    cached = repo / ".dvc" / "cache" / object_key(want["md5"])
    (repo / SMALL).unlink()
    _corrupt(cached)
    proc = dvc(["checkout", SMALL], repo, env, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (repo / SMALL).is_file() and md5_of(repo / SMALL) != want["md5"]  # DVC handed out the bad bytes
    status = dvc(["status"], repo, env).stdout
    assert "not in cache" in status and SMALL in status, status
    assert not cached.exists()  # dvc status dropped the corrupted object

    found = resolve_binary(repo, SMALL, progress=False)
    assert found.steps[0].startswith("workspace: verify-failed") and "md5 mismatch" in found.steps[0]
    assert found.source == "remote" and md5_of(found.path) == want["md5"]
