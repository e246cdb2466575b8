"""Linear quantization with ONNX semantics (QuantizeLinear / DequantizeLinear): per-tensor or per-axis scales and
zero points, int8 and uint8. convcore's tensors stay float32: a quantized tensor holds its integer values exactly
(every int8 / uint8 value is a float32), so a quantize -> dequantize pair computes what an int8 runtime computes,
bit for bit, and the graph keeps one element type.

    q = saturate(round_half_to_even(x / scale) + zero_point)      (the range of `dtype`)
    x' = (q - zero_point) * scale
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import _validate as V
from .._types import Array
from .activation import activation
from .registry import declare

__all__ = ["quantize_linear", "dequantize_linear", "fake_quantize", "dynamic_quantize_linear"]

RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _params(shape, attrs):
    """The attributes normalised and checked against the input's shape: scale a tuple of positive finite floats and
    zero_point a tuple of ints in the dtype's range, one each (per tensor) or one per index along `axis`."""
    dtype = attrs["dtype"]
    if dtype not in RANGES:
        raise ValueError(f"dtype: expected 'int8' or 'uint8' (got {dtype!r})")
    scale = tuple(float(s) for s in np.asarray(attrs["scale"], np.float64).reshape(-1))
    zero = np.asarray(attrs["zero_point"] if attrs["zero_point"] is not None else [0] * len(scale)).reshape(-1)
    if not scale or not all(np.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"scale: expected positive finite values (got {scale[:8]})")
    if zero.dtype.kind not in "iu" and not np.all(np.floor(zero) == zero):
        raise ValueError(f"zero_point: expected integers (got {zero[:8].tolist()})")
    lo, hi = RANGES[dtype]
    if len(zero) != len(scale) or (zero.size and (zero.min() < lo or zero.max() > hi)):
        raise ValueError(f"zero_point: expected {len(scale)} integer(s) in [{lo}, {hi}] for {dtype} (got "
                         f"{zero[:8].tolist()})")
    axis = V.axis(attrs["axis"], max(len(shape), 1))
    if len(scale) > 1 and (not shape or shape[axis] != len(scale)):
        raise ValueError(f"scale: expected one value or {shape[axis] if shape else 1} (the size of axis {axis} of "
                         f"shape {tuple(shape)}) (got {len(scale)})")
    return {"scale": scale, "zero_point": tuple(int(z) for z in zero), "axis": axis, "dtype": dtype}


def _rule(shapes, attrs):
    return _params(shapes[0], attrs), shapes[0]


def _broadcast(values, shape, axis, dtype):
    array = np.asarray(values, dtype)
    if array.size == 1:
        return array.reshape(())
    return array.reshape([-1 if i == axis else 1 for i in range(len(shape))])


def _quantize_kernel(x, *, out, scale, zero_point, axis, dtype):
    lo, hi = RANGES[dtype]
    s = _broadcast(scale, x.shape, axis, np.float32)
    z = _broadcast(zero_point, x.shape, axis, np.float32)
    with np.errstate(invalid="ignore"):
        np.clip(np.rint(x / s) + z, lo, hi, out=out)
    return out


def _dequantize_kernel(x, *, out, scale, zero_point, axis, dtype):
    s = _broadcast(scale, x.shape, axis, np.float32)
    z = _broadcast(zero_point, x.shape, axis, np.float32)
    np.multiply(x - z, s, out=out)
    return out


def _to_onnx(op_type):
    def lower(em, node):
        a = node.attrs
        if op_type == "QuantizeLinear":  # its ONNX output is an integer tensor: only a DequantizeLinear may read it
            out = node.outputs[0]
            readers = [n.op for n in em.graph.nodes if out in n.inputs]
            if out in em.graph.outputs or any(r != "dequantize_linear" for r in readers):
                raise ValueError(f"node '{node.name}': a quantize_linear exports as an int8 / uint8 tensor, which "
                                 f"only dequantize_linear may read (read by {readers or 'the graph output'})")
        per_axis = len(a["scale"]) > 1
        shape = (len(a["scale"]),) if per_axis else ()
        scale = em.const(f"{node.name}.scale", np.asarray(a["scale"], np.float32).reshape(shape))
        zero = em.const(f"{node.name}.zero_point", np.asarray(a["zero_point"]).reshape(shape),
                        np.int8 if a["dtype"] == "int8" else np.uint8)
        return em.node(op_type, [node.inputs[0], scale, zero], node.outputs[0], node.name,
                       **({"axis": a["axis"]} if per_axis else {}))
    return lower


@declare(("x",), _rule, _quantize_kernel, onnx=_to_onnx("QuantizeLinear"))
def quantize_linear(x: Array, scale: float | Sequence[float], zero_point: int | Sequence[int] | None = None,
                    axis: int = 1, dtype: str = "int8") -> Array:
    """``saturate(round(x / scale) + zero_point)`` (ties to even), the integers held in float32.

    Args:
        scale: one positive value, or one per index along `axis`.
        zero_point: integers in the range of `dtype` (as many as scales); 0 by default.
        dtype: 'int8' ([-128, 127]) or 'uint8' ([0, 255]).
    """


