"""Image transforms in numpy, with torchvision semantics: decode, resize, crop, normalize and augment.

Images are numpy arrays. Before `ToTensor` they are HWC (height, width, channels; or HW for grayscale), either uint8
in [0, 255] or float in [0, 1]; `ToTensor` turns them into CHW float32 in [0, 1], which `Normalize` expects. Every
geometric transform (`Resize`, `CenterCrop`, `RandomResizedCrop`, `RandomRotation`, `RandomAffine`,
`RandomHorizontalFlip`) and `ColorJitter` works on HWC / HW arrays and keeps the dtype (uint8 results are rounded
as torchvision rounds them).

The results match `torchvision.transforms.v2.functional` on tensors: resize with and without antialiasing (the
PIL-style filter torchvision uses), center crop (with its zero padding), rotation and affine warps (nearest and
bilinear sampling, fill colors, `expand`), color adjustments and the random parameter draws (`RandomResizedCrop`'s
ten tries, `ColorJitter`'s random order). Random transforms take `seed` (an int, None or a `numpy.random.Generator`)
so a pipeline is reproducible.

Only `load_image` needs Pillow (the ``demo`` extra: ``pip install 'convcore[demo]'``); everything else is numpy.

Example:
    >>> from convcore import transforms as T
    >>> preprocess = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
    ...                         T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])
    >>> x = preprocess(T.load_image("cat.jpg"))       # (3, 224, 224) float32
    >>> augment = T.Compose([T.RandomResizedCrop(224, seed=0), T.RandomHorizontalFlip(seed=1),
    ...                      T.ColorJitter(0.4, 0.4, 0.4, 0.1, seed=2), T.ToTensor()])
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "load_image", "resize", "center_crop", "crop", "hflip", "rotate",
           "affine", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "rgb_to_grayscale",
           "Compose", "Resize", "CenterCrop", "ToTensor", "Normalize", "RandomResizedCrop", "RandomRotation",
           "RandomAffine", "RandomHorizontalFlip", "ColorJitter"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


# ----------------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------------

def _check_image(img, name="img"):
    """Validate an HWC / HW image; return it as a 3D HWC view and whether it was 2D."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected {name} as a numpy array (got {type(img).__name__})")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected {name} as an HWC or HW array (got shape {img.shape})")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"expected {name} of dtype uint8 or float (got {img.dtype})")
    return (img[:, :, None], True) if img.ndim == 2 else (img, False)


def _restore(out, was_2d):
    return out[:, :, 0] if was_2d else out


def _size_pair(size, name):
    """An int or a (h, w) pair of positive ints -> (h, w)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 1:
        size = (int(size[0]), int(size[0]))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"expected {name} as an int or a pair of ints (got {size!r})")
    if min(size) < 1:
        raise ValueError(f"expected positive sizes in {name} (got {tuple(size)})")
    return int(size[0]), int(size[1])


def _interpolation(value):
    if value not in _INTERPOLATIONS:
        raise ValueError(f"expected interpolation in {_INTERPOLATIONS} (got {value!r})")
    return value


def _range(value, name, center=0.0, bound=None):
    """A number v -> (center - v, center + v); a pair -> itself. Both checked against `bound` (lo, hi)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"expected a non-negative {name} (got {value})")
        lo, hi = center - float(value), center + float(value)
        if bound is not None:
            lo = max(lo, bound[0])
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, numbers.Real) for v in value):
        lo, hi = float(value[0]), float(value[1])
        if lo > hi:
            raise ValueError(f"expected {name} as (min, max) with min <= max (got {tuple(value)})")
    else:
        raise TypeError(f"expected {name} as a number or a (min, max) pair (got {value!r})")
    if bound is not None and not (bound[0] <= lo and hi <= bound[1]):
        raise ValueError(f"expected {name} within [{bound[0]}, {bound[1]}] (got ({lo}, {hi}))")
    return lo, hi


