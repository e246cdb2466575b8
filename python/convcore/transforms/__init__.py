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

The package splits by concern: `_decode` (files), `_geometry` (resize, crops, flips, warps), `_color`, `_classes`
(the callable transforms); the names below are the public API.
"""

from __future__ import annotations

from ._classes import (CenterCrop, ColorJitter, Compose, Normalize, RandomAffine, RandomHorizontalFlip,
                       RandomResizedCrop, RandomRotation, Resize, ToTensor)
from ._checks import MAX_IMAGE_PIXELS
from ._color import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, rgb_to_grayscale
from ._decode import load_image
from ._geometry import affine, center_crop, crop, hflip, resize, resized_center_crop, rotate

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MAX_IMAGE_PIXELS", "load_image", "resize", "resized_center_crop",
           "center_crop", "crop", "hflip", "rotate",
           "affine", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "rgb_to_grayscale",
           "Compose", "Resize", "CenterCrop", "ToTensor", "Normalize", "RandomResizedCrop", "RandomRotation",
           "RandomAffine", "RandomHorizontalFlip", "ColorJitter"]
