"""convcore.transforms against torchvision.transforms.v2.functional on tensors (the oracle), and by construction."""

import numpy as np
import pytest

from convcore import transforms as T

torch = pytest.importorskip("torch")
TF = pytest.importorskip("torchvision.transforms.v2.functional")
from torchvision.transforms import InterpolationMode  # noqa: E402


def to_tensor(img):
    """HWC numpy -> CHW torch tensor (torchvision's layout)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def to_hwc(tensor):
    return tensor.numpy().transpose(1, 2, 0)


def random_image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.random(shape, dtype=np.float32)


def smooth_image(h, w, seed=0):
    """A photo-like uint8 image: smooth gradients plus mild noise (noise images are the worst case for rounding)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([127 + 100 * np.sin(x / 13.0), 127 + 100 * np.cos(y / 17.0), (x + y) * 255.0 / (h + w)], -1)
    noise = np.random.default_rng(seed).normal(0, 4, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# resize
# ---------------------------------------------------------------------------------------------------------------

SHAPES = [(300, 451), (17, 23), (64, 64)]
SIZES = [256, 5, (100, 37), (400, 500)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_float_matches_torchvision(shape, size, interpolation, antialias):
    img = random_image(shape + (3,), np.float32)
    ours = T.resize(img, size, interpolation, antialias)
    ref = to_hwc(TF.resize(to_tensor(img), [size] if isinstance(size, int) else list(size),
                           interpolation=InterpolationMode(interpolation), antialias=antialias))
    assert ours.shape == ref.shape and ours.dtype == np.float32
    # float32 sums of up to ~2 * scale taps (bicubic's negative lobes add cancellation)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5 if interpolation == "bilinear" else 1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_resize_uint8_matches_torchvision(shape, size, interpolation):
    # torch's uint8 kernels use fixed-point weights: off by one is normal, bicubic noise images rarely reach 2
    img = random_image(shape + (3,), np.uint8)
    ours = T.resize(img, size, interpolation)
    ref = to_hwc(TF.resize(to_tensor(img), [size] if isinstance(size, int) else list(size),
                           interpolation=InterpolationMode(interpolation)))
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= (1 if interpolation == "bilinear" else 2)
    assert diff.mean() < 0.3


def test_resize_photo_like_uint8_within_one():
    img = smooth_image(300, 451)
    ours = T.resize(img, 256, "bicubic")
    ref = to_hwc(TF.resize(to_tensor(img), [256], interpolation=InterpolationMode.BICUBIC))
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("size", [256, 7, (64, 90)])
def test_resize_nearest_is_exact(size):
    img = random_image((40, 60, 3), np.uint8)
    ours = T.resize(img, size, "nearest")
    ref = to_hwc(TF.resize(to_tensor(img), [size] if isinstance(size, int) else list(size),
                           interpolation=InterpolationMode.NEAREST))
    np.testing.assert_array_equal(ours, ref)


def test_resize_output_size_rules():
    img = np.zeros((300, 451, 3), np.uint8)
    assert T.resize(img, 256).shape == (256, 384, 3)           # int(256 * 451 / 300) = 384
    assert T.resize(img.transpose(1, 0, 2), 256).shape == (384, 256, 3)
    assert T.resize(img, (100, 37)).shape == (100, 37, 3)
    assert T.resize(img, 256, max_size=300).shape == (200, 300, 3)  # longer side capped: int(300 * 256 / 384)
    assert T.resize(img[:, :, 0], 128).shape == (128, 192)     # HW stays HW


def test_resize_max_size_matches_torchvision():
    img = random_image((300, 451, 3), np.float32)
    ref = TF.resize(to_tensor(img), [256], max_size=300)
    assert T.resize(img, 256, max_size=300).shape == to_hwc(ref).shape


def test_resize_keeps_constant_images_constant():
    img = np.full((37, 53, 3), 0.25, np.float32)
    for interpolation in ("bilinear", "bicubic"):
        out = T.resize(img, (11, 90), interpolation)
        np.testing.assert_allclose(out, 0.25, rtol=0, atol=1e-6)


def test_resize_same_size_is_identity():
    img = random_image((20, 30, 3), np.uint8)
    np.testing.assert_array_equal(T.resize(img, (20, 30)), img)


def test_resize_rejects_bad_arguments():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="interpolation"):
        T.resize(img, 4, "lanczos")
    with pytest.raises(ValueError, match="size"):
        T.resize(img, 0)
    with pytest.raises(TypeError, match="img"):
        T.resize(img.tolist(), 4)
    with pytest.raises(ValueError, match="img"):
        T.resize(np.zeros((1, 8, 8, 3), np.uint8), 4)
    with pytest.raises(TypeError, match="dtype"):
        T.resize(np.zeros((8, 8, 3), np.int32), 4)


# ---------------------------------------------------------------------------------------------------------------
# crops, flips, ToTensor, Normalize
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(256, 384), (225, 230), (100, 50), (7, 9)])
@pytest.mark.parametrize("size", [224, (5, 8), (120, 60), (301, 9)])
def test_center_crop_matches_torchvision_exactly(shape, size):
    img = random_image(shape + (3,), np.uint8)
    ours = T.center_crop(img, size)
    ref = to_hwc(TF.center_crop(to_tensor(img), [size] if isinstance(size, int) else list(size)))
    np.testing.assert_array_equal(ours, ref)


