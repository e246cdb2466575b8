"""Pictures made by gradient ascent: class model images (Simonyan et al.) and feature visualization (Olah et al.)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from .. import functional as F
from .._types import Array
from ..gradients import GradientProgram, ObjectiveLike, as_objective, logit
from ._common import Folder, ModelLike, Pictures, Progress, chw_to_image, file_name, resolve, save_all


# --- smoothing and transformation robustness ------------------------------------------------------------------

def gaussian_blur(x: Array, sigma: float) -> Array:
    """Blur (N, C, H, W) float32 with a Gaussian of `sigma` pixels (reflected borders): two 1-D depthwise passes on
    convcore's own convolution."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    c = x.shape[1]
    radius_h, radius_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
    padded = np.pad(x, ((0, 0), (0, 0), (radius_h, radius_h), (radius_w, radius_w)), mode="reflect")
    kh = np.ascontiguousarray(np.tile(k[radius - radius_h:radius + radius_h + 1][None, None, :, None], (c, 1, 1, 1)))
    kw = np.ascontiguousarray(np.tile(k[radius - radius_w:radius + radius_w + 1][None, None, None, :], (c, 1, 1, 1)))
    y = F.conv2d(np.ascontiguousarray(padded), kh, groups=c)
    return F.conv2d(y, kw, groups=c)


class AffineSampler:
    """One random transformation of a square image, as Lucid's transformation robustness draws them (jitter,
    scale, rotation), applied by bilinear sampling (borders repeated); `adjoint` takes gradients back.

    Args:
        size: the image side (input and output).
        rng: numpy Generator.
        jitter: largest shift in pixels; scale: (low, high) factors; rotate: largest angle in degrees.
    """

    def __init__(self, size: int, rng: np.random.Generator, jitter: int = 8,
                 scale: Optional[tuple[float, float]] = (0.9, 1.1), rotate: float = 10.0) -> None:
        self.size = size
        angle = math.radians(rng.uniform(-rotate, rotate)) if rotate else 0.0
        factor = rng.uniform(*scale) if scale else 1.0
        ty, tx = (rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0))
        c = (size - 1) / 2.0
        i, j = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
        # Output pixel (i, j) shows the input at the inverse transform of its offset from the centre.
        di, dj = i - c - ty, j - c - tx
        cos, sin = math.cos(angle), math.sin(angle)
        si = (cos * di + sin * dj) / factor + c
        sj = (-sin * di + cos * dj) / factor + c
        si, sj = np.clip(si, 0, size - 1), np.clip(sj, 0, size - 1)
        i0, j0 = np.minimum(np.floor(si).astype(np.int64), size - 2), np.minimum(np.floor(sj).astype(np.int64),
                                                                                 size - 2)
        fi, fj = si - i0, sj - j0
        self.index = [(i0 * size + j0).ravel(), (i0 * size + j0 + 1).ravel(), ((i0 + 1) * size + j0).ravel(),
                      ((i0 + 1) * size + j0 + 1).ravel()]
        self.weight = [((1 - fi) * (1 - fj)).ravel(), ((1 - fi) * fj).ravel(), (fi * (1 - fj)).ravel(),
                       (fi * fj).ravel()]

    def __call__(self, x: Array) -> Array:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        out = sum((flat[:, :, idx] * w.astype(np.float32) for idx, w in zip(self.index, self.weight)),
                  np.zeros_like(flat))
        return np.ascontiguousarray(out.reshape(x.shape), dtype=np.float32)

    def adjoint(self, g: Array) -> Array:
        n, c = g.shape[:2]
        rows = n * c
        flat = g.reshape(rows, -1).astype(np.float64)
        offsets = (np.arange(rows) * self.size * self.size)[:, None]
        total = np.zeros(rows * self.size * self.size)
        for idx, w in zip(self.index, self.weight):
            total += np.bincount((offsets + idx[None, :]).ravel(), weights=(flat * w[None, :]).ravel(),
                                 minlength=total.size)
        return total.reshape(g.shape).astype(np.float32)


# --- class model images ---------------------------------------------------------------------------------------

