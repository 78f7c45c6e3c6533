"""Tar extraction refuses anything that could write outside the destination."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from furiosa.artifacts.errors import SpecError, UnsafePathError
from furiosa.artifacts.sources.archive import extract_member, safe_extract


def make_tar(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def regular(name: str, data: bytes = b"data") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def good_tar(tmp_path: Path) -> Path:
    directory = tarfile.TarInfo("model")
    directory.type = tarfile.DIRTYPE
    directory.mode = 0o755
    return make_tar(
        tmp_path / "good.tar.gz",
        (directory, None),
        regular("model/frozen_inference_graph.pb", b"graph"),
        regular("./model/pipeline.config", b"config"),
        special("model/latest.pb", tarfile.SYMTYPE, "frozen_inference_graph.pb"),
    )


def test_safe_extract_unpacks_a_normal_archive(tmp_path: Path) -> None:
    dest = safe_extract(good_tar(tmp_path), tmp_path / "out")
    assert (dest / "model" / "frozen_inference_graph.pb").read_bytes() == b"graph"
    assert (dest / "model" / "pipeline.config").read_bytes() == b"config"
    assert (dest / "model" / "latest.pb").read_bytes() == b"graph"  # internal symlink allowed
    assert [p.name for p in tmp_path.iterdir() if "incomplete" in p.name] == []


def test_extract_member_writes_one_file_atomically(tmp_path: Path) -> None:
    tar = good_tar(tmp_path)
    dest = tmp_path / "w" / "graph.pb"
    assert extract_member(tar, "model/frozen_inference_graph.pb", dest).read_bytes() == b"graph"
    assert extract_member(tar, "model/pipeline.config", dest).read_bytes() == b"config"  # replaces
    assert sorted(p.name for p in dest.parent.iterdir()) == ["graph.pb"]


def test_extract_member_errors_name_the_fix(tmp_path: Path) -> None:
    tar = good_tar(tmp_path)
    with pytest.raises(SpecError, match="no member named 'model/missing.pb'.*frozen_inference_graph.pb"):
        extract_member(tar, "model/missing.pb", tmp_path / "x")
    with pytest.raises(SpecError, match="not a regular file"):
        extract_member(tar, "model/latest.pb", tmp_path / "x")
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        extract_member(tar, "../model/frozen_inference_graph.pb", tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (regular("/etc/evil"), "absolute path"),
        (regular("../evil"), r"contains '\.\.'"),
        (regular("model/../../evil"), r"contains '\.\.'"),
        (special("link", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
        (special("model/link", tarfile.SYMTYPE, "../../etc/passwd"), "points outside"),
        (special("hard", tarfile.LNKTYPE, "../outside"), r"contains '\.\.'"),
        (special("hard", tarfile.LNKTYPE, "/etc/passwd"), "absolute path"),
        (special("dev", tarfile.CHRTYPE), "device file"),
        (special("blk", tarfile.BLKTYPE), "device file"),
        (special("fifo", tarfile.FIFOTYPE), "device file or FIFO"),
    ],
    ids=[
        "abs",
        "dotdot",
        "nested-dotdot",
        "symlink-abs",
        "symlink-out",
        "hardlink-out",
        "hardlink-abs",
        "chardev",
        "blockdev",
        "fifo",
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    tar = make_tar(tmp_path / "evil.tar.gz", regular("fine.txt"), member)
    dest = tmp_path / "out" / "extracted"
    with pytest.raises(UnsafePathError, match=message):
        safe_extract(tar, dest)
    assert not dest.exists() and not (tmp_path / "evil").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_safe_extract_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        safe_extract(good_tar(tmp_path), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]
