"""Float64 references of the general tensor ops and the ONNX elementwise / reduction / resize / transposed-conv /
Lp-pool / instance-norm ops, written from the ONNX and numpy definitions (plain loops where numpy has no one-liner)."""

import math

import numpy as np


def _f64(x):
    return np.asarray(x, np.float64)


# --- elementwise ------------------------------------------------------------------------------------------------
def elu(x, alpha=1.0):
    x = _f64(x)
    return np.where(x < 0, alpha * np.expm1(np.minimum(x, 0)), x)


def selu(x, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    x = _f64(x)
    return gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def celu(x, alpha=1.0):
    x = _f64(x)
    return np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(np.minimum(x, 0) / alpha))


def softplus(x):
    return np.logaddexp(0.0, _f64(x))


def softsign(x):
    x = _f64(x)
    return x / (1 + np.abs(x))


def gelu(x, approximate="none"):
    x = _f64(x)
    if approximate == "tanh":
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)  # 0.5 (1 + tanh(u)) = sigmoid(2u), no cancellation
        return x * np.exp(-np.logaddexp(0.0, -2 * u))
    # 1 + erf(z) as erfc(-z): exact in the negative tail, where 1 + erf(z) cancels to 0 in float64.
    return 0.5 * x * np.vectorize(math.erfc, otypes=[np.float64])(-x / math.sqrt(2))


def mish(x):
    return _f64(x) * np.tanh(softplus(x))


def erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(_f64(x))


def clip(x, low=None, high=None):
    x = _f64(x)
    if low is not None:
        x = np.maximum(x, low)
    if high is not None:
        x = np.minimum(x, high)
    return x


def prelu(x, slope):
    x = _f64(x)
    return np.where(x < 0, x * _f64(slope), x)


UNARY = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "neg": np.negative, "abs": np.abs,
         "reciprocal": lambda x: 1 / x, "erf": erf, "elu": elu, "selu": selu, "celu": celu, "softplus": softplus,
         "softsign": softsign, "gelu": gelu, "mish": mish}
BINARY = {"sub": np.subtract, "div": np.divide, "pow": np.power, "maximum": np.maximum, "minimum": np.minimum}


# --- data movement ----------------------------------------------------------------------------------------------
def pad(x, pads, mode="constant", value=0.0):
    """pads = (begin_0, end_0, begin_1, end_1, ...): negative values crop first, then numpy.pad."""
    x = _f64(x)
    crop = tuple(slice(max(-b, 0), n - max(-e, 0)) for n, b, e in zip(x.shape, pads[0::2], pads[1::2]))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(pads[0::2], pads[1::2])]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def matmul(a, b):
    return np.matmul(_f64(a), _f64(b))


# --- reductions -------------------------------------------------------------------------------------------------
def reduce(kind, x, axes=None, keepdims=True):
    x = _f64(x)
    axes = None if axes is None else tuple(a % x.ndim for a in axes) if x.ndim else ()
    kw = dict(axis=axes, keepdims=keepdims)
    if kind == "log_sum_exp":
        m = np.max(x, **{"axis": axes, "keepdims": True}) if x.size else np.zeros([1] * x.ndim)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(x - m), **kw)) + (m if keepdims else np.squeeze(m, axis=axes))
        return out
    table = {"sum": lambda: np.sum(x, **kw), "mean": lambda: np.mean(x, **kw), "max": lambda: np.max(x, **kw),
             "min": lambda: np.min(x, **kw), "prod": lambda: np.prod(x, **kw), "l1": lambda: np.sum(np.abs(x), **kw),
             "l2": lambda: np.sqrt(np.sum(x * x, **kw)), "sum_square": lambda: np.sum(x * x, **kw),
             "log_sum": lambda: np.log(np.sum(x, **kw))}
    return table[kind]()


# --- transposed convolution, Lp pooling, instance norm ----------------------------------------------------------
def conv_transpose2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), output_padding=(0, 0),
                     dilation=(1, 1), groups=1):
    """Scatter form: every input pixel adds its weighted kernel into the full output, which is then cropped by the
    padding (a negative pad extends it) and extended by output_padding."""
    x, weight = _f64(x), _f64(weight)
    n, c, h, w = x.shape
    kg, kh, kw = weight.shape[1:]
    cg = c // groups
    (sh, sw), (dh, dw) = stride, dilation
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
    top, bottom, left, right = padding
    oh, ow = full_h - top - bottom + output_padding[0], full_w - left - right + output_padding[1]
    lo_h, lo_w = min(top, 0), min(left, 0)  # negative begin pads: rows before the full output
    big = np.zeros((n, kg * groups, max(full_h, top + oh) - lo_h, max(full_w, left + ow) - lo_w))
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        for r in range(kh):
            for q in range(kw):
                contrib = np.einsum("nchw,ck->nkhw", xs, weight[g * cg:(g + 1) * cg, :, r, q])
                y0, x0 = r * dh - lo_h, q * dw - lo_w
                big[:, g * kg:(g + 1) * kg, y0:y0 + (h - 1) * sh + 1:sh, x0:x0 + (w - 1) * sw + 1:sw] += contrib
    out = big[:, :, top - lo_h:top - lo_h + oh, left - lo_w:left - lo_w + ow]
    if bias is not None:
        out = out + _f64(bias).reshape(1, -1, 1, 1)
    return out