def _generator(seed):
    """seed: None, an int or a numpy Generator -> a Generator (a passed Generator is shared, not copied)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"expected seed as None, an int or a numpy.random.Generator (got {type(seed).__name__})")


def _to_dtype(out, dtype):
    """Float result -> the input's dtype: uint8 is rounded half to even and clipped (torchvision's `round_()`)."""
    if dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Resize
# ----------------------------------------------------------------------------------------------------------------

def _output_size(h, w, size, max_size=None):
    """torchvision's rule: an int is the shorter side (the longer one is truncated), a pair is (h, w)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) or (
            isinstance(size, (tuple, list)) and len(size) == 1):
        short_req = int(size if isinstance(size, numbers.Integral) else size[0])
        if short_req < 1:
            raise ValueError(f"expected a positive size (got {short_req})")
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = short_req, int(short_req * long / short)
        if max_size is not None:
            if max_size <= short_req:
                raise ValueError(f"expected max_size > size (got max_size={max_size}, size={short_req})")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if max_size is not None:
        raise ValueError("expected max_size only with an int size (the shorter side)")
    return _size_pair(size, "size")


def _cubic(x, a):
    """Keys' cubic convolution kernel with parameter a (PIL and antialiased torch: -0.5; plain torch: -0.75)."""
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _resize_weights(in_size, out_size, interpolation, antialias):
    """Source indices and weights, each (out_size, taps), of a 1D resize with torch's upsample semantics."""
    scale = in_size / out_size
    dst = np.arange(out_size, dtype=np.float64)
    if interpolation == "nearest":
        # torch 'nearest': floor(dst * scale) computed in float32
        src = np.floor(dst.astype(np.float32) * np.float32(scale)).astype(np.int64)
        return np.minimum(src, in_size - 1)[:, None], np.ones((out_size, 1))
    if antialias:
        # PIL / torch _upsample_*_aa: the filter is stretched by the scale when shrinking, weights renormalized
        support = (1.0 if interpolation == "bilinear" else 2.0) * max(scale, 1.0)
        invscale = 1.0 / scale if scale >= 1.0 else 1.0
        center = scale * (dst + 0.5)
        xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
        xmax = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
        taps = int((xmax - xmin).max())
        idx = xmin[:, None] + np.arange(taps)
        x = (idx - center[:, None] + 0.5) * invscale
        w = np.clip(1.0 - np.abs(x), 0.0, None) if interpolation == "bilinear" else _cubic(x, -0.5)
        w = np.where(idx < xmax[:, None], w, 0.0)
        w /= w.sum(axis=1, keepdims=True)
        return np.minimum(idx, in_size - 1), w
    src = scale * (dst + 0.5) - 0.5  # align_corners=False
    if interpolation == "bilinear":
        src = np.maximum(src, 0.0)
        i0 = np.floor(src).astype(np.int64)
        frac = src - i0
        idx = np.stack([i0, np.minimum(i0 + 1, in_size - 1)], axis=1)
        return np.minimum(idx, in_size - 1), np.stack([1.0 - frac, frac], axis=1)
    i0 = np.floor(src).astype(np.int64)
    t = (src - i0)[:, None]
    offsets = np.arange(-1, 3)
    return np.clip(i0[:, None] + offsets, 0, in_size - 1), _cubic(t - offsets, -0.75)


def _resample(img, idx, w, axis):
    """Weighted sum over the taps along `axis`: one gather per tap, vectorized over all pixels.

    uint8 is converted tap by tap, so a large photo is never held as a whole float copy.
    """
    shape = [1, 1, 1]
    shape[axis] = -1
    out = None
    for k in range(idx.shape[1]):
        tap = np.take(img, idx[:, k], axis=axis)
        term = (tap.astype(np.float32) if tap.dtype == np.uint8 else tap) * w[:, k].astype(np.float32).reshape(shape)
        out = term if out is None else out + term
    return out


