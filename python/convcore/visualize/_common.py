"""Shared pieces of `convcore.visualize`: the model with its preprocessing, image helpers, PNG files, progress."""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from .. import data, models
from .._optional import require
from .. import transforms as T
from ..graph import Graph
from ..nn import Module

DEFAULT_MODEL = "efficientnet_lite0"
# The largest image side class models and feature visualizations optimize: their memory grows with its square (about
# 0.7 GB per image at 1024, times the batch of pictures optimized together); the jitter sampler needs 2 pixels.
MAX_SIZE = 1024


def check_side(size):
    """A requested image side as an int in [2, MAX_SIZE]; ValueError (TypeError for a non-int) otherwise."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size: expected an int image side (got {type(size).__name__} {size!r})")
    if not 2 <= size <= MAX_SIZE:
        raise ValueError(f"size: expected an image side in [2, {MAX_SIZE}] pixels (got {size})")
    return int(size)


@dataclass
class Net:
    """A model as the visualizations use it: what `GradientProgram` takes, the normalization its input expects,
    its input size and class names."""

    model: object
    mean: np.ndarray
    std: np.ndarray
    size: int
    labels: Optional[list]
    name: str
    preprocess: Optional[data.Preset] = None

    @property
    def fixed_size(self):
        """Whether the model takes only its own input size (a Graph or an imported ONNX model, traced at it)."""
        return isinstance(self.model, Graph) or isinstance(getattr(self.model, "graph", None), Graph)

    def side(self, size):
        """The image side to use for a requested `size` (None: the model's; a fixed-size model: always its own), which
        must be in [2, MAX_SIZE]."""
        if size is None:
            return self.size
        size = check_side(size)
        return self.size if self.fixed_size else size

    def normalize(self, pixels):
        """(N, 3, H, W) pixels in [0, 1] -> the network's input."""
        return ((pixels - self.mean[:, None, None]) / self.std[:, None, None]).astype(np.float32)

    def pixels(self, x):
        """The inverse of `normalize`, clipped to [0, 1]."""
        return np.clip(x * self.std[:, None, None] + self.mean[:, None, None], 0.0, 1.0)

    def load(self, image):
        """A path or HWC image -> the network's (3, size, size) input, with the model's preprocessing (resize,
        centre crop, normalization)."""
        img = T.load_image(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
        preset = self.preprocess or data.Preset(resize=int(round(self.size / 0.875)), crop=self.size,
                                                mean=tuple(map(float, self.mean)), std=tuple(map(float, self.std)))
        small = preset.too_small(img)
        if small is not None:  # a SmallImageWarning naming the file
            named = f"{os.fspath(image)}: {small}" if isinstance(image, (str, os.PathLike)) else small
            warnings.warn(named, data.SmallImageWarning, stacklevel=1)  # once per image and process
        return preset(img, warn=False)

    def class_index(self, target):
        """A class index from an int or a class name ('dumbbell'); ValueError naming close names otherwise."""
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            return int(target)
        if not isinstance(target, str):
            raise TypeError(f"target: expected a class index or name (got {type(target).__name__} {target!r})")
        if target.strip().lstrip("-").isdigit():
            return int(target)
        if not self.labels:
            raise ValueError(f"target: this model has no class names; expected a class index (got {target!r})")
        wanted = target.strip().lower().replace("_", " ")
        names = [str(n).lower() for n in self.labels]
        if wanted in names:
            return names.index(wanted)
        words = [i for i, n in enumerate(names) if re.search(rf"\b{re.escape(wanted)}\b", n)]
        if len(words) == 1:  # 'husky' -> 'Siberian husky'
            return words[0]
        import difflib

        close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.6)
        contains = [n for n in names if wanted in n][:5]
        hint = close or contains
        raise ValueError(f"target: expected one of the model's {len(names)} class names or an index in "
                         f"0..{len(names) - 1} (got {target!r})" + (f"; did you mean {', '.join(map(repr, hint))}?"
                                                                    if hint else ""))

    def class_name(self, index):
        return str(self.labels[index]) if self.labels and 0 <= index < len(self.labels) else f"class {index}"


def resolve(model: ModelLike = None, weights: Union[str, os.PathLike[str], None] = "installed") -> Net:
    """A `Net` for a zoo name (with `weights`: "installed" by default), a `LoadedModel`, an `nn.Module` (ImageNet
    normalization), a `Graph` or imported ONNX model (its input size), or an .onnx path. None: efficientnet_lite0
    with its installed pretrained weights."""
    if isinstance(model, Net):
        return model
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".onnx"):
        from .. import onnx as cc_onnx

        model = cc_onnx.load(os.fspath(model))
    if isinstance(model, str):
        model = models.load(model, weights=weights)
    if isinstance(model, models.LoadedModel):
        p = model.preprocess
        return Net(model.module, np.asarray(p.mean, np.float32), np.asarray(p.std, np.float32), p.crop,
                   list(p.categories) or None, model.name, p)
    graph = model if isinstance(model, Graph) else getattr(model, "graph", None)
    size = 224
    if isinstance(graph, Graph):
        shape = graph.shapes[graph.inputs[0]]
        size = int(shape[-1])
    elif not isinstance(model, Module):
        raise TypeError(f"model: expected a zoo name, a LoadedModel, a convcore.nn.Module, a Graph or an ONNX model "
                        f"(got {type(model).__name__})")
    labels = data.imagenet_categories()
    return Net(model, np.asarray(T.IMAGENET_MEAN, np.float32), np.asarray(T.IMAGENET_STD, np.float32), size, labels,
               type(model).__name__)