def lp_pool2d(x, kernel, stride, padding=(0, 0, 0, 0), dilation=(1, 1), p=2.0, out_hw=None):
    """(sum over the window's real cells of |x|^p)^(1/p); out_hw: the output size (the op's ceil rule)."""
    x = _f64(x)
    n, c, h, w = x.shape
    top, _, left, _ = padding
    oh, ow = out_hw
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            total = np.zeros((n, c))
            for r in range(kernel[0]):
                for q in range(kernel[1]):
                    ih, iw = i * stride[0] - top + r * dilation[0], j * stride[1] - left + q * dilation[1]
                    if 0 <= ih < h and 0 <= iw < w:
                        total += np.abs(x[:, :, ih, iw]) ** p
            y[:, :, i, j] = total ** (1 / p)
    return y


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    x = _f64(x)
    axes = tuple(range(2, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * _f64(weight).reshape(shape)
    if bias is not None:
        y = y + _f64(bias).reshape(shape)
    return y


def layer_norm(x, weight=None, bias=None, axis=-1, eps=1e-5):
    x = _f64(x)
    axes = tuple(range(axis % x.ndim, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    return y


# --- resize -----------------------------------------------------------------------------------------------------
def _source(mode, j, in_len, out_len, scale, roi):
    width = scale * in_len
    if mode == "half_pixel":
        return (j + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (j + 0.5) / scale - 0.5 if width > 1 else -0.5
    if mode == "align_corners":
        return 0.0 if width == 1 else j * (in_len - 1) / (width - 1)
    if mode == "asymmetric":
        return j / scale
    if mode == "half_pixel_symmetric":
        return in_len / 2 * (1 - out_len / width) + (j + 0.5) / scale - 0.5
    if mode == "tf_half_pixel_for_nn":
        return (j + 0.5) / scale
    start, end = roi  # tf_crop_and_resize
    if width == 1:
        return (end - start) * (in_len - 1) / 2 + start * (in_len - 1)
    return j * (end - start) * (in_len - 1) / (width - 1) + start * (in_len - 1)


def _cubic(t, a):
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def _taps(mode, s, in_len, nearest_mode, a, exclude_outside):
    """{input index (clamped to the edge): weight} for source coordinate s (ONNX's definitions)."""
    if mode == "nearest":
        f = math.floor(s)
        frac = s - f
        up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5, "floor": False,
              "ceil": frac > 0}[nearest_mode]
        return {min(max(f + int(up), 0), in_len - 1): 1.0}
    if mode == "linear":
        f = math.floor(s)
        points = {f: 1 - (s - f), f + 1: s - f}
    else:
        f = math.floor(s)
        points = {f + k: _cubic(s - (f + k), a) for k in (-1, 0, 1, 2)}
    if exclude_outside:
        points = {i: wt for i, wt in points.items() if 0 <= i < in_len}
        total = sum(points.values())
        points = {i: wt / total for i, wt in points.items()}
    taps = {}
    for i, wt in points.items():
        k = min(max(i, 0), in_len - 1)
        taps[k] = taps.get(k, 0.0) + wt
    return taps


def resize(x, size, scales, mode="nearest", coordinate_transformation_mode="half_pixel",
           nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, exclude_outside=False, extrapolation_value=0.0,
           roi=None):
    """Non-antialiased ONNX Resize in float64, one output element at a time over every axis (the product of the
    axes' tap weights), independent of the separable kernel."""
    x = _f64(x)
    rank = x.ndim
    per_axis = []
    for d in range(rank):
        n, m = x.shape[d], size[d]
        axis = []
        for j in range(m):
            r = None if roi is None else (roi[d], roi[d + rank])
            if m == n and scales[d] == 1.0 and (r is None or r == (0.0, 1.0)):
                axis.append({j: 1.0})
                continue
            s = _source(coordinate_transformation_mode, j, n, m, scales[d], r)
            if coordinate_transformation_mode == "tf_crop_and_resize" and not 0 <= s <= n - 1:
                axis.append(None)
            else:
                axis.append(_taps(mode, s, n, nearest_mode, cubic_coeff_a, exclude_outside))
        per_axis.append(axis)
    y = np.empty(tuple(size))
    for index in np.ndindex(*size):
        taps = [per_axis[d][i] for d, i in enumerate(index)]
        if any(t is None for t in taps):
            y[index] = extrapolation_value
            continue
        total = 0.0
        for combo in np.ndindex(*[len(t) for t in taps]):
            items = [list(t.items())[k] for t, k in zip(taps, combo)]
            total += math.prod(wt for _, wt in items) * x[tuple(i for i, _ in items)]
        y[index] = total
    return y
