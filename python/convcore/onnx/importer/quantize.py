"""ONNX QuantizeLinear / DequantizeLinear (QDQ files, as onnxruntime's quantize_static and NNCF write them): the
quantize_linear / dequantize_linear ops on computed tensors, folded at import on constants (int8 weights and int32
biases dequantized to their float values). Scales and zero points must be constants; bad ones (zero, negative or
non-finite scales, zero points out of their type's range or of another shape, an axis the scales do not fit) are
clear errors naming the node.

Dynamic quantization (onnxruntime's quantize_dynamic): DynamicQuantizeLinear becomes one `dynamic_quantize_linear`
node per output read; ConvInteger and MatMulInteger with constant int8 / uint8 weights become a float Conv / MatMul
of the zero-point-shifted integers (`x - x_zero_point`, weights `w - w_zero_point` folded to float32 constants): the
products are exact, and their sums are exact while below 2^24 in magnitude (float32 accumulation; onnxruntime sums
in int32). Their int32 results stay float32 integers, which a Cast to float reads as they are."""

import numpy as np
from onnx import helper

from ...ops.quantize import DYNAMIC_PARTS, RANGES, _broadcast, _params
from .arithmetic import convert_matmul
from .attributes import const_input, fail, input_name, int_attr, node_attrs
from .conv import convert_conv

TYPES = {np.dtype("int8"): "int8", np.dtype("uint8"): "uint8"}


def _quantization(ctx, node, a, shape):
    """(the op attributes, the zero point's numpy dtype) of a Q / DQ node, checked against its input's `shape`."""
    scale = const_input(ctx, node, 1, "scale")
    if scale is None or scale.dtype.kind != "f" or scale.ndim > 1:
        got = "none" if scale is None else f"{scale.dtype}, shape {scale.shape}"
        raise fail(node, f"expected a constant float scale, a scalar or 1-D (got {got})")
    zero = const_input(ctx, node, 2, "zero point")
    if zero is not None and zero.shape != scale.shape:
        raise fail(node, f"expected a zero point of the scale's shape {scale.shape} (got {zero.shape})")
    if a.get("block_size", 0):
        raise fail(node, "blocked quantization (block_size) is not supported")
    dtype = np.dtype("uint8") if zero is None else zero.dtype
    if dtype not in TYPES and not (node.op_type == "DequantizeLinear" and dtype == np.dtype("int32")):
        raise fail(node, f"expected int8 or uint8 quantization (got {dtype})")
    axis = int_attr(node, a, "axis", 1)
    attrs = {"scale": scale.reshape(-1), "zero_point": None if zero is None else zero.reshape(-1).astype(np.int64),
             "axis": axis if axis >= 0 else axis + max(len(shape), 1), "dtype": TYPES.get(dtype, "int8")}
    if dtype == np.dtype("int32"):  # (a bias: zero point 0, any int32 value)
        attrs["zero_point"] = np.zeros_like(attrs["scale"], np.int64) if zero is None else attrs["zero_point"]
        if attrs["zero_point"].any():
            raise fail(node, "expected a zero point of 0 for int32 values")
    try:
        checked = _params(shape, attrs)
    except ValueError as exc:
        raise fail(node, str(exc)) from None
    return checked, dtype


def convert_quantize_linear(ctx, node, a):
    name = input_name(node, 0)
    x = ctx.const(name)
    attrs, _ = _quantization(ctx, node, a, ctx.static_shape(name) or ())
    if x is not None:  # a constant: quantized now (held as float32, as the op does)
        lo, hi = RANGES[attrs["dtype"]]
        s, z = _per_axis(attrs, x.shape)
        with np.errstate(all="ignore"):
            ctx.consts[node.output[0]] = np.clip(np.rint(x.astype(np.float32) / s) + z, lo, hi).astype(np.float32)
        return
    ctx.define(node, "quantize_linear", [ctx.tensor(name, node)], attrs)


