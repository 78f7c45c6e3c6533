"""Preprocessing against independent computations (torchvision / timm transforms, the MLPerf cv2 recipe)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import timm.data
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

from furiosa.artifacts.errors import ImageError
from furiosa.artifacts.vision.preprocess import ImageContext, preprocess
from furiosa.artifacts.vision.specs import list_specs, load_spec

SIZES = [(333, 500), (500, 333), (225, 301), (256, 256), (97, 1000)]


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (9, 9), 2.5)  # smooth enough to look like a photo to a resize


def _lsb(spec) -> float:
    """One 8-bit input step, in normalised output units."""
    p = spec.preprocess
    return 1.0 / (p.scale * min(p.std))


@pytest.mark.parametrize("size", SIZES)
def test_resnet50_matches_torchvision_transforms(size):
    # MLPerf dataset.pre_process_imagenet_pytorch: F.resize(256, BILINEAR), center_crop(224), to_tensor, normalize
    spec = load_spec("MLCommonsResNet50")
    image = _image(*size)
    reference = T.Compose([T.Resize(256, T.InterpolationMode.BILINEAR), T.CenterCrop(224), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(Image.fromarray(image))
    tensor, (context,) = preprocess(image, spec)
    assert tensor.shape == (1, 3, 224, 224) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0], reference.numpy(), rtol=0, atol=_lsb(spec))
    assert np.abs(tensor[0] - reference.numpy()).max() < 1e-5  # same PIL resize: equal to float rounding
    assert context.original_size == size and context.input_size == (224, 224)


@pytest.mark.parametrize("size", SIZES[:3])
def test_efficientnet_matches_timm_eval_transform(size):
    spec = load_spec("EfficientNetV2_S")
    cfg = timm.models.get_pretrained_cfg("tf_efficientnetv2_s.in1k").to_dict()
    data_config = timm.data.resolve_data_config(pretrained_cfg=cfg, use_test_size=True)
    assert data_config["input_size"] == (3, 384, 384) and data_config["crop_pct"] == 1.0
    image = _image(*size, seed=1)
    reference = timm.data.create_transform(**data_config)(Image.fromarray(image))
    tensor, _ = preprocess(Image.fromarray(image), spec)
    np.testing.assert_allclose(tensor[0], reference.numpy(), rtol=0, atol=_lsb(spec))
    assert np.abs(tensor[0] - reference.numpy()).max() < 1e-5


def _mlperf_coco(bgr: np.ndarray, size: int, mean: np.ndarray, std: np.ndarray, *, scale: float) -> np.ndarray:
    """MLPerf dataset.maybe_resize + pre_process_coco_* on a cv2.imread (BGR) image, NCHW."""
    img = np.array(bgr, dtype=np.float32)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    if scale == 127.5:
        img -= 127.5
        img /= 127.5
    else:
        img = (img / 255.0 - mean) / std
    return img.transpose(2, 0, 1)


@pytest.mark.parametrize("name", ["MLCommonsSSDMobileNet", "MLCommonsSSDResNet34"])
@pytest.mark.parametrize("size", SIZES[:3])
def test_ssd_matches_the_mlperf_cv2_recipe(name, size, tmp_path):
    spec = load_spec(name)
    image = _image(*size, seed=2)
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    side = spec.input.size[0]
    if name == "MLCommonsSSDMobileNet":
        expected = _mlperf_coco(cv2.imread(str(path)), side, None, None, scale=127.5)
    else:
        expected = _mlperf_coco(cv2.imread(str(path)), side, np.array([0.485, 0.456, 0.406], np.float32),
                                np.array([0.229, 0.224, 0.225], np.float32), scale=255.0)
    tensor, (context,) = preprocess(path, spec)
    assert tensor.shape == (1, 3, side, side)
    np.testing.assert_allclose(tensor[0], expected, rtol=0, atol=1e-5)
    assert context == ImageContext(original_size=size, resized_size=(side, side), crop_offset=(0, 0),
                                   input_size=(side, side))
    # independent of OpenCV: half-pixel bilinear without antialiasing (torch) within 1 LSB
    rgb = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    resized = F.interpolate(rgb, size=(side, side), mode="bilinear", align_corners=False, antialias=False)[0]
    p = spec.preprocess
    mean, std = torch.tensor(p.mean)[:, None, None], torch.tensor(p.std)[:, None, None]
    np.testing.assert_allclose(tensor[0], ((resized / p.scale - mean) / std).numpy(), rtol=0, atol=_lsb(spec))


def test_input_kinds_agree(tmp_path):
    spec = load_spec("MLCommonsSSDMobileNet")
    rgb = _image(120, 160, seed=3)
    rgba = np.concatenate([rgb, np.full((120, 160, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    base, _ = preprocess(rgb, spec)
    for variant in [tmp_path / "rgb.png", str(tmp_path / "rgba.png"), Image.fromarray(rgb), Image.fromarray(rgba),
                    rgba, rgb[None], [rgb], (Image.fromarray(rgb),)]:
        tensor, contexts = preprocess(variant, spec)
        np.testing.assert_array_equal(tensor, base)
        assert len(contexts) == 1 and contexts[0].original_size == (120, 160)
    bgr, _ = preprocess(np.ascontiguousarray(rgb[:, :, ::-1]), spec, array_order="BGR")
    np.testing.assert_array_equal(bgr, base)


def test_grayscale_is_replicated(tmp_path):
    spec = load_spec("MLCommonsResNet50")
    gray = _image(200, 300, seed=4)[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "gray.jpg", quality=95)
    expected, _ = preprocess(np.repeat(gray[:, :, None], 3, axis=2), spec)
    for variant in [gray, gray[:, :, None], Image.fromarray(gray)]:
        np.testing.assert_array_equal(preprocess(variant, spec)[0], expected)
    from_jpeg, _ = preprocess(tmp_path / "gray.jpg", spec)
    assert np.allclose(from_jpeg[0, 0], from_jpeg[0, 1] * 0.224 / 0.229 + (0.456 - 0.485) / 0.229, atol=1e-4)


def test_luma_input_for_the_digits_model():
    spec = load_spec("DigitsConvNet")
    image = _image(40, 30, seed=5)
    expected = np.asarray(Image.fromarray(image).convert("L").resize((8, 8), Image.Resampling.BILINEAR), np.float32)
    tensor, (context,) = preprocess(image, spec)
    assert tensor.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(tensor[0, 0], expected / 255.0, rtol=0, atol=1e-7)
    gray = np.asarray(Image.fromarray(image).convert("L"))
    np.testing.assert_array_equal(preprocess(gray, spec)[0], tensor)  # gray input: luma is the identity
    assert context.original_size == (40, 30)


def test_batches_and_mixed_lists():
    spec = load_spec("MLCommonsResNet50")
    images = [_image(240, 320, seed=s) for s in range(3)]
    batch, contexts = preprocess(np.stack(images), spec)
    assert batch.shape == (3, 3, 224, 224) and len(contexts) == 3
    mixed, _ = preprocess([images[0], Image.fromarray(images[1]), images[2]], spec)
    np.testing.assert_array_equal(batch, mixed)
    singles = np.concatenate([preprocess(image, spec)[0] for image in images])
    np.testing.assert_array_equal(batch, singles)


def test_context_maps_back_to_original_pixels():
    spec = load_spec("MLCommonsResNet50")
    _, (context,) = preprocess(_image(480, 640), spec)
    assert context.resized_size == (256, 341) and context.crop_offset == (16, 58)  # round(58.5) == 58
    # the network input's full extent maps to the crop window in the original image
    corners = context.to_original(np.array([[0.0, 0.0, 1.0, 1.0]]))[0]
    scale = 640 / 341
    np.testing.assert_allclose(corners, [58 * scale, 16 * 480 / 256, (58 + 224) * scale, (16 + 224) * 480 / 256],
                               rtol=1e-6)
    _, (plain,) = preprocess(_image(480, 640), load_spec("MLCommonsSSDMobileNet"))
    np.testing.assert_allclose(plain.to_original(np.array([[0.25, 0.5, 0.75, 1.0]])), [[160, 240, 480, 480]])


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_image(100, 200))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    _, (context,) = preprocess(tmp_path / "rotated.jpg", load_spec("MLCommonsSSDMobileNet"))
    assert context.original_size == (200, 100)


@pytest.mark.parametrize("name", list_specs())
def test_exif_handling_follows_the_reference_loader(tmp_path, name):
    """spec preprocess.exif reproduces the reference loader: cv2.imread (MLPerf) rotates, PIL/timm does not."""
    import cv2

    pixels = _image(60, 90)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    spec = load_spec(name)
    if spec.preprocess.exif == "transpose":
        reference = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # MLPerf imagenet.py / coco.py
    else:
        with Image.open(path) as opened:  # timm ImageDataset
            reference = np.asarray(opened.convert("RGB"))
    _, (context,) = preprocess(path, spec)
    assert context.original_size == reference.shape[:2]
    # the decoded pixels are the reference loader's, so the network input is the one from its array
    tolerance = 3 / (spec.preprocess.scale * min(spec.preprocess.std))  # 3 grey levels: JPEG decoders may differ
    np.testing.assert_allclose(preprocess(path, spec)[0], preprocess(reference, spec)[0], atol=tolerance)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 3), np.int64), "uint8"),
    (np.zeros((0, 10, 3), np.uint8), "zero size"),
    (np.zeros((10, 0), np.uint8), "zero size"),
    (np.zeros((2, 10, 10, 3, 1), np.uint8), "shape"),
    (np.zeros((10,), np.uint8), "shape"),
    (np.zeros((10, 10, 2), np.uint8), "channels"),
    (np.zeros((0, 10, 10, 3), np.uint8), "empty"),
    ([], "empty"),
    ([[np.zeros((4, 4, 3), np.uint8)]], "nested"),
    (12, "unsupported"),
    ("/nonexistent/image.jpg", "cannot read"),
    (Image.new("F", (8, 8)), "mode"),
])
def test_bad_inputs_raise_image_error(bad, match):
    with pytest.raises(ImageError, match=match):
        preprocess(bad, load_spec("MLCommonsResNet50"))


def test_corrupt_file_raises_image_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="cannot read"):
        preprocess(path, load_spec("MLCommonsResNet50"))
    with pytest.raises(ImageError, match="array_order"):
        preprocess(_image(8, 8), load_spec("MLCommonsResNet50"), array_order="RGBA")