@declare(("x",), _rule, _dequantize_kernel, onnx=_to_onnx("DequantizeLinear"))
def dequantize_linear(x: Array, scale: float | Sequence[float], zero_point: int | Sequence[int] | None = None,
                      axis: int = 1, dtype: str = "int8") -> Array:
    """``(x - zero_point) * scale``: the float values of quantized integers (held in float32)."""


def _fake_rule(shapes, attrs):
    params = _params(shapes[0], {**attrs, "axis": 0})
    if len(params["scale"]) != 1:
        raise ValueError(f"scale: expected one value (per tensor) (got {len(params['scale'])})")
    return {"scale": params["scale"][0], "zero_point": params["zero_point"][0], "dtype": params["dtype"]}, shapes[0]


def _fake_to_onnx(em, node):
    a, out = node.attrs, node.outputs[0]
    scale = em.const(f"{node.name}.scale", np.float32(a["scale"]))
    zero = em.const(f"{node.name}.zero_point", np.asarray(a["zero_point"], a["dtype"]), np.dtype(a["dtype"]).type)
    q = em.node("QuantizeLinear", [node.inputs[0], scale, zero], em.fresh(f"{out}.q"), f"{node.name}.quantize")
    return em.node("DequantizeLinear", [q, scale, zero], out, node.name)


@activation(_fake_to_onnx, _fake_rule,
            ("scale", lambda a: RANGES[a["dtype"]][0] - a["zero_point"]), act=lambda attrs: "fake_quant")
def fake_quantize(x: Array, scale: float, zero_point: int = 0, dtype: str = "int8") -> Array:
    """``dequantize_linear(quantize_linear(x))`` per tensor: x rounded onto the int8 (or uint8) grid of `scale` and
    `zero_point`, in one pass. A QDQ graph's pairs of nodes become this op before compiling (the Plan runs it
    fused into the producing op's epilogue, and an int8 convolution reads its grid)."""


DYNAMIC_PARTS = ("y", "scale", "zero_point")


def dynamic_quantization(x):
    """ONNX DynamicQuantizeLinear of float32 array `x` (uint8): (y, scale, zero point), y and the zero point held as
    float32 integers. The range is [min(x, 0), max(x, 0)] over the whole tensor, computed in float32 as onnxruntime
    does; a tensor of zeros (an empty range) gets scale 1 and zero point 0, not a division by zero."""
    lo = np.float32(min(0.0, float(x.min()))) if x.size else np.float32(0)
    hi = np.float32(max(0.0, float(x.max()))) if x.size else np.float32(0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"x: expected finite values to quantize dynamically (got min {lo}, max {hi})")
    scale = np.float32((hi - lo) / np.float32(255)) if hi > lo else np.float32(1)
    zero = np.float32(np.rint(np.clip(np.float32(0) - lo / scale, 0, 255)))
    with np.errstate(invalid="ignore"):
        y = np.clip(np.rint(x / scale) + zero, 0, 255).astype(np.float32)
    return y, scale, zero


def _dynamic_rule(shapes, attrs):
    part = attrs.get("output", "y")
    if part not in DYNAMIC_PARTS:
        raise ValueError(f"output: expected one of {DYNAMIC_PARTS} (got {part!r})")
    return {"output": part}, tuple(shapes[0]) if part == "y" else ()


def _dynamic_kernel(x, *, out, output):
    out[...] = dynamic_quantization(x)[DYNAMIC_PARTS.index(output)]
    return out


def _dynamic_to_onnx(em, node):
    slots = [em.fresh(f"{node.outputs[0]}.{part}") for part in DYNAMIC_PARTS]  # (all three are required)
    em.node_outputs("DynamicQuantizeLinear", [node.inputs[0]], slots, f"{node.name}.quantize")
    part = slots[DYNAMIC_PARTS.index(node.attrs["output"])]
    return em.node("Cast", [part], node.outputs[0], node.name, to=1)  # uint8 -> float


@declare(("x",), _dynamic_rule, _dynamic_kernel, onnx=_dynamic_to_onnx)
def dynamic_quantize_linear(x: Array, output: str = "y") -> Array:
    """One output of ONNX DynamicQuantizeLinear (uint8, the range taken from `x` itself, as onnxruntime's
    `quantize_dynamic` writes before each ConvInteger / MatMulInteger): ``output`` 'y' (the quantized tensor,
    integers 0..255 in float32), 'scale' or 'zero_point' (scalars).

        scale = (max(x, 0) - min(x, 0)) / 255,  zero_point = round(-min(x, 0) / scale),
        y = saturate(round(x / scale) + zero_point)      (ties to even; scale 1 for a tensor of zeros)
    """
