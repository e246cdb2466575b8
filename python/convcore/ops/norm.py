"""Normalisation: inference batch norm, instance norm and local response norm (kernels: csrc/ops/batchnorm,
csrc/ops/instancenorm, csrc/ops/lrn)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array
from .registry import Backward, PlanRule, declare

__all__ = ["batch_norm", "instance_norm", "layer_norm", "local_response_norm"]


def _batch_norm_rule(shapes, attrs):
    x = shapes[0]
    V.rank(x, "x", (2, 3, 4, 5))
    for name, shape in zip(("running_mean", "running_var", "weight", "bias"), shapes[1:]):
        V.shape_is(shape, name, (x[1],))
    eps = V.number(attrs["eps"], "eps")
    if eps < 0:
        raise ValueError(f"eps: expected a value >= 0 (got {eps})")
    return {"eps": eps}, x


def _batch_norm_kernel(x, running_mean, running_var, weight, bias, *, out, eps):
    _core.batch_norm(x, running_mean, running_var, weight, bias, eps, out)
    return out


def _batch_norm_to_onnx(em, node):
    x, mean, var, weight, bias = (list(node.inputs) + [""] * 5)[:5]
    channels = em.shape(x)[1]
    scale = em.value(weight) if weight else em.const(f"{node.name}.weight", np.ones(channels))
    shift = em.value(bias) if bias else em.const(f"{node.name}.bias", np.zeros(channels))
    return em.node("BatchNormalization", [x, scale, shift, em.value(mean), em.value(var)], node.outputs[0],
                   node.name, epsilon=node.attrs["eps"])


def _instance_norm_rule(shapes, attrs):
    x = shapes[0]
    if len(x) < 3:
        raise ValueError(f"x: expected at least 3D input (N, C, ...) (got {len(x)}D input with shape {x})")
    if 0 in x[2:]:
        raise ValueError(f"x: expected non-empty planes (got shape {x})")
    for name, shape in zip(("weight", "bias"), shapes[1:]):
        V.shape_is(shape, name, (x[1],))
    eps = V.number(attrs["eps"], "eps")
    if eps < 0:
        raise ValueError(f"eps: expected a value >= 0 (got {eps})")
    return {"eps": eps}, x


def _instance_norm_kernel(x, weight, bias, *, out, eps):
    if x.size:
        _core.instance_norm(x, weight, bias, eps, out)
    return out


def _instance_norm_to_onnx(em, node):
    x, weight, bias = (list(node.inputs) + [""] * 3)[:3]
    channels = em.shape(x)[1]
    scale = em.value(weight) if weight else em.const(f"{node.name}.weight", np.ones(channels))
    shift = em.value(bias) if bias else em.const(f"{node.name}.bias", np.zeros(channels))
    return em.node("InstanceNormalization", [x, scale, shift], node.outputs[0], node.name, epsilon=node.attrs["eps"])


def _layer_norm_rule(shapes, attrs):
    x = shapes[0]
    if not x:
        raise ValueError("x: expected at least 1D input (got a scalar)")
    axis = V.axis(attrs["axis"], len(x))
    normalized = tuple(x[axis:])
    if 0 in normalized:
        raise ValueError(f"x: expected non-empty normalized axes {normalized} (got shape {x})")
    for name, shape in zip(("weight", "bias"), shapes[1:]):
        if shape is not None and not V.broadcasts_to(shape, normalized):
            raise ValueError(f"{name}: expected a shape that broadcasts to the normalized axes {normalized} "
                             f"(got {tuple(shape)})")
    eps = V.number(attrs["eps"], "eps")
    if eps < 0:
        raise ValueError(f"eps: expected a value >= 0 (got {eps})")
    return {"axis": axis, "eps": eps}, x


def _layer_norm_kernel(x, weight, bias, *, out, axis, eps):
    if x.size:
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        _core.instance_norm(x.reshape(rows, 1, -1), None, None, eps, out.reshape(rows, 1, -1))
        if weight is not None:
            np.multiply(out, weight, out=out)
        if bias is not None:
            np.add(out, bias, out=out)
    return out


def _layer_norm_to_onnx(em, node):
    x, weight, bias = (list(node.inputs) + [""] * 3)[:3]
    out, n, axis, eps = node.outputs[0], node.name, node.attrs["axis"], node.attrs["eps"]
    normalized = em.shape(x)[axis:]
    if em.opset >= 17:
        scale = em.value(weight) if weight else em.const(f"{n}.weight", np.ones(normalized))
        inputs = [x, scale] + ([bias] if bias else [])
        return em.node("LayerNormalization", inputs, out, n, axis=axis, epsilon=eps)
    axes = list(range(axis, len(em.shape(x))))
    mean = em.axes_input_or_attr("ReduceMean", x, axes, em.fresh(f"{out}.mean"), f"{n}.mean")
    centred = em.node("Sub", [x, mean], em.fresh(f"{out}.centred"), f"{n}.centred")
    square = em.node("Mul", [centred, centred], em.fresh(f"{out}.square"), f"{n}.square")
    var = em.axes_input_or_attr("ReduceMean", square, axes, em.fresh(f"{out}.var"), f"{n}.var")
    std = em.node("Sqrt", [em.node("Add", [var, em.const(f"{n}.eps", eps)], em.fresh(f"{out}.shifted"),
                                   f"{n}.shifted")], em.fresh(f"{out}.std"), f"{n}.std")
    y = em.node("Div", [centred, std], out if not (weight or bias) else em.fresh(f"{out}.normed"), f"{n}.normed")
    if weight:
        y = em.node("Mul", [y, weight], out if not bias else em.fresh(f"{out}.scaled"), f"{n}.scale")
    if bias:
        y = em.node("Add", [y, bias], out, f"{n}.bias")
    return y


def _plan_layer_norm_ok(node, graph):
    """A (N, C) row normalised over C, with constant parameters."""
    shape = graph.shapes[node.inputs[0]]
    return len(shape) == 2 and _per_pixel_layer_norm(node, graph)


def _per_pixel_layer_norm(node, graph):
    """Normalised over the last axis only, with constant parameters (a channels-last map: each pixel's C values)."""
    return node.attrs["axis"] == len(graph.shapes[node.inputs[0]]) - 1 and all(
        v in graph.params for v in node.inputs[1:] if v)


def _lrn_rule(shapes, attrs):
    x = shapes[0]
    V.rank(x, "x", (3, 4, 5))
    return {"size": V.integer(attrs["size"], "size", 1), "alpha": V.number(attrs["alpha"], "alpha"),
            "beta": V.number(attrs["beta"], "beta"), "k": V.number(attrs["k"], "k")}, x


def _lrn_kernel(x, *, out, size, alpha, beta, k):
    _core.lrn(x, out, size, size // 2, (size - 1) // 2, alpha, beta, k)
    return out


def _lrn_to_onnx(em, node):
    x, out, n = node.inputs[0], node.outputs[0], node.name
    size, alpha, beta, k = (node.attrs[key] for key in ("size", "alpha", "beta", "k"))
    if size % 2:  # odd sizes: ONNX's window is torch's
        return em.node("LRN", [x], out, n, size=size, alpha=alpha, beta=beta, bias=k)
    # Even sizes: ONNX centres the window one channel later than torch (and onnxruntime refuses even sizes), so
    # write torch's formula out: x / (k + alpha / size * window_sum(x^2))^beta, the window sum over channels
    # [c - size//2, c + (size-1)//2] a 1x1 convolution with a band of ones.
    shape = em.shape(x)
    if len(shape) > 4:
        raise ValueError(f"node '{n}': expected 3D or 4D input for an even-sized local_response_norm (got "
                         f"{len(shape)}D)")
    channels = shape[1]
    offset = np.arange(channels)[None, :] - np.arange(channels)[:, None]  # input channel - output channel
    band = ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).astype(np.float32)
    band = band.reshape(channels, channels, *[1] * (len(shape) - 2))
    sq = em.node("Mul", [x, x], em.fresh(f"{out}.square"), f"{n}.square")
    window = em.node("Conv", [sq, em.const(f"{n}.band", band)], em.fresh(f"{out}.sum"), f"{n}.sum",
                     kernel_shape=[1] * (len(shape) - 2))
    scaled = em.node("Mul", [window, em.const(f"{n}.alpha", alpha / size)], em.fresh(f"{out}.scaled"), f"{n}.scale")
    shifted = em.node("Add", [scaled, em.const(f"{n}.k", k)], em.fresh(f"{out}.shifted"), f"{n}.shift")
    denom = em.node("Pow", [shifted, em.const(f"{n}.beta", beta)], em.fresh(f"{out}.denominator"), f"{n}.pow")
    return em.node("Div", [x, denom], out, n)


def _batch_norm_backward(dy, call):
    """dx = dy * weight / sqrt(var + eps) per channel: the forward kernel with mean 0 and no shift. The statistics'
    and affine parameters' gradients are not implemented (inference batch norm)."""
    _, mean, var, weight, _ = call.inputs
    for index, name in ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias")):
        if call.needs[index]:
            raise NotImplementedError(f"batch_norm: the gradient of {name} is not implemented (input gradients only)")
    zeros = call.cached("zeros", mean, np.zeros_like)
    dx = np.empty_like(dy)
    _core.batch_norm(dy, zeros, var, weight, None, call.attrs["eps"], dx)
    return [dx, None, None, None, None]


def _lrn_backward(dy, call):
    """torch's LRN: y = x * d^-beta, d = k + alpha / size * (window sum of x^2) over channels; in float64."""
    x = call.inputs[0].astype(np.float64)
    size, alpha, beta, k = (call.attrs[key] for key in ("size", "alpha", "beta", "k"))
    before, after = size // 2, (size - 1) // 2
    channels = x.shape[1]

    def window_sum(v, lo, hi):  # out[:, c] = sum of v[:, c - lo .. c + hi], clipped to the channels
        cum = np.concatenate([np.zeros_like(v[:, :1]), np.cumsum(v, axis=1)], axis=1)  # cum[:, i] = sum v[:, :i]
        c = np.arange(channels)
        return np.take(cum, np.minimum(c + hi, channels - 1) + 1, axis=1) - np.take(cum, np.maximum(c - lo, 0), axis=1)

    d = k + alpha / size * window_sum(x * x, before, after)
    g = dy.astype(np.float64)
    # dx_c = g_c d_c^-beta - 2 alpha beta / size x_c sum_{c' whose window holds c} g_c' x_c' d_c'^(-beta - 1)
    inner = g * x * d ** (-beta - 1.0)
    dx = g * d ** -beta - 2.0 * alpha * beta / size * x * window_sum(inner, after, before)
    return [dx.astype(np.float32)]


def _constant_statistics(node, graph):
    return all(v in graph.params for v in node.inputs[1:] if v)


@declare(("x", "running_mean", "running_var", "weight", "bias"), _batch_norm_rule, _batch_norm_kernel,
         onnx=_batch_norm_to_onnx, backward=Backward(_batch_norm_backward, ("running_mean", "running_var", "weight")),
         plan=PlanRule(lambda low, node: low.batch_norm(node), _constant_statistics),
         plan_backward=lambda gp, node, dy, needs: gp.batch_norm_backward(node, dy, needs))
def batch_norm(x: Array, running_mean: Array, running_var: Array, weight: Array | None = None,
               bias: Array | None = None, eps: float = 1e-5) -> Array:
    """Inference batch normalization: ``(x - mean) / sqrt(var + eps) * weight + bias`` per channel.

    Args:
        x: ``(N, C, ...)`` (2D to 5D).
        running_mean, running_var, weight, bias: ``(C,)``; weight / bias default to 1 / 0.
        eps: added to the variance, >= 0.
    """


@declare(("x", "weight", "bias"), _instance_norm_rule, _instance_norm_kernel, onnx=_instance_norm_to_onnx,
         allow_empty=True)
def instance_norm(x: Array, weight: Array | None = None, bias: Array | None = None, eps: float = 1e-5) -> Array:
    """Instance normalization: ``(x - mean) / sqrt(var + eps) * weight + bias``, mean and biased variance over each
    (n, c) plane (inference and training alike: no running statistics).

    Args:
        x: ``(N, C, ...)``, at least 3D.
        weight, bias: optional ``(C,)``; default 1 / 0.
        eps: added to the variance, >= 0.
    """


@declare(("x", "weight", "bias"), _layer_norm_rule, _layer_norm_kernel, onnx=_layer_norm_to_onnx,
         plan=PlanRule(lambda low, node: low.layer_norm(node), _plan_layer_norm_ok, per_pixel=_per_pixel_layer_norm))
def layer_norm(x: Array, weight: Array | None = None, bias: Array | None = None, axis: int = -1,
               eps: float = 1e-5) -> Array:
    """Layer normalization (ONNX LayerNormalization, torch's ``layer_norm`` over ``x.shape[axis:]``):
    ``(x - mean) / sqrt(var + eps) * weight + bias``, mean and biased variance over the axes from ``axis`` on.

    Args:
        x: any shape with non-empty normalized axes.
        weight, bias: optional, broadcastable to ``x.shape[axis:]``; default 1 / 0.
        axis: the first normalized axis (negative counts from the end).
        eps: added to the variance, >= 0.
    """


@declare(("x",), _lrn_rule, _lrn_kernel, onnx=_lrn_to_onnx, backward=Backward(_lrn_backward, ("x",)),
         plan=PlanRule(lambda low, node: low.lrn(node), lambda node, graph: len(graph.shapes[node.inputs[0]]) == 4))
def local_response_norm(x: Array, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Array:
    """Local response normalization across channels (torch semantics):
    ``y = x / (k + alpha / size * sum_{c' in window(c)} x[c']^2) ** beta``, window ``[c - size//2, c + (size-1)//2]``.

    Args:
        x: ``(N, C, ...)``, at least 3D.
    """
