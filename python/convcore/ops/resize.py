"""resize: nearest, linear and cubic interpolation of any axes with ONNX Resize's coordinate modes (kernel:
csrc/ops/tensor, one separable pass per resized axis; in a Plan, one op for H and W: plan/builder.h's resample)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array
from .registry import PlanRule, declare

__all__ = ["resize"]

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_crop_and_resize", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MAX_TABLE = 1 << 26  # (index, weight) pairs of one axis: antialiasing a huge downscale widens every output's taps


def _choice(value, options, name):
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(options)} (got {value!r})")
    return value


def _resize_rule(shapes, attrs):
    x = shapes[0]
    rank = len(x)
    mode = _choice(attrs["mode"], MODES, "mode")
    coordinate_mode = _choice(attrs["coordinate_transformation_mode"], COORDINATE_MODES,
                              "coordinate_transformation_mode")
    nearest_mode = _choice(attrs["nearest_mode"], NEAREST_MODES, "nearest_mode")
    antialias = bool(attrs["antialias"])
    if antialias and mode == "nearest":
        raise ValueError("antialias: expected mode 'linear' or 'cubic' (got 'nearest')")
    size, scales = attrs["size"], attrs["scales"]
    if size is None and scales is None:
        raise ValueError("size, scales: expected one of them (got neither)")
    if scales is not None:
        if not isinstance(scales, (tuple, list)) or len(scales) != rank:
            raise ValueError(f"scales: expected one scale per axis of the {rank}D input (got {scales!r})")
        scales = tuple(V.number(s, "scales") for s in scales)
        if any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ValueError(f"scales: expected positive finite scales (got {scales})")
    if size is not None:
        if not isinstance(size, (tuple, list)) or len(size) != rank:
            raise ValueError(f"size: expected one size per axis of the {rank}D input (got {size!r})")
        size = tuple(None if s is None else V.integer(s, "size", 0) for s in size)
    else:
        size = tuple(int(math.floor(n * s)) for n, s in zip(x, scales))
    if scales is None:
        scales = tuple(1.0 if s is None else (s / n if n else 1.0) for s, n in zip(size, x))
    roi = attrs["roi"]
    if roi is not None:
        if not isinstance(roi, (tuple, list)) or len(roi) != 2 * rank:
            raise ValueError(f"roi: expected 2 values (start, end) per axis of the {rank}D input (got {roi!r})")
        roi = tuple(V.number(v, "roi") for v in roi)
    if coordinate_mode == "tf_crop_and_resize" and roi is None:
        roi = (0.0,) * rank + (1.0,) * rank
    # an axis whose size, scale and region stay the same keeps its input size (None): a graph follows its batch
    identity = [s in (None, n) and scales[d] == 1.0 and (roi is None or (roi[d], roi[d + rank]) == (0.0, 1.0))
                for d, (s, n) in enumerate(zip(size, x))]
    size = tuple(None if keep else s for keep, s in zip(identity, size))
    out = tuple(n if s is None else s for s, n in zip(size, x))
    V.check_size(out, "size")
    for d, s in enumerate(size):  # the interpolation tables: taps per output of each resized axis
        if s is not None and s * tap_count(mode, scales[d], antialias) > MAX_TABLE:
            raise ValueError(f"scales: expected at most {MAX_TABLE} interpolation taps per axis (got {s} outputs of "
                             f"{tap_count(mode, scales[d], antialias)} taps on axis {d})")
    return ({"size": size, "scales": scales, "mode": mode, "coordinate_transformation_mode": coordinate_mode,
             "nearest_mode": nearest_mode, "cubic_coeff_a": V.number(attrs["cubic_coeff_a"], "cubic_coeff_a"),
             "exclude_outside": bool(attrs["exclude_outside"]),
             "extrapolation_value": V.number(attrs["extrapolation_value"], "extrapolation_value"),
             "antialias": antialias, "roi": roi}, out)


# --- interpolation tables (ONNX's reference Resize, one axis at a time) ------------------------------------------

def _source_coordinates(mode, out_len, in_len, scale, roi):
    """(source coordinate of each output index, mask of those to extrapolate or None)."""
    y = np.arange(out_len, dtype=np.float64)
    width = scale * in_len  # the real-valued output length
    extrapolate = None
    if mode == "align_corners":
        x = np.zeros(out_len) if width == 1 else y * (in_len - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        x = np.full(out_len, (end - start) * (in_len - 1) / 2) if width == 1 else \
            y * (end - start) * (in_len - 1) / (width - 1)
        x = x + start * (in_len - 1)
        extrapolate = (x < 0) | (x > in_len - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_len, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "tf_half_pixel_for_nn":  # ONNX Resize-11 only
        x = (y + 0.5) / scale
    else:  # half_pixel_symmetric
        offset = in_len / 2 * (1 - out_len / width)
        x = offset + (y + 0.5) / scale - 0.5
    return x, extrapolate


def _coefficients(mode, ratios, scale, nearest_mode, a, antialias):
    """The taps' weights, one row per output, for source positions `ratios` in (0, 1] past the left neighbour."""
    r = ratios[:, None]
    if mode == "nearest":
        left = {"round_prefer_floor": r <= 0.5, "round_prefer_ceil": r < 0.5, "floor": np.ones_like(r, bool),
                "ceil": np.zeros_like(r, bool)}[nearest_mode] & (r != 1.0)  # an integer position is the right tap
        return np.hstack([left, ~left]).astype(np.float64)
    if mode == "linear" and not antialias:
        return np.hstack([1 - r, r])
    if mode == "linear":
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        c = np.clip(1 - np.abs((np.arange(start, 2 - start)[None, :] - r) * s), 0, 1)
        return c / c.sum(axis=1, keepdims=True)
    if not antialias:
        return np.hstack([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                          ((a + 2) * r - (a + 3)) * r * r + 1,
                          ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                          ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a])
    s = min(scale, 1.0)
    start = int(np.floor(-2 / s) + 1)
    t = np.abs(s * (np.arange(start, 2 - start)[None, :] - r))
    c = np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                 np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))
    return c / c.sum(axis=1, keepdims=True)