def test_hflip_matches_torchvision_exactly():
    img = random_image((13, 17, 3), np.float32)
    np.testing.assert_array_equal(T.hflip(img), to_hwc(TF.horizontal_flip(to_tensor(img))))


def test_crop_and_its_bounds():
    img = random_image((10, 12, 3), np.uint8)
    np.testing.assert_array_equal(T.crop(img, 2, 3, 4, 5), img[2:6, 3:8])
    with pytest.raises(ValueError, match="crop box"):
        T.crop(img, 8, 0, 4, 4)


def test_to_tensor_matches_torchvision():
    from torchvision.transforms import ToTensor

    img = random_image((5, 7, 3), np.uint8)
    out = T.ToTensor()(img)
    assert out.dtype == np.float32 and out.shape == (3, 5, 7)
    np.testing.assert_array_equal(out, ToTensor()(img).numpy())
    assert T.ToTensor()(img[:, :, 0]).shape == (1, 5, 7)
    floats = random_image((5, 7, 3), np.float32)
    np.testing.assert_array_equal(T.ToTensor()(floats), floats.transpose(2, 0, 1))  # float: transposed only


def test_normalize_matches_torchvision_exactly():
    x = random_image((3, 9, 11), np.float32)
    ours = T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)(x)
    ref = TF.normalize(torch.from_numpy(x), list(T.IMAGENET_MEAN), list(T.IMAGENET_STD)).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)
    batch = np.stack([x, x])
    np.testing.assert_array_equal(T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)(batch)[1], ref)


def test_normalize_rejects_bad_input():
    with pytest.raises(ValueError, match="std"):
        T.Normalize([0.5], [0.0])
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize([0.5], [0.5])(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="3 mean values"):
        T.Normalize([0.5, 0.5], [0.5, 0.5])(np.zeros((3, 4, 4), np.float32))


def test_compose_applies_in_order():
    img = random_image((300, 400, 3), np.uint8)
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])
    by_hand = T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)(T.ToTensor()(T.center_crop(T.resize(img, 256), 224)))
    np.testing.assert_array_equal(pipeline(img), by_hand)
    with pytest.raises(TypeError, match="callable"):
        T.Compose([T.Resize(8), 3])


def test_imagenet_pipeline_matches_torchvision_on_a_photo_like_image():
    img = smooth_image(300, 451)
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])
    ours = pipeline(img)
    x = TF.resize(to_tensor(img), [256])
    x = TF.center_crop(x, [224])
    x = TF.normalize(TF.to_dtype(x, torch.float32, scale=True), list(T.IMAGENET_MEAN), list(T.IMAGENET_STD))
    # one uint8 step of the resize, divided by 255 and by the smallest std
    np.testing.assert_allclose(ours, x.numpy(), rtol=0, atol=1 / 255 / 0.224 + 1e-6)


# ---------------------------------------------------------------------------------------------------------------
# rotation and affine
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(32, 32), (20, 26), (31, 47)])
def test_rotate_by_multiples_of_90_is_exact(shape):
    img = random_image(shape + (3,), np.uint8)
    for k, angle in enumerate((0, 90, 180, 270)):
        if angle in (90, 270) and shape[0] != shape[1]:
            np.testing.assert_array_equal(T.rotate(img, angle, expand=True), np.rot90(img, k))
        else:
            np.testing.assert_array_equal(T.rotate(img, angle), np.rot90(img, k))
    np.testing.assert_array_equal(T.rotate(img, -90, expand=True), np.rot90(img, 3))
    # square images need no fast path: the warp itself lands on pixel centers
    square = random_image((16, 16, 3), np.float32)
    np.testing.assert_array_equal(T.rotate(square, 90, center=(8, 8)), np.rot90(square))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("shape", [(31, 47), (20, 26)])
