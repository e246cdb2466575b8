"""ONNX BatchNormalization (inference; statistics constant or computed; opset 7's per-activation `spatial=0` as
elementwise ops), InstanceNormalization, LayerNormalization (the layer_norm op) and GroupNormalization (an
instance norm over the normalised groups reshaped into planes, then the affine part) and LRN (an even size runs
torch's window on the channels reversed: ONNX centres an even window one channel later)."""

import numpy as np

from .attributes import axis_of, fail, float_attr, input_name, int_attr


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


def _normalised_planes(ctx, node, x, rows, eps):
    """x reshaped to (rows, 1, rest), normalised per row (mean and biased variance), reshaped back."""
    shape = ctx.shape(x)
    planes = ctx.emit("reshape", f"{node.name}.planes", [x], {"shape": (rows, 1, -1)})
    normed = ctx.emit("instance_norm", f"{node.name}.normalize", [planes], {"eps": eps})
    return ctx.emit("reshape", f"{node.name}.shape", [normed], {"shape": shape})


def _affine(ctx, node, y, scale, bias, shape):
    """y * scale + bias (either may be None), as ONNX `node`'s output."""
    if scale is not None:
        y = ctx.emit("mul", f"{node.name}.scale", [y, scale], {}, None if bias is not None else node.output[0])
    if bias is not None:
        y = ctx.emit("add", f"{node.name}.bias", [y, bias], {}, node.output[0])
    ctx.values[node.output[0]] = y


def convert_layer_norm(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    axis = axis_of(node, int_attr(node, a, "axis", -1), len(shape))
    eps = float_attr(node, a, "epsilon", 1e-5)
    if 0 in shape:
        raise fail(node, f"expected a non-empty input (got shape {shape})")
    if any(o and ctx.uses.get(o) for o in node.output[1:]):  # the statistics outputs, when read
        axes = tuple(range(axis, len(shape)))
        mean = ctx.emit("reduce_mean", f"{node.name}.mean", [x], {"axes": axes}, node.output[1] if
                        len(node.output) > 1 and node.output[1] else None)
        if len(node.output) > 1 and node.output[1]:
            ctx.values[node.output[1]] = mean
        if len(node.output) > 2 and node.output[2]:
            centred = ctx.emit("sub", f"{node.name}.centred", [x, mean], {})
            var = ctx.emit("reduce_mean", f"{node.name}.var", [ctx.emit("mul", f"{node.name}.sq", [centred, centred],
                                                                       {})], {"axes": axes})
            shifted = ctx.emit("add", f"{node.name}.eps", [var, ctx.constant(np.float32(eps), f"{node.name}.eps")], {})
            std = ctx.emit("sqrt", f"{node.name}.std", [shifted], {})
            ctx.values[node.output[2]] = ctx.emit("reciprocal", f"{node.name}.inv_std", [std], {}, node.output[2])
    inputs = [x] + [ctx.tensor(node.input[i], node) if input_name(node, i) else "" for i in (1, 2)]
    ctx.values[node.output[0]] = ctx.emit("layer_norm", node.name, inputs, {"axis": axis, "eps": eps}, node.output[0])


def convert_group_norm(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    groups = int_attr(node, a, "num_groups", None, 1)
    if len(shape) < 3 or shape[1] % groups or 0 in shape:
        raise fail(node, f"expected a non-empty (N, C, ...) input with C divisible by num_groups={groups} (got "
                         f"{shape})")
    y = _normalised_planes(ctx, node, x, shape[0] * groups, float_attr(node, a, "epsilon", 1e-5))
    channels, per = shape[1], shape[1] // groups
    params = []
    for i in (1, 2):
        name = input_name(node, i)
        if name is None:
            raise fail(node, "expected the inputs X, scale and bias")
        value = ctx.tensor(name, node)
        given = ctx.static_shape(name)
        if ctx.opset < 21 and given == (groups,) and groups != channels:  # opset 18: one value per group
            value = ctx.emit("reshape", f"{node.name}.group{i}", [value], {"shape": (groups, 1)})
            value = ctx.emit("expand", f"{node.name}.spread{i}", [value], {"shape": (groups, per)})
        params.append(ctx.emit("reshape", f"{node.name}.channels{i}", [value],
                               {"shape": (channels,) + (1,) * (len(shape) - 2)}))
    _affine(ctx, node, y, params[0], params[1], shape)


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
              "LayerNormalization": convert_layer_norm, "GroupNormalization": convert_group_norm, "LRN": convert_lrn}