def class_model(model: ModelLike = None,
                targets: Union[str, int, list[Union[str, int]], tuple[Union[str, int], ...]] = ("dumbbell",),
                steps: int = 256, size: Optional[int] = None, lr: float = 0.05, transforms: bool = True,
                fft: bool = True, decorrelate: bool = True, seed: int = 0, out: Folder = None,
                progress: Optional[bool] = None, batch_size: int = 8) -> Pictures:
    """Class model images (Simonyan, Vedaldi & Zisserman 2013): images that maximize a class score (the logit, not
    the softmax), made as feature visualization makes its pictures (Olah et al. 2017, Lucid): the image is a
    spectrum scaled by 1 / frequency, decorrelated in colour, through a sigmoid, optimized with Adam under random
    jitter, scale and rotation at every step, so the class shows as objects in natural colours rather than as
    high-frequency texture.

    Args:
        model: zoo name, `LoadedModel`, module, ONNX model (default: efficientnet_lite0 with its installed weights).
        targets: class names ("dumbbell", "bell pepper") or indices; one image each, optimized together in batches
            of `batch_size`.
        steps: Adam steps; size: image side (default: the model's input size; at most `MAX_SIZE`); lr: Adam's rate.
        transforms, fft, decorrelate: as `feature` (False: without transformation robustness, plain pixels, plain
            RGB; each alone makes noisier, greyer pictures).
        seed: the random start and transformations (same seed, same images on the same machine; the kernels of
            another ISA round differently, and many steps of ascent can carry that into visibly different pictures).
        out: a folder to write `class_<name>.png` into (None: write nothing).
        progress: a progress bar on stderr (None: when stderr is a terminal).

    Returns:
        dict file name ("class_dumbbell.png") -> uint8 (size, size, 3) image, in the order of `targets`.
    """
    net = resolve(model)
    size = net.side(size)
    targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    indices = [net.class_index(t) for t in targets]
    names = [net.class_name(i) if isinstance(t, (int, np.integer)) or str(t).strip().isdigit() else str(t)
             for t, i in zip(targets, indices)]
    pictures = {}
    bar = Progress(steps * len(indices), "class models", progress)
    for start in range(0, len(indices), batch_size):
        chunk = [logit(i) for i in indices[start:start + batch_size]]
        rng = np.random.default_rng([seed, start])
        pixels = _feature_ascent(net, chunk, steps, size, lr, transforms, fft, decorrelate, rng, bar,
                                 label="score")
        for k, px in enumerate(pixels):
            pictures[file_name("class", names[start + k])] = chw_to_image(px)
    bar.close()
    save_all(pictures, out)
    return pictures


# --- feature visualization ---------------------------------------------------------------------------------------

# Lucid's square root of ImageNet's colour correlation (lucid/optvis/param/color.py), normalized to unit columns.
_COLOR_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float64)
_COLOR = (_COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))).astype(np.float32)


class FourierImage:
    """Olah et al.'s image parameterization: a spectrum scaled by 1 / frequency (decorrelated in space), mapped to
    colours through the square root of ImageNet's colour correlation (decorrelated in colour), then a sigmoid.

    Attributes:
        params: (2, N, 3, H, W // 2 + 1) float64: real and imaginary parts of the spectrum.
    """

    def __init__(self, n: int, size: int, rng: np.random.Generator, sd: float = 0.01, decay: float = 1.0,
                 fft: bool = True, decorrelate: bool = True) -> None:
        self.size, self.fft, self.decorrelate = size, fft, decorrelate
        if fft:
            fy = np.fft.fftfreq(size)[:, None]
            fx = np.fft.rfftfreq(size)[None, :]
            freqs = np.sqrt(fx * fx + fy * fy)
            self.scale = (1.0 / np.maximum(freqs, 1.0 / size) ** decay) * size  # * sqrt(w * h)
            self.params = rng.standard_normal((2, n, 3) + freqs.shape) * sd
            weights = np.full(freqs.shape[1], 2.0)  # the adjoint of irfft2: bins with a mirror count twice
            weights[0] = 1.0
            if size % 2 == 0:
                weights[-1] = 1.0
            self.adjoint_weights = weights / (size * size)
        else:
            self.params = rng.standard_normal((n, 3, size, size)) * sd

    def _raw(self):
        if not self.fft:
            return self.params
        spectrum = (self.params[0] + 1j * self.params[1]) * self.scale
        return np.fft.irfft2(spectrum, s=(self.size, self.size)) / 4.0

    def pixels(self) -> Array:
        """The image, (N, 3, H, W) in (0, 1)."""
        t = self._raw()
        if self.decorrelate:
            t = np.einsum("ij,njhw->nihw", _COLOR, t)
        self._out = 1.0 / (1.0 + np.exp(-t))
        return self._out.astype(np.float32)

    def backward(self, g: NDArray[Any]) -> NDArray[np.float64]:
        """The gradient of the parameters from the gradient of the last `pixels()`."""
        g = g * self._out * (1.0 - self._out)
        if self.decorrelate:
            g = np.einsum("ij,nihw->njhw", _COLOR, g)
        if not self.fft:
            return g
        z = np.fft.rfft2(g / 4.0) * self.adjoint_weights * self.scale
        return np.stack([z.real, z.imag])


