"""Hostile and unusual images through ``preprocess`` (spec MLCommonsResNet50): an ImageError or a documented conversion.

Already covered in test_vision_preprocess.py (not repeated): float/int64 arrays, zero-size arrays and
batches, bad ranks and channel counts, empty and nested lists, unsupported types, a missing path, a
non-image file, a float (``F``) PIL image, RGBA/grayscale/EXIF handling. Here: decompression bombs
(files judged from their header, PIL images, arrays as zero-copy views), truncated files, paths that are
not regular files, 16-bit and CMYK files, every other PIL mode, odd array dtypes.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from furiosa.artifacts.errors import ImageError
from furiosa.artifacts.vision import preprocess as preprocess_module
from furiosa.artifacts.vision.preprocess import MAX_IMAGE_PIXELS, preprocess
from furiosa.artifacts.vision.specs import load_spec

SPEC = load_spec("MLCommonsResNet50")
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _photo(height: int = 60, width: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR (8-bit gray, ``width`` x ``height``) + one row of IDAT: a tiny bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- decompression bombs


@pytest.mark.parametrize("width,height", [(11_000, 10_000), (20_000, 20_000)], ids=["110MP-our-limit", "400MP-pillow"])
def test_bomb_file_is_refused_from_its_header(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(width, height))
    assert path.stat().st_size < 20_000 and width * height > MAX_IMAGE_PIXELS
    decoded = []
    original_load = ImageFile.ImageFile.load
    with pytest.MonkeyPatch.context() as patch:  # refused from the header, before any pixel is decoded
        patch.setattr(ImageFile.ImageFile, "load", lambda self, *a, **k: decoded.append(self) or original_load(self))
        with pytest.raises(ImageError, match="cannot read image") as info:
            preprocess(path, SPEC)
    assert decoded == []
    assert "exceeds the limit" in str(info.value) or "decompression bomb" in str(info.value).lower()
    if width * height <= 2 * Image.MAX_IMAGE_PIXELS:  # else Pillow itself refuses to open it
        with Image.open(path) as lazy:  # the same file as a lazily opened PIL image
            with pytest.raises(ImageError, match="exceeds the limit"):
                preprocess(lazy, SPEC)


def test_a_short_but_well_formed_png_is_a_known_gap(tmp_path: Path) -> None:
    """Under the limit the size is no reason to refuse. This file's zlib stream ends cleanly after one row of
    1000: Pillow fills the other rows with zeros and reports nothing (unlike a cut-off file, above). Recorded
    as a known gap in SECURITY.md; if Pillow starts refusing it, update the gap."""
    path = tmp_path / "short.png"
    path.write_bytes(_png_header_only(1000, 1000))
    tensor, (context,) = preprocess(path, SPEC)
    assert context.original_size == (1000, 1000) and np.isfinite(tensor).all()


def test_bomb_arrays_are_refused_before_any_copy() -> None:
    pixel = np.zeros((1, 1, 3), np.uint8)
    huge = np.broadcast_to(pixel, (10_001, 10_000, 3))  # 300 MB as a zero-copy view
    with pytest.raises(ImageError, match="exceeds the limit"):
        preprocess(huge, SPEC)
    with pytest.raises(ImageError, match="exceeds the limit"):
        preprocess(np.broadcast_to(pixel[None], (2, 10_001, 10_000, 3)), SPEC)
    with pytest.raises(ImageError, match="exceeds the limit"):
        preprocess(np.broadcast_to(np.zeros((1, 1), np.uint8), (10_001, 10_000)), SPEC)


def test_the_limit_is_the_documented_constant(monkeypatch) -> None:
    assert MAX_IMAGE_PIXELS == 100_000_000
    assert "MAX_IMAGE_PIXELS" in preprocess_module.__doc__
    monkeypatch.setattr(preprocess_module, "MAX_IMAGE_PIXELS", 60 * 80 - 1)
    with pytest.raises(ImageError, match="exceeds the limit"):
        preprocess(_photo(60, 80), SPEC)


# --------------------------------------------------------------------------- truncated and non-regular files


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_cut_off_file_is_an_error_not_a_partial_image(tmp_path: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_photo(256, 256)).save(buffer, fmt)
    data = buffer.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) * 2 // 3])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing we import turns Pillow's check off
    with pytest.raises(ImageError, match="truncated|broken|cannot read"):
        preprocess(path, SPEC)
    with Image.open(path) as lazy:  # a lazily opened PIL image fails the same way, inside preprocess
        with pytest.raises(ImageError):
            preprocess(lazy, SPEC)


def test_paths_that_are_not_regular_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a regular file"):
        preprocess(tmp_path, SPEC)
    with pytest.raises(ImageError, match="not a regular file"):
        preprocess("/dev/zero", SPEC)  # endless: must not be read
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_raises(lambda: preprocess(fifo, SPEC))), daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # opening a FIFO blocks until a writer comes: release the thread, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("preprocess blocked on a FIFO")
    assert outcome and isinstance(outcome[0], ImageError) and "not a regular file" in str(outcome[0])


def _raises(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


# --------------------------------------------------------------------------- bit depths and colour modes


def test_16_bit_grayscale_png_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "depth16.png"
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16) * 16).reshape(64, 64)).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    with pytest.raises(ImageError, match=r"'I;16' \(16-bit"):
        preprocess(path, SPEC)
    for mode in ("I;16", "I"):
        with pytest.raises(ImageError, match="16-bit or float"):
            preprocess(Image.new(mode, (8, 8)), SPEC)


def test_16_bit_rgb_png_is_read_as_its_high_bytes(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    rgb8 = _photo(40, 50, seed=1)
    path = tmp_path / "rgb48.png"
    assert cv2.imwrite(str(path), (rgb8[:, :, ::-1].astype(np.uint16) << 8) | 0x7F)  # BGR, 16 bits per sample
    tensor, _ = preprocess(path, SPEC)
    np.testing.assert_array_equal(tensor, preprocess(rgb8, SPEC)[0])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    rgb = _photo(120, 160, seed=2)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=98)
    with Image.open(path) as image:
        assert image.mode == "CMYK" and image.info.get("adobe") is not None  # Adobe marker: inverted CMYK
    tensor, (context,) = preprocess(path, SPEC)
    reference, _ = preprocess(rgb, SPEC)
    assert context.original_size == (120, 160)
    lsb = 1 / (255 * min(SPEC.preprocess.std))
    assert np.abs(tensor - reference).mean() < 3 * lsb  # JPEG loss only: not inverted, not garbage


@pytest.mark.parametrize("mode", ["1", "L", "LA", "La", "P", "PA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
                                  "HSV"])
def test_every_8_bit_mode_converts(mode: str) -> None:
    base = Image.fromarray(_photo(48, 64, seed=3))
    if mode in ("P", "PA"):
        image = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
        image = image.convert("PA") if mode == "PA" else image
    elif mode == "La":
        image = base.convert("LA").convert("La")
    else:
        image = base.convert(mode)
    tensor, (context,) = preprocess(image, SPEC)
    assert tensor.shape == (1, 3, 224, 224) and np.isfinite(tensor).all() and context.original_size == (48, 64)
    expected = {"P": lambda: image.convert("RGB"), "LA": lambda: image.convert("L").convert("RGB"),
                "1": lambda: image.convert("RGB")}
    if mode in expected:
        np.testing.assert_array_equal(tensor, preprocess(np.asarray(expected[mode]()), SPEC)[0])


def test_palette_with_transparency_drops_alpha_like_rgba(tmp_path: Path) -> None:
    image = Image.fromarray(_photo(32, 32, seed=4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    tensor, _ = preprocess(path, SPEC)
    expected = np.asarray(Image.open(path).convert("RGBA"))[:, :, :3]
    np.testing.assert_array_equal(tensor, preprocess(expected, SPEC)[0])


@pytest.mark.parametrize("array", [
    np.zeros((8, 8, 3), np.bool_), np.zeros((8, 8, 3), np.float16), np.zeros((8, 8, 3), np.uint16),
    np.zeros((8, 8, 3), object), np.zeros((8, 8, 3), np.int8),
], ids=["bool", "float16", "uint16", "object", "int8"])
def test_other_array_dtypes_are_refused(array: np.ndarray) -> None:
    with pytest.raises(ImageError, match="uint8"):
        preprocess(array, SPEC)


def test_strided_and_read_only_views_are_fine() -> None:
    photo = _photo(64, 96, seed=5)
    expected, _ = preprocess(np.ascontiguousarray(photo[::-1, ::2]), SPEC)
    view = photo[::-1, ::2]
    view.flags.writeable = False
    np.testing.assert_array_equal(preprocess(view, SPEC)[0], expected)


# --------------------------------------------------------------------------- every intermediate is bounded (issue 17)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """``png`` with one more chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return png[:33] + _png_chunk(kind, data) + png[33:]


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1)], ids=["1x20000", "20000x1"])
def test_extreme_aspect_ratio_is_refused_before_the_resize_allocates(tmp_path: Path, size: tuple[int, int]) -> None:
    """20,000 pixels decode fine, but "short side to 256" would make 256 x 5,120,000 (1.3 G pixels, 4 GB):
    the resized size is checked before the resize, so nothing near that is ever allocated."""
    import tracemalloc

    path = tmp_path / "strip.png"
    Image.new("RGB", size, (10, 20, 30)).save(path)
    assert path.stat().st_size < 1_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"resized to (256x5120000|5120000x256) = 1310720000 pixels exceeds the limit") as info:
            preprocess(path, SPEC)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20  # numpy reports its allocations to tracemalloc: no big array was made
    assert "downscale it first" in str(info.value)
    with pytest.raises(ImageError, match="exceeds the limit"):  # the same guard for arrays and PIL images
        preprocess(np.zeros((size[1], size[0], 3), np.uint8), SPEC)


