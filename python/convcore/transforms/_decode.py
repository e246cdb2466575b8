"""Decoding image files (Pillow is imported only when an image is decoded)."""

from __future__ import annotations

import os

import numpy as np


def load_image(path, mode="RGB"):
    """Decode an image file into an HWC uint8 array (Pillow needed: the ``demo`` extra).

    The EXIF orientation is applied (photos from phones come out upright) and the image is converted to `mode`.

    Args:
        path: file path (str or os.PathLike) or a binary file object.
        mode: Pillow mode to convert to: 'RGB' (default, HWC with 3 channels) or 'L' (grayscale, HW).

    Returns:
        uint8 array, (H, W, 3) for 'RGB', (H, W) for 'L'.

    Raises:
        ImportError: Pillow is not installed.
        OSError / ValueError: the file is missing, not an image, or truncated (Pillow's errors, unchanged).

    Example:
        >>> img = load_image("cat.jpg")
        >>> img.shape, img.dtype
        ((300, 451, 3), dtype('uint8'))
    """
    try:
        from PIL import Image, ImageOps
    except ImportError:
        message = "decoding images needs Pillow: pip install 'convcore[demo]' (or: pip install Pillow)"
        raise ImportError(message) from None
    if mode not in ("RGB", "L"):
        raise ValueError(f"expected mode 'RGB' or 'L' (got {mode!r})")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)  # also forces the full decode, so truncated files fail here
        return np.asarray(img.convert(mode))
