"""Decoding what cameras and tools write: 16-bit greyscale and RGB PNGs, float TIFFs, palette PNGs, CMYK JPEGs and
EXIF orientation come out as the 8-bit RGB they show; an image far below a model's input size is classified with a
warning."""

import struct
import warnings
import zlib

import numpy as np
import pytest

from convcore import data
from convcore import transforms as T

Image = pytest.importorskip("PIL.Image")


def _png16(path, array, color_type):
    """A 16-bit PNG written by hand (Pillow writes 16-bit greyscale, not 16-bit RGB)."""
    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 48).round().astype(np.uint16).reshape(32, 48)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")  # Pillow: mode I;16
    _png16(tmp_path / "ramp_raw.png", ramp, 0)
    expected = np.clip(ramp / 257 + 0.5, 0, 255).astype(np.uint8)
    for name in ("ramp.png", "ramp_raw.png"):
        rgb = T.load_image(tmp_path / name)
        assert rgb.shape == (32, 48, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb[..., 0], expected)
        np.testing.assert_array_equal(T.load_image(tmp_path / name, mode="L"), expected)
    assert 120 < T.load_image(tmp_path / "ramp.png").mean() < 135  # not nearly white (it was 254.5)


def test_16_bit_rgb_and_float_images(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[...] = (65535, 32896, 257)
    _png16(tmp_path / "rgb16.png", rgb, 2)
    assert T.load_image(tmp_path / "rgb16.png")[0, 0].tolist() == [255, 128, 1]
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(values).save(tmp_path / "float.tif")  # mode F in [0, 1]
    np.testing.assert_array_equal(T.load_image(tmp_path / "float.tif", mode="L"),
                                  np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8))


def test_palette_cmyk_and_orientation(tmp_path):
    rng = np.random.default_rng(0)
    colours = np.array([[200, 30, 40], [10, 220, 90], [250, 250, 0]], np.uint8)
    picture = colours[rng.integers(0, 3, (20, 30))]
    Image.fromarray(picture).convert("P", palette=Image.Palette.ADAPTIVE, colors=3).save(tmp_path / "p.png")
    np.testing.assert_array_equal(T.load_image(tmp_path / "p.png"), picture)

    smooth = np.zeros((40, 60, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 180, np.linspace(0, 255, 60)[None, :], 60
    Image.fromarray(smooth).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert np.abs(T.load_image(tmp_path / "cmyk.jpg").astype(int) - smooth).mean() < 4

    tall = np.zeros((30, 10, 3), np.uint8)
    tall[:5] = 255  # white at the top as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(tall).save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    shown = T.load_image(tmp_path / "turned.jpg")
    assert shown.shape == (10, 30, 3) and shown[:, -5:].mean() > 200 and shown[:, :20].mean() < 30


def test_an_image_far_below_the_input_size_warns():
    preset = data.imagenet_preset(224)
    assert preset.too_small(np.zeros((56, 300, 3), np.uint8)) is None  # a quarter of the input: no warning
    reason = preset.too_small(np.zeros((4, 6, 3), np.uint8))
    assert reason == "a 6x4 image is far below the model's 224x224 input (magnified 56x): expect little from its " \
                     "prediction"
    with pytest.warns(data.SmallImageWarning, match="6x4 image"):
        assert preset(np.zeros((4, 6, 3), np.uint8)).shape == (3, 224, 224)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preset(np.zeros((4, 6, 3), np.uint8), warn=False)
        preset(np.zeros((64, 64, 3), np.uint8))


def test_classify_warns_about_a_tiny_image(tmp_path, capsys):
    from convcore import models
    from convcore.cli import main

    np.savez(tmp_path / "w.npz", **models.get_model("mobilenet_v2").state_dict())
    Image.new("RGB", (4, 4), (200, 0, 0)).save(tmp_path / "tiny.png")
    Image.new("RGB", (100, 80), (0, 200, 0)).save(tmp_path / "fine.png")
    status = main(["classify", str(tmp_path), "--model", "mobilenet_v2", "--weights", str(tmp_path / "w.npz")])
    out, err = capsys.readouterr()
    assert status == 0 and "2 image(s) classified, 0 skipped" in out
    assert err.count("warning") == 1
    assert f"convcore: warning: {tmp_path / 'tiny.png'}: a 4x4 image is far below the model's 224x224 input" in err
