"""furiosa.artifacts.build._io: atomic outputs never leave a partial file under the final name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from furiosa.artifacts.build._io import atomic_path, atomic_write_text


def test_success_replaces_and_cleans_up(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "model.onnx"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.endswith(".onnx") and tmp != final
        tmp.write_bytes(b"new")
        assert not final.exists()
    assert final.read_bytes() == b"new"
    assert os.listdir(final.parent) == ["model.onnx"]
    assert stat.S_IMODE(final.stat().st_mode) & 0o044  # not left at mkstemp's 0600


def test_writer_raising_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_raising_keeps_the_previous_file(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    atomic_write_text(final, "old\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert final.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_writer_that_removes_its_file_is_an_error(tmp_path: Path) -> None:
    final = tmp_path / "x.bin"
    with pytest.raises(FileNotFoundError), atomic_path(final) as tmp:
        tmp.unlink()
    assert list(tmp_path.iterdir()) == []
