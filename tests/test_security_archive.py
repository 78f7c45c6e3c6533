"""Archive extraction against real crafted attacks: nothing is ever written outside the destination.

The archives are built with ``tarfile`` the way the published proofs of concept build them (CVE-2025-4517:
symlinks to directories, a chain of names past PATH_MAX, a link whose ``..`` climbs out through them).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from furiosa.artifacts.errors import UnsafePathError
from furiosa.artifacts.sources.archive import MAX_MEMBERS, safe_extract


def _add(tar: tarfile.TarFile, name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "",
         data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _tree(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed), relative."""
    found = set()
    for base, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(base, name), root))
    return found


@pytest.fixture()
def victim_layout(tmp_path: Path) -> tuple[Path, Path]:
    """``tmp/a/victim.txt`` (the target, two levels above) and the destination ``tmp/a/b/out``."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    victim = tmp_path / "a" / "victim.txt"
    victim.write_text("original")
    return victim, tmp_path / "a" / "b" / "out"


def test_cve_2025_4517_path_max_symlink_chain_cannot_write_two_levels_up(
        tmp_path: Path, victim_layout: tuple[Path, Path]) -> None:
    victim, dest = victim_layout
    before = _tree(tmp_path)
    comp, steps, path = "d" * 247, "abcdefghijklmnop", ""
    archive = tmp_path / "poc.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for step in steps:  # a/ -> ddd..., b/ -> ddd.../ddd..., ...: the real path outgrows PATH_MAX
            _add(tar, os.path.join(path, comp), kind=tarfile.DIRTYPE)
            _add(tar, os.path.join(path, step), kind=tarfile.SYMTYPE, link=comp)
            path = os.path.join(path, comp)
        linkpath = os.path.join("/".join(steps), "l" * 254)
        _add(tar, linkpath, kind=tarfile.SYMTYPE, link="../" * len(steps))  # lexically: the destination
        _add(tar, "escape", kind=tarfile.SYMTYPE, link=linkpath + "/../..")  # really: two levels up
        _add(tar, "escape/victim.txt", data=b"OVERWRITTEN")
    with pytest.raises(UnsafePathError, match="refusing to extract"):
        safe_extract(archive, dest)
    assert victim.read_text() == "original"
    assert _tree(tmp_path) == before | {"poc.tar"}  # nothing created anywhere, no staging left


def test_a_link_through_a_link_that_resolves_out_is_refused_after_a_real_resolution(
        tmp_path: Path, victim_layout: tuple[Path, Path]) -> None:
    """``m/n/t -> ../..`` and ``u -> m/n/t/../..`` are both inside lexically (``u`` normalises to ``m``), but on
    disk ``u`` is two levels above the destination: only a real ``realpath`` check sees it."""
    victim, dest = victim_layout
    archive = tmp_path / "chain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "m/n/keep.txt", data=b"x")
        _add(tar, "m/n/t", kind=tarfile.SYMTYPE, link="../..")
        _add(tar, "u", kind=tarfile.SYMTYPE, link="m/n/t/../..")
    with pytest.raises(UnsafePathError, match="resolves to .*outside the destination"):
        safe_extract(archive, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert victim.read_text() == "original"


def test_a_file_member_through_an_earlier_symlink_never_follows_it(
        tmp_path: Path, victim_layout: tuple[Path, Path]) -> None:
    """The classic: ``link -> .`` (inside) then ``link/x`` members: symlinks are created only after every file,
    so a member path never travels through one (the name clash is refused)."""
    victim, dest = victim_layout
    archive = tmp_path / "dot.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "here", kind=tarfile.SYMTYPE, link=".")
        _add(tar, "here/victim.txt", data=b"OVERWRITTEN")
    with pytest.raises(UnsafePathError, match="refusing to extract"):
        safe_extract(archive, dest)
    assert victim.read_text() == "original" and not dest.exists()


def test_over_long_names_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = tmp_path / "long.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "ok.txt", data=b"fine")
        _add(tar, "/".join(["x" * 200] * 30) + "/f", data=b"deep")
    with pytest.raises(UnsafePathError, match="longer than 1024 bytes"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_member_count_is_bounded(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(MAX_MEMBERS + 1):
            _add(tar, f"f{index}")
    assert archive.stat().st_size < 200_000  # a small file ...
    with pytest.raises(UnsafePathError, match=f"more than {MAX_MEMBERS} members"):
        safe_extract(archive, tmp_path / "out")  # ... that would make 10,001 files
    assert not (tmp_path / "out").exists()


def test_total_size_is_bounded_from_the_headers_before_writing(tmp_path: Path) -> None:
    """A header announcing 17 GiB (the data is never sent) is refused before a byte is written; so is a real
    gzip bomb over a lowered bound."""
    huge = tarfile.TarInfo("weights.bin")
    huge.size = 17 << 30
    (tmp_path / "header.tar").write_bytes(huge.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024)
    with pytest.raises(UnsafePathError, match="unpacks to more than"):
        safe_extract(tmp_path / "header.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()

    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        _add(tar, "zeros.bin", data=bytes(8 << 20))
        _add(tar, "again", kind=tarfile.LNKTYPE, link="zeros.bin")  # a hardlink counts its bytes again
    assert bomb.stat().st_size < 100_000
    with pytest.raises(UnsafePathError, match="unpacks to more than"):
        safe_extract(bomb, tmp_path / "out2", max_bytes=12 << 20)
    assert not (tmp_path / "out2").exists()
    out = safe_extract(bomb, tmp_path / "out3", max_bytes=16 << 20)
    assert (out / "again").read_bytes() == bytes(8 << 20) and not (out / "again").is_symlink()


def test_an_internal_symlink_still_works(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "model/graph.pb", data=b"graph")
        _add(tar, "model/latest.pb", kind=tarfile.SYMTYPE, link="graph.pb")
        _add(tar, "top", kind=tarfile.SYMTYPE, link="model")
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "top" / "latest.pb").read_bytes() == b"graph"


def test_temporaries_of_a_killed_process_are_swept_by_the_next_write(tmp_path: Path) -> None:
    """A process SIGKILLed while writing a temporary sibling (cache insert, atomic copy) or an extraction's
    staging directory leaves it behind; the next write to the same name removes it (its pid is dead),
    while a live process's temporary is left alone."""
    import signal
    import subprocess
    import sys

    from furiosa.artifacts import atomic

    final, dest = tmp_path / "cache" / "blob", tmp_path / "out" / "model"
    script = f"""
import os, signal, tempfile
from pathlib import Path
from furiosa.artifacts import atomic
final, dest = Path({str(final)!r}), Path({str(dest)!r})
dest.parent.mkdir(parents=True)
staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=atomic.temp_prefix(dest), suffix=atomic.TEMP_SUFFIX))
(staging / "half.bin").write_bytes(b"y" * (1 << 20))
with atomic.temporary_sibling(final) as tmp:
    with open(tmp, "wb") as fh:
        fh.write(b"x" * (8 << 20))
        fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leaked = list(final.parent.glob(".blob.*.incomplete")) + list(dest.parent.glob(".model.*.incomplete"))
    assert len(leaked) == 2 and sum(f.stat().st_size for f in final.parent.iterdir()) == 8 << 20
    live = final.parent / f".blob.{os.getpid()}.keepme.incomplete"  # this (live) process's: not touched
    live.write_bytes(b"mine")

    src = tmp_path / "src.bin"
    src.write_bytes(b"data")
    atomic.atomic_copy(src, final)
    assert final.read_bytes() == b"data"
    assert sorted(p.name for p in final.parent.iterdir()) == sorted(["blob", live.name])

    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "graph.pb", data=b"graph")
    safe_extract(archive, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model"]