class Adam:
    """Adam (Kingma & Ba) ascending an objective, as Lucid's default optimizer."""

    def __init__(self, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, beta1, beta2, eps, 0
        self.m = self.v = None

    def step(self, params, grad):
        if self.m is None:
            self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        m = self.m / (1 - self.b1 ** self.t)
        v = self.v / (1 - self.b2 ** self.t)
        params += self.lr * m / (np.sqrt(v) + self.eps)


def feature(model: ModelLike = None, objectives: Union[ObjectiveLike, Sequence[ObjectiveLike]] = ("_blocks.10:5",),
            steps: int = 256, size: int = 128, lr: float = 0.05, transforms: bool = True, fft: bool = True,
            decorrelate: bool = True, seed: int = 0, out: Folder = None, progress: Optional[bool] = None,
            batch_size: int = 8) -> Pictures:
    """Feature visualization (Olah, Mordvintsev & Schubert, Distill 2017): an image that excites a neuron, a channel
    or a layer, optimized with Adam in a decorrelated (Fourier, colour) parameterization under random jitter, scale
    and rotation (transformation robustness).

    Args:
        model: as `class_model`.
        objectives: one image per objective: "layer:channel" (a channel's mean), "layer" (the whole layer,
            DeepDream-like), "layer:channel@y,x" or "layer:channel@" (a neuron, the centre one), or any
            `convcore.gradients` objective.
        steps, size, lr: Adam steps, image side (2 to `MAX_SIZE` pixels), learning rate.
        transforms: jitter (8 px), scale (0.9-1.1) and rotation (+-10 degrees) redrawn every step.
        fft, decorrelate: the two halves of the parameterization (False: plain pixels / plain RGB).
        seed, out, progress, batch_size: as `class_model` (files `feature_<layer>_<channel>.png`).

    Returns:
        dict file name -> uint8 (size, size, 3) image.
    """
    net = resolve(model)
    size = net.side(size)
    objectives = list(objectives) if isinstance(objectives, (list, tuple)) else [objectives]
    for o in objectives:
        if isinstance(o, str) and not _layer_of(o).strip():
            raise ValueError(f"objective: expected 'layer', 'layer:channel' or 'layer:channel@y,x' naming a layer "
                             f"(got {o!r})")
    specs = [as_objective(o) for o in objectives]
    pictures = {}
    bar = Progress(steps * len(specs), "features", progress)
    for start in range(0, len(specs), batch_size):
        chunk = specs[start:start + batch_size]
        rng = np.random.default_rng([seed, start])
        pixels = _feature_ascent(net, chunk, steps, size, lr, transforms, fft, decorrelate, rng, bar)
        for k, px in enumerate(pixels):
            pictures[_feature_name(objectives[start + k], chunk[k])] = chw_to_image(px)
    bar.close()
    save_all(pictures, out)
    return pictures


def _layer_of(text):
    """The layer a "layer", "layer:channel" or "layer:channel@y,x" objective names (as `gradients` parses it)."""
    name, sep, rest = text.rpartition(":")
    return name if sep and rest.split("@")[0].strip().lstrip("-").isdigit() else text


def _feature_name(spec, objective):
    if isinstance(spec, str):
        return file_name("feature", spec.replace(":", "_").replace("@", "_at_"))
    return file_name("feature", str(objective).replace(":", "_").replace(" ", ""))


def _feature_ascent(net, objectives, steps, size, lr, transforms, fft, decorrelate, rng, bar, label="objective"):
    n = len(objectives)
    objective = sum(o.at_sample(i) for i, o in enumerate(objectives))
    program = GradientProgram(net.model, (n, 3, size, size), objective)
    image = FourierImage(n, size, rng, fft=fft, decorrelate=decorrelate)
    adam = Adam(lr)
    inv_std = (1.0 / net.std).astype(np.float32)[None, :, None, None]
    for _ in range(steps):
        pixels = image.pixels()
        sampler = AffineSampler(size, rng) if transforms else None
        seen = sampler(pixels) if sampler else pixels
        result = program(net.normalize(seen))
        g = result.grads[program.wrt[0]] * inv_std
        if sampler:
            g = sampler.adjoint(g)
        adam.step(image.params, image.backward(g.astype(np.float64)))
        bar.update(n, f"{label} {result.value / n:.2f}")
    return image.pixels()
