"""furiosa.artifacts.atomic: atomic outputs never leave a partial file under the final name, nor a temporary."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from furiosa.artifacts import atomic
from furiosa.artifacts.atomic import atomic_directory, atomic_path, atomic_write_bytes, atomic_write_text
from furiosa.artifacts.errors import ArtifactsError, FileWriteError


def test_success_replaces_and_cleans_up(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "model.onnx"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.endswith(".onnx") and tmp != final
        assert tmp.name.startswith(".model.onnx.") and atomic.TEMP_SUFFIX in tmp.name
        tmp.write_bytes(b"new")
        assert not final.exists()
    assert final.read_bytes() == b"new"
    assert os.listdir(final.parent) == ["model.onnx"]
    assert stat.S_IMODE(final.stat().st_mode) == atomic.DEFAULT_MODE  # not left at mkstemp's 0600


def test_success_replaces_an_existing_target(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    final.write_text("old\n")
    atomic_write_text(final, "new\n")
    assert final.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_numpy_savers_write_the_temporary_itself(tmp_path: Path) -> None:
    """The temporary keeps the final suffix, so np.savez does not append `.npz` to it."""
    final = tmp_path / "calibration.npz"
    with atomic_path(final) as tmp:
        np.savez(tmp, x=np.arange(3))
    assert np.load(final)["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.npz"]


def test_an_exception_inside_leaves_neither_target_nor_temporary(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_target_is_untouched_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    atomic_write_text(final, "old\n")
    before = final.stat()
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert final.read_text() == "old\n" and final.stat().st_ino == before.st_ino
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_writer_that_removes_its_file_is_an_error(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    with pytest.raises(FileNotFoundError), atomic_path(final) as tmp:
        tmp.unlink()
    assert list(tmp_path.iterdir()) == []


def test_mode_is_applied(tmp_path: Path) -> None:
    final = tmp_path / "blob"
    atomic_write_bytes(final, b"x", mode=0o444)
    assert stat.S_IMODE(final.stat().st_mode) == 0o444


def test_two_writers_get_distinct_temporaries_and_one_complete_file_wins(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    inside = threading.Barrier(2)
    temporaries = {}

    def write(tag: bytes) -> None:
        with atomic_path(final) as tmp:
            temporaries[tag] = tmp
            tmp.write_bytes(tag * 4096)
            inside.wait(timeout=30)  # both temporaries exist at once

    threads = [threading.Thread(target=write, args=(tag,)) for tag in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert temporaries[b"a"] != temporaries[b"b"]
    assert final.read_bytes() in (b"a" * 4096, b"b" * 4096)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.fixture
def read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory nobody may create files in (root ignores the mode bits, so there creation is made to fail
    the way the kernel fails it for everyone else)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "out.json").write_text("old\n")
    directory.chmod(0o555)
    if os.geteuid() == 0:
        real = atomic.tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):  # noqa: A002 - mkstemp's own keyword
            if Path(dir) == directory:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    yield directory
    directory.chmod(0o755)


def test_a_read_only_directory_is_our_error_and_nothing_changes(read_only_dir: Path) -> None:
    final = read_only_dir / "out.json"
    with pytest.raises(FileWriteError) as info:
        atomic_write_text(final, "new\n")
    exc = info.value
    assert isinstance(exc, ArtifactsError) and isinstance(exc, OSError)  # callers catching OSError keep working
    assert exc.errno == errno.EACCES and exc.filename == str(final)
    assert str(final) in str(exc) and "writable" in str(exc)
    assert final.read_text() == "old\n" and [p.name for p in read_only_dir.iterdir()] == ["out.json"]


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    final = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(final, "x")
    assert final.read_text() == "x"


def test_directory_replaces_an_empty_one_and_fails_cleanly(tmp_path: Path) -> None:
    dest = tmp_path / "tree"
    dest.mkdir()
    with atomic_directory(dest) as staging:
        (staging / "f.txt").write_text("one")
    assert (dest / "f.txt").read_text() == "one" and stat.S_IMODE(dest.stat().st_mode) == 0o755
    with pytest.raises(RuntimeError), atomic_directory(dest, replace=True) as staging:
        (staging / "g.txt").write_text("two")
        raise RuntimeError("stop")
    assert sorted(p.name for p in dest.iterdir()) == ["f.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["tree"]
    with pytest.raises(OSError), atomic_directory(dest) as staging:  # not empty, no replace
        (staging / "g.txt").write_text("two")
    assert [p.name for p in tmp_path.iterdir()] == ["tree"]
    with atomic_directory(dest, replace=True) as staging:
        (staging / "g.txt").write_text("two")
    assert sorted(p.name for p in dest.iterdir()) == ["g.txt"]


def test_temporaries_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    final = tmp_path / "model.onnx"
    dead = tmp_path / f".model.onnx.{2**22 + 12345}.abc{atomic.TEMP_SUFFIX}.onnx"  # above pid_max
    live = tmp_path / f".model.onnx.{os.getpid()}.keep{atomic.TEMP_SUFFIX}.onnx"
    partial = tmp_path / f"model.onnx{atomic.TEMP_SUFFIX}"  # a resumable download partial: never swept
    for path in (dead, live, partial):
        path.write_bytes(b"x")
    atomic_write_bytes(final, b"model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", live.name, partial.name])


def test_update_file_writes_only_a_change_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    assert atomic.update_file(path, "one\n") and path.read_text() == "one\n"
    path.chmod(0o600)
    before = path.stat().st_ino
    assert not atomic.update_file(path, b"one\n") and path.stat().st_ino == before  # same bytes: untouched
    assert atomic.update_file(path, "two\n") and path.read_text() == "two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
