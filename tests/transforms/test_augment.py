"""Random transforms: seeded reproducibility, parameter ranges, and equality with the functional ops they draw for;
image decoding; the bundled labels, photos and presets."""

import math
import sys

import numpy as np
import pytest

from convcore import transforms as T


def photo(h=60, w=80, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


def make_all(seed):
    return [T.RandomResizedCrop(32, seed=seed), T.RandomRotation(30, interpolation="bilinear", seed=seed),
            T.RandomAffine(20, translate=(0.1, 0.2), scale=(0.8, 1.2), shear=(-5, 5, -3, 3), seed=seed),
            T.RandomHorizontalFlip(seed=seed), T.ColorJitter(0.4, 0.4, 0.4, 0.1, seed=seed)]


def test_same_seed_same_outputs_and_other_seeds_differ():
    img = photo()
    for a, b, c in zip(make_all(7), make_all(7), make_all(8)):
        runs_a = [a(img) for _ in range(4)]
        runs_b = [b(img) for _ in range(4)]
        runs_c = [c(img) for _ in range(4)]
        for x, y in zip(runs_a, runs_b):
            np.testing.assert_array_equal(x, y)
        assert any(not np.array_equal(x, z) for x, z in zip(runs_a, runs_c)), type(a).__name__


def test_a_shared_generator_drives_a_whole_pipeline():
    img = photo()

    def pipeline(rng):
        return T.Compose([T.RandomResizedCrop(24, seed=rng), T.RandomHorizontalFlip(seed=rng),
                          T.ColorJitter(0.3, 0.3, seed=rng), T.ToTensor()])

    first, second = pipeline(np.random.default_rng(3)), pipeline(np.random.default_rng(3))
    for _ in range(3):
        np.testing.assert_array_equal(first(img), second(img))


def test_random_resized_crop_is_resize_of_its_drawn_box():
    img = photo(90, 120)
    drawer, transform = T.RandomResizedCrop((20, 30), seed=5), T.RandomResizedCrop((20, 30), seed=5)
    for _ in range(5):
        top, left, h, w = drawer.get_params(90, 120)
        assert 0 <= top and top + h <= 90 and 0 <= left and left + w <= 120
        # the box's area fraction and aspect ratio lie in the requested ranges (up to rounding to whole pixels)
        assert 0.08 * 0.9 <= h * w / (90 * 120) <= 1.0
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
        expected = T.resize(img[top:top + h, left:left + w], (20, 30))
        np.testing.assert_array_equal(transform(img), expected)


def test_random_resized_crop_falls_back_to_a_center_crop():
    # no box with aspect ratio in [10, 11] fits a 100x40 (h x w) image, so all ten tries fail
    crop = T.RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(10, 11), seed=0)
    top, left, h, w = crop.get_params(100, 40)
    assert (w, h) == (40, 4) and (top, left) == (48, 0)  # width / min ratio = 4 rows, centered


def test_horizontal_flip_probability():
    img = photo(4, 5)
    assert all(np.array_equal(T.RandomHorizontalFlip(0.0, seed=i)(img), img) for i in range(5))
    assert all(np.array_equal(T.RandomHorizontalFlip(1.0, seed=i)(img), img[:, ::-1]) for i in range(5))
    flip = T.RandomHorizontalFlip(0.5, seed=0)
    flipped = sum(not np.array_equal(flip(img), img) for _ in range(200))
    assert 70 < flipped < 130


def test_random_rotation_draws_within_degrees_and_rotates_by_the_draw():
    img = photo(32, 32)
    drawer, transform = T.RandomRotation((10, 20), seed=2), T.RandomRotation((10, 20), seed=2)
    for _ in range(5):
        angle = drawer.get_params()
        assert 10 <= angle <= 20
        np.testing.assert_array_equal(transform(img), T.rotate(img, angle, fill=0))
    np.testing.assert_array_equal(T.RandomRotation((90, 90), seed=0)(img), np.rot90(img))


def test_random_affine_draws_within_ranges_and_warps_by_the_draw():
    img = photo(40, 50)
    args = dict(degrees=15, translate=(0.1, 0.2), scale=(0.9, 1.1), shear=8)
    drawer, transform = T.RandomAffine(seed=4, **args), T.RandomAffine(seed=4, **args)
    for _ in range(5):
        angle, (tx, ty), scale, (sx, sy) = drawer.get_params(40, 50)
        assert -15 <= angle <= 15 and abs(tx) <= 5 and abs(ty) <= 8 and 0.9 <= scale <= 1.1
        assert -8 <= sx <= 8 and sy == 0
        assert isinstance(tx, int) and isinstance(ty, int)
        np.testing.assert_array_equal(transform(img), T.affine(img, angle, (tx, ty), scale, (sx, sy), fill=0))


