"""Decoding image files (Pillow is imported only when an image is decoded)."""

from __future__ import annotations

import io
import os
import stat

import numpy as np

from .._optional import require
from ._checks import check_pixels

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class _OpenedFile(io.BufferedReader):
    """A file opened from its descriptor whose repr is its path, so that Pillow's messages name the file ("cannot
    identify image file 'x.jpg'"), not the descriptor."""

    def __init__(self, fd, path):
        super().__init__(io.FileIO(fd, "rb"))
        self._path = os.fsdecode(path)

    def __repr__(self):
        return repr(self._path)


def _open_regular(path):
    """Open `path` for reading if it is a regular file; a FIFO, device or folder raises ValueError at once.

    Opened non-blocking, then checked on the open descriptor: opening a FIFO with no writer would block forever,
    and checking the path before opening it would race with a file replaced in between.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise ValueError(f"{os.fsdecode(path)}: expected a regular image file (got {kind})")
        return _OpenedFile(fd, path)
    except BaseException:
        os.close(fd)
        raise


def _eight_bit(img, Image):
    """`img` with 8-bit channels. Pillow keeps 16-bit greyscale (PNG, TIFF) as mode 'I;16' / 'I' and float TIFFs as
    'F', and its conversion to RGB or L clips those values at 255 (a 16-bit photo comes out nearly white): scale them
    instead (16 bits: / 257, exactly 65535 -> 255; float: [0, 1], or [0, 255] when larger values occur). 16-bit RGB
    and grey-alpha PNGs, palette images and CMYK JPEGs are already decoded to 8 bits by Pillow."""
    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
    else:
        scale = 1 / 257  # 16-bit (I;16*, or I as older Pillow reads 16-bit PNGs)
    grey = np.clip(np.nan_to_num(values * scale) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey)


def load_image(path, mode="RGB"):
    """Decode an image file into an HWC uint8 array (Pillow needed: the ``demo`` extra).

    The EXIF orientation is applied (photos from phones come out upright) and the image is converted to `mode`: 16-bit
    greyscale and float images are scaled to 8 bits (not clipped), palette images take their colours, CMYK JPEGs are
    converted to RGB, an alpha channel is dropped (as torchvision's loaders do).

    Args:
        path: file path (str or os.PathLike) or a binary file object.
        mode: Pillow mode to convert to: 'RGB' (default, HWC with 3 channels) or 'L' (grayscale, HW).

    Returns:
        uint8 array, (H, W, 3) for 'RGB', (H, W) for 'L'.

    Raises:
        ModuleNotFoundError: Pillow is not installed (one line naming the ``demo`` extra).
        OSError: the file cannot be opened, or Pillow cannot identify or read it (missing, not an image, truncated).
        ValueError: not a regular file (a FIFO, a device, a folder: never read, so never waited on), more than
            `MAX_IMAGE_PIXELS` pixels (checked from the header, before decoding), or malformed in a way Pillow
            reports with another exception type (the original is chained).

    Example:
        >>> img = load_image("cat.jpg")
        >>> img.shape, img.dtype
        ((300, 451, 3), dtype('uint8'))
    """
    require("PIL", "decoding images")
    from PIL import Image, ImageOps
    if mode not in ("RGB", "L"):
        raise ValueError(f"expected mode 'RGB' or 'L' (got {mode!r})")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    file = _open_regular(path) if isinstance(path, (str, bytes)) else path
    try:
        with Image.open(file) as img:
            check_pixels(img.height, img.width, "image")
            img = ImageOps.exif_transpose(img)  # also forces the full decode, so truncated files fail here
            return np.asarray(_eight_bit(img, Image).convert(mode))
    except (OSError, ValueError, MemoryError):
        raise
    except Exception as exc:  # Pillow's plugins raise many types for malformed files (SyntaxError, struct.error, ...)
        raise ValueError(f"cannot decode the image: {type(exc).__name__}: {exc}") from exc
    finally:
        if file is not path:
            file.close()


def error_text(exc: BaseException) -> str:
    """The one line that says why an image could not be decoded, without the exception's class name: what the
    commands print for a skipped file and what `convcore.ray` stores in a row's ``error`` (the same text)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__
