"""ONNX activations and softmax. One-to-one ONNX forms declared with the ops (`convcore.ops.OnnxOp`) import through
`mapped`; the converters here cover what is not one-to-one."""

import numpy as np

from ...ops import OPS
from .attributes import float_const


def mapped(op, form=None):
    """A converter for an ONNX node that is op `op`, its attributes read through `form` (an `OnnxOp`; None: the
    node has none)."""

    def convert(ctx, node, a):
        attrs = form.import_attrs(a) if form is not None else {}
        ctx.define(node, op, [ctx.tensor(n, node) for n in node.input if n], attrs)

    return convert


def declared_forms():
    """Converters for every op declared with an importable one-to-one ONNX form, by ONNX op type."""
    return {op.onnx.op_type: mapped(name, op.onnx) for name, op in OPS.items()
            if getattr(op.onnx, "importable", False)}


def convert_hard_sigmoid(ctx, node, a):
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    x = ctx.tensor(node.input[0], node)
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        ctx.define(node, "hardsigmoid", [x], {})
        return
    # clip(alpha * x + beta, 0, 1) == relu6(6 * alpha * x + 6 * beta) / 6
    n = node.name
    scaled = ctx.emit("mul", f"{n}.scale", [x, ctx.param(np.float32(6 * alpha), f"{n}.alpha")], {})
    shifted = ctx.emit("add", f"{n}.shift", [scaled, ctx.param(np.float32(6 * beta), f"{n}.beta")], {})
    clipped = ctx.emit("relu6", f"{n}.clip", [shifted], {})
    ctx.define(node, "mul", [clipped, ctx.param(np.float32(1 / 6), f"{n}.sixth")], {})


def convert_clip(ctx, node, a):
    if ctx.opset < 11:
        low, high = a.get("min"), a.get("max")
    else:
        low, high = float_const(ctx, node, 1, "min"), float_const(ctx, node, 2, "max")
    low = None if low is None or low <= -3.4e38 else low
    high = None if high is None or high >= 3.4e38 else high
    x = ctx.tensor(node.input[0], node)
    if low is None and high is None:
        ctx.values[node.output[0]] = x
    elif low == 0 and high in (None, 6.0):
        ctx.define(node, "relu" if high is None else "relu6", [x], {})
    else:
        raise ValueError(f"node '{node.name}' (Clip): expected bounds [0, 6] (ReLU6) or [0, inf) (ReLU) (got "
                         f"[{low}, {high}])")


def convert_softmax(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axis = int(a.get("axis", -1 if ctx.opset >= 13 else 1)) % rank
    # Before opset 13 the op worked on the input flattened to 2D at `axis`: one axis only if the rest are 1.
    if ctx.opset < 13 and any(d != 1 for d in ctx.shape(x)[axis + 1:]):
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected the axes after axis {axis} of size 1 for "
                         f"an opset < 13 softmax (got shape {ctx.shape(x)})")
    ctx.define(node, "softmax" if node.op_type == "Softmax" else "log_softmax", [x], {"axis": axis})


CONVERTERS = {"HardSwish": mapped("hardswish"), "HardSigmoid": convert_hard_sigmoid, "Clip": convert_clip,
              "Softmax": convert_softmax, "LogSoftmax": convert_softmax}