def test_the_same_strip_within_the_limit_still_works() -> None:
    """A 1x300 strip resizes to 256x76800 (19.7 M pixels): under the limit, preprocessed as before."""
    tensor, (context,) = preprocess(np.full((300, 1, 3), 128, np.uint8), SPEC)
    assert context.resized_size == (76_800, 256) and tensor.shape == (1, 3, 224, 224)


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_png_text_and_icc_decompression_bombs_give_our_error(tmp_path: Path, kind: bytes) -> None:
    """A zTXt/iCCP chunk inflating to 64 MiB (Pillow refuses past 1 MiB with a bare ValueError) is an
    ImageError naming the file; in a batch the error names the image, and the CLI keeps the others."""
    good = io.BytesIO()
    Image.fromarray(_photo()).save(good, format="PNG")
    payload = b"Comment\0\0" + zlib.compress(bytes(64 << 20), 9) if kind == b"zTXt" else \
        b"icc\0\0" + zlib.compress(bytes(64 << 20), 9)
    bomb = tmp_path / f"{kind.decode()}.png"
    bomb.write_bytes(_with_chunk(good.getvalue(), kind, payload))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ImageError, match=f"cannot read image .*{kind.decode()}.png"):
        preprocess(bomb, SPEC)
    fine = tmp_path / "fine.png"
    fine.write_bytes(good.getvalue())
    with pytest.raises(ImageError, match="cannot read image"):
        preprocess([fine, bomb], SPEC)  # one stacked tensor: all or nothing, the bad file named
    tensor, _ = preprocess(fine, SPEC)  # one at a time, the good image still goes through
    assert tensor.shape == (1, 3, 224, 224)