def resize(img, size, interpolation="bilinear", antialias=True, max_size=None):
    """Resize an HWC / HW image like `torchvision.transforms.v2.functional.resize` on a tensor.

    Args:
        img: HWC or HW array, uint8 or float.
        size: int (the shorter side becomes `size`, the longer one keeps the aspect ratio, truncated) or (h, w).
        interpolation: 'bilinear' (default), 'bicubic' or 'nearest'.
        antialias: low-pass filter when shrinking (PIL's and torchvision's default); ignored for 'nearest'.
        max_size: with an int `size`, the longer side's cap.

    Returns:
        The resized array, same dtype (uint8 rounded and clipped).

    Shape:
        (H, W, C) -> (h, w, C); (H, W) -> (h, w).

    Example:
        >>> resize(np.zeros((300, 451, 3), np.uint8), 256).shape
        (256, 384, 3)
    """
    img, was_2d = _check_image(img)
    interpolation = _interpolation(interpolation)
    h, w = img.shape[:2]
    oh, ow = _output_size(h, w, size, max_size)
    if (oh, ow) == (h, w):
        return _restore(img, was_2d)
    if interpolation == "nearest":
        rows, _ = _resize_weights(h, oh, "nearest", False)
        cols, _ = _resize_weights(w, ow, "nearest", False)
        return _restore(img[rows[:, 0]][:, cols[:, 0]], was_2d)
    x = img
    # width first, then height (torch's and PIL's order); bicubic uint8 is rounded and clipped between the passes,
    # as their uint8 kernels do: the clip cuts the first pass's overshoot
    if ow != w:
        x = _resample(x, *_resize_weights(w, ow, interpolation, antialias), axis=1)
        if img.dtype == np.uint8 and interpolation == "bicubic":
            x = np.clip(np.rint(x), 0, 255)
    if oh != h:
        x = _resample(x, *_resize_weights(h, oh, interpolation, antialias), axis=0)
    return _restore(_to_dtype(x, img.dtype), was_2d)


# ----------------------------------------------------------------------------------------------------------------
# Crops and flips
# ----------------------------------------------------------------------------------------------------------------

