"""Geometric transforms: resize (torch's antialiased and plain filters), crops, flips, rotation and affine warps."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import check_image, check_interpolation, check_pixels, restore_2d, size_pair, to_dtype


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
    return size_pair(size, "size")


def _cubic(x, a):
    """Keys' cubic convolution kernel with parameter a (PIL and antialiased torch: -0.5; plain torch: -0.75)."""
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _resize_weights(in_size, out_size, interpolation, antialias, start=0, count=None):
    """Source indices and weights, each (count, taps), of output samples [start, start + count) (default: all
    out_size) of a 1D resize with torch's upsample semantics. Each sample's weights depend only on its index: a
    window of the output gets the same values as the whole (taps past a sample's support weigh exactly 0)."""
    scale = in_size / out_size
    dst = np.arange(start, start + (out_size if count is None else count), dtype=np.float64)
    if interpolation == "nearest":
        # torch 'nearest': floor(dst * scale) computed in float32
        src = np.floor(dst.astype(np.float32) * np.float32(scale)).astype(np.int64)
        return np.minimum(src, in_size - 1)[:, None], np.ones((dst.size, 1))
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
    img, was_2d = check_image(img)
    interpolation = check_interpolation(interpolation)
    h, w = img.shape[:2]
    oh, ow = _output_size(h, w, size, max_size)
    if (oh, ow) == (h, w):
        return restore_2d(img, was_2d)
    check_pixels(oh, ow, "resize: the output")
    if interpolation == "nearest":
        rows, _ = _resize_weights(h, oh, "nearest", False)
        cols, _ = _resize_weights(w, ow, "nearest", False)
        return restore_2d(img[rows[:, 0]][:, cols[:, 0]], was_2d)
    x = img
    # width first, then height (torch's and PIL's order); bicubic uint8 is rounded and clipped between the passes,
    # as their uint8 kernels do: the clip cuts the first pass's overshoot
    if ow != w:
        x = _resample(x, *_resize_weights(w, ow, interpolation, antialias), axis=1)
        if img.dtype == np.uint8 and interpolation == "bicubic":
            x = np.clip(np.rint(x), 0, 255)
    if oh != h:
        x = _resample(x, *_resize_weights(h, oh, interpolation, antialias), axis=0)
    return restore_2d(to_dtype(x, img.dtype), was_2d)


def _crop_window(size, crop):
    """(start, count, pad_before, pad_after) of a torchvision center crop of `crop` samples from `size`: the
    samples kept, and the zeros added when the crop is larger."""
    if crop > size:
        return 0, size, (crop - size) // 2, crop - size - (crop - size) // 2
    return int(round((size - crop) / 2.0)), crop, 0, 0


def resized_center_crop(img, size, crop, interpolation="bilinear", antialias=True, max_size=None):
    """``center_crop(resize(img, size, ...), crop)``, computing only the resized pixels the crop keeps.

    The same values as the two steps (each output pixel's weights depend only on its position), but the work and
    memory follow the crop and the input: a 1x2500 image resized to a shorter side of 256 would be 256x640000
    pixels, of which a 224 crop keeps 224x224. `Compose` runs a `Resize` followed by a `CenterCrop` this way.

    Shape:
        (H, W, C) -> (crop_h, crop_w, C); (H, W) -> (crop_h, crop_w).
    """
    img, was_2d = check_image(img)
    interpolation = check_interpolation(interpolation)
    ch, cw = size_pair(crop, "crop")
    h, w = img.shape[:2]
    oh, ow = _output_size(h, w, size, max_size)
    top, rows, pad_top, pad_bottom = _crop_window(oh, ch)
    left, cols, pad_left, pad_right = _crop_window(ow, cw)
    if (oh, ow) == (h, w):
        x = img[top:top + rows, left:left + cols]
    elif interpolation == "nearest":
        r, _ = _resize_weights(h, oh, "nearest", False, top, rows)
        c, _ = _resize_weights(w, ow, "nearest", False, left, cols)
        x = img[r[:, 0]][:, c[:, 0]]
    else:  # resize's two passes, each over the kept window only
        x = img
        if ow != w:
            x = _resample(x, *_resize_weights(w, ow, interpolation, antialias, left, cols), axis=1)
            if img.dtype == np.uint8 and interpolation == "bicubic":
                x = np.clip(np.rint(x), 0, 255)
        else:
            x = x[:, left:left + cols]
        if oh != h:
            x = _resample(x, *_resize_weights(h, oh, interpolation, antialias, top, rows), axis=0)
        else:
            x = x[top:top + rows]
        x = to_dtype(x, img.dtype)
    if pad_top or pad_bottom or pad_left or pad_right:
        x = np.pad(x, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
    return restore_2d(x, was_2d)


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
    img, was_2d = check_image(img)
    ch, cw = size_pair(size, "size")
    h, w = img.shape[:2]
    if ch > h or cw > w:
        pad_top, pad_left = max(ch - h, 0) // 2, max(cw - w, 0) // 2
        pad_bottom, pad_right = max(ch - h, 0) - pad_top, max(cw - w, 0) - pad_left
        img = np.pad(img, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
        h, w = img.shape[:2]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return restore_2d(img[top:top + ch, left:left + cw], was_2d)


def hflip(img):
    """Mirror an HWC / HW image left to right (a view)."""
    img, was_2d = check_image(img)
    return restore_2d(img[:, ::-1], was_2d)


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
        return to_dtype(out, np.uint8)
    return out.astype(img.dtype, copy=False)


def check_warp_args(interpolation, center):
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
    img, was_2d = check_image(img)
    check_warp_args(interpolation, center)
    angle = float(angle) % 360
    h, w = img.shape[:2]
    if center is None:
        # exact transposes, as torchvision's fast path
        if angle == 0:
            return restore_2d(img.copy(), was_2d)
        if angle == 180:
            return restore_2d(np.rot90(img, 2).copy(), was_2d)
        if (expand or h == w) and angle in (90, 270):
            return restore_2d(np.rot90(img, 1 if angle == 90 else 3).copy(), was_2d)
    center_f = [0.0, 0.0] if center is None else [center[0] - w * 0.5, center[1] - h * 0.5]
    m = _inverse_affine_matrix(center_f, -angle, (0.0, 0.0), 1.0, (0.0, 0.0))
    ow, oh = _expanded_size(m, w, h) if expand else (w, h)
    return restore_2d(_warp(img, m, (oh, ow), interpolation, fill), was_2d)


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
    img, was_2d = check_image(img)
    check_warp_args(interpolation, center)
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
    return restore_2d(_warp(img, m, (h, w), interpolation, fill), was_2d)
