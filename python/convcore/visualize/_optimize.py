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


def _shift(x, dy, dx):
    return np.roll(x, (dy, dx), axis=(2, 3))


# --- class model images ---------------------------------------------------------------------------------------

def class_model(model: ModelLike = None,
                targets: Union[str, int, list[Union[str, int]], tuple[Union[str, int], ...]] = ("dumbbell",),
                steps: int = 120, size: Optional[int] = None, lr: float = 0.03, l2: float = 1e-3, blur_every: int = 4,
                blur_sigma: tuple[float, float] = (1.0, 0.5), smooth: float = 1.5, jitter: float = 0.06,
                octaves: Sequence[float] = (0.5, 0.75, 1.0), seed: int = 0, out: Folder = None,
                progress: Optional[bool] = None, batch_size: int = 8) -> Pictures:
    """Class model images (Simonyan, Vedaldi & Zisserman 2013): images that maximize a class score, found by
    gradient ascent on the (unnormalized) score with L2 regularization, blurring every few steps (Yosinski et al.
    2015) and random jitter, which keep the picture free of pixel-level noise; coarse to fine over `octaves`.

    Args:
        model: zoo name, `LoadedModel`, module, ONNX model (default: efficientnet_lite0 with its installed weights).
        targets: class names ("dumbbell", "bell pepper") or indices; one image each, optimized together in batches
            of `batch_size`.
        steps: ascent steps in all; size: image side (default: the model's input size; at most `MAX_SIZE`).
        lr: step length in pixel units (each step is the gradient divided by its mean absolute value).
        l2: decay of the pixels towards grey per step (the L2 penalty's gradient step).
        blur_every, blur_sigma: blur every n steps with a sigma falling from blur_sigma[0] to blur_sigma[1] (in
            pixels of the full size).
        smooth: sigma of a blur applied to each step's gradient (pixels of the full size; 0: none), which keeps the
            steps from adding pixel-level noise.
        jitter: largest random shift before each step, as a fraction of the side.
        octaves: the image is optimized at these fractions of `size` in turn (an equal share of the steps each),
            upsampled from one to the next: coarse structure first, detail last.
        seed: the random start and jitter (same seed, same images).
        out: a folder to write `class_<name>.png` into (None: write nothing).
        progress: a progress bar on stderr (None: when stderr is a terminal).

    Returns:
        dict file name ("class_dumbbell.png") -> uint8 (size, size, 3) image, in the order of `targets`.
    """
    net = resolve(model)
    size = net.side(size)
    if net.fixed_size:
        octaves = (1.0,)
    targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    indices = [net.class_index(t) for t in targets]
    names = [net.class_name(i) if isinstance(t, (int, np.integer)) or str(t).strip().isdigit() else str(t)
             for t, i in zip(targets, indices)]
    pictures = {}
    bar = Progress(steps * len(indices), "class models", progress)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        rng = np.random.default_rng([seed, start])
        pixels = None
        sizes = [max(16, int(round(size * f))) for f in octaves] or [size]
        sizes[-1] = size
        for k, side in enumerate(sizes):
            count = steps * (k + 1) // len(sizes) - steps * k // len(sizes)
            pixels = _start(len(chunk), side, rng) if pixels is None else _upsample(pixels, side)
            sigma = tuple(b * side / size for b in blur_sigma)
            pixels = _class_ascent(net, chunk, pixels, count, lr, l2, blur_every, sigma, smooth * side / size,
                                   max(0, int(round(jitter * side))), rng, bar)
        assert pixels is not None  # octaves: at least one size
        for k, px in enumerate(pixels):
            pictures[file_name("class", names[start + k])] = chw_to_image(px)
    bar.close()
    save_all(pictures, out)
    return pictures


def _start(n, side, rng):
    return (0.5 + 0.02 * rng.standard_normal((n, 3, side, side))).astype(np.float32)


def _upsample(pixels, side):
    from ._common import resize_image

    return np.stack([np.transpose(resize_image(np.transpose(p, (1, 2, 0)), side, "bicubic"), (2, 0, 1))
                     for p in pixels]).astype(np.float32)


def _class_ascent(net, targets, pixels, steps, lr, l2, blur_every, blur_sigma, smooth, jitter, rng, bar):
    n, side = len(targets), pixels.shape[-1]
    objective = sum(logit(t, sample=i) for i, t in enumerate(targets))
    program = GradientProgram(net.model, (n, 3, side, side), objective)
    inv_std = (1.0 / net.std).astype(np.float32)[None, :, None, None]
    for step in range(steps):
        dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        result = program(net.normalize(_shift(pixels, dy, dx)))
        g = gaussian_blur(_shift(result.grads[program.wrt[0]], -dy, -dx) * inv_std, smooth)
        g = np.einsum("ij,njhw->nihw", _COLOR_PRECONDITION, g)  # steps along natural colours
        g /= np.abs(g).mean(axis=(1, 2, 3), keepdims=True) + 1e-12
        pixels += lr * g - l2 * (pixels - 0.5)
        if blur_every and step % blur_every == 0 and step < steps - 1:
            t = step / max(steps - 1, 1)
            pixels = gaussian_blur(pixels, blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * t)
        np.clip(pixels, 0.0, 1.0, out=pixels)
        bar.update(n, f"score {result.value / n:.1f}")
    return pixels


# --- feature visualization ---------------------------------------------------------------------------------------

# Lucid's square root of ImageNet's colour correlation (lucid/optvis/param/color.py), normalized to unit columns.
_COLOR_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float64)
_COLOR = (_COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))).astype(np.float32)


# Gradient steps of class models in the colour space of natural images: C C^T with C the square root of ImageNet's
# colour correlation (what a step in Lucid's decorrelated colour parameterization does to the pixels).
_COLOR_PRECONDITION = (_COLOR @ _COLOR.T).astype(np.float32)


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


def _feature_ascent(net, objectives, steps, size, lr, transforms, fft, decorrelate, rng, bar):
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
        bar.update(n, f"objective {result.value / n:.2f}")
    return image.pixels()
