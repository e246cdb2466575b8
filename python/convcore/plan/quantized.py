"""int8 convolutions in the Plan: a convolution whose input is a ``fake_quantize`` (a QDQ file's pair of nodes, per
tensor) and whose weights lie on a per-output-channel int8 grid (a DequantizeLinear of int8 weights, folded at import)
runs as the C++ Plan's ``qconv``: the input quantized once into bytes, int8 products summed exactly in int32, then one
float epilogue (scales, bias, activation, residual, and the next tensor's requantization when a ``fake_quantize``
reads the result). The results are those of the QDQ graph up to float rounding of the epilogue (a requantized value
may land one step away where the float sum sits on a rounding tie)."""

from __future__ import annotations

import numpy as np

from .. import _core
from ..graph.quantized import _grid_source, int8_weights, quantized_weights

def _grid(node):
    """(scale, zero point, is uint8) of a fake_quantize node; zeros: none."""
    if node is None:
        return (0.0, 0.0, 0.0)
    a = node.attrs
    return (float(a["scale"]), float(a["zero_point"]), float(a["dtype"] == "uint8"))


def _epilogue(low, value, nhwc):
    """The QDQ steps after an int8 convolution producing `value`, each fused when it is the sole reader of the step
    before it: its own grid (a fake_quantize), a residual add (the other operand already computed), an activation,
    the result's grid. Returns (sum grid node, residual tensor or -1, epilogue, out grid node, the result's value)."""
    def next_fake(v):
        reader = low.sole_reader(v)
        if reader is not None and reader.op == "fake_quantize" and "activation" in low.fusions:
            low.skip(reader)
            return reader, reader.outputs[0]
        return None, v

    grid, value = next_fake(value)
    residual = -1
    reader = low.sole_reader(value)
    if reader is not None and reader.op == "add" and "residual" in low.fusions:
        other = reader.inputs[1] if reader.inputs[0] == value else reader.inputs[0]
        ref = low.env.get(other)
        if other != value and ref is not None and ref.flat is None and ref.nhwc == nhwc and \
                ref.shape == low.shape(value):
            residual = ref.tid
            low.skip(reader)
            value = reader.outputs[0]
    epilogue, value = low.epilogue_after(value)
    if epilogue.act == _core.Act.fake_quant:  # no activation: the fake_quantize is the result's grid
        return grid, residual, _core.Epilogue(), low.producer[value], value
    out, value = next_fake(value)
    return grid, residual, epilogue, out, value


def _on_grid(low, name, weight):
    """Whether param `name` (as `weight`) lies on an int8 grid, checked once per lowering."""
    cache = low.__dict__.setdefault("int8_grids", {})
    if name not in cache:
        cache[name] = int8_weights(weight) is not None
    return cache[name]


def _qconv_eligible(low, node, weight):
    """Whether convolution / linear `node` with `weight` (an array, or None) runs as a qconv when its input is on a
    grid: int8 enabled, constant weights on an int8 grid, not depthwise-like."""
    if "int8" not in low.fusions or "int8" not in low.capabilities or weight is None:
        return False
    groups = node.attrs.get("groups", 1) if node.op == "conv2d" else 1
    if node.op not in ("conv2d", "linear") or (groups > 1 and weight.shape[0] // groups < 8):
        return False  # depthwise-like: the float kernels on the grid's values
    return _on_grid(low, node.inputs[1], weight)


def read_by_int8_only(low, node):
    """Whether fake_quantize `node`'s result is read only by convolutions that run as qconvs (which quantize their
    float input themselves, onto the same grid): then the node needs no op of its own."""
    out = node.outputs[0]
    readers = low.readers.get(out, [])
    x = low.env.get(node.inputs[0])
    if not readers or out in low.outputs or x is None or x.flat is not None:
        return False
    return all(r.op in ("conv2d", "linear") and r.inputs[0] == out and id(r) in low.in_segment and
               r.inputs[1] in low.g.params and
               _qconv_eligible(low, r, low.g.params[r.inputs[1]]) for r in readers)


def _bytes_for(low, value, grid_node, k):
    """Whether the result `value` (on `grid_node`'s grid) can be stored as bytes: every reader is an int8 convolution
    of one group reading it as its input (whose quantization is that grid), it leaves no segment, and its channels
    are a multiple of 4."""
    readers = low.readers.get(value, [])
    if grid_node is None or k % 4 or value in low.outputs or not readers:
        return False
    return all(r.op == "conv2d" and r.attrs.get("groups", 1) == 1 and r.inputs[0] == value and
               id(r) in low.in_segment and r.inputs[1] in low.g.params and
               _qconv_eligible(low, r, low.g.params[r.inputs[1]]) for r in readers)


def try_qconv(low, node, weight, bias, stride, dilation, padding, groups, x):
    """Lower convolution `node` as an int8 qconv (True), or leave it to the float kernels (False)."""
    source = _grid_source(low.producer, node.inputs[0])
    if source is None or x.flat is not None or not _qconv_eligible(low, node, weight):
        return False
    found = int8_weights(weight)  # (as the lowering passes it: a linear layer's columns may be permuted)
    q, w_scale = found
    in_scale, in_zero, in_uint8 = _grid(source)
    grid, residual, epilogue, out, out_value = _epilogue(low, node.outputs[0], x.nhwc)
    # The result's last step a grid (the result's, or the output's own with nothing after it) and only int8
    # convolutions reading it: stored as their input bytes, quantized once here.
    last = out if out is not None else grid if residual < 0 and epilogue.act == _core.Act.none else None
    to_bytes = "int8_bytes" in low.capabilities and _bytes_for(low, out_value, last, weight.shape[0])
    byte_inputs = low.__dict__.setdefault("byte_values", set())
    spec = _core.ConvSpec(stride=stride, dilation=dilation, padding=padding, groups=groups)
    tid = low.builder.qconv(node.name, x.tid, np.ascontiguousarray(q), w_scale, bias, spec=spec, epilogue=epilogue,
                            residual=residual, in_scale=in_scale, in_zero=int(in_zero), in_uint8=bool(in_uint8),
                            sum_grid=_grid(None if to_bytes and out is None else grid),
                            out_grid=_grid(None if to_bytes else out), x_bytes=node.inputs[0] in byte_inputs,
                            bytes=_grid(last if to_bytes else None))
    if to_bytes:
        byte_inputs.add(out_value)
    low.define(out_value, tid, nhwc=x.nhwc)
    return True


__all__ = ["int8_weights", "quantized_weights", "read_by_int8_only", "try_qconv"]
