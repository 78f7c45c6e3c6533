"""furiosa.artifacts.build.calibrate: the three calibration sources and the batch reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from furiosa.artifacts.build.calibrate import (
    NpzCalibrationReader,
    calibration_from_array,
    calibration_from_images,
    load_calibration,
    synthetic_calibration,
)
from furiosa.artifacts.errors import BuildError, ImageError, SpecError


def _resize_to_unit_chw(image: np.ndarray) -> np.ndarray:
    resized = np.asarray(Image.fromarray(image).resize((16, 12)), dtype=np.float32)
    return (resized / 255.0).transpose(2, 0, 1)


def _write_images(directory: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(directory / name)
        names.append(name)
    return names


def test_synthetic_is_seeded_and_marked(tmp_path: Path) -> None:
    info = synthetic_calibration(count=3, image_size=(24, 20), seed=7, out=tmp_path / "a.npz")
    synthetic_calibration(count=3, image_size=(24, 20), seed=7, out=tmp_path / "b.npz")
    synthetic_calibration(count=3, image_size=(24, 20), seed=8, out=tmp_path / "c.npz")
    a, info_a = load_calibration(tmp_path / "a.npz")
    b, _ = load_calibration(tmp_path / "b.npz")
    c, _ = load_calibration(tmp_path / "c.npz")

    assert info.synthetic and info.source == "synthetic" and info.seed == 7
    assert info_a.synthetic and info_a.seed == 7 and info_a.shape == (3, 24, 20) and info_a.count == 3
    assert a.dtype == np.float32 and a.shape == (3, 3, 24, 20)
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.std() > 0.05
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_synthetic_goes_through_preprocess(tmp_path: Path) -> None:
    info = synthetic_calibration(count=2, image_size=(32, 32), seed=0, out=tmp_path / "s.npz",
                                 preprocess=_resize_to_unit_chw)
    assert info.shape == (3, 12, 16)
    with pytest.raises(ImageError, match="synthetic image 0"):
        synthetic_calibration(count=1, image_size=(8, 8), seed=0, out=tmp_path / "bad.npz",
                              preprocess=lambda im: im[..., 0])
    assert not (tmp_path / "bad.npz").exists()


def test_from_array_keeps_values_and_limit(tmp_path: Path) -> None:
    array = np.arange(5 * 3 * 4 * 4, dtype=np.float64).reshape(5, 3, 4, 4)
    info = calibration_from_array(array, out=tmp_path / "arr.npz", limit=4)
    data, loaded = load_calibration(tmp_path / "arr.npz")
    assert info.count == 4 and not info.synthetic and loaded.source == "array"
    np.testing.assert_array_equal(data, array[:4].astype(np.float32))


@pytest.mark.parametrize("array", [np.zeros((3, 4, 4)), np.zeros((0, 3, 4, 4)), np.full((1, 3, 2, 2), np.nan)])
def test_from_array_rejects_bad_arrays(tmp_path: Path, array: np.ndarray) -> None:
    with pytest.raises(SpecError):
        calibration_from_array(array, out=tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_from_images_sorted_with_names_and_limit(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    names = _write_images(images, 4)
    (images / "notes.txt").write_text("not an image")

    info = calibration_from_images(images, preprocess=_resize_to_unit_chw, out=tmp_path / "all.npz")
    assert info.count == 4 and info.files == tuple(sorted(names)) and info.source == "images"
    data, loaded = load_calibration(tmp_path / "all.npz")
    assert data.shape == (4, 3, 12, 16) and loaded.files == tuple(sorted(names))

    listed = calibration_from_images(images, preprocess=_resize_to_unit_chw, out=tmp_path / "listed.npz",
                                     names=[names[2], names[0]], limit=1)
    assert listed.files == (names[2],)


def test_from_images_errors(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(BuildError, match="no images"):
        calibration_from_images(images, preprocess=_resize_to_unit_chw, out=tmp_path / "x.npz")
    with pytest.raises(BuildError, match="does not exist"):
        calibration_from_images(tmp_path / "nowhere", preprocess=_resize_to_unit_chw, out=tmp_path / "x.npz")
    names = _write_images(images, 2)
    with pytest.raises(BuildError, match="missing"):
        calibration_from_images(images, preprocess=_resize_to_unit_chw, out=tmp_path / "x.npz",
                                names=[names[0], "absent.jpg"])
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        calibration_from_images(images, preprocess=_resize_to_unit_chw, out=tmp_path / "x.npz")
    (images / "broken.jpg").unlink()
    with pytest.raises(ImageError, match="preprocesses to"):  # no resize: image sizes differ
        calibration_from_images(images, preprocess=lambda im: im.transpose(2, 0, 1), out=tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_load_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        load_calibration(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(BuildError, match="not a calibration set"):
        load_calibration(tmp_path / "other.npz")


def test_reader_batches_ranges_and_rewind(tmp_path: Path) -> None:
    array = np.arange(7, dtype=np.float32).reshape(7, 1, 1, 1) * np.ones((1, 3, 2, 2), np.float32)
    calibration_from_array(array, out=tmp_path / "c.npz")
    reader = NpzCalibrationReader(tmp_path / "c.npz", input_name="images", batch_size=3)

    assert len(reader) == 3
    batches = list(reader)
    assert [b["images"].shape[0] for b in batches] == [3, 3, 1]
    assert batches[2]["images"][0, 0, 0, 0] == 6.0
    assert reader.get_next() is None

    reader.set_range(1, 2)
    assert [b["images"][0, 0, 0, 0] for b in reader] == [3.0]
    reader.rewind()
    assert sum(1 for _ in reader) == 3
    with pytest.raises(SpecError, match="batch_size"):
        NpzCalibrationReader(tmp_path / "c.npz", input_name="images", batch_size=0)
