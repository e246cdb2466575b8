"""ONNX BatchNormalization (inference; statistics constant or computed; opset 7's per-activation `spatial=0` as
elementwise ops), InstanceNormalization and LRN (an even size runs torch's window on the channels reversed: ONNX
centres an even window one channel later)."""

import numpy as np

from .attributes import fail, float_attr, input_name, int_attr


def _training(ctx, node, a):
    if ctx.opset < 7 and not int_attr(node, a, "is_test", 0):
        return True
    if ctx.opset >= 14 and int_attr(node, a, "training_mode", 0):
        return True
    return any(o and ctx.uses.get(o) for o in node.output[1:])


def convert_batch_norm(ctx, node, a):
    if _training(ctx, node, a):
        raise fail(node, "expected inference mode (got training: training_mode / is_test, or its statistics outputs "
                         "read)")
    if len(node.input) < 5 or not all(node.input[:5]):
        raise fail(node, "expected the inputs X, scale, B, mean and var")
    eps = float_attr(node, a, "epsilon", 1e-5)
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    if len(shape) < 2:
        raise fail(node, f"expected an input (N, C, ...) (got shape {shape})")
    spatial = ctx.opset >= 9 or int_attr(node, a, "spatial", 1)
    names = node.input[1:5]
    if spatial:
        scale, bias, mean, var = (ctx.tensor(n, node) for n in names)
        return ctx.define(node, "batch_norm", [x, mean, var, scale, bias], {"eps": eps})
    # spatial=0 (opsets 7-8): statistics of shape (C, D1, ...), one per activation
    consts = [ctx.const(n) for n in names]
    stat_shape = shape[1:]
    if all(c is not None for c in consts):
        scale, bias, mean, var = (np.asarray(c, np.float64).reshape(stat_shape) for c in consts)
        factor = scale / np.sqrt(var + eps)
        scaled = ctx.emit("mul", f"{node.name}.scale", [x, ctx.constant(factor, f"{node.name}.factor")], {})
        return ctx.define(node, "add", [scaled, ctx.constant(bias - mean * factor, f"{node.name}.shift")], {})
    scale, bias, mean, var = (ctx.emit("reshape", f"{node.name}.{k}", [ctx.tensor(n, node)], {"shape": stat_shape})
                              for k, n in zip(("scale", "bias", "mean", "var"), names))
    centred = ctx.emit("sub", f"{node.name}.centre", [x, mean], {})
    std = ctx.emit("sqrt", f"{node.name}.std", [ctx.emit("add", f"{node.name}.eps", [var, ctx.constant(
        np.float32(eps), f"{node.name}.epsilon")], {})], {})
    normed = ctx.emit("div", f"{node.name}.normed", [centred, std], {})
    ctx.define(node, "add", [ctx.emit("mul", f"{node.name}.scaled", [normed, scale], {}), bias], {})


def convert_instance_norm(ctx, node, a):
    inputs = [ctx.tensor(n, node) if n else "" for n in (input_name(node, i) for i in range(3))]
    if not inputs[1] or not inputs[2]:
        raise fail(node, "expected the inputs input, scale and B")
    ctx.define(node, "instance_norm", inputs, {"eps": float_attr(node, a, "epsilon", 1e-5)})


def convert_lrn(ctx, node, a):
    if "size" not in a:
        raise fail(node, "expected a size attribute")
    size = int_attr(node, a, "size", None, 1)
    attrs = {"size": size, "alpha": float_attr(node, a, "alpha", 1e-4), "beta": float_attr(node, a, "beta", 0.75),
             "k": float_attr(node, a, "bias", 1.0)}
    x = ctx.tensor(node.input[0], node)
    if size % 2:
        return ctx.define(node, "local_response_norm", [x], attrs)
    channels = ctx.shape(x)[1] if len(ctx.shape(x)) > 1 else 0
    reverse = {"indices": tuple(range(channels - 1, -1, -1)), "axis": 1}
    flipped = ctx.emit("gather", f"{node.name}.reverse", [x], reverse)
    normed = ctx.emit("local_response_norm", f"{node.name}.lrn", [flipped], attrs)
    ctx.define(node, "gather", [normed], reverse)


CONVERTERS = {"BatchNormalization": convert_batch_norm, "InstanceNormalization": convert_instance_norm,
              "LRN": convert_lrn}
