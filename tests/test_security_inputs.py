"""Hostile input files through the commands that read them: a clear error and the right exit code, never a
traceback. The commands run in-process (``furiosa.artifacts.cli.main``) on a scratch copy of this repository's
catalog, pipeline and specs, with a real built workspace's dvc.lock and metrics.json (``tests/fuzz_seeds``).
Bulk fuzzing of the same files is in test_security_fuzz_files.py; these are the cases the attack run reported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from furiosa.artifacts.cli import main
from furiosa.artifacts.errors import UnsafePathError

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).resolve().parent / "fuzz_seeds"
MODEL = "DigitsConvNet"


@pytest.fixture()
def scratch(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    for name in ("artifacts.yaml", "dvc.yaml", "params.yaml", ".gto", ".dvc/config",
                 "furiosa/artifacts/vision/specs.yaml", "furiosa/artifacts/artifacts.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, root / name)
    shutil.copyfile(SEEDS / "dvc.lock", root / "dvc.lock")
    (root / "models" / MODEL).mkdir(parents=True)
    shutil.copyfile(SEEDS / "metrics.json", root / "models" / MODEL / "metrics.json")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FURIOSA_ARTIFACTS_HOME", str(tmp_path / "home"))
    return root


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


HOSTILE_LOCKS = {
    "bad-date": b"schema: '2.0'\nstages:\n  weights@DigitsConvNet:\n    cmd: x\n    when: 2020-13-45\n",
    "feb-30": b"schema: '2.0'\nstages: {a: {when: 2021-02-30 10:00:00}}\n",
    "non-utf8": b"schema: '2.0'\nstages:\n  a:\n    cmd: \xff\xfe\x80 caf\xe9\n",
    "alias-bomb": ("a0: &a0 [x,x,x,x,x,x,x,x,x]\n" + "".join(  # "billion laughs": 9^9 nodes once expanded
        f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))).encode(),
    "list-root": b"- a\n- b\n",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_LOCKS))
@pytest.mark.parametrize("command", ["show", "verify", "pull"])
def test_pull_show_verify_on_a_hostile_dvc_lock(scratch: Path, capsys, kind: str, command: str) -> None:
    (scratch / "dvc.lock").write_bytes(HOSTILE_LOCKS[kind])
    argv = [command, MODEL, "--root", str(scratch)]
    code, output = _run(capsys, *argv)
    assert "Traceback" not in output
    if kind == "list-root":  # valid YAML of the wrong shape: no outputs recorded (pull/verify fail, show works)
        assert code in (0, 1), output
        return
    assert code == 2, output
    assert "dvc.lock" in output and "git checkout dvc.lock" in output
    assert len(output) < 2_000  # the message never formats an expanded value


def test_pull_on_a_non_utf8_dvc_config_is_a_clear_error(scratch: Path, capsys) -> None:
    (scratch / ".dvc" / "config").write_bytes(b"[core]\n    remote = caf\xe9\n")
    code, output = _run(capsys, "pull", MODEL, "--root", str(scratch))
    assert code == 2, output
    assert "config" in output and "not UTF-8" in output and "Traceback" not in output


@pytest.mark.parametrize("metrics", [b"{}", b"[]", b'{"weights": []}', b'{"sizes": {"fp32": "x"}, "latency": 5}',
                                     b"\xff", b"{" * 5000])
def test_show_on_a_hostile_metrics_json(scratch: Path, capsys, metrics: bytes) -> None:
    (scratch / "models" / MODEL / "metrics.json").write_bytes(metrics)
    for argv in (["show", MODEL, "--root", str(scratch)], ["show", MODEL, "--root", str(scratch), "--json"]):
        code, output = _run(capsys, *argv)
        assert code in (0, 1) and "Traceback" not in output, output
    if metrics == b"{}":
        assert code == 0


def test_catalog_text_never_reaches_the_terminal_raw(scratch: Path, capsys) -> None:
    """A description and family carrying a screen-clearing escape and a bidi override: ``list`` and ``show``
    print them escaped (JSON escapes them by itself)."""
    text = (scratch / "artifacts.yaml").read_text()
    start = text.index("name: DigitsConvNet\n")
    family = text.index("family: ", start)
    end = text.index("\n", family)
    text = text[:family] + 'family: "Digits\\e[2J\\u202eevil"' + text[end:]
    (scratch / "artifacts.yaml").write_text(text)
    for argv in (["show", MODEL], ["list"], ["show", MODEL, "--json"], ["list", "--json"]):
        code, output = _run(capsys, *argv, "--root", str(scratch))
        assert code == 0, output
        assert "\x1b" not in output and "\u202e" not in output, output
    code, output = _run(capsys, "show", MODEL, "--root", str(scratch))
    assert "\\x1b[2J" in output  # escaped, still readable


def test_a_remote_password_is_never_printed(scratch: Path, capsys, tmp_path: Path) -> None:
    """An http remote ``https://user:password@host/...`` that fails: the CLI error, the library error and the
    log show ``***@`` instead; nothing listens on the port, so the transfer itself fails for real."""
    import logging
    import socket

    from furiosa.artifacts.errors import ArtifactsError
    from furiosa.artifacts.storage import resolve_binary

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (scratch / ".dvc" / "config").write_text(
        f"[core]\n    remote = web\n['remote \"web\"']\n    url = http://alice:hunter2-s3cret@127.0.0.1:{port}/store\n")
    code, output = _run(capsys, "pull", MODEL, "--root", str(scratch), "--retries", "0")
    assert code == 1 and "hunter2" not in output and "***@127.0.0.1" in output, output
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("furiosa").addHandler(handler)
    try:
        with pytest.raises(ArtifactsError) as info:
            resolve_binary(scratch, f"models/{MODEL}/int8.onnx", progress=False, retries=1, backoff=0.01)
    finally:
        logging.getLogger("furiosa").removeHandler(handler)
    assert "hunter2" not in str(info.value) and "hunter2" not in "\n".join(records)


def test_show_and_verify_never_follow_a_workspace_symlink_out_of_the_repository(scratch: Path, capsys,
                                                                               tmp_path: Path) -> None:
    """No dvc.lock (nothing pins the files): ``models/<name>/int8.onnx`` and ``metrics.json`` are symlinks to
    files outside the repository. Neither command reads them (the outside metrics' marker never shows up)."""
    (scratch / "dvc.lock").unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.json").write_text(json.dumps({"weights": {"source": "OUTSIDE-MARKER"}}))
    (outside / "secret.onnx").write_bytes(b"\x08\x07OUTSIDE-MARKER")
    model_dir = scratch / "models" / MODEL
    (model_dir / "metrics.json").unlink()
    (model_dir / "metrics.json").symlink_to(outside / "metrics.json")
    (model_dir / "int8.onnx").symlink_to(outside / "secret.onnx")
    code, output = _run(capsys, "show", MODEL, "--root", str(scratch), "--json")
    assert code == 1 and "outside the repository" in output and "OUTSIDE-MARKER" not in output, output
    code, output = _run(capsys, "verify", MODEL, "--root", str(scratch), "--json")
    assert code == 1 and "OUTSIDE-MARKER" not in output and "outside the repository" in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_the_0_9_descriptor_never_reads_a_location_outside_the_repository(tmp_path: Path, how: str) -> None:
    """furiosa-registry 0.9's entry points (root artifacts.py) read an onnx entry's ``location``: it is
    checked like every other catalog path before a byte is read (no furiosa-registry needed to show it)."""
    from furiosa.artifacts.catalog.entries import read_entries
    from furiosa.artifacts.registries.furiosa_registry import _build

    secret = tmp_path / "outside" / "secret.onnx"
    secret.parent.mkdir()
    secret.write_bytes(b"OUTSIDE")
    root = tmp_path / "catalog"
    (root / "models" / "X").mkdir(parents=True)
    location = {"dotdot": "models/../../outside/secret.onnx", "absolute": str(secret),
                "symlink": "models/X/int8.onnx"}[how]
    if how == "symlink":
        (root / "models" / "X" / "int8.onnx").symlink_to(secret)
    (root / "artifacts.yaml").write_text(
        "artifacts:\n  - name: X_INT8\n    family: X\n    version: '1.0'\n    format: onnx\n"
        f"    location: {location}\n    metadata: {{description: x, publication: {{authors: [a]}}}}\n")
    (entry,) = read_entries(root, validate=False)
    with pytest.raises(UnsafePathError, match="location of catalog entry 'X_INT8'"):
        _build(root, entry, None, None)
