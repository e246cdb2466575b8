"""Pooling: max / average windows, adaptive and global pooling (kernels: csrc/ops/pool2d)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array, IntPair, Pads, SizePair
from . import window
from .registry import Backward, OnnxOp, PlanRule, declare

__all__ = ["max_pool2d", "avg_pool2d", "lp_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
           "global_avg_pool2d", "global_max_pool2d"]


# --- shape rules ------------------------------------------------------------------------------------------------

def _window_rule(shapes, attrs, is_max):
    x = shapes[0]
    V.rank(x, "x", 4)
    kernel = V.pair(attrs["kernel_size"], "kernel_size", 1)
    stride = kernel if attrs["stride"] is None else V.pair(attrs["stride"], "stride", 1)
    dilation = V.pair(attrs["dilation"], "dilation", 1) if is_max else (1, 1)
    padding = window.padding4(attrs["padding"])
    limits = window.pool_pad_limits(kernel, dilation, is_max)
    for p, limit in zip(padding, (limits[0], limits[0], limits[1], limits[1])):
        if p > limit:
            raise ValueError(f"padding: expected at most half the kernel size ({limit}) (got {attrs['padding']!r})")
    ceil_mode = bool(attrs["ceil_mode"])
    oh, ow = window.output_hw(x[2:], kernel, stride, dilation, padding, ceil_mode, "kernel_size")
    normalised = {"kernel_size": kernel, "stride": stride, "padding": padding}
    if is_max:
        normalised.update(dilation=dilation, ceil_mode=ceil_mode)
    else:
        normalised.update(ceil_mode=ceil_mode, count_include_pad=bool(attrs["count_include_pad"]))
    return normalised, (x[0], x[1], oh, ow)


def _lp_rule(shapes, attrs):
    x = shapes[0]
    V.rank(x, "x", 4)
    kernel = V.pair(attrs["kernel_size"], "kernel_size", 1)
    stride = kernel if attrs["stride"] is None else V.pair(attrs["stride"], "stride", 1)
    dilation = V.pair(attrs["dilation"], "dilation", 1)
    padding = window.padding4(attrs["padding"])
    ceil_mode = bool(attrs["ceil_mode"])
    p = V.number(attrs["p"], "p")
    if not p > 0:
        raise ValueError(f"p: expected a positive number (got {p})")
    oh, ow = window.output_hw(x[2:], kernel, stride, dilation, padding, ceil_mode, "kernel_size")
    return ({"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode,
             "p": p}, (x[0], x[1], oh, ow))


def _adaptive_rule(shapes, attrs):
    x = shapes[0]
    V.rank(x, "x", 4)
    size = attrs["output_size"]
    if size is None or V.is_int(size):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"output_size: expected an int or a pair (got {size!r})")
    size = tuple(x[2 + i] if s is None else V.integer(s, "output_size", 1) for i, s in enumerate(size))
    V.check_size((x[0], x[1], *size), "output_size")
    return {"output_size": size}, (x[0], x[1], *size)


def _global_rule(shapes, attrs):
    x = shapes[0]
    V.rank(x, "x", 4)
    return {}, (x[0], x[1], 1, 1)


# --- kernels ----------------------------------------------------------------------------------------------------

def _max_kernel(x, *, out, kernel_size, stride, padding, dilation, ceil_mode):
    _core.max_pool2d(x, out, kernel_size, stride, dilation, padding)
    return out


def _avg_kernel(x, *, out, kernel_size, stride, padding, ceil_mode, count_include_pad):
    _core.avg_pool2d(x, out, kernel_size, stride, padding, count_include_pad)
    return out


def _lp_kernel(x, *, out, kernel_size, stride, padding, dilation, ceil_mode, p):
    _core.lp_pool2d(x, out, kernel_size, stride, dilation, padding, p)
    return out


def _adaptive_kernel(is_max):
    def kernel(x, *, out, **attrs):
        _core.adaptive_pool2d(x, out, is_max)
        return out

    return kernel


# --- ONNX -------------------------------------------------------------------------------------------------------

def _window_to_onnx(is_max):
    """Max / average pooling with torch's ceil_mode and count_include_pad semantics made explicit: end padding
    makes floor mode give the traced size, so no runtime's own ceil rule is relied on."""

    def lower(em, node):
        a, x, out = node.attrs, node.inputs[0], node.outputs[0]
        kernel, stride, (top, bottom, left, right) = a["kernel_size"], a["stride"], a["padding"]
        dilation = a["dilation"] if is_max else (1, 1)
        (h, w), (oh, ow) = em.shape(x)[2:], em.shape(out)[2:]
        # The overflow beyond the real padding is excluded from averages, as in torch.
        end_h = max(bottom, (oh - 1) * stride[0] + window.extent(kernel[0], dilation[0]) - h - top)
        end_w = max(right, (ow - 1) * stride[1] + window.extent(kernel[1], dilation[1]) - w - left)
        common = dict(kernel_shape=list(kernel), strides=list(stride))
        if is_max:
            pads = window.to_onnx_pads((top, end_h, left, end_w))
            if any(p >= k for p, k in zip(pads, kernel * 2)):  # onnxruntime wants pads < kernel: pad explicitly
                x = em.node("Pad", [x, em.const(f"{node.name}.pads", [0, 0, top, left, 0, 0, end_h, end_w],
                                                np.int64), em.const(f"{node.name}.pad_value", -np.inf)],
                            em.fresh(f"{out}.pad"), f"{node.name}.pad")
                pads = [0, 0, 0, 0]
            return em.node("MaxPool", [x], out, node.name, pads=pads, dilations=list(dilation), **common)
        real_pad = any((top, bottom, left, right))
        overflow = end_h > bottom or end_w > right
        if a["count_include_pad"] and real_pad and overflow:
            # torch counts the real padding but not the ceil overflow: zeros padded explicitly are counted.
            x = em.node("Pad", [x, em.const(f"{node.name}.pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)],
                        em.fresh(f"{out}.pad"), f"{node.name}.pad")
            pads, include = [0, 0, end_h - bottom, end_w - right], 0
        else:
            pads, include = window.to_onnx_pads((top, end_h, left, end_w)), int(a["count_include_pad"] and real_pad)
        return em.node("AveragePool", [x], out, node.name, pads=pads, count_include_pad=include, **common)

    return lower


def _lp_to_onnx(em, node):
    a = node.attrs
    if a["p"] != int(a["p"]):
        raise ValueError(f"node '{node.name}': ONNX LpPool takes an integer p (got {a['p']})")
    (h, w), (oh, ow) = em.shape(node.inputs[0])[2:], em.shape(node.outputs[0])[2:]
    top, bottom, left, right = a["padding"]
    # the ceil rounding as explicit end padding (its cells add nothing), as for the other pools
    end_h = max(bottom, (oh - 1) * a["stride"][0] + window.extent(a["kernel_size"][0], a["dilation"][0]) - h - top)
    end_w = max(right, (ow - 1) * a["stride"][1] + window.extent(a["kernel_size"][1], a["dilation"][1]) - w - left)
    extra = {"dilations": list(a["dilation"])} if a["dilation"] != (1, 1) else {}
    if extra and em.opset < 18:
        raise ValueError(f"node '{node.name}': a dilated LpPool needs opset 18")
    return em.node("LpPool", [node.inputs[0]], node.outputs[0], node.name, kernel_shape=list(a["kernel_size"]),
                   strides=list(a["stride"]), pads=window.to_onnx_pads((top, end_h, left, end_w)), p=int(a["p"]),
                   **extra)


def _adaptive_to_onnx(is_max):
    def lower(em, node):
        x, out = node.inputs[0], node.outputs[0]
        (h, w), (oh, ow) = em.shape(x)[2:], em.shape(out)[2:]
        if (oh, ow) == (1, 1):
            return em.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], out, node.name)
        if h % oh == 0 and w % ow == 0:  # equal windows: a plain pool
            kernel = [h // oh, w // ow]
            return em.node("MaxPool" if is_max else "AveragePool", [x], out, node.name, kernel_shape=kernel,
                           strides=kernel)
        # General case, one axis at a time (the windows are a grid, so reducing H then W is the same):
        # output i of an axis reduces input [floor(i * n / m), ceil((i + 1) * n / m)).
        reduce_op = "ReduceMax" if is_max else "ReduceMean"
        axes = [(axis, n, m) for axis, n, m in ((2, h, oh), (3, w, ow)) if n != m]
        for k, (axis, n, m) in enumerate(axes):
            target = out if k == len(axes) - 1 else em.fresh(f"{out}.axis{axis}")
            parts = []
            for i in range(m):
                start, end = (i * n) // m, -((-(i + 1) * n) // m)
                base = f"{node.name}.axis{axis}.{i}"
                sliced = em.node("Slice", [x, em.const(f"{base}.starts", [start], np.int64),
                                           em.const(f"{base}.ends", [end], np.int64),
                                           em.const(f"{base}.axes", [axis], np.int64)],
                                 em.fresh(f"{base}.slice"), f"{base}.slice")
                part = target if m == 1 else em.fresh(f"{base}.reduce")
                parts.append(em.axes_input_or_attr(reduce_op, sliced, [axis], part, f"{base}.reduce", keepdims=1))
            if m > 1:
                em.node("Concat", parts, target, f"{node.name}.axis{axis}", axis=axis)
            x = target
        return out

    return lower


# --- backward (input gradients: csrc/ops/pool2d/pool2d_backward.cpp) -------------------------------------------

def _max_backward(dy, call):
    a = call.attrs
    dx = np.empty(call.shapes[0], np.float32)
    _core.max_pool2d_input_grad(call.inputs[0], dy, dx, a["kernel_size"], a["stride"], a["dilation"], a["padding"])
    return [dx]


def _avg_backward(dy, call):
    a = call.attrs
    dx = np.empty(call.shapes[0], np.float32)
    _core.avg_pool2d_input_grad(dy, dx, a["kernel_size"], a["stride"], a["padding"], a["count_include_pad"])
    return [dx]


def _adaptive_backward(is_max):
    def rule(dy, call):
        dx = np.empty(call.shapes[0], np.float32)
        _core.adaptive_pool2d_input_grad(call.inputs[0] if is_max else None, dy, dx, is_max)
        return [dx]

    return Backward(rule, ("x",) if is_max else ())


# --- in a compiled Plan ------------------------------------------------------------------------------------------

def _feature_map(node, graph):
    return len(graph.shapes[node.inputs[0]]) == 4


def _plan_pool(is_max):
    return PlanRule(lambda low, node: low.pool(node, is_max), _feature_map)


def _plan_adaptive(is_max):
    return PlanRule(lambda low, node: low.adaptive_pool(node, is_max), _feature_map)


def _plan_adaptive_avg_backward(gp, node, dy, needs):
    gp.adaptive_avg_pool_backward(node, dy, needs)


# --- declarations -----------------------------------------------------------------------------------------------

@declare(("x",), lambda shapes, attrs: _window_rule(shapes, attrs, True), _max_kernel, onnx=_window_to_onnx(True),
         backward=Backward(_max_backward, ("x",)), plan=_plan_pool(True),
         plan_backward=lambda gp, node, dy, needs: gp.max_pool_backward(node, dy, needs))
def max_pool2d(x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: Pads = 0, dilation: IntPair = 1,
               ceil_mode: bool = False) -> Array:
    """2-D max pooling; padding cells never win. ``stride`` defaults to ``kernel_size``.

    Args:
        x: ``(N, C, H, W)``.
        kernel_size, stride, dilation: int or pair. padding: int, pair or ``(top, bottom, left, right)``, at most
            half the effective kernel. ceil_mode: round the output size up (the last window must still start inside
            the input or its leading padding).
    """


@declare(("x",), lambda shapes, attrs: _window_rule(shapes, attrs, False), _avg_kernel, onnx=_window_to_onnx(False),
         backward=Backward(_avg_backward), plan=_plan_pool(False),
         plan_backward=lambda gp, node, dy, needs: gp.avg_pool_backward(node, dy, needs))
def avg_pool2d(x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: Pads = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Array:
    """2-D average pooling (torch semantics for ``count_include_pad`` and ``ceil_mode``)."""


@declare(("x",), _lp_rule, _lp_kernel, onnx=_lp_to_onnx)
def lp_pool2d(x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: Pads = 0, dilation: IntPair = 1,
              ceil_mode: bool = False, p: float = 2.0) -> Array:
    """2-D Lp pooling (ONNX LpPool): ``(sum over the window of |x|^p)^(1/p)``; padding cells add nothing.
    ``stride`` defaults to ``kernel_size``.

    Normalised: ``kernel_size``, ``stride``, ``dilation`` pairs, ``padding`` (top, bottom, left, right),
    ``ceil_mode`` a bool, ``p`` a float.
    """


@declare(("x",), _adaptive_rule, _adaptive_kernel(False), onnx=_adaptive_to_onnx(False),
         backward=_adaptive_backward(False), plan=_plan_adaptive(False), plan_backward=_plan_adaptive_avg_backward)
def adaptive_avg_pool2d(x: Array, output_size: SizePair) -> Array:
    """Average pooling to a fixed ``output_size`` (int or pair; ``None`` keeps that input size)."""


@declare(("x",), _adaptive_rule, _adaptive_kernel(True), onnx=_adaptive_to_onnx(True),
         backward=_adaptive_backward(True), plan=_plan_adaptive(True))
def adaptive_max_pool2d(x: Array, output_size: SizePair) -> Array:
    """Max pooling to a fixed ``output_size`` (int or pair; ``None`` keeps that input size)."""


@declare(("x",), _global_rule, _adaptive_kernel(False), onnx=OnnxOp("GlobalAveragePool"),
         backward=_adaptive_backward(False), plan=_plan_adaptive(False), plan_backward=_plan_adaptive_avg_backward)
def global_avg_pool2d(x: Array) -> Array:
    """Mean over H and W: ``(N, C, H, W) -> (N, C, 1, 1)``."""


@declare(("x",), _global_rule, _adaptive_kernel(True), onnx=OnnxOp("GlobalMaxPool"),
         backward=_adaptive_backward(True), plan=_plan_adaptive(True))
def global_max_pool2d(x: Array) -> Array:
    """Max over H and W: ``(N, C, H, W) -> (N, C, 1, 1)``."""
