"""Elementwise activations and softmax (kernels: csrc/ops/activation, csrc/ops/softmax)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as V
from .registry import Backward, OnnxOp, declare

__all__ = ["relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "softmax",
           "log_softmax"]


def _same_shape(shapes, attrs):
    return {}, shapes[0]


def _unary_kernel(name, alpha):
    """The elementwise kernel `name` of `_core.unary` (csrc/ops/activation); attribute `alpha` is its parameter."""

    def kernel(x, *, out, **attrs):
        if x.size:
            _core.unary(x, out, name, attrs[alpha] if alpha else 0.0)
        return out

    return kernel


# The activations whose gradient is computed from their output (csrc/ops/activation/activation_backward.h): after a
# fused conv + activation only the output exists, so these keep it rather than their input.
_GRAD_FROM_OUTPUT = frozenset({"relu", "relu6", "sigmoid", "tanh"})


def _unary_backward(name, alpha):
    """dx = dy * op'(x), from the output or the input (`_GRAD_FROM_OUTPUT`)."""
    saved = "out" if name in _GRAD_FROM_OUTPUT else "x"

    def rule(dy, call):
        dx = np.empty_like(dy)
        if dy.size:
            v = call.out if saved == "out" else call.inputs[0]
            _core.unary_input_grad(v, dy, dx, name, call.attrs[alpha] if alpha else 0.0)
        return [dx]

    return Backward(rule, (saved,))


def _unary(onnx, rule=_same_shape, alpha=None):
    """Declaration of an elementwise activation; its name is the kernel's op name, `alpha` names the attribute the
    kernel takes as its parameter."""

    def register(spec):
        name = spec.__name__
        return declare(("x",), rule, _unary_kernel(name, alpha), onnx=onnx, allow_empty=True,
                       backward=_unary_backward(name, alpha))(spec)

    return register


def _leaky_relu_rule(shapes, attrs):
    return {"negative_slope": V.number(attrs["negative_slope"], "negative_slope")}, shapes[0]


def _relu6_to_onnx(em, node):
    inputs = [node.inputs[0], em.const(f"{node.name}.min", 0.0), em.const(f"{node.name}.max", 6.0)]
    return em.node("Clip", inputs, node.outputs[0], node.name)


def _silu_to_onnx(em, node):
    x, out = node.inputs[0], node.outputs[0]
    gate = em.node("Sigmoid", [x], em.fresh(f"{out}.sigmoid"), f"{node.name}.sigmoid")
    return em.node("Mul", [x, gate], out, node.name)


def _hardswish_to_onnx(em, node):
    x, out = node.inputs[0], node.outputs[0]
    if em.opset >= 14:
        return em.node("HardSwish", [x], out, node.name)
    gate = em.node("HardSigmoid", [x], em.fresh(f"{out}.gate"), f"{node.name}.gate", alpha=1 / 6, beta=0.5)
    return em.node("Mul", [x, gate], out, node.name)


@_unary(OnnxOp("Relu"))
def relu(x):
    """``max(x, 0)``, elementwise (any shape)."""


@_unary(_relu6_to_onnx)
def relu6(x):
    """``min(max(x, 0), 6)``, elementwise."""


@_unary(OnnxOp("LeakyRelu", {"alpha": "negative_slope"}, defaults={"alpha": 0.01}), _leaky_relu_rule,
        alpha="negative_slope")
def leaky_relu(x, negative_slope=0.01):
    """``x if x >= 0 else negative_slope * x``, elementwise."""


@_unary(OnnxOp("Sigmoid"))
def sigmoid(x):
    """``1 / (1 + exp(-x))``, elementwise."""


@_unary(OnnxOp("Tanh"))
def tanh(x):
    """Hyperbolic tangent, elementwise."""


@_unary(_silu_to_onnx)
def silu(x):
    """``x * sigmoid(x)`` (swish), elementwise."""


@_unary(_hardswish_to_onnx)
def hardswish(x):
    """``x * relu6(x + 3) / 6``, elementwise."""


@_unary(OnnxOp("HardSigmoid", fixed={"alpha": 1 / 6, "beta": 0.5}))
def hardsigmoid(x):
    """``relu6(x + 3) / 6``, elementwise."""


# --- softmax ----------------------------------------------------------------------------------------------------

def _softmax_rule(shapes, attrs):
    return {"axis": V.axis(attrs["axis"], len(shapes[0]))}, shapes[0]


def _softmax_kernel(log):
    def kernel(x, *, out, axis):
        _core.softmax(x, out, axis, log)
        return out

    return kernel


def _softmax_backward(dy, call):
    """softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy); sums along the axis."""
    y, axis = call.out.astype(np.float64), call.attrs["axis"]
    g = dy.astype(np.float64)
    return [(y * (g - (g * y).sum(axis=axis, keepdims=True))).astype(np.float32)]


def _log_softmax_backward(dy, call):
    y, axis = call.out.astype(np.float64), call.attrs["axis"]
    g = dy.astype(np.float64)
    return [(g - np.exp(y) * g.sum(axis=axis, keepdims=True)).astype(np.float32)]


# Importing ONNX Softmax / LogSoftmax needs its own converter (onnx/importer): before opset 13 they flatten to 2-D.
@declare(("x",), _softmax_rule, _softmax_kernel(False), onnx=OnnxOp("Softmax", {"axis": "axis"}),
         backward=Backward(_softmax_backward, ("out",)))
def softmax(x, axis=1):
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow)."""


@declare(("x",), _softmax_rule, _softmax_kernel(True), onnx=OnnxOp("LogSoftmax", {"axis": "axis"}),
         backward=Backward(_log_softmax_backward, ("out",)))
def log_softmax(x, axis=1):
    """``log(softmax(x))`` along ``axis``, computed without forming the softmax."""
