"""Functional CNN operators: float32 NCHW numpy arrays in, new numpy arrays out, torch.nn.functional semantics.

Every operator validates its arguments in Python (clear ``TypeError`` / ``ValueError`` naming the argument) and runs
its compute in C++ (``convcore._core``) with the GIL released. Inputs may be read-only or non-contiguous (one
contiguous copy is made only when needed); inputs of another dtype are refused rather than silently cast.

Example:
    >>> import numpy as np, convcore.functional as F
    >>> x = np.random.rand(1, 3, 32, 32).astype(np.float32)
    >>> w = np.random.rand(8, 3, 3, 3).astype(np.float32)
    >>> F.relu(F.conv2d(x, w, padding="same")).shape
    (1, 8, 32, 32)
"""

from __future__ import annotations

import functools
import inspect
from typing import Sequence

import numpy as np

from . import _core
from . import _validate as V

__all__ = [
    "conv2d", "depthwise_conv2d", "separable_conv2d",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "global_avg_pool2d",
    "global_max_pool2d", "batch_norm", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish",
    "hardsigmoid", "softmax", "log_softmax", "local_response_norm", "linear", "add", "mul", "concat", "flatten",
]

# Set by the graph tracer (convcore.graph) while it traces a model: every operator below then calls
# _trace_hook(op_name, bound_arguments) and returns its result instead of computing.
_trace_hook = None


def _op(fn):
    sig = inspect.signature(fn)
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        hook = _trace_hook
        if hook is not None:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return hook(name, dict(bound.arguments))
        return fn(*args, **kwargs)

    return wrapper


# --- convolution ------------------------------------------------------------------------------------------------

@_op
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, out=None):
    """2-D convolution (cross-correlation, as torch).

    Args:
        x: input, float32 ``(N, C_in, H, W)``.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: optional ``(C_out,)``.
        stride, dilation: int or ``(h, w)``, each >= 1.
        padding: int, ``(pad_h, pad_w)``, ``(top, bottom, left, right)`` or a mode: ``'valid'`` (none),
            ``'same'`` (output = ceil(input / stride); an odd total pad puts the extra row/column at the bottom/right,
            as ONNX SAME_UPPER) or ``'full'`` (``dilation * (k - 1)`` on every side).
        groups: divides both channel counts; ``groups == C_in`` is a depthwise convolution.
        out: optional preallocated float32 ``(N, C_out, H_out, W_out)`` array to write into.

    Shape:
        ``H_out = (H + top + bottom - dilation_h * (kH - 1) - 1) // stride_h + 1`` (likewise ``W_out``).

    Example:
        >>> y = conv2d(x, w, b, stride=2, padding="same")
    """
    x = V.tensor(x, "x", ndim=4)
    weight = V.tensor(weight, "weight", ndim=4)
    groups = V.integer(groups, "groups", 1)
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    if c % groups:
        raise ValueError(f"groups: expected a divisor of the {c} input channels (got groups={groups})")
    if k % groups:
        raise ValueError(f"groups: expected a divisor of the {k} output channels of weight (got groups={groups})")
    if cg * groups != c:
        raise ValueError(
            f"weight: expected shape ({k}, {c // groups}, {kh}, {kw}) for an input with {c} channels and "
            f"groups={groups} (got {weight.shape})"
        )
    stride = V.pair(stride, "stride", 1)
    dilation = V.pair(dilation, "dilation", 1)
    pads = V.conv_padding(padding, (h, w), (kh, kw), stride, dilation)
    oh = V.out_size(h, dilation[0] * (kh - 1) + 1, stride[0], pads[0], pads[1], False, "weight")
    ow = V.out_size(w, dilation[1] * (kw - 1) + 1, stride[1], pads[2], pads[3], False, "weight")
    bias = V.optional_tensor(bias, "bias", (k,))
    out = V.output(out, (n, k, oh, ow), "out", (x, weight, bias))
    _core.conv2d(x, weight, bias, out, stride, dilation, pads, groups)
    return out