def crop(img, top, left, height, width):
    """Crop ``img[top:top + height, left:left + width]`` (a view); the box must lie inside the image.

    Shape:
        (H, W, C) -> (height, width, C); (H, W) -> (height, width).
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise TypeError(f"expected img as an HWC or HW numpy array (got {getattr(img, 'shape', type(img).__name__)})")
    h, w = img.shape[:2]
    if not (0 <= top and 0 <= left and height >= 1 and width >= 1 and top + height <= h and left + width <= w):
        raise ValueError(f"expected a crop box inside the {h}x{w} image (got top={top}, left={left}, "
                         f"height={height}, width={width})")
    return img[top:top + height, left:left + width]


def center_crop(img, size):
    """Crop the center of an HWC / HW image like torchvision: a box larger than the image is zero-padded first.

    Args:
        img: HWC or HW array, any dtype.
        size: int (square) or (h, w).

    Shape:
        (H, W, C) -> (h, w, C); (H, W) -> (h, w).

    Example:
        >>> center_crop(np.zeros((256, 384, 3), np.uint8), 224).shape
        (224, 224, 3)
    """
    img, was_2d = _check_image(img)
    ch, cw = _size_pair(size, "size")
    h, w = img.shape[:2]
    if ch > h or cw > w:
        pad_top, pad_left = max(ch - h, 0) // 2, max(cw - w, 0) // 2
        pad_bottom, pad_right = max(ch - h, 0) - pad_top, max(cw - w, 0) - pad_left
        img = np.pad(img, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
        h, w = img.shape[:2]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return _restore(img[top:top + ch, left:left + cw], was_2d)


def hflip(img):
    """Mirror an HWC / HW image left to right (a view)."""
    img, was_2d = _check_image(img)
    return _restore(img[:, ::-1], was_2d)


# ----------------------------------------------------------------------------------------------------------------
# Rotation and affine warps
# ----------------------------------------------------------------------------------------------------------------

def _inverse_affine_matrix(center, angle, translate, scale, shear):
    """Output -> input pixel map, in coordinates centered on the image (torchvision's `_get_inverse_affine_matrix`).

    The forward map is T * C * R(angle) S(scale) SHy SHx * C^-1 (angle and shears in degrees).
    """
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    # the rotation-shear part has determinant 1, so its inverse is [[d, -b], [-c, a]]
    m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty)
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty)
    return m


def _expanded_size(m, w, h):
    """Output (w, h) that holds the whole warped image (torchvision's `_compute_affine_output_size`)."""
    pts = np.array([[-0.5 * w, -0.5 * h], [-0.5 * w, 0.5 * h], [0.5 * w, 0.5 * h], [0.5 * w, -0.5 * h]])
    theta = np.array(m, dtype=np.float32).reshape(2, 3)
    new = (pts @ theta[:, :2].T + theta[:, 2]).astype(np.float32) + np.array([0.5 * w, 0.5 * h], np.float32)
    # truncate to 1e-4 first so that 224.00000001 does not become 225
    hi = np.ceil(np.trunc(new.max(axis=0) * 1e4) * 1e-4)
    lo = np.floor(np.trunc(new.min(axis=0) * 1e4) * 1e-4)
    size = hi - lo
    return int(size[0]), int(size[1])


def _fill_values(fill, channels):
    if fill is None:
        return None
    values = np.atleast_1d(np.asarray(fill, dtype=np.float32))
    if values.ndim != 1 or values.size not in (1, channels):
        raise ValueError(f"expected fill as a number or {channels} numbers (got {fill!r})")
    return values


def _warp(img, m, out_hw, interpolation, fill):
    """Sample img (H, W, C) at m(output pixel) like torch grid_sample(align_corners=False, zeros padding)."""
    h, w, channels = img.shape
    oh, ow = out_hw
    fill = _fill_values(fill, channels)
    # pixel centers relative to the output center, mapped and shifted to input pixel indices (float32 like torch)
    x = (np.arange(ow, dtype=np.float32) + np.float32((1 - ow) * 0.5))[None, :]
    y = (np.arange(oh, dtype=np.float32) + np.float32((1 - oh) * 0.5))[:, None]
    t = np.array(m, dtype=np.float32)
    gx = (x * (t[0] / np.float32(0.5 * w)) + y * (t[1] / np.float32(0.5 * w)) + t[2] / np.float32(0.5 * w))
    gy = (x * (t[3] / np.float32(0.5 * h)) + y * (t[4] / np.float32(0.5 * h)) + t[5] / np.float32(0.5 * h))
    px = ((gx + 1) * w - 1) / 2
    py = ((gy + 1) * h - 1) / 2
    src = img.astype(np.float32)
    if interpolation == "nearest":
        ix, iy = np.rint(px).astype(np.int64), np.rint(py).astype(np.int64)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        out = np.where(inside[..., None], src[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)], 0.0)
        if fill is not None:
            out = np.where(inside[..., None], out, fill)
    else:
        x0, y0 = np.floor(px), np.floor(py)
        out = np.zeros((oh, ow, channels), np.float32)
        mask = np.zeros((oh, ow, 1), np.float32)
        for dy in (0, 1):
            for dx in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                weight = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi))
                weight = np.where((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h), weight, 0).astype(np.float32)
                xi = np.clip(xi, 0, w - 1).astype(np.int64)
                yi = np.clip(yi, 0, h - 1).astype(np.int64)
                out += src[yi, xi] * weight[..., None]
                mask += weight[..., None]
        if fill is not None:
            out = (out - fill) * mask + fill
    if img.dtype == np.uint8:
        return _to_dtype(out, np.uint8)
    return out.astype(img.dtype, copy=False)


def _check_warp_args(interpolation, center):
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"expected interpolation 'nearest' or 'bilinear' (got {interpolation!r})")
    if center is not None and (not isinstance(center, (tuple, list)) or len(center) != 2):
        raise TypeError(f"expected center as an (x, y) pair (got {center!r})")


