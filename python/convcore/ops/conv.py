"""Convolutions: conv2d, depthwise_conv2d, separable_conv2d, conv_transpose2d (kernels: csrc/ops/conv2d, depthwise
included, and csrc/ops/conv_transpose, over csrc/kernels)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array, IntPair, Padding, Pads
from . import window
from .registry import Backward, PlanRule, declare

__all__ = ["conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d"]


# --- shape rules ------------------------------------------------------------------------------------------------

def _window_attrs(attrs, in_hw, kernel_hw):
    """Normalised stride, padding (top, bottom, left, right; modes resolved for this input size) and dilation."""
    stride = V.pair(attrs["stride"], "stride", 1)
    dilation = V.pair(attrs["dilation"], "dilation", 1)
    padding = window.conv_padding(attrs["padding"], in_hw, kernel_hw, stride, dilation)
    return {"stride": stride, "padding": padding, "dilation": dilation}


def _conv2d_rule(shapes, attrs, names=("x", "weight", "bias")):
    x, weight, bias = shapes
    V.rank(x, names[0], 4)
    V.rank(weight, names[1], 4)
    groups = V.integer(attrs["groups"], "groups", 1)
    n, c, h, w = x
    k, cg, kh, kw = weight
    if c % groups:
        raise ValueError(f"groups: expected a divisor of the {c} input channels (got groups={groups})")
    if k % groups:
        raise ValueError(f"groups: expected a divisor of the {k} output channels of {names[1]} (got groups={groups})")
    if cg * groups != c:
        raise ValueError(f"{names[1]}: expected shape ({k}, {c // groups}, {kh}, {kw}) for an input with {c} "
                         f"channels and groups={groups} (got {weight})")
    attrs = {**_window_attrs(attrs, (h, w), (kh, kw)), "groups": groups}
    oh, ow = window.output_hw((h, w), (kh, kw), attrs["stride"], attrs["dilation"], attrs["padding"], False, names[1])
    V.shape_is(bias, names[2], (k,))
    return attrs, (n, k, oh, ow)


def _depthwise_rule(shapes, attrs, names=("x", "weight", "bias")):
    x, weight, bias = shapes
    V.rank(x, names[0], 4)
    V.rank(weight, names[1], 4)
    c = x[1]
    if weight[1] != 1 or weight[0] % c:
        raise ValueError(f"{names[1]}: expected shape (C*m, 1, kH, kW) with C={c} input channels (got {weight})")
    attrs, shape = _conv2d_rule(shapes, {**attrs, "groups": c}, names)
    del attrs["groups"]
    return attrs, shape


def _separable_rule(shapes, attrs):
    x, depthwise, pointwise, depthwise_bias, pointwise_bias = shapes
    V.rank(pointwise, "pointwise_weight", 4)
    if pointwise[2:] != (1, 1):
        raise ValueError(f"pointwise_weight: expected shape (C_out, C*m, 1, 1) (got {pointwise})")
    attrs, (n, mid, h, w) = _depthwise_rule([x, depthwise, depthwise_bias], attrs,
                                            ("x", "depthwise_weight", "depthwise_bias"))
    if pointwise[1] != mid:
        raise ValueError(f"pointwise_weight: expected {mid} input channels (got shape {pointwise})")
    V.shape_is(pointwise_bias, "pointwise_bias", (pointwise[0],))
    return attrs, (n, pointwise[0], h, w)


def _conv_transpose_rule(shapes, attrs):
    x, weight, bias = shapes
    V.rank(x, "x", 4)
    V.rank(weight, "weight", 4)
    groups = V.integer(attrs["groups"], "groups", 1)
    n, c, h, w = x
    cw, kg, kh, kw = weight
    if cw != c:
        raise ValueError(f"weight: expected shape ({c}, C_out / groups, kH, kW) for an input with {c} channels (got "
                         f"{weight})")
    if c % groups:
        raise ValueError(f"groups: expected a divisor of the {c} input channels (got groups={groups})")
    stride = V.pair(attrs["stride"], "stride", 1)
    dilation = V.pair(attrs["dilation"], "dilation", 1)
    output_padding = V.pair(attrs["output_padding"], "output_padding", 0)
    padding = window.padding4(attrs["padding"], signed=True)
    out_hw = tuple(window.transposed_out_size(size, window.extent(k, d), s, padding[2 * i], padding[2 * i + 1], op)
                   for i, (size, k, d, s, op) in enumerate(zip((h, w), (kh, kw), dilation, stride, output_padding)))
    if min(out_hw) < 1:
        raise ValueError(f"padding: expected an output of at least 1x1 (got {out_hw} for padding {padding})")
    k = kg * groups
    V.shape_is(bias, "bias", (k,))
    V.check_size((n, k, *out_hw), "x")
    return ({"stride": stride, "padding": padding, "output_padding": output_padding, "dilation": dilation,
             "groups": groups}, (n, k, *out_hw))


# --- kernels ----------------------------------------------------------------------------------------------------

def _conv2d_kernel(x, weight, bias, *, out, stride, padding, dilation, groups):
    _core.conv2d(x, weight, bias, out, stride, dilation, padding, groups)
    return out


def _depthwise_kernel(x, weight, bias, *, out, **attrs):
    return _conv2d_kernel(x, weight, bias, out=out, groups=x.shape[1], **attrs)


def _separable_kernel(x, depthwise, pointwise, depthwise_bias, pointwise_bias, *, out, **attrs):
    mid = np.empty((x.shape[0], depthwise.shape[0], *out.shape[2:]), np.float32)
    _depthwise_kernel(x, depthwise, depthwise_bias, out=mid, **attrs)
    return _conv2d_kernel(mid, pointwise, pointwise_bias, out=out, stride=(1, 1), padding=(0, 0, 0, 0),
                          dilation=(1, 1), groups=1)


def _conv_transpose_kernel(x, weight, bias, *, out, stride, padding, output_padding, dilation, groups):
    _core.conv_transpose2d(x, weight, bias, out, stride, dilation, (padding[0], padding[2]), groups)
    return out


# --- ONNX -------------------------------------------------------------------------------------------------------

def _onnx_conv(em, name, x, weight, bias, out, attrs, groups):
    inputs = [x, em.value(weight)] + ([em.value(bias)] if bias else [])
    return em.node("Conv", inputs, out, name, kernel_shape=list(em.shape(weight)[2:]), strides=list(attrs["stride"]),
                   dilations=list(attrs["dilation"]), pads=window.to_onnx_pads(attrs["padding"]), group=groups)


def _conv2d_to_onnx(em, node):
    x, weight, bias = (list(node.inputs) + [""])[:3]
    return _onnx_conv(em, node.name, x, weight, bias, node.outputs[0], node.attrs, node.attrs["groups"])


def _depthwise_to_onnx(em, node):
    x, weight, bias = (list(node.inputs) + [""])[:3]
    return _onnx_conv(em, node.name, x, weight, bias, node.outputs[0], node.attrs, em.shape(x)[1])


def _separable_to_onnx(em, node):
    x, depthwise, pointwise, depthwise_bias, pointwise_bias = (list(node.inputs) + [""] * 5)[:5]
    mid = em.fresh(f"{node.outputs[0]}.depthwise")
    _onnx_conv(em, f"{node.name}.depthwise", x, depthwise, depthwise_bias, mid, node.attrs, em.shape(x)[1])
    pointwise_attrs = {"stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1)}
    return _onnx_conv(em, node.name, mid, pointwise, pointwise_bias, node.outputs[0], pointwise_attrs, 1)


def _conv_transpose_to_onnx(em, node):
    x, weight, bias = (list(node.inputs) + [""])[:3]
    a = node.attrs
    top, bottom, left, right = a["padding"]
    if top < 0 or left < 0:
        raise ValueError(f"node '{node.name}': a transposed convolution with negative begin padding has no ONNX form")
    # negative end pads are extra output rows: ONNX's output_padding
    extra = (a["output_padding"][0] - min(bottom, 0), a["output_padding"][1] - min(right, 0))
    inputs = [x, em.value(weight)] + ([em.value(bias)] if bias else [])
    return em.node("ConvTranspose", inputs, node.outputs[0], node.name, kernel_shape=list(em.shape(weight)[2:]),
                   strides=list(a["stride"]), dilations=list(a["dilation"]), group=a["groups"],
                   pads=[top, left, max(bottom, 0), max(right, 0)], output_padding=list(extra))


# --- multiply-accumulates ---------------------------------------------------------------------------------------

def _conv2d_macs(shapes, out):
    return int(np.prod(out)) * int(np.prod(shapes[1][1:]))


def _depthwise_macs(shapes, out):
    return int(np.prod(out)) * shapes[1][2] * shapes[1][3]


def _separable_macs(shapes, out):
    depthwise, pointwise = shapes[1], shapes[2]
    n, _, h, w = out
    return n * h * w * (depthwise[0] * depthwise[2] * depthwise[3] + pointwise[0] * pointwise[1])


def _conv_transpose_macs(shapes, out):
    x, weight = shapes[0], shapes[1]
    return int(np.prod(x)) * int(np.prod(weight[1:]))


# --- backward (input gradients: a transposed convolution, csrc/ops/conv2d/conv2d_backward.cpp) ------------------

def conv_input_grad(dy, weight, x_shape, stride, padding, dilation, groups, call=None, key="weight"):
    """dx of shape `x_shape` = the input gradient of conv2d(x, weight, ...) for the output gradient `dy`. With a
    `BackwardCall`, the weights rearranged for the kernel are kept in its cache across calls."""
    def rearrange(w):
        wt = np.empty_like(w)
        _core.conv2d_input_grad_weights(w, wt, stride, dilation, groups)
        return wt

    wt = rearrange(weight) if call is None else call.cached(key, weight, rearrange)
    dx = np.empty(x_shape, np.float32)
    _core.conv2d_input_grad(dy, weight, wt, dx, stride, dilation, padding, groups)
    return dx


def _no_weight_grads(op, call, names):
    """NotImplementedError when a gradient of the inputs `names` (index -> name) is wanted: a place for weight
    gradients to go."""
    for index, name in names.items():
        if call.needs[index]:
            raise NotImplementedError(f"{op}: the gradient of {name} is not implemented (input gradients only)")


def _bias_grad(dy):
    return dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)


def _conv2d_backward(dy, call):
    x_shape, weight = call.shapes[0], call.inputs[1]
    _no_weight_grads("conv2d", call, {1: "weight"})
    dx = conv_input_grad(dy, weight, x_shape, groups=call.attrs["groups"], call=call,
                         **{k: call.attrs[k] for k in ("stride", "padding", "dilation")}) if call.needs[0] else None
    return [dx, None, _bias_grad(dy) if call.needs[2] else None]


def _depthwise_backward(dy, call):
    x_shape, weight = call.shapes[0], call.inputs[1]
    _no_weight_grads("depthwise_conv2d", call, {1: "weight"})
    dx = conv_input_grad(dy, weight, x_shape, groups=x_shape[1], call=call, **call.attrs) if call.needs[0] else None
    return [dx, None, _bias_grad(dy) if call.needs[2] else None]


def _separable_backward(dy, call):
    x_shape, depthwise, pointwise = call.shapes[0], call.inputs[1], call.inputs[2]
    _no_weight_grads("separable_conv2d", call, {1: "depthwise_weight", 2: "pointwise_weight", 3: "depthwise_bias"})
    mid_shape = (dy.shape[0], depthwise.shape[0], *dy.shape[2:])
    dx = None
    if call.needs[0]:
        dmid = conv_input_grad(dy, pointwise, mid_shape, (1, 1), (0, 0, 0, 0), (1, 1), 1, call, "pointwise")
        dx = conv_input_grad(dmid, depthwise, x_shape, groups=x_shape[1], call=call, key="depthwise", **call.attrs)
    return [dx, None, None, None, _bias_grad(dy) if call.needs[4] else None]


# --- in a compiled Plan ------------------------------------------------------------------------------------------

def _constant_weights(node, graph):
    """A 4-D input and constant weights: the Plan packs them once."""
    x = node.inputs[0]
    return len(graph.shapes[x]) == 4 and all(v in graph.params for v in node.inputs[1:] if v)


def _plan_conv(low, node):
    low.convolution(node)


def _conv_transpose_plan_ok(node, graph):
    """Constant weights and the padding a convolution's input gradient has: non-negative, output padding inside
    one stride."""
    a = node.attrs
    return _constant_weights(node, graph) and min(a["padding"]) >= 0 and \
        all(p < s for p, s in zip(a["output_padding"], a["stride"]))


def _plan_conv_backward(gp, node, dy, needs):
    gp.conv_backward(node, dy, needs)


# --- declarations -----------------------------------------------------------------------------------------------

@declare(("x", "weight", "bias"), _conv2d_rule, _conv2d_kernel, onnx=_conv2d_to_onnx, macs=_conv2d_macs,
         channel_params=("weight", "bias"), backward=Backward(_conv2d_backward, ("weight",)),
         plan=PlanRule(_plan_conv, _constant_weights), plan_backward=_plan_conv_backward)
def conv2d(x: Array, weight: Array, bias: Array | None = None, stride: IntPair = 1, padding: Padding = 0,
           dilation: IntPair = 1, groups: int = 1, out: Array | None = None) -> Array:
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


@declare(("x", "weight", "bias"), _depthwise_rule, _depthwise_kernel, onnx=_depthwise_to_onnx,
         macs=_depthwise_macs, channel_params=("weight", "bias"), backward=Backward(_depthwise_backward, ("weight",)),
         plan=PlanRule(_plan_conv, _constant_weights), plan_backward=_plan_conv_backward)
def depthwise_conv2d(x: Array, weight: Array, bias: Array | None = None, stride: IntPair = 1, padding: Padding = 0,
                     dilation: IntPair = 1) -> Array:
    """Depthwise convolution: each input channel convolved with its own ``m`` filters.

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(C * m, 1, kH, kW)`` (channel multiplier ``m``).
        bias, stride, padding, dilation: as :func:`conv2d`.

    Shape:
        output ``(N, C * m, H_out, W_out)``.
    """


@declare(("x", "depthwise_weight", "pointwise_weight", "depthwise_bias", "pointwise_bias"), _separable_rule,
         _separable_kernel, onnx=_separable_to_onnx, macs=_separable_macs,
         channel_params=("pointwise_weight", "pointwise_bias"),
         backward=Backward(_separable_backward, ("depthwise_weight", "pointwise_weight")),
         plan=PlanRule(lambda low, node: low.separable(node), _constant_weights))
def separable_conv2d(x: Array, depthwise_weight: Array, pointwise_weight: Array, depthwise_bias: Array | None = None,
                     pointwise_bias: Array | None = None, stride: IntPair = 1, padding: Padding = 0,
                     dilation: IntPair = 1) -> Array:
    """Depthwise-separable convolution: a depthwise convolution, then a 1x1 (pointwise) convolution.

    Args:
        x: ``(N, C, H, W)``.
        depthwise_weight: ``(C * m, 1, kH, kW)``; stride, padding and dilation apply to this step.
        pointwise_weight: ``(C_out, C * m, 1, 1)``.
        depthwise_bias, pointwise_bias: optional ``(C * m,)`` and ``(C_out,)``.
    """


@declare(("x", "weight", "bias"), _conv_transpose_rule, _conv_transpose_kernel, onnx=_conv_transpose_to_onnx,
         macs=_conv_transpose_macs,
         plan=PlanRule(lambda low, node: low.conv_transpose(node), _conv_transpose_plan_ok,
                       needs=frozenset({"backward"})))
def conv_transpose2d(x: Array, weight: Array, bias: Array | None = None, stride: IntPair = 1, padding: Pads = 0,
                     output_padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1) -> Array:
    """Transposed 2-D convolution (torch conv_transpose2d, ONNX ConvTranspose): each input pixel scatters its
    weighted kernel into the output.

    Args:
        x: ``(N, C_in, H, W)``.
        weight: ``(C_in, C_out / groups, kH, kW)`` (torch layout).
        bias: optional ``(C_out,)``.
        stride, dilation: int or ``(h, w)``, each >= 1.
        padding: int, ``(pad_h, pad_w)`` or ``(top, bottom, left, right)`` removed from the full output; negative
            values make the output longer (ONNX output_shape beyond the full size).
        output_padding: int or ``(h, w)`` extra rows / columns at the end.
        groups: divides both channel counts.

    Shape:
        ``H_out = (H - 1) * stride_h - top - bottom + dilation_h * (kH - 1) + 1 + output_padding_h`` (likewise W).

    Normalised: ``stride``, ``output_padding``, ``dilation`` pairs, ``padding`` 4 ints (any sign), ``groups`` int.
    """
