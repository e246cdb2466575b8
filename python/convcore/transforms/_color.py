"""Colour transforms: brightness, contrast, saturation, hue and grayscale, computed as torchvision does."""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import check_image, restore_2d


def _check_color_image(img):
    img, was_2d = check_image(img)
    if img.shape[2] not in (1, 3):
        raise ValueError(f"expected an RGB (3 channels) or grayscale image (got {img.shape[2]} channels)")
    return img, was_2d


def _blend(img, other, ratio):
    """ratio * img + (1 - ratio) * other, clipped to the dtype's range (uint8 truncates, as torch's .to(uint8))."""
    bound = 255.0 if img.dtype == np.uint8 else 1.0
    out = img.astype(np.float32) * np.float32(ratio) + other * np.float32(1.0 - ratio)
    out = np.clip(out, 0.0, bound)
    return out.astype(np.uint8) if img.dtype == np.uint8 else out.astype(img.dtype, copy=False)


def rgb_to_grayscale(img):
    """Luma 0.2989 R + 0.587 G + 0.114 B of an HWC RGB image, as float32 (H, W, 1)."""
    img, _ = _check_color_image(img)
    x = img.astype(np.float32)
    if img.shape[2] == 1:
        return x
    return (x[..., 0] * np.float32(0.2989) + x[..., 1] * np.float32(0.587) + x[..., 2] * np.float32(0.114))[..., None]


def _check_factor(value, name):
    if not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(f"expected a non-negative {name} (got {value!r})")
    return float(value)


def adjust_brightness(img, factor):
    """Multiply intensities by `factor` (0: black, 1: unchanged), clipped. HWC / HW, uint8 or float in [0, 1]."""
    factor = _check_factor(factor, "brightness factor")
    img, was_2d = _check_color_image(img)
    return restore_2d(_blend(img, np.float32(0), factor), was_2d)


def adjust_contrast(img, factor):
    """Blend with the mean gray level (0: flat gray, 1: unchanged). HWC / HW, uint8 or float in [0, 1]."""
    factor = _check_factor(factor, "contrast factor")
    img, was_2d = _check_color_image(img)
    gray = rgb_to_grayscale(img)
    if img.dtype == np.uint8 and img.shape[2] == 3:
        gray = np.floor(gray)
    return restore_2d(_blend(img, np.float32(gray.mean(dtype=np.float32)), factor), was_2d)


def adjust_saturation(img, factor):
    """Blend with the grayscale image (0: gray, 1: unchanged, 2: doubled). HWC RGB, uint8 or float in [0, 1]."""
    factor = _check_factor(factor, "saturation factor")
    img, was_2d = _check_color_image(img)
    if img.shape[2] == 1:
        return restore_2d(img, was_2d)
    gray = rgb_to_grayscale(img)
    if img.dtype == np.uint8:
        gray = np.floor(gray)
    return restore_2d(_blend(img, gray, factor), was_2d)


def _rgb_to_hsv(rgb):
    """float RGB in [0, 1] (..., 3) -> HSV with hue in [0, 1)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc, minc = rgb.max(axis=-1), rgb.min(axis=-1)
    span = maxc - minc
    gray = span == 0
    s = span / np.where(gray, 1, maxc)
    span = np.where(gray, 1, span)
    rc, gc, bc = (maxc - r) / span, (maxc - g) / span, (maxc - b) / span
    h = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(gray, 0, h)
    return np.stack([np.mod(h / 6.0 + 1.0, 1.0), s, maxc], axis=-1)


def _hsv_to_rgb(hsv):
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int64) % 6
    p = np.clip(v * (1 - s), 0, 1)
    q = np.clip(v * (1 - s * f), 0, 1)
    t = np.clip(v * (1 - s * (1 - f)), 0, 1)
    choices = np.stack([v, p, q, t], axis=-1)
    # which of (v, p, q, t) each channel takes in each of the six hue sectors
    select = np.array([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]])
    return np.stack([np.take_along_axis(choices, select[c][i][..., None], axis=-1)[..., 0] for c in range(3)],
                    axis=-1)


def adjust_hue(img, factor):
    """Shift the hue by `factor` turns, in [-0.5, 0.5] (0: unchanged). HWC RGB, uint8 or float in [0, 1]."""
    if not isinstance(factor, numbers.Real) or not -0.5 <= factor <= 0.5:
        raise ValueError(f"expected a hue factor in [-0.5, 0.5] (got {factor!r})")
    img, was_2d = _check_color_image(img)
    if img.shape[2] == 1 or img.size == 0:
        return restore_2d(img, was_2d)
    x = img.astype(np.float32) * np.float32(1 / 255) if img.dtype == np.uint8 else img.astype(np.float32)
    hsv = _rgb_to_hsv(x)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(factor), 1.0)
    out = _hsv_to_rgb(hsv)
    if img.dtype == np.uint8:
        # torchvision's float -> uint8: scale by 256 - 1e-3 and truncate
        return restore_2d((out * np.float32(255 + 1.0 - 1e-3)).astype(np.uint8), was_2d)
    return restore_2d(out.astype(img.dtype, copy=False), was_2d)