def rotate(img, angle, interpolation="nearest", expand=False, center=None, fill=None):
    """Rotate an HWC / HW image counter-clockwise by `angle` degrees, like torchvision's `rotate` on a tensor.

    Multiples of 90 degrees about the default center are exact transposes (square images, or with `expand`).

    Args:
        img: HWC or HW array, uint8 or float.
        angle: degrees, counter-clockwise.
        interpolation: 'nearest' (default) or 'bilinear'.
        expand: grow the output to hold the whole rotated image (otherwise it keeps the input size).
        center: (x, y) pixel coordinates of the pivot; default the image center.
        fill: value (or one per channel) for the area outside the image; None: zeros (uint8 is rounded).

    Shape:
        (H, W, C) -> (H, W, C), or the expanded size with `expand`.

    Example:
        >>> img = np.arange(12, dtype=np.uint8).reshape(3, 4)
        >>> np.array_equal(rotate(img, 90, expand=True), np.rot90(img))
        True
    """
    img, was_2d = _check_image(img)
    _check_warp_args(interpolation, center)
    angle = float(angle) % 360
    h, w = img.shape[:2]
    if center is None:
        # exact transposes, as torchvision's fast path
        if angle == 0:
            return _restore(img.copy(), was_2d)
        if angle == 180:
            return _restore(np.rot90(img, 2).copy(), was_2d)
        if (expand or h == w) and angle in (90, 270):
            return _restore(np.rot90(img, 1 if angle == 90 else 3).copy(), was_2d)
    center_f = [0.0, 0.0] if center is None else [center[0] - w * 0.5, center[1] - h * 0.5]
    m = _inverse_affine_matrix(center_f, -angle, (0.0, 0.0), 1.0, (0.0, 0.0))
    ow, oh = _expanded_size(m, w, h) if expand else (w, h)
    return _restore(_warp(img, m, (oh, ow), interpolation, fill), was_2d)


def affine(img, angle=0.0, translate=(0, 0), scale=1.0, shear=(0.0, 0.0), interpolation="nearest", fill=None,
           center=None):
    """Affine warp of an HWC / HW image about its center, like torchvision's `affine` on a tensor.

    Note torchvision's convention, kept here: `affine`'s angle turns clockwise, `rotate`'s counter-clockwise.

    Args:
        img: HWC or HW array, uint8 or float.
        angle: rotation in degrees, clockwise.
        translate: (dx, dy) in pixels, applied after the rotation, scale and shear.
        scale: zoom factor (> 0).
        shear: degrees, a number (x shear) or (x, y).
        interpolation: 'nearest' (default) or 'bilinear'.
        fill: value (or one per channel) for the area outside the image; None: zeros.
        center: (x, y) pixel coordinates of the pivot; default the image center.

    Shape:
        (H, W, C) -> (H, W, C); (H, W) -> (H, W).

    Example:
        >>> affine(np.ones((32, 32, 3), np.float32), angle=10, scale=1.2, shear=5).shape
        (32, 32, 3)
    """
    img, was_2d = _check_image(img)
    _check_warp_args(interpolation, center)
    if not scale > 0:
        raise ValueError(f"expected a positive scale (got {scale})")
    shear = (float(shear), 0.0) if isinstance(shear, numbers.Real) else tuple(float(s) for s in shear)
    if len(shear) == 1:
        shear = (shear[0], 0.0)
    if len(shear) != 2 or len(translate) != 2:
        raise ValueError(f"expected shear and translate as pairs (got shear={shear}, translate={translate})")
    h, w = img.shape[:2]
    center_f = [0.0, 0.0] if center is None else [center[0] - w * 0.5, center[1] - h * 0.5]
    m = _inverse_affine_matrix(center_f, float(angle), [float(t) for t in translate], float(scale), shear)
    return _restore(_warp(img, m, (h, w), interpolation, fill), was_2d)


# ----------------------------------------------------------------------------------------------------------------
# Color
# ----------------------------------------------------------------------------------------------------------------

def _check_color_image(img):
    img, was_2d = _check_image(img)
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
    return _restore(_blend(img, np.float32(0), factor), was_2d)


def adjust_contrast(img, factor):
    """Blend with the mean gray level (0: flat gray, 1: unchanged). HWC / HW, uint8 or float in [0, 1]."""
    factor = _check_factor(factor, "contrast factor")
    img, was_2d = _check_color_image(img)
    gray = rgb_to_grayscale(img)
    if img.dtype == np.uint8 and img.shape[2] == 3:
        gray = np.floor(gray)
    return _restore(_blend(img, np.float32(gray.mean(dtype=np.float32)), factor), was_2d)


