"""Elementwise math: sub, div, pow, maximum, minimum with numpy broadcasting; exp, log, sqrt, neg, abs, reciprocal,
erf and clip (kernels: csrc/ops/eltwise, csrc/ops/activation)."""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as V
from .activation import unary
from .registry import OnnxOp, declare
from .tensor import _binary_kernel, _broadcast_rule

__all__ = ["sub", "div", "pow", "maximum", "minimum", "exp", "log", "sqrt", "neg", "abs", "reciprocal", "erf",
           "clip"]


def _binary(onnx, kernel_name):
    def register(spec):
        return declare(("a", "b"), _broadcast_rule, _binary_kernel(kernel_name), onnx=onnx, allow_empty=True)(spec)

    return register


@_binary(OnnxOp("Sub"), "sub")
def sub(a, b):
    """Elementwise ``a - b`` with numpy broadcasting."""


@_binary(OnnxOp("Div"), "div")
def div(a, b):
    """Elementwise ``a / b`` with numpy broadcasting (IEEE: x / 0 is +-inf, 0 / 0 NaN)."""


@_binary(OnnxOp("Pow"), "pow")
def pow(a, b):  # noqa: A001  (the ONNX / numpy name)
    """Elementwise ``a ** b`` with numpy broadcasting (computed in double, rounded once)."""


@_binary(OnnxOp("Max"), "max")
def maximum(a, b):
    """Elementwise maximum with numpy broadcasting; NaN propagates."""


@_binary(OnnxOp("Min"), "min")
def minimum(a, b):
    """Elementwise minimum with numpy broadcasting; NaN propagates."""


@unary(OnnxOp("Exp"))
def exp(x):
    """``e ** x``, elementwise."""


@unary(OnnxOp("Log"))
def log(x):
    """Natural logarithm, elementwise (-inf at 0, NaN below)."""


@unary(OnnxOp("Sqrt"))
def sqrt(x):
    """Square root, elementwise (NaN below 0)."""


@unary(OnnxOp("Neg"))
def neg(x):
    """``-x``, elementwise."""


@unary(OnnxOp("Abs"))
def abs(x):  # noqa: A001
    """``|x|``, elementwise."""


@unary(OnnxOp("Reciprocal"))
def reciprocal(x):
    """``1 / x``, elementwise."""


@unary(OnnxOp("Erf"))
def erf(x):
    """The error function, elementwise."""


def _clip_rule(shapes, attrs):
    bounds = {}
    for name, default in (("min", -math.inf), ("max", math.inf)):
        value = attrs[name]
        bounds[name] = default if value is None else V.number(value, name)
        if math.isnan(bounds[name]):
            raise ValueError(f"{name}: expected a number (got nan)")
    return bounds, shapes[0]


def _clip_to_onnx(em, node):
    inputs = [node.inputs[0]]
    for name, unbounded in (("min", -math.inf), ("max", math.inf)):
        value = node.attrs[name]
        inputs.append("" if value == unbounded else em.const(f"{node.name}.{name}", np.float32(value)))
    while inputs[-1] == "":
        inputs.pop()
    return em.node("Clip", inputs, node.outputs[0], node.name)


@unary(_clip_to_onnx, _clip_rule, "min", "max")
def clip(x, min=None, max=None):  # noqa: A002
    """``min(max(x, min), max)`` elementwise (ONNX Clip: when min > max every value becomes max); None: unbounded.

    Normalised: ``min`` / ``max`` are floats, -inf / inf for no bound.
    """