def convert_dequantize_linear(ctx, node, a):
    name = input_name(node, 0)
    x = ctx.const(name)
    attrs, dtype = _quantization(ctx, node, a, ctx.static_shape(name) or ())
    if x is not None:  # int8 weights, int32 biases: their float values
        if x.dtype.kind == "f" and not np.array_equal(np.floor(x), x):
            raise fail(node, "expected integer values to dequantize")
        if x.dtype.kind in "iu" and x.dtype != dtype:
            raise fail(node, f"expected values of the zero point's type {dtype} (got {x.dtype})")
        s, z = _per_axis(attrs, x.shape)
        ctx.consts[node.output[0]] = ((x.astype(np.float64) - z) * s).astype(np.float32)
        return
    if dtype == np.dtype("int32"):
        raise fail(node, "expected constant int32 values (a bias) to dequantize")
    ctx.define(node, "dequantize_linear", [ctx.tensor(name, node)], attrs)


def _per_axis(attrs, shape):
    """Scale and zero point (float64) shaped to broadcast over a tensor of `shape`, as the ops do."""
    return tuple(_broadcast(attrs[key], shape, attrs["axis"], np.float64) for key in ("scale", "zero_point"))


def convert_dynamic_quantize_linear(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    for slot, part in enumerate(DYNAMIC_PARTS[:len(node.output)]):
        name = node.output[slot]
        if name and ctx.uses.get(name):  # an output nothing reads is not computed
            ctx.values[name] = ctx.emit("dynamic_quantize_linear", f"{node.name}.{part}" if slot else node.name, [x],
                                        {"output": part}, name)


def _integer_weight(ctx, node, index, zero_index, axis, what):
    """Constant int8 / uint8 `what` (input `index`) minus its zero point (input `zero_index`: a scalar, or one per
    index of `axis`), as float32."""
    w = const_input(ctx, node, index, what)
    if w is None or w.dtype not in TYPES:
        raise fail(node, f"expected constant int8 or uint8 {what} (got {'none' if w is None else w.dtype})")
    zero = const_input(ctx, node, zero_index, f"{what} zero point")
    zero = np.zeros(1, w.dtype) if zero is None else zero
    if zero.dtype != w.dtype or zero.size not in (1, w.shape[axis]):
        raise fail(node, f"expected a {what} zero point of type {w.dtype}, one value or {w.shape[axis]} (got "
                         f"{zero.dtype}, shape {zero.shape})")
    zero = zero.astype(np.float32).reshape([-1 if i == axis % w.ndim else 1 for i in range(w.ndim)])
    return w.astype(np.float32) - zero


def _shifted_input(ctx, node, what):
    """Input 0 minus its zero point (input 2: absent, constant or computed) as the name of a value."""
    x, zero = node.input[0], input_name(node, 2)
    if zero is None:
        return x
    constant = ctx.const(zero)
    if constant is not None:
        if constant.dtype not in TYPES or constant.size != 1:
            raise fail(node, f"expected a scalar int8 or uint8 {what} zero point (got {constant.dtype}, shape "
                             f"{constant.shape})")
        if not constant.any():
            return x
        zero_value = ctx.constant(constant.reshape(()), f"{zero}.float")
    else:
        zero_value = ctx.tensor(zero, node)
        if ctx.shape(zero_value) not in ((), (1,)):
            raise fail(node, f"expected a scalar {what} zero point (got shape {ctx.shape(zero_value)})")
    shifted = ctx.fresh(f"{x}.shifted")
    ctx.values[shifted] = ctx.emit("sub", f"{node.name}.shift", [ctx.tensor(x, node), zero_value], {}, shifted)
    return shifted


def _integer_op(op_type, convert, weight_axis, input_what, weight_what):
    """The converter of ConvInteger / MatMulInteger: float ONNX `op_type` (converted by `convert`) on the shifted
    input and the shifted weight, folded to a float32 constant."""

    def converter(ctx, node, a):
        weight = ctx.fresh(f"{node.input[1]}.float")
        ctx.consts[weight] = _integer_weight(ctx, node, 1, 3, weight_axis, weight_what)
        inputs = [_shifted_input(ctx, node, input_what), weight]
        attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
        float_node = helper.make_node(op_type, inputs, list(node.output[:1]), name=node.name, **attrs)
        convert(ctx, float_node, node_attrs(float_node, ctx))

    return converter


CONVERTERS = {"QuantizeLinear": convert_quantize_linear, "DequantizeLinear": convert_dequantize_linear,
              "DynamicQuantizeLinear": convert_dynamic_quantize_linear,
              "ConvInteger": _integer_op("Conv", convert_conv, 0, "input", "weight"),
              "MatMulInteger": _integer_op("MatMul", convert_matmul, -1, "A", "B")}
