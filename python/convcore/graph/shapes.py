"""Per-op signatures (which arguments are tensors) and output-shape rules for the Graph IR.

Each op of `convcore.functional` that a graph can hold is listed in `TENSOR_ARGS`: the names of its tensor
arguments, in the order a `Node`'s inputs list them ("" for an absent optional one). Every other argument is an
attribute. The rules compute an output shape from the input shapes and attributes with the functional API's
formulas, without running kernels; they raise ValueError on inputs the op would reject.
"""

import math

import numpy as np

from .. import _validate as V

# op -> tensor arguments in Node.inputs order. "concat" takes a variable number (its `xs` list).
TENSOR_ARGS = {
    "conv2d": ("x", "weight", "bias"),
    "depthwise_conv2d": ("x", "weight", "bias"),
    "separable_conv2d": ("x", "depthwise_weight", "pointwise_weight", "depthwise_bias", "pointwise_bias"),
    "max_pool2d": ("x",),
    "avg_pool2d": ("x",),
    "adaptive_avg_pool2d": ("x",),
    "adaptive_max_pool2d": ("x",),
    "global_avg_pool2d": ("x",),
    "global_max_pool2d": ("x",),
    "batch_norm": ("x", "running_mean", "running_var", "weight", "bias"),
    "relu": ("x",),
    "relu6": ("x",),
    "leaky_relu": ("x",),
    "sigmoid": ("x",),
    "tanh": ("x",),
    "silu": ("x",),
    "hardswish": ("x",),
    "hardsigmoid": ("x",),
    "softmax": ("x",),
    "log_softmax": ("x",),
    "local_response_norm": ("x",),
    "linear": ("x", "weight", "bias"),
    "add": ("a", "b"),
    "mul": ("a", "b"),
    "concat": ("xs",),
    "flatten": ("x",),
}


def _ints(value, count, name):
    """An int or a tuple of `count` ints -> tuple of `count` ints."""
    if count == 2:
        return V.pair(value, name)
    values = tuple(V.integer(v, name) for v in value)
    if len(values) != count:
        raise ValueError(f"{name}: expected {count} ints (got {value!r})")
    return values


def conv_pads(padding, in_hw, kernel_hw, stride=1, dilation=1):
    """Explicit (top, bottom, left, right) pads of a convolution, resolving 'valid' / 'same' / 'full' exactly as
    `convcore.functional.conv2d` does ('same': output ceil(in / stride), the odd extra pixel at the bottom / right as
    ONNX SAME_UPPER; 'full': dilation * (k - 1) on every side). The ONNX exporter and importer share it."""
    return V.conv_padding(padding, in_hw, kernel_hw, V.pair(stride, "stride"), V.pair(dilation, "dilation"))


def _pads(padding):
    return V.padding4(padding)


def _window_out(size, pad_begin, pad_end, extent, stride, ceil_mode=False):
    """Sliding-window output length: the functional API's own formula (torch's, with its ceil_mode rule)."""
    return V.out_size(size, extent, stride, pad_begin, pad_end, ceil_mode, "kernel")


def _need_4d(shape, op):
    if len(shape) != 4:
        raise ValueError(f"{op}: expected 4D input (got {len(shape)}D input)")


def _conv(op, x, weight, attrs, in_per_group):
    _need_4d(x, op)
    if len(weight) != 4:
        raise ValueError(f"{op}: expected a 4D weight (got shape {weight})")
    if in_per_group != x[1]:
        raise ValueError(f"{op}: expected input with {in_per_group} channels for weight {weight} (got {x[1]})")
    stride, dilation = _ints(attrs.get("stride", 1), 2, "stride"), _ints(attrs.get("dilation", 1), 2, "dilation")
    top, bottom, left, right = conv_pads(attrs.get("padding", 0), x[2:], weight[2:], stride, dilation)
    h = _window_out(x[2], top, bottom, dilation[0] * (weight[2] - 1) + 1, stride[0])
    w = _window_out(x[3], left, right, dilation[1] * (weight[3] - 1) + 1, stride[1])
    return x[0], weight[0], h, w


def _conv2d(shapes, attrs):
    x, weight, _ = shapes
    groups = int(attrs.get("groups", 1))
    if weight[0] % groups:
        raise ValueError(f"conv2d: expected output channels {weight[0]} divisible by groups {groups}")
    return _conv("conv2d", x, weight, attrs, weight[1] * groups)


def _depthwise_conv2d(shapes, attrs):
    x, weight, _ = shapes
    if weight[1] != 1 or weight[0] % x[1]:
        raise ValueError(f"depthwise_conv2d: expected weight (C*m, 1, kh, kw) for {x[1]} channels (got {weight})")
    return _conv("depthwise_conv2d", x, (weight[0], x[1], weight[2], weight[3]), attrs, x[1])


