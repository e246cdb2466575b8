"""The transform classes (`Compose`, `Resize`, ..., the seeded random augmentations): callables over images."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import check_image, check_interpolation, rng_from_seed, size_pair, value_range
from ._color import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation
from ._geometry import affine, center_crop, check_warp_args, crop, hflip, resize, resized_center_crop, rotate


class Compose:
    """Chain transforms: ``Compose([a, b])(img) == b(a(img))``.

    A `Resize` directly followed by a `CenterCrop` runs as one step that resizes only the part the crop keeps
    (`resized_center_crop`): the same values, with work and memory bounded by the crop rather than by the resized
    image (which, for a very long thin image, can be hundreds of megapixels).

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
        transforms, i = self.transforms, 0
        while i < len(transforms):
            t = transforms[i]
            if type(t) is Resize and i + 1 < len(transforms) and type(transforms[i + 1]) is CenterCrop:
                img = resized_center_crop(img, t.size, transforms[i + 1].size, t.interpolation, t.antialias,
                                          t.max_size)
                i += 2
            else:
                img = t(img)
                i += 1
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
            size_pair(size, "size")
        else:
            size = size_pair(size, "size")
        self.size = size
        self.interpolation = check_interpolation(interpolation)
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
        self.size = size_pair(size, "size")

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
        img, _ = check_image(img)
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
        self.size = size_pair(size, "size")
        self.scale = value_range(scale, "scale")
        self.ratio = value_range(ratio, "ratio")
        if self.scale[0] <= 0 or self.ratio[0] <= 0:
            raise ValueError(f"expected positive scale and ratio ranges (got {scale}, {ratio})")
        self.interpolation = check_interpolation(interpolation)
        self.antialias = bool(antialias)
        self.rng = rng_from_seed(seed)

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
        check_image(img)
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
        self.rng = rng_from_seed(seed)

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
        self.degrees = value_range(degrees, "degrees")
        check_warp_args(interpolation, center)
        self.interpolation, self.expand, self.center, self.fill = interpolation, bool(expand), center, fill
        self.rng = rng_from_seed(seed)

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
        self.degrees = value_range(degrees, "degrees")
        if translate is not None:
            if len(translate) != 2 or not all(0 <= t <= 1 for t in translate):
                raise ValueError(f"expected translate as two fractions in [0, 1] (got {translate!r})")
        if scale is not None:
            scale = value_range(scale, "scale")
            if scale[0] <= 0:
                raise ValueError(f"expected positive scale bounds (got {scale})")
        if shear is not None:
            if isinstance(shear, (tuple, list)) and len(shear) == 4:
                shear = value_range(shear[:2], "shear") + value_range(shear[2:], "shear")
            else:
                shear = value_range(shear, "shear")
        check_warp_args(interpolation, center)
        self.translate, self.scale, self.shear = translate, scale, shear
        self.interpolation, self.fill, self.center = interpolation, fill, center
        self.rng = rng_from_seed(seed)

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
        check_image(img)
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
        self.hue = value_range(hue, "hue", 0.0, (-0.5, 0.5))
        if self.hue == (0.0, 0.0):
            self.hue = None
        self.rng = rng_from_seed(seed)

    @staticmethod
    def _factor_range(value, name):
        lo, hi = value_range(value, name, 1.0, (0.0, float("inf")))
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