@_op
def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution: each input channel convolved with its own ``m`` filters.

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(C * m, 1, kH, kW)`` (channel multiplier ``m``).
        bias, stride, padding, dilation: as :func:`conv2d`.

    Shape:
        output ``(N, C * m, H_out, W_out)``.
    """
    x = V.tensor(x, "x", ndim=4)
    weight = V.tensor(weight, "weight", ndim=4)
    c = x.shape[1]
    if weight.shape[1] != 1 or weight.shape[0] % c:
        raise ValueError(
            f"weight: expected shape (C*m, 1, kH, kW) with C={c} input channels (got {weight.shape})"
        )
    return conv2d(x, weight, bias, stride, padding, dilation, groups=c)


@_op
def separable_conv2d(x, depthwise_weight, pointwise_weight, depthwise_bias=None, pointwise_bias=None, stride=1,
                     padding=0, dilation=1):
    """Depthwise-separable convolution: a depthwise convolution, then a 1x1 (pointwise) convolution.

    Args:
        x: ``(N, C, H, W)``.
        depthwise_weight: ``(C * m, 1, kH, kW)``; stride, padding and dilation apply to this step.
        pointwise_weight: ``(C_out, C * m, 1, 1)``.
        depthwise_bias, pointwise_bias: optional ``(C * m,)`` and ``(C_out,)``.
    """
    pointwise_weight = V.tensor(pointwise_weight, "pointwise_weight", ndim=4)
    if pointwise_weight.shape[2:] != (1, 1):
        raise ValueError(f"pointwise_weight: expected shape (C_out, C*m, 1, 1) (got {pointwise_weight.shape})")
    y = depthwise_conv2d(x, depthwise_weight, depthwise_bias, stride, padding, dilation)
    if pointwise_weight.shape[1] != y.shape[1]:
        raise ValueError(
            f"pointwise_weight: expected {y.shape[1]} input channels (got shape {pointwise_weight.shape})"
        )
    return conv2d(y, pointwise_weight, pointwise_bias)


# --- pooling ----------------------------------------------------------------------------------------------------

def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, max_pad_rule):
    x = V.tensor(x, "x", ndim=4)
    kernel = V.pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else V.pair(stride, "stride", 1)
    dilation = V.pair(dilation, "dilation", 1)
    pads = V.padding4(padding)
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    limits = [k_eff[0] // 2 if max_pad_rule else kernel[0] // 2, k_eff[1] // 2 if max_pad_rule else kernel[1] // 2]
    for p, limit in zip(pads, (limits[0], limits[0], limits[1], limits[1])):
        if p > limit:
            raise ValueError(f"padding: expected at most half the kernel size ({limit}) (got {padding!r})")
    n, c, h, w = x.shape
    oh = V.out_size(h, k_eff[0], stride[0], pads[0], pads[1], bool(ceil_mode), "kernel_size")
    ow = V.out_size(w, k_eff[1], stride[1], pads[2], pads[3], bool(ceil_mode), "kernel_size")
    return x, kernel, stride, dilation, pads, (n, c, oh, ow)


@_op
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """2-D max pooling; padding cells never win. ``stride`` defaults to ``kernel_size``.

    Args:
        x: ``(N, C, H, W)``.
        kernel_size, stride, dilation: int or pair. padding: int, pair or ``(top, bottom, left, right)``, at most
            half the effective kernel. ceil_mode: round the output size up (the last window must still start inside
            the input or its leading padding).
    """
    x, kernel, stride, dilation, pads, shape = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, True)
    out = np.empty(shape, np.float32)
    _core.max_pool2d(x, out, kernel, stride, dilation, pads)
    return out


@_op
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """2-D average pooling (torch semantics for ``count_include_pad`` and ``ceil_mode``)."""
    x, kernel, stride, _, pads, shape = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, False)
    out = np.empty(shape, np.float32)
    _core.avg_pool2d(x, out, kernel, stride, pads, bool(count_include_pad))
    return out


def _adaptive(x, output_size, is_max):
    x = V.tensor(x, "x", ndim=4)
    if output_size is None or V._is_int(output_size):
        output_size = (output_size, output_size)
    if not isinstance(output_size, (tuple, list)) or len(output_size) != 2:
        raise TypeError(f"output_size: expected an int or a pair (got {output_size!r})")
    size = [x.shape[2 + i] if s is None else V.integer(s, "output_size", 1) for i, s in enumerate(output_size)]
    out = V.output(None, (x.shape[0], x.shape[1], size[0], size[1]), "output_size")
    _core.adaptive_pool2d(x, out, is_max)
    return out


@_op
def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed ``output_size`` (int or pair; ``None`` keeps that input size)."""
    return _adaptive(x, output_size, False)


