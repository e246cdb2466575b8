"""ONNX activations, Clip and Softmax / LogSoftmax. One-to-one ONNX forms declared with the ops
(`convcore.ops.OnnxOp`: Relu, Sigmoid, Elu, Exp, Sub, ...) import through `mapped`; the converters here cover what
is not one-to-one."""

import math

import numpy as np

from ...ops import OPS
from .attributes import axis_of, fail, float_attr, input_name, str_attr


def mapped(op, form=None):
    """A converter for an ONNX node that is op `op`, its attributes read through `form` (an `OnnxOp`; None: the
    node has none)."""

    def convert(ctx, node, a):
        try:
            attrs = form.import_attrs(a) if form is not None else {}
        except KeyError as exc:
            raise fail(node, f"expected the attribute {exc}") from None
        ctx.define(node, op, [ctx.tensor(n, node) for n in node.input if n], attrs)

    return convert


def declared_forms():
    """Converters for every op declared with an importable one-to-one ONNX form, by ONNX op type."""
    return {op.onnx.op_type: mapped(name, op.onnx) for name, op in OPS.items()
            if getattr(op.onnx, "importable", False)}


def convert_hard_sigmoid(ctx, node, a):
    alpha, beta = float_attr(node, a, "alpha", 0.2), float_attr(node, a, "beta", 0.5)
    x = ctx.tensor(node.input[0], node)
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        return ctx.define(node, "hardsigmoid", [x], {})
    # max(0, min(1, alpha * x + beta)), rounded as onnxruntime computes it
    n = node.name
    scaled = ctx.emit("mul", f"{n}.alpha", [x, ctx.constant(np.float32(alpha), f"{n}.alpha")], {})
    shifted = ctx.emit("add", f"{n}.beta", [scaled, ctx.constant(np.float32(beta), f"{n}.beta")], {})
    ctx.define(node, "clip", [shifted], {"min": 0.0, "max": 1.0})


def convert_prelu(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    slope_name = input_name(node, 1)
    if slope_name is None:
        raise fail(node, "expected a slope input")
    shape, slope_shape = ctx.shape(x), ctx.static_shape(slope_name)
    slope = ctx.tensor(slope_name, node)
    # opset 6 (and torch's exports of it): a (C,) slope runs over the channels, axis 1
    if ctx.opset < 7 and len(slope_shape) == 1 and len(shape) > 2 and slope_shape[0] == shape[1] != shape[-1]:
        slope = ctx.emit("reshape", f"{node.name}.slope", [slope], {"shape": (shape[1],) + (1,) * (len(shape) - 2)})
    ctx.define(node, "prelu", [x, slope], {})


def convert_clip(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    if ctx.opset < 11:
        low, high = a.get("min"), a.get("max")
        bounds = [None if v is None else float(v) for v in (low, high)]
    else:
        bounds = []
        for i in (1, 2):
            name = input_name(node, i)
            if name is None:
                bounds.append(None)
                continue
            value = ctx.const(name)
            if value is None:
                bounds.append(ctx.tensor(name, node))  # computed bound
            elif value.size != 1:
                raise fail(node, f"expected scalar bounds (got shape {value.shape})")
            else:
                bounds.append(float(value.reshape(-1)[0]))
    if any(isinstance(b, str) for b in bounds):  # computed bounds: min(max(x, low), high)
        y = x
        for bound, op in zip(bounds, ("maximum", "minimum")):
            if bound is None:
                continue
            other = bound if isinstance(bound, str) else ctx.constant(np.float32(bound), f"{node.name}.{op}")
            y = ctx.emit(op, f"{node.name}.{op}", [y, other], {})
        return ctx.alias(node, y)
    f32_max = float(np.finfo(np.float32).max)  # exporters write float32's extremes for "no bound"
    low, high = (None if b is None or abs(b) >= f32_max and (b < 0) == (i == 0) else b for i, b in enumerate(bounds))
    if any(b is not None and math.isnan(b) for b in (low, high)):
        raise fail(node, f"expected numeric bounds (got {bounds})")
    if low is None and high is None:
        return ctx.alias(node, x)
    if low == 0 and high in (None, 6.0):  # the activations compiled plans fuse
        return ctx.define(node, "relu" if high is None else "relu6", [x], {})
    ctx.define(node, "clip", [x], {"min": low, "max": high})


def convert_softmax(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    rank = len(shape)
    if rank == 0:
        raise fail(node, "expected at least a 1D input (got a 0D one)")
    axis = axis_of(node, a.get("axis", -1 if ctx.opset >= 13 else 1), rank)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    # Before opset 13 the op works on the input flattened to 2D at `axis`: one axis only if the rest are 1.
    if ctx.opset >= 13 or all(d == 1 for d in shape[axis + 1:]):
        return ctx.define(node, op, [x], {"axis": axis})
    rows = ctx.emit("reshape", f"{node.name}.2d", [x], {"shape": (-1 if axis else 1, math.prod(shape[axis:]))})
    y = ctx.emit(op, f"{node.name}.{op}", [rows], {"axis": 1})
    ctx.define(node, "reshape", [y], {"shape": (-1, *shape[1:]) if axis else shape})


def convert_gelu(ctx, node, a):
    approximate = str_attr(node, a, "approximate", "none", ("none", "tanh"))
    ctx.define(node, "gelu", [ctx.tensor(node.input[0], node)], {"approximate": approximate})


CONVERTERS = {"HardSwish": mapped("hardswish"), "HardSigmoid": convert_hard_sigmoid, "Clip": convert_clip,
              "Softmax": convert_softmax, "LogSoftmax": convert_softmax, "PRelu": convert_prelu,
              "Gelu": convert_gelu, "Mish": mapped("mish")}