def tap_count(mode, scale, antialias):
    """Taps per output of one axis' interpolation."""
    if mode == "nearest" or mode == "linear" and not antialias:
        return 2
    if not antialias:
        return 4
    s = min(scale, 1.0)
    start = int(np.floor((-1 if mode == "linear" else -2) / s) + 1)
    return 2 - 2 * start


def resample_tables(in_len, out_len, scale, roi, mode, coordinate_mode, nearest_mode, a, exclude_outside, antialias):
    """(index (out_len, taps) int64 with -1 rows to extrapolate, weights (out_len, taps) float64) for one axis."""
    x, extrapolate = _source_coordinates(coordinate_mode, out_len, in_len, scale, roi)
    base = np.floor(x)
    ratios = np.where(x == base, 1.0, x - base)  # the left neighbour is preferred: ratio in (0, 1]
    coeffs = _coefficients(mode, ratios, scale, nearest_mode, a, antialias)
    taps = coeffs.shape[1]
    pad = int(np.ceil(taps / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if taps % 2 == 0:
        first = p + np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        first = p + np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    index = first[:, None] + np.arange(taps)[None, :] - pad
    if exclude_outside:
        coeffs = np.where((index < 0) | (index >= in_len), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    index = np.clip(index, 0, in_len - 1)  # the edge repeats
    if mode == "nearest":  # one tap: its weight-1 neighbour alone (0 * inf in the other would be NaN)
        pick = np.argmax(coeffs, axis=1)[:, None]
        index, coeffs = np.take_along_axis(index, pick, 1), np.take_along_axis(coeffs, pick, 1)
    if extrapolate is not None:
        index[extrapolate] = -1
    return np.ascontiguousarray(index, np.int64), np.ascontiguousarray(coeffs, np.float64)


def _axis_tables(attrs, in_shape, d):
    """resample_tables for axis d of an input of `in_shape` under a resize's normalised `attrs`."""
    roi, rank = attrs["roi"], len(in_shape)
    return resample_tables(in_shape[d], attrs["size"][d], attrs["scales"][d],
                           None if roi is None else (roi[d], roi[d + rank]), attrs["mode"],
                           attrs["coordinate_transformation_mode"], attrs["nearest_mode"], attrs["cubic_coeff_a"],
                           attrs["exclude_outside"], attrs["antialias"])


def _resize_kernel(x, *, out, **attrs):
    size, extrapolation_value = attrs["size"], attrs["extrapolation_value"]
    rank = x.ndim
    axes = [d for d in range(rank) if size[d] is not None]
    if out.size == 0:
        return out
    if not axes:
        out[...] = x
        return out
    current = x
    for k, d in enumerate(axes):
        shape = list(current.shape)
        shape[d] = size[d]
        target = out if k == len(axes) - 1 else np.empty(shape, np.float32)
        index, weights = _axis_tables(attrs, current.shape, d)
        _core.resample_axis(current, target, d, index, weights, extrapolation_value)
        current = target
    return out


# --- Plan ---------------------------------------------------------------------------------------------------------

def _plan_resize_ok(node, graph):
    """Images resized in H and W only (N and C as they are)."""
    size = node.attrs["size"]
    return (len(graph.shapes[node.inputs[0]]) == 4 and size[0] is None and size[1] is None
            and min(graph.shapes[node.outputs[0]][2:]) >= 1)


def _plan_resize(low, node):
    """One separable Plan op: both axes' tables (an identity table for an axis left as it is) in float32."""
    a = node.attrs
    x = low.materialize(low.ref(node.inputs[0]), node.name)
    tables = []
    for d in (2, 3):
        if a["size"][d] is None:
            index, weights = np.arange(x.shape[d], dtype=np.int64)[:, None], np.ones((x.shape[d], 1))
        else:
            index, weights = _axis_tables(a, x.shape, d)
        tables += [index, np.ascontiguousarray(weights, np.float32)]
    index_h, weight_h, index_w, weight_w = tables
    low.define(node.outputs[0], low.builder.resample(node.name, x.tid, index_h=index_h, weight_h=weight_h,
                                                     index_w=index_w, weight_w=weight_w,
                                                     fill=a["extrapolation_value"]))


# --- ONNX -------------------------------------------------------------------------------------------------------

def _resize_to_onnx(em, node):
    a, n = node.attrs, node.name
    x = node.inputs[0]
    out_shape = em.shape(node.outputs[0])
    attrs = {"mode": a["mode"], "coordinate_transformation_mode": a["coordinate_transformation_mode"],
             "nearest_mode": a["nearest_mode"], "cubic_coeff_a": a["cubic_coeff_a"],
             "exclude_outside": int(a["exclude_outside"]), "extrapolation_value": a["extrapolation_value"]}
    if a["antialias"]:
        if em.opset < 18:
            raise ValueError(f"node '{n}': an antialiased resize needs opset 18")
        attrs["antialias"] = 1
    if a["coordinate_transformation_mode"] == "half_pixel_symmetric" and em.opset < 19:
        raise ValueError(f"node '{n}': half_pixel_symmetric needs opset 19")
    if a["coordinate_transformation_mode"] == "tf_half_pixel_for_nn":
        raise ValueError(f"node '{n}': tf_half_pixel_for_nn exists in opsets 11 and 12 only")
    in_shape = em.shape(x)
    roi = em.const(f"{n}.roi", a["roi"], np.float32) if a["roi"] is not None else ""
    # the scales the coordinates follow, unless they are exactly out / in (then the sizes say the same)
    derived = all(s == (o / i if i else 1.0) for s, o, i in zip(a["scales"], out_shape, in_shape))
    floors = all(int(math.floor(i * s)) == o for s, o, i in zip(a["scales"], out_shape, in_shape))
    if derived:
        inputs = [x, roi, "", em.const(f"{n}.sizes", list(out_shape), np.int64)]
    elif a["coordinate_transformation_mode"] == "align_corners" and all(
            s * i > 1 for s, i, o in zip(a["scales"], in_shape, out_shape) if o != i or s != 1.0):
        # onnxruntime's align_corners spans (out - 1) output steps, ONNX's (scale * in - 1): the same affine map as a
        # crop whose region ends at (out - 1) / (scale * in - 1), which never extrapolates
        rank = len(in_shape)
        ends = [1.0 if (o == i and s == 1.0) or i == 1 else (o - 1) / (s * i - 1)
                for s, o, i in zip(a["scales"], out_shape, in_shape)]
        attrs["coordinate_transformation_mode"] = "tf_crop_and_resize"
        inputs = [x, em.const(f"{n}.roi", [0.0] * rank + ends, np.float32), "",
                  em.const(f"{n}.sizes", list(out_shape), np.int64)]
    elif floors:
        inputs = [x, roi, em.const(f"{n}.scales", a["scales"], np.float32)]
    elif _aspect_sizes(a["scales"], in_shape, out_shape) is not None and em.opset >= 18:
        # one scale on every resized axis, the sizes rounded from it: ONNX's keep_aspect_ratio_policy computes both
        axes, sizes = _aspect_sizes(a["scales"], in_shape, out_shape)
        attrs.update(keep_aspect_ratio_policy="not_smaller", axes=axes)
        inputs = [x, roi, "", em.const(f"{n}.sizes", sizes, np.int64)]
    else:
        raise ValueError(f"node '{n}': scales {a['scales']} do not give the output size {out_shape} (no ONNX Resize "
                         f"computes both)")
    return em.node("Resize", inputs, node.outputs[0], n, **attrs)


def _aspect_sizes(scales, in_shape, out_shape):
    """(axes, sizes) for which Resize-18's keep_aspect_ratio_policy 'not_smaller' computes these scales and output
    sizes (the largest size / in ratio is the scale; outputs round scale * in half up), or None."""
    axes = [d for d, (s, o, i) in enumerate(zip(scales, out_shape, in_shape)) if s != 1.0 or o != i]
    if not axes or len({scales[d] for d in axes}) != 1:
        return None
    scale = scales[axes[0]]
    if any(int(scale * in_shape[d] + 0.5) != out_shape[d] for d in axes):
        return None
    exact = [d for d in axes if (scale * in_shape[d]).is_integer()]
    if not exact:
        return None
    return axes, [int(scale * in_shape[d]) if d == exact[0] else 0 for d in axes]  # 0: never the largest ratio


@declare(("x",), _resize_rule, _resize_kernel, onnx=_resize_to_onnx, allow_empty=True,
         plan=PlanRule(_plan_resize, _plan_resize_ok))
def resize(x: Array, size: Sequence[int | None] | None = None, scales: Sequence[float] | None = None,
           mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
           nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75, exclude_outside: bool = False,
           extrapolation_value: float = 0.0, antialias: bool = False, roi: Sequence[float] | None = None) -> Array:
    """Resizes any axes by interpolation, with ONNX Resize's semantics (opset 19).

    Args:
        x: any shape (e.g. ``(N, C, H, W)``).
        size: output size per axis (None entries keep the input's), or None to take ``floor(in * scale)``.
        scales: per-axis scale the source coordinates follow (default ``size / in``).
        mode: 'nearest', 'linear' or 'cubic' (separable: bilinear / bicubic on images).
        coordinate_transformation_mode: how an output index maps to a source coordinate: 'half_pixel' (torch's
            align_corners=False), 'pytorch_half_pixel', 'half_pixel_symmetric', 'align_corners', 'asymmetric'
            (TensorFlow's legacy resize and nearest upsampling), 'tf_crop_and_resize' (with `roi`),
            'tf_half_pixel_for_nn' (ONNX opsets 11-12: ``(i + 0.5) / scale``).
        nearest_mode: rounding of the source coordinate for 'nearest'.
        cubic_coeff_a: the cubic kernel's a (-0.75 as PyTorch, -0.5 as TensorFlow).
        exclude_outside: give taps outside the input no weight (renormalising the others).
        extrapolation_value: the value of outputs whose source lies outside the roi ('tf_crop_and_resize').
        antialias: widen linear / cubic kernels when downscaling.
        roi: (start_0, ..., start_{r-1}, end_0, ..., end_{r-1}) in normalised coordinates, for 'tf_crop_and_resize'.

    Normalised: ``size`` a tuple of ints with None for the axes left unchanged, ``scales`` a tuple of floats, the
    modes strs, ``cubic_coeff_a`` / ``extrapolation_value`` floats, ``exclude_outside`` / ``antialias`` bools,
    ``roi`` a tuple of 2 * rank floats or None.
    """