@_op
def adaptive_max_pool2d(x, output_size):
    """Max pooling to a fixed ``output_size`` (int or pair; ``None`` keeps that input size)."""
    return _adaptive(x, output_size, True)


@_op
def global_avg_pool2d(x):
    """Mean over H and W: ``(N, C, H, W) -> (N, C, 1, 1)``."""
    return _adaptive(x, 1, False)


@_op
def global_max_pool2d(x):
    """Max over H and W: ``(N, C, H, W) -> (N, C, 1, 1)``."""
    return _adaptive(x, 1, True)


# --- normalization ----------------------------------------------------------------------------------------------

@_op
def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """Inference batch normalization: ``(x - mean) / sqrt(var + eps) * weight + bias`` per channel.

    Args:
        x: ``(N, C, ...)`` (2D to 5D).
        running_mean, running_var, weight, bias: ``(C,)``; weight / bias default to 1 / 0.
        eps: added to the variance, >= 0.
    """
    x = V.tensor(x, "x", ndim=(2, 3, 4, 5))
    c = x.shape[1]
    running_mean = V.optional_tensor(running_mean, "running_mean", (c,))
    running_var = V.optional_tensor(running_var, "running_var", (c,))
    if running_mean is None or running_var is None:
        raise ValueError("running_mean, running_var: expected arrays of shape (C,) (inference batch norm)")
    weight = V.optional_tensor(weight, "weight", (c,))
    bias = V.optional_tensor(bias, "bias", (c,))
    eps = V.number(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps: expected a value >= 0 (got {eps})")
    out = np.empty(x.shape, np.float32)
    _core.batch_norm(x, running_mean, running_var, weight, bias, eps, out)
    return out


@_op
def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalization across channels (torch semantics):
    ``y = x / (k + alpha / size * sum_{c' in window(c)} x[c']^2) ** beta``, window ``[c - size//2, c + (size-1)//2]``.

    Args:
        x: ``(N, C, ...)``, at least 3D.
    """
    x = V.tensor(x, "x", ndim=(3, 4, 5))
    size = V.integer(size, "size", 1)
    out = np.empty(x.shape, np.float32)
    _core.lrn(x, out, size, size // 2, (size - 1) // 2, V.number(alpha, "alpha"), V.number(beta, "beta"),
              V.number(k, "k"))
    return out


# --- activations ------------------------------------------------------------------------------------------------

def _unary(x, op, alpha=0.0):
    x = V.tensor(x, "x", allow_empty=True)
    out = np.empty(x.shape, np.float32)
    if x.size:
        _core.unary(x, out, op, alpha)
    return out


@_op
def relu(x):
    """``max(x, 0)``, elementwise (any shape)."""
    return _unary(x, "relu")


@_op
def relu6(x):
    """``min(max(x, 0), 6)``, elementwise."""
    return _unary(x, "relu6")


@_op
def leaky_relu(x, negative_slope=0.01):
    """``x if x >= 0 else negative_slope * x``, elementwise."""
    return _unary(x, "leaky_relu", V.number(negative_slope, "negative_slope"))


@_op
def sigmoid(x):
    """``1 / (1 + exp(-x))``, elementwise."""
    return _unary(x, "sigmoid")


@_op
def tanh(x):
    """Hyperbolic tangent, elementwise."""
    return _unary(x, "tanh")


@_op
def silu(x):
    """``x * sigmoid(x)`` (swish), elementwise."""
    return _unary(x, "silu")


@_op
def hardswish(x):
    """``x * relu6(x + 3) / 6``, elementwise."""
    return _unary(x, "hardswish")


@_op
def hardsigmoid(x):
    """``relu6(x + 3) / 6``, elementwise."""
    return _unary(x, "hardsigmoid")


def _softmax(x, axis, log):
    x = V.tensor(x, "x")
    axis = V.axis(axis, x.ndim)
    out = np.empty(x.shape, np.float32)
    _core.softmax(x, out, axis, log)
    return out


@_op
def softmax(x, axis=1):
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow)."""
    return _softmax(x, axis, False)


@_op
def log_softmax(x, axis=1):
    """``log(softmax(x))`` along ``axis``, computed without forming the softmax."""
    return _softmax(x, axis, True)


# --- dense and elementwise --------------------------------------------------------------------------------------

@_op
def linear(x, weight, bias=None):
    """Fully connected layer ``y = x @ weight.T + bias``.

    Args:
        x: ``(..., in_features)``.
        weight: ``(out_features, in_features)`` (torch layout).
        bias: optional ``(out_features,)``.

    Shape:
        output ``(..., out_features)``.
    """
    x = V.tensor(x, "x", ndim=(1, 2, 3, 4))
    weight = V.tensor(weight, "weight", ndim=2)
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(
            f"weight: expected shape (out_features, {x.shape[-1]}) for an input with {x.shape[-1]} features "
            f"(got {weight.shape})"
        )
    bias = V.optional_tensor(bias, "bias", (weight.shape[0],))
    x2 = x.reshape(-1, x.shape[-1])
    out = V.output(None, (x2.shape[0], weight.shape[0]))
    _core.linear(x2, weight, bias, out)
    return out.reshape(x.shape[:-1] + (weight.shape[0],))


def _binary(a, b, op):
    a = V.tensor(a, "a", allow_empty=True)
    b = V.tensor(b, "b", allow_empty=True)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"a, b: shapes {a.shape} and {b.shape} do not broadcast together") from None
    out = V.output(None, shape)
    _core.binary(np.broadcast_to(a, shape), np.broadcast_to(b, shape), out, op)
    return out


@_op
def add(a, b):
    """Elementwise ``a + b`` with numpy broadcasting (e.g. residual connections)."""
    return _binary(a, b, "add")


@_op
def mul(a, b):
    """Elementwise ``a * b`` with numpy broadcasting (e.g. squeeze-and-excitation: ``(N, C, H, W) * (N, C, 1, 1)``)."""
    return _binary(a, b, "mul")


@_op
def concat(xs: Sequence[np.ndarray], axis=1):
    """Concatenates arrays of equal shape except along ``axis``."""
    if isinstance(xs, np.ndarray) or not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise TypeError("xs: expected a non-empty list or tuple of float32 arrays")
    xs = [V.tensor(x, f"xs[{i}]") for i, x in enumerate(xs)]
    nd = xs[0].ndim
    axis = V.axis(axis, nd)
    for i, x in enumerate(xs[1:], 1):
        if x.ndim != nd or x.shape[:axis] + x.shape[axis + 1:] != xs[0].shape[:axis] + xs[0].shape[axis + 1:]:
            raise ValueError(
                f"xs[{i}]: expected shape {xs[0].shape} except along axis {axis} (got {x.shape})"
            )
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = V.output(None, tuple(shape))
    _core.concat(xs, out, axis)
    return out


@_op
def flatten(x, start_dim=1, end_dim=-1):
    """Merges dimensions ``start_dim..end_dim`` into one (a view when the input is contiguous)."""
    x = V.tensor(x, "x", allow_empty=True)
    nd = max(x.ndim, 1)
    s = V.axis(start_dim, nd, "start_dim")
    e = V.axis(end_dim, nd, "end_dim")
    if s > e:
        raise ValueError(f"start_dim: expected start_dim <= end_dim (got {start_dim} > {end_dim})")
    merged = 1
    for d in x.shape[s:e + 1]:
        merged *= d
    return x.reshape(x.shape[:s] + (merged,) + x.shape[e + 1:])