def adjust_saturation(img, factor):
    """Blend with the grayscale image (0: gray, 1: unchanged, 2: doubled). HWC RGB, uint8 or float in [0, 1]."""
    factor = _check_factor(factor, "saturation factor")
    img, was_2d = _check_color_image(img)
    if img.shape[2] == 1:
        return _restore(img, was_2d)
    gray = rgb_to_grayscale(img)
    if img.dtype == np.uint8:
        gray = np.floor(gray)
    return _restore(_blend(img, gray, factor), was_2d)


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
        return _restore(img, was_2d)
    x = img.astype(np.float32) * np.float32(1 / 255) if img.dtype == np.uint8 else img.astype(np.float32)
    hsv = _rgb_to_hsv(x)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(factor), 1.0)
    out = _hsv_to_rgb(hsv)
    if img.dtype == np.uint8:
        # torchvision's float -> uint8: scale by 256 - 1e-3 and truncate
        return _restore((out * np.float32(255 + 1.0 - 1e-3)).astype(np.uint8), was_2d)
    return _restore(out.astype(img.dtype, copy=False), was_2d)


# ----------------------------------------------------------------------------------------------------------------
# Transform classes
# ----------------------------------------------------------------------------------------------------------------

class Compose:
    """Chain transforms: ``Compose([a, b])(img) == b(a(img))``.

    Example:
        >>> Compose([Resize(256), CenterCrop(224), ToTensor()])(np.zeros((300, 400, 3), np.uint8)).shape
        (3, 224, 224)
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"expected callable transforms (got {type(t).__name__})")
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Resize:
    """Resize an HWC / HW image (see `resize`): an int is the shorter side, (h, w) is exact.

    Args:
        size: int or (h, w).
        interpolation: 'bilinear' (default), 'bicubic' or 'nearest'.
        antialias: low-pass filter when shrinking (default True, as torchvision).
        max_size: with an int size, the longer side's cap.

    Shape:
        (H, W, C) -> (h, w, C).

    Example:
        >>> Resize(256)(np.zeros((300, 451, 3), np.uint8)).shape
        (256, 384, 3)
    """

    def __init__(self, size, interpolation="bilinear", antialias=True, max_size=None):
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            _size_pair(size, "size")
        else:
            size = _size_pair(size, "size")
        self.size = size
        self.interpolation = _interpolation(interpolation)
        self.antialias = bool(antialias)
        self.max_size = max_size

    def __call__(self, img):
        return resize(img, self.size, self.interpolation, self.antialias, self.max_size)

    def __repr__(self):
        return f"Resize(size={self.size}, interpolation={self.interpolation!r}, antialias={self.antialias})"


class CenterCrop:
    """Crop the center (see `center_crop`; zero-padded when the image is smaller). HWC / HW arrays.

    Args:
        size: int (square) or (h, w).

    Shape:
        (H, W, C) -> (h, w, C).
    """

    def __init__(self, size):
        self.size = _size_pair(size, "size")

    def __call__(self, img):
        return center_crop(img, self.size)

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class ToTensor:
    """HWC image -> CHW float32: uint8 is divided by 255 (to [0, 1]), float is only transposed (and cast).

    Shape:
        (H, W, C) -> (C, H, W); (H, W) -> (1, H, W).

    Example:
        >>> ToTensor()(np.full((2, 2, 3), 255, np.uint8))[:, 0, 0]
        array([1., 1., 1.], dtype=float32)
    """

    def __call__(self, img):
        img, _ = _check_image(img)
        chw = np.ascontiguousarray(img.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            return chw.astype(np.float32) / np.float32(255)
        return chw.astype(np.float32, copy=False)

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """``(x - mean) / std`` per channel of a CHW (or NCHW) float array, as torchvision's Normalize (after ToTensor).

    Args:
        mean: one value per channel (or one for all).
        std: one value per channel (or one for all), non-zero.

    Shape:
        (C, H, W) -> (C, H, W); (N, C, H, W) -> (N, C, H, W).

    Example:
        >>> Normalize(IMAGENET_MEAN, IMAGENET_STD)(np.zeros((3, 2, 2), np.float32))[0, 0, 0]
        -2.117904
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"expected mean and std as sequences of numbers (got {mean!r}, {std!r})")
        if np.any(self.std == 0):
            raise ValueError(f"expected a non-zero std (got {std!r})")

    def __call__(self, x):
        if not isinstance(x, np.ndarray) or x.ndim not in (3, 4) or not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"expected a CHW or NCHW float array (got {getattr(x, 'dtype', type(x).__name__)} "
                            f"with shape {getattr(x, 'shape', None)}): apply ToTensor first")
        channels = x.shape[-3]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(f"expected {channels} {name} values for {channels} channels (got {values.size})")
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def __repr__(self):
        mean, std = ([round(v, 6) for v in values.tolist()] for values in (self.mean, self.std))
        return f"Normalize(mean={mean}, std={std})"