@pytest.mark.parametrize("angle", [33.3, -71, 45, 123.4, 90])
@pytest.mark.parametrize("expand", [False, True])
def test_rotate_matches_torchvision(dtype, shape, angle, expand):
    img = random_image(shape + (3,), dtype)
    fill = (10, 20, 30) if dtype == np.uint8 else (0.1, 0.2, 0.3)
    for interpolation in ("nearest", "bilinear"):
        for f in (None, 0, fill):
            ours = T.rotate(img, angle, interpolation, expand, None, f)
            ref = to_hwc(TF.rotate(to_tensor(img), angle, InterpolationMode(interpolation), expand, None,
                                   list(f) if isinstance(f, tuple) else f))
            assert ours.shape == ref.shape and ours.dtype == img.dtype
            if interpolation == "nearest":
                np.testing.assert_array_equal(ours, ref)
            elif dtype == np.uint8:
                assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
            else:
                np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_rotate_about_a_point_matches_torchvision():
    img = random_image((24, 30, 3), np.float32)
    ours = T.rotate(img, 30, "bilinear", center=(5, 7))
    ref = to_hwc(TF.rotate(to_tensor(img), 30, InterpolationMode.BILINEAR, center=[5, 7]))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("params", [(10, (2, -3), 1.1, (5, 0)), (-30, (0, 0), 0.8, (10, -7)), (0, (5, 5), 1.0, (0, 0))])
def test_affine_matches_torchvision(dtype, params):
    angle, translate, scale, shear = params
    img = random_image((31, 47, 3), dtype)
    for interpolation in ("nearest", "bilinear"):
        ours = T.affine(img, angle, translate, scale, shear, interpolation, fill=0)
        ref = to_hwc(TF.affine(to_tensor(img), angle, list(translate), scale, list(shear),
                               InterpolationMode(interpolation), 0))
        if interpolation == "nearest":
            np.testing.assert_array_equal(ours, ref)
        elif dtype == np.uint8:
            assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
        else:
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_affine_translation_shifts_pixels():
    img = random_image((10, 12, 3), np.uint8)
    out = T.affine(img, translate=(3, 2))
    np.testing.assert_array_equal(out[2:, 3:], img[:-2, :-3])
    assert not out[:2].any() and not out[:, :3].any()


# ---------------------------------------------------------------------------------------------------------------
# color
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
@pytest.mark.parametrize("factor", [0.0, 0.3, 1.0, 1.7])
def test_color_factors_match_torchvision(dtype, name, factor):
    img = random_image((19, 23, 3), dtype)
    ours = getattr(T, "adjust_" + name)(img, factor)
    ref = to_hwc(getattr(TF, "adjust_" + name)(to_tensor(img), factor))
    assert ours.dtype == img.dtype
    if dtype == np.uint8:  # torch truncates to uint8: float rounding moves a rare value by one
        diff = np.abs(ours.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01
    else:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("factor", [-0.5, -0.2, 0.0, 0.1, 0.37, 0.5])
def test_hue_matches_torchvision(dtype, factor):
    img = random_image((19, 23, 3), dtype)
    ours = T.adjust_hue(img, factor)
    ref = to_hwc(TF.adjust_hue(to_tensor(img), factor))
    if dtype == np.uint8:
        diff = np.abs(ours.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01
    else:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_color_ops_leave_grayscale_hue_and_saturation_alone():
    gray = random_image((6, 7), np.uint8)
    np.testing.assert_array_equal(T.adjust_saturation(gray, 0.2), gray)
    np.testing.assert_array_equal(T.adjust_hue(gray, 0.3), gray)
    np.testing.assert_array_equal(T.adjust_brightness(gray, 0.5), (gray.astype(np.float32) * 0.5).astype(np.uint8))


def test_color_ops_reject_bad_factors():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="hue factor"):
        T.adjust_hue(img, 0.6)
    with pytest.raises(ValueError, match="brightness factor"):
        T.adjust_brightness(img, -1)
    with pytest.raises(ValueError, match="channels"):
        T.adjust_contrast(np.zeros((4, 4, 4), np.uint8), 0.5)
