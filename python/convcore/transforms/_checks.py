"""Argument checks shared by the transforms."""

from __future__ import annotations

import numbers

import numpy as np

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

# The largest image decoded or produced by a resize (docs/limits.md): 2**27 pixels (134 MP, 403 MB as RGB uint8), above
# 100-MP camera sensors and below Pillow's own decompression-bomb error (2 x 89.5 MP).
MAX_IMAGE_PIXELS = 2**27


def check_pixels(h, w, what):
    """Refuse an image of more than MAX_IMAGE_PIXELS pixels before anything of that size exists."""
    if h * w > MAX_IMAGE_PIXELS:
        raise ValueError(f"{what} of {w}x{h} = {w * h} pixels is larger than the {MAX_IMAGE_PIXELS} pixels "
                         "(convcore.transforms.MAX_IMAGE_PIXELS) convcore handles")


def check_image(img, name="img"):
    """Validate an HWC / HW image; return it as a 3D HWC view and whether it was 2D."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected {name} as a numpy array (got {type(img).__name__})")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected {name} as an HWC or HW array (got shape {img.shape})")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"expected {name} of dtype uint8 or float (got {img.dtype})")
    return (img[:, :, None], True) if img.ndim == 2 else (img, False)


def restore_2d(out, was_2d):
    """Undo `check_image`'s HW -> HWC view on a result."""
    return out[:, :, 0] if was_2d else out


def size_pair(size, name):
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


def check_interpolation(value):
    if value not in INTERPOLATIONS:
        raise ValueError(f"expected interpolation in {INTERPOLATIONS} (got {value!r})")
    return value


def value_range(value, name, center=0.0, bound=None):
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


def rng_from_seed(seed):
    """seed: None, an int or a numpy Generator -> a Generator (a passed Generator is shared, not copied)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"expected seed as None, an int or a numpy.random.Generator (got {type(seed).__name__})")


def to_dtype(out, dtype):
    """Float result -> the input's dtype: uint8 is rounded half to even and clipped (torchvision's `round_()`)."""
    if dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(dtype, copy=False)