class RandomResizedCrop:
    """Crop a random area and aspect ratio, then resize it to `size` (torchvision's Inception-style crop).

    Ten tries draw an area fraction in `scale` and a log-uniform aspect ratio in `ratio`; if none fits, the center
    crop with the closest aspect ratio is taken. HWC / HW arrays.

    Args:
        size: int or (h, w) of the output.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio (width / height).
        interpolation, antialias: as `Resize`.
        seed: None, an int or a numpy Generator.

    Shape:
        (H, W, C) -> (h, w, C).

    Example:
        >>> RandomResizedCrop(224, seed=0)(np.zeros((300, 451, 3), np.uint8)).shape
        (224, 224, 3)
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation="bilinear", antialias=True,
                 seed=None):
        self.size = _size_pair(size, "size")
        self.scale = _range(scale, "scale")
        self.ratio = _range(ratio, "ratio")
        if self.scale[0] <= 0 or self.ratio[0] <= 0:
            raise ValueError(f"expected positive scale and ratio ranges (got {scale}, {ratio})")
        self.interpolation = _interpolation(interpolation)
        self.antialias = bool(antialias)
        self.rng = _generator(seed)

    def get_params(self, height, width):
        """Draw a crop box (top, left, h, w) for a height x width image."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * self.rng.uniform(*self.scale)
            aspect = math.exp(self.rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(self.rng.integers(0, height - h + 1))
                left = int(self.rng.integers(0, width - w + 1))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        _check_image(img)
        top, left, h, w = self.get_params(*img.shape[:2])
        return resize(crop(img, top, left, h, w), self.size, self.interpolation, self.antialias)

    def __repr__(self):
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror an HWC / HW image left to right with probability `p`.

    Args:
        p: flip probability.
        seed: None, an int or a numpy Generator.
    """

    def __init__(self, p=0.5, seed=None):
        if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"expected a probability p in [0, 1] (got {p!r})")
        self.p = float(p)
        self.rng = _generator(seed)

    def __call__(self, img):
        return hflip(img) if self.rng.random() < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate an HWC / HW image by an angle drawn uniformly from `degrees` (see `rotate`; counter-clockwise).

    Args:
        degrees: d (-> (-d, d)) or (min, max).
        interpolation: 'nearest' (default) or 'bilinear'.
        expand: grow the output to hold the whole rotated image.
        center: (x, y) pivot; default the image center.
        fill: value (or one per channel) outside the image (default 0, torchvision's).
        seed: None, an int or a numpy Generator.

    Shape:
        (H, W, C) -> (H, W, C), or the expanded size with `expand`.
    """

    def __init__(self, degrees, interpolation="nearest", expand=False, center=None, fill=0, seed=None):
        self.degrees = _range(degrees, "degrees")
        _check_warp_args(interpolation, center)
        self.interpolation, self.expand, self.center, self.fill = interpolation, bool(expand), center, fill
        self.rng = _generator(seed)

    def get_params(self):
        """Draw an angle in degrees."""
        return float(self.rng.uniform(*self.degrees))

    def __call__(self, img):
        return rotate(img, self.get_params(), self.interpolation, self.expand, self.center, self.fill)

    def __repr__(self):
        return f"RandomRotation(degrees={self.degrees}, interpolation={self.interpolation!r}, expand={self.expand})"


class RandomAffine:
    """Random rotation, translation, scale and shear of an HWC / HW image (see `affine`), as torchvision draws them.

    Args:
        degrees: d (-> (-d, d)) or (min, max); clockwise as in torchvision's `affine`.
        translate: (a, b): horizontal shift drawn in [-a * W, a * W], vertical in [-b * H, b * H], rounded.
        scale: (min, max) zoom factor.
        shear: s (x shear in (-s, s)), (min, max) for x, or (xmin, xmax, ymin, ymax).
        interpolation: 'nearest' (default) or 'bilinear'.
        fill: value (or one per channel) outside the image (default 0).
        center: (x, y) pivot; default the image center.
        seed: None, an int or a numpy Generator.

    Shape:
        (H, W, C) -> (H, W, C).

    Example:
        >>> RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5, seed=0)(np.zeros((32, 32, 3))).shape
        (32, 32, 3)
    """

    def __init__(self, degrees, translate=None, scale=None, shear=None, interpolation="nearest", fill=0, center=None,
                 seed=None):
        self.degrees = _range(degrees, "degrees")
        if translate is not None:
            if len(translate) != 2 or not all(0 <= t <= 1 for t in translate):
                raise ValueError(f"expected translate as two fractions in [0, 1] (got {translate!r})")
        if scale is not None:
            scale = _range(scale, "scale")
            if scale[0] <= 0:
                raise ValueError(f"expected positive scale bounds (got {scale})")
        if shear is not None:
            if isinstance(shear, (tuple, list)) and len(shear) == 4:
                shear = _range(shear[:2], "shear") + _range(shear[2:], "shear")
            else:
                shear = _range(shear, "shear")
        _check_warp_args(interpolation, center)
        self.translate, self.scale, self.shear = translate, scale, shear
        self.interpolation, self.fill, self.center = interpolation, fill, center
        self.rng = _generator(seed)

    def get_params(self, height, width):
        """Draw (angle, (tx, ty), scale, (shear_x, shear_y)) for a height x width image."""
        angle = float(self.rng.uniform(*self.degrees))
        tx = ty = 0
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * width, self.translate[1] * height
            tx = int(round(self.rng.uniform(-max_dx, max_dx)))
            ty = int(round(self.rng.uniform(-max_dy, max_dy)))
        scale = 1.0 if self.scale is None else float(self.rng.uniform(*self.scale))
        shear_x = shear_y = 0.0
        if self.shear is not None:
            shear_x = float(self.rng.uniform(self.shear[0], self.shear[1]))
            if len(self.shear) == 4:
                shear_y = float(self.rng.uniform(self.shear[2], self.shear[3]))
        return angle, (tx, ty), scale, (shear_x, shear_y)

    def __call__(self, img):
        _check_image(img)
        angle, translate, scale, shear = self.get_params(*img.shape[:2])
        return affine(img, angle, translate, scale, shear, self.interpolation, self.fill, self.center)

    def __repr__(self):
        return (f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"shear={self.shear})")


class ColorJitter:
    """Randomly change brightness, contrast, saturation and hue, in a random order (torchvision's ColorJitter).

    HWC / HW images, uint8 or float in [0, 1]; saturation and hue leave grayscale images unchanged.

    Args:
        brightness: b (factor in [max(0, 1 - b), 1 + b]) or (min, max); 0 disables.
        contrast: as brightness.
        saturation: as brightness.
        hue: h in [0, 0.5] (shift in [-h, h] turns) or (min, max) within [-0.5, 0.5]; 0 disables.
        seed: None, an int or a numpy Generator.

    Example:
        >>> ColorJitter(0.4, 0.4, 0.4, 0.1, seed=0)(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, seed=None):
        self.brightness = self._factor_range(brightness, "brightness")
        self.contrast = self._factor_range(contrast, "contrast")
        self.saturation = self._factor_range(saturation, "saturation")
        self.hue = _range(hue, "hue", 0.0, (-0.5, 0.5))
        if self.hue == (0.0, 0.0):
            self.hue = None
        self.rng = _generator(seed)

    @staticmethod
    def _factor_range(value, name):
        lo, hi = _range(value, name, 1.0, (0.0, float("inf")))
        return None if (lo, hi) == (1.0, 1.0) else (lo, hi)

    def get_params(self):
        """Draw (order, brightness, contrast, saturation, hue): a permutation of 0..3 and the factors (None: off)."""
        order = self.rng.permutation(4)
        factors = [None if r is None else float(self.rng.uniform(*r))
                   for r in (self.brightness, self.contrast, self.saturation, self.hue)]
        return (order, *factors)

    def __call__(self, img):
        order, *factors = self.get_params()
        functions = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        for i in order:
            if factors[i] is not None:
                img = functions[i](img, factors[i])
        return img

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, "
                f"hue={self.hue})")