def test_color_jitter_applies_its_draw_in_its_order():
    img = photo()
    drawer, transform = T.ColorJitter(0.5, 0.5, 0.5, 0.2, seed=9), T.ColorJitter(0.5, 0.5, 0.5, 0.2, seed=9)
    functions = (T.adjust_brightness, T.adjust_contrast, T.adjust_saturation, T.adjust_hue)
    for _ in range(4):
        order, *factors = drawer.get_params()
        assert sorted(order) == [0, 1, 2, 3]
        assert 0.5 <= factors[0] <= 1.5 and 0.5 <= factors[1] <= 1.5 and 0.5 <= factors[2] <= 1.5
        assert -0.2 <= factors[3] <= 0.2
        expected = img
        for i in order:
            expected = functions[i](expected, factors[i])
        np.testing.assert_array_equal(transform(img), expected)


def test_color_jitter_with_nothing_to_do_is_identity():
    img = photo()
    np.testing.assert_array_equal(T.ColorJitter(seed=0)(img), img)


def test_random_transforms_reject_bad_arguments():
    with pytest.raises(TypeError, match="seed"):
        T.RandomHorizontalFlip(seed="0")
    with pytest.raises(ValueError, match="probability"):
        T.RandomHorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match="hue"):
        T.ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="min <= max"):
        T.RandomRotation((20, 10))
    with pytest.raises(ValueError, match="translate"):
        T.RandomAffine(0, translate=(1.5, 0))
    with pytest.raises(ValueError, match="interpolation"):
        T.RandomRotation(10, interpolation="bicubic")


# ---------------------------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------------------------

def test_load_image_round_trips_png(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    img = photo(9, 13)
    Image.fromarray(img).save(tmp_path / "x.png")
    out = T.load_image(tmp_path / "x.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)
    Image.fromarray(img[:, :, 0]).save(tmp_path / "gray.png")
    assert T.load_image(tmp_path / "gray.png").shape == (9, 13, 3)  # converted to RGB
    np.testing.assert_array_equal(T.load_image(tmp_path / "gray.png", mode="L"), img[:, :, 0])


def test_load_image_applies_exif_orientation(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    img = photo(6, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=100)
    assert T.load_image(tmp_path / "o.jpg").shape == (10, 6, 3)


def test_load_image_without_pillow_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"convcore\[demo\]"):
        T.load_image(tmp_path / "x.png")


def test_load_image_raises_on_broken_files(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(OSError):
        T.load_image(tmp_path / "text.jpg")


# ---------------------------------------------------------------------------------------------------------------
# bundled data and presets
# ---------------------------------------------------------------------------------------------------------------

def test_imagenet_categories():
    from convcore import data

    names = data.imagenet_categories()
    assert len(names) == 1000 and len(set(names)) == 1000  # torchvision's list disambiguates 'crane' and 'maillot'
    assert (names[0], names[281], names[967], names[999]) == ("tench", "tabby", "espresso", "toilet tissue")


def test_bundled_photos_are_small_and_decodable():
    import os

    from convcore import data

    pytest.importorskip("PIL")
    paths = data.sample_images()
    assert [os.path.basename(p) for p in paths] == sorted(data.SAMPLE_CONTENTS)
    for path in paths:
        assert os.path.getsize(path) < 60_000
        img = T.load_image(path)
        assert img.ndim == 3 and img.shape[2] == 3 and max(img.shape[:2]) <= 320


def test_presets():
    from convcore import data

    lite = data.get_preset("efficientnet_lite0")
    assert (lite.resize, lite.crop, lite.interpolation) == (256, 224, "bicubic")
    np.testing.assert_allclose(np.array(lite.mean) * 255, 127)  # TF Lite: (x - 127) / 128 on 0..255 pixels
    np.testing.assert_allclose(np.array(lite.std) * 255, 128)
    v1, v2 = data.get_preset("resnet50"), data.get_preset("resnet50", weights="/any/dir/resnet50-11ad3fa6.pth")
    assert (v1.resize, v1.crop) == (256, 224) and (v2.resize, v2.crop) == (232, 224)  # torchvision's V1 / V2
    assert data.get_preset("efficientnet_b3").crop == 300
    # Not a torchvision model: its registered input size, which the model zoo passes (data sits below the zoo and
    # does not import it; docs/architecture.md).
    from convcore import models

    assert models.get_preset("amoebanet").crop == 331
    with pytest.raises(ValueError, match="input_size"):
        data.get_preset("amoebanet")
    assert len(v1.categories) == 1000 and v1.mean == T.IMAGENET_MEAN
    x = v2(photo(300, 400))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert math.isclose(float(x.mean()), float(v2.transform()(photo(300, 400)).mean()))


def test_preset_builds_its_pipeline_once(monkeypatch):
    from convcore import data

    preset = data.get_preset("resnet50")
    built = []
    original = data.Preset.transform
    monkeypatch.setattr(data.Preset, "transform", lambda self: built.append(1) or original(self))
    for _ in range(3):
        assert preset(photo(40, 50), warn=False).shape == (3, 224, 224)  # small on purpose: quick
    assert len(built) == 1
