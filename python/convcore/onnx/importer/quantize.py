"""ONNX QuantizeLinear / DequantizeLinear (QDQ files, as onnxruntime's quantize_static and NNCF write them): the
quantize_linear / dequantize_linear ops on computed tensors, folded at import on constants (int8 weights and int32
biases dequantized to their float values). Scales and zero points must be constants; bad ones (zero, negative or
non-finite scales, zero points out of their type's range or of another shape, an axis the scales do not fit) are
clear errors naming the node."""

import numpy as np

from ...ops.quantize import RANGES, _broadcast, _params
from .attributes import const_input, fail, input_name, int_attr

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


CONVERTERS = {"QuantizeLinear": convert_quantize_linear, "DequantizeLinear": convert_dequantize_linear}