Picture = NDArray[np.uint8]
"""A uint8 RGB (H, W, 3) or grey (H, W) image."""

Pictures = dict[str, Picture]
"""What every visualization returns: file name -> picture."""

ModelLike = Union[str, "os.PathLike[str]", Module, Graph, "models.LoadedModel", Net, None]
"""What `resolve` takes: a zoo name or an .onnx path, a module, a Graph, a LoadedModel, a Net, or None (the
default model)."""

ImagesLike = Union[str, "os.PathLike[str]", NDArray[Any], Sequence[Union[str, "os.PathLike[str]", NDArray[Any]]], None]
"""Image paths, folders or HWC arrays, one or a list; None: the bundled photos."""

Folder = Union[str, "os.PathLike[str]", None]


# --- images -----------------------------------------------------------------------------------------------------

def to_uint8(img):
    """A float image in [0, 1] (HWC or HW) -> uint8."""
    return (np.clip(np.asarray(img, np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def chw_to_image(x):
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return to_uint8(np.transpose(x, (1, 2, 0)))


def normalize01(a, lo=None, hi=None):
    """Scale to [0, 1] by min and max (a constant array gives zeros)."""
    a = np.asarray(a, np.float64)
    lo = a.min() if lo is None else lo
    hi = a.max() if hi is None else hi
    return np.zeros_like(a) if hi <= lo else np.clip((a - lo) / (hi - lo), 0.0, 1.0)


# Colormaps by a few control points (matplotlib's viridis and inferno, sampled), interpolated linearly.
_MAPS = {
    "viridis": [(0.267, 0.005, 0.329), (0.283, 0.141, 0.458), (0.254, 0.265, 0.530), (0.207, 0.372, 0.553),
                (0.164, 0.471, 0.558), (0.128, 0.567, 0.551), (0.135, 0.659, 0.518), (0.267, 0.749, 0.441),
                (0.478, 0.821, 0.318), (0.741, 0.873, 0.150), (0.993, 0.906, 0.144)],
    "inferno": [(0.001, 0.000, 0.014), (0.087, 0.045, 0.225), (0.258, 0.039, 0.406), (0.416, 0.090, 0.433),
                (0.578, 0.148, 0.404), (0.735, 0.216, 0.330), (0.865, 0.317, 0.226), (0.955, 0.462, 0.098),
                (0.988, 0.645, 0.040), (0.964, 0.843, 0.273), (0.988, 0.998, 0.645)],
    "jet": [(0.0, 0.0, 0.5), (0.0, 0.0, 1.0), (0.0, 0.5, 1.0), (0.0, 1.0, 1.0), (0.5, 1.0, 0.5), (1.0, 1.0, 0.0),
            (1.0, 0.5, 0.0), (1.0, 0.0, 0.0), (0.5, 0.0, 0.0)],
}


def colormap(values, name="viridis"):
    """Values in [0, 1] (any shape) -> float RGB in [0, 1], shape + (3,)."""
    points = np.asarray(_MAPS[name])
    v = np.clip(np.asarray(values, np.float64), 0.0, 1.0) * (len(points) - 1)
    i = np.minimum(v.astype(int), len(points) - 2)
    f = (v - i)[..., None]
    return points[i] * (1 - f) + points[i + 1] * f


def resize_image(img, size, interpolation="bilinear"):
    """HWC / HW float or uint8 image -> (size, size) or (h, w) with the transforms' resize (torchvision's)."""
    h, w = (size, size) if isinstance(size, int) else size
    if img.shape[:2] == (h, w):
        return img
    if interpolation == "nearest" and h % img.shape[0] == 0 and w % img.shape[1] == 0:
        return np.repeat(np.repeat(img, h // img.shape[0], axis=0), w // img.shape[1], axis=1)
    return T.resize(img, [h, w], interpolation=interpolation, antialias=True)


def grid(images: Sequence[NDArray[Any]], columns: Optional[int] = None, pad: int = 2, fill: int = 255) -> Picture:
    """Tile equally sized uint8 images (HWC or HW) into one, row-major, `pad` pixels of `fill` between them."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("images: expected at least one image (got none)")
    rgb = any(im.ndim == 3 for im in images)
    images = [np.repeat(im[..., None], 3, axis=2) if rgb and im.ndim == 2 else im for im in images]
    h, w = images[0].shape[:2]
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    rows = -(-len(images) // columns)
    shape = (rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad) + images[0].shape[2:]
    out = np.full(shape, fill, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, columns)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return out


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def caption(img, text, size=14):
    """The image with `text` written in a white band above it."""
    require("PIL", "drawing captions")
    from PIL import Image, ImageDraw

    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    font = _font(size)
    band = size + 8
    canvas = Image.new("RGB", (img.shape[1], img.shape[0] + band), (255, 255, 255))
    canvas.paste(Image.fromarray(img), (0, band))
    draw = ImageDraw.Draw(canvas)
    width = draw.textlength(text, font=font)
    while width > img.shape[1] - 4 and len(text) > 4:  # shorten what does not fit
        text = text[:-2].rstrip() + "…" if not text.endswith("…") else text[:-2] + "…"
        width = draw.textlength(text, font=font)
    draw.text(((img.shape[1] - width) / 2, 3), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def montage(pictures: Mapping[str, NDArray[Any]], columns: Optional[int] = None, title: Optional[str] = None,
            pad: int = 6) -> Picture:
    """One figure of captioned pictures: `pictures` maps captions to uint8 images (resized to the first's size)."""
    items = list(pictures.items())
    h, w = items[0][1].shape[:2]
    tiles = [caption(resize_image(_rgb(img), (h, w), "nearest" if img.shape[0] < h else "bilinear"), text)
             for text, img in items]
    out = grid(tiles, columns or min(len(tiles), 6), pad=pad)
    return caption(out, title, size=18) if title else out


def _rgb(img):
    img = np.asarray(img)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def file_name(*parts: object) -> str:
    """A file name from what a picture shows: 'class', 'bell pepper' -> 'class_bell_pepper.png'."""
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_.")
    return (text or "picture") + ".png"


def save_png(img: NDArray[Any], path: Union[str, os.PathLike[str]]) -> str:
    """Write a uint8 HWC / HW image as PNG (Pillow); returns the path."""
    require("PIL", "writing PNG files")
    from PIL import Image
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    Image.fromarray(np.asarray(img, np.uint8)).save(os.fspath(path), optimize=True)
    return os.fspath(path)


def save_all(pictures, out, prefix=None):
    """Write each picture (name -> image) as `out/<name>.png`; returns the paths."""
    if out is None:
        return []
    return [save_png(img, os.path.join(os.fspath(out), name if name.endswith(".png") else name + ".png"))
            for name, img in pictures.items()]


# --- progress ---------------------------------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr for long optimizations, drawn only when stderr is a terminal."""

    def __init__(self, total, label, enabled=None):
        self.total, self.label, self.done = total, label, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = -1

    def update(self, n=1, info=""):
        self.done += n
        if not self.enabled:
            return
        filled = int(30 * self.done / max(self.total, 1))
        if filled == self._last and self.done < self.total:
            return
        self._last = filled
        bar = "#" * filled + "." * (30 - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {info}".ljust(79)[:120])
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()