def _separable_conv2d(shapes, attrs):
    x, depthwise, pointwise = shapes[:3]
    mid = _depthwise_conv2d([x, depthwise, None], attrs)
    if tuple(pointwise[1:]) != (mid[1], 1, 1):
        raise ValueError(f"separable_conv2d: expected pointwise weight (K, {mid[1]}, 1, 1) (got {pointwise})")
    return mid[0], pointwise[0], mid[2], mid[3]


def _pool(op, x, attrs, dilation):
    _need_4d(x, op)
    kernel = _ints(attrs["kernel_size"], 2, "kernel_size")
    stride = kernel if attrs.get("stride") is None else _ints(attrs["stride"], 2, "stride")
    top, bottom, left, right = _pads(attrs.get("padding", 0))
    ceil_mode = bool(attrs.get("ceil_mode", False))
    h = _window_out(x[2], top, bottom, dilation[0] * (kernel[0] - 1) + 1, stride[0], ceil_mode)
    w = _window_out(x[3], left, right, dilation[1] * (kernel[1] - 1) + 1, stride[1], ceil_mode)
    return x[0], x[1], h, w


def _adaptive(shapes, attrs):
    x = shapes[0]
    _need_4d(x, "adaptive pooling")
    size = attrs["output_size"]
    size = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
    return x[0], x[1], *(x[2 + i] if s is None else int(s) for i, s in enumerate(size))


def _global(shapes, attrs):
    _need_4d(shapes[0], "global pooling")
    return shapes[0][0], shapes[0][1], 1, 1


def _same(shapes, attrs):
    return shapes[0]


def _batch_norm(shapes, attrs):
    x = shapes[0]
    for name, shape in zip(TENSOR_ARGS["batch_norm"][1:], shapes[1:]):
        if shape is not None and tuple(shape) != (x[1],):
            raise ValueError(f"batch_norm: expected {name} of shape ({x[1]},) (got {shape})")
    return x


def _linear(shapes, attrs):
    x, weight, _ = shapes
    if len(x) < 1 or x[-1] != weight[1]:
        raise ValueError(f"linear: expected input with last dimension {weight[1]} (got shape {x})")
    return (*x[:-1], weight[0])


def _broadcast(shapes, attrs):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"add / mul: expected broadcastable shapes (got {shapes[0]} and {shapes[1]})") from None


def _axis(axis, ndim, op):
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: expected axis in [{-ndim}, {ndim}) (got {axis})")
    return axis % ndim


def _softmax(shapes, attrs):
    _axis(attrs.get("axis", 1), len(shapes[0]), "softmax")
    return shapes[0]


def _concat(shapes, attrs):
    first = shapes[0]
    axis = _axis(attrs.get("axis", 1), len(first), "concat")
    for shape in shapes[1:]:
        if len(shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(shape, first)) if i != axis):
            raise ValueError(f"concat: expected shapes equal except along axis {axis} (got {first} and {shape})")
    return (*first[:axis], sum(s[axis] for s in shapes), *first[axis + 1:])


def _flatten(shapes, attrs):
    x = shapes[0]
    if len(x) == 0:
        return (1,)
    start = _axis(attrs.get("start_dim", 1), len(x), "flatten")
    end = _axis(attrs.get("end_dim", -1), len(x), "flatten")
    if start > end:
        raise ValueError(f"flatten: expected start_dim <= end_dim (got {start} > {end})")
    return (*x[:start], math.prod(x[start:end + 1]), *x[end + 1:])


_RULES = {
    "conv2d": _conv2d,
    "depthwise_conv2d": _depthwise_conv2d,
    "separable_conv2d": _separable_conv2d,
    "max_pool2d": lambda s, a: _pool("max_pool2d", s[0], a, _ints(a.get("dilation", 1), 2, "dilation")),
    "avg_pool2d": lambda s, a: _pool("avg_pool2d", s[0], a, (1, 1)),
    "adaptive_avg_pool2d": _adaptive,
    "adaptive_max_pool2d": _adaptive,
    "global_avg_pool2d": _global,
    "global_max_pool2d": _global,
    "batch_norm": _batch_norm,
    "linear": _linear,
    "add": _broadcast,
    "mul": _broadcast,
    "softmax": _softmax,
    "log_softmax": _softmax,
    "concat": _concat,
    "flatten": _flatten,
}


def infer_shape(op, shapes, attrs):
    """Output shape of `op` for input shapes (in TENSOR_ARGS order, None for absent inputs) and attributes.

    Example:
        >>> infer_shape("conv2d", [(1, 3, 224, 224), (64, 3, 7, 7), (64,)], {"stride": 2, "padding": 3})
        (1, 64, 112, 112)
    """
    if op not in TENSOR_ARGS:
        raise NotImplementedError(f"no shape rule for op '{op}'")
    shapes = [None if s is None else tuple(s) for s in shapes]
    if op != "concat":  # trailing optional inputs may be left out
        shapes += [None] * (len(TENSOR_ARGS[op]) - len(shapes))
    rule = _RULES.get(op, _same)  # every op without a rule is elementwise or normalizes along an axis
    return tuple(int(d) for d in rule(shapes, attrs))
