"""Elementwise math: sub, div, pow, maximum, minimum with numpy broadcasting; exp, log, sqrt, neg, abs, reciprocal,
erf, clip and shrink; comparisons (float masks) and where (kernels: csrc/ops/eltwise, csrc/ops/activation)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array
from .activation import activation
from .registry import OnnxOp, PlanRule, _Spec, declare, elementwise_plan_ok, plan_binary
from .tensor import _binary_kernel, _broadcast_rule

__all__ = ["sub", "div", "pow", "maximum", "minimum", "exp", "log", "sqrt", "neg", "abs", "reciprocal", "erf",
           "clip", "shrink", "less", "less_equal", "greater", "greater_equal", "equal", "where"]


def _binary(onnx: Any, kernel_name: str) -> Callable[[_Spec], _Spec]:
    def register(spec: _Spec) -> _Spec:
        return declare(("a", "b"), _broadcast_rule, _binary_kernel(kernel_name), onnx=onnx, allow_empty=True,
                       plan=plan_binary(kernel_name))(spec)

    return register


@_binary(OnnxOp("Sub"), "sub")
def sub(a: Array, b: Array) -> Array:
    """Elementwise ``a - b`` with numpy broadcasting."""


@_binary(OnnxOp("Div"), "div")
def div(a: Array, b: Array) -> Array:
    """Elementwise ``a / b`` with numpy broadcasting (IEEE: x / 0 is +-inf, 0 / 0 NaN)."""


@_binary(OnnxOp("Pow"), "pow")
def pow(a: Array, b: Array) -> Array:  # noqa: A001  (the ONNX / numpy name)
    """Elementwise ``a ** b`` with numpy broadcasting (computed in double, rounded once)."""


@_binary(OnnxOp("Max"), "max")
def maximum(a: Array, b: Array) -> Array:
    """Elementwise maximum with numpy broadcasting; NaN propagates."""


@_binary(OnnxOp("Min"), "min")
def minimum(a: Array, b: Array) -> Array:
    """Elementwise minimum with numpy broadcasting; NaN propagates."""


@activation(OnnxOp("Exp"))
def exp(x: Array) -> Array:
    """``e ** x``, elementwise."""


@activation(OnnxOp("Log"))
def log(x: Array) -> Array:
    """Natural logarithm, elementwise (-inf at 0, NaN below)."""


@activation(OnnxOp("Sqrt"))
def sqrt(x: Array) -> Array:
    """Square root, elementwise (NaN below 0)."""


@activation(OnnxOp("Neg"))
def neg(x: Array) -> Array:
    """``-x``, elementwise."""


@activation(OnnxOp("Abs"))
def abs(x: Array) -> Array:  # noqa: A001
    """``|x|``, elementwise."""


@activation(OnnxOp("Reciprocal"))
def reciprocal(x: Array) -> Array:
    """``1 / x``, elementwise."""


@activation(OnnxOp("Erf"))
def erf(x: Array) -> Array:
    """The error function, elementwise."""


def _shrink_rule(shapes, attrs):
    return {n: V.number(attrs[n], n) for n in ("lambd", "bias")}, shapes[0]


@activation(OnnxOp("Shrink", {"lambd": "lambd", "bias": "bias"}, defaults={"lambd": 0.5, "bias": 0.0}), _shrink_rule,
            ("lambd", "bias"))
def shrink(x: Array, lambd: float = 0.5, bias: float = 0.0) -> Array:
    """``x + bias if x < -lambd else (x - bias if x > lambd else 0)``, elementwise (ONNX Shrink; torch's hardshrink
    with bias 0, its softshrink with bias = lambd)."""


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


@activation(_clip_to_onnx, _clip_rule, ("min", "max"))
def clip(x: Array, min: float | None = None, max: float | None = None) -> Array:  # noqa: A002
    """``min(max(x, min), max)`` elementwise (ONNX Clip: when min > max every value becomes max); None: unbounded.

    Normalised: ``min`` / ``max`` are floats, -inf / inf for no bound.
    """


# --- comparisons and where: bool tensors as float32 masks (1.0 true, 0.0 false) ------------------------------------

ONNX_FLOAT, ONNX_BOOL = 1, 9  # TensorProto element types (the registry does not import onnx)

def _comparison_to_onnx(op_type):
    def lower(em, node):  # ONNX compares into bool: cast back to convcore's float mask
        out, n = node.outputs[0], node.name
        mask = em.node(op_type, list(node.inputs), em.fresh(f"{out}.bool"), f"{n}.compare")
        return em.node("Cast", [mask], out, n, to=ONNX_FLOAT)

    return lower


@_binary(_comparison_to_onnx("Less"), "less")
def less(a: Array, b: Array) -> Array:
    """``a < b`` elementwise with numpy broadcasting, as a float32 mask (1.0 where true, 0.0 elsewhere; NaN compares
    false)."""


@_binary(_comparison_to_onnx("LessOrEqual"), "less_equal")
def less_equal(a: Array, b: Array) -> Array:
    """``a <= b`` elementwise with numpy broadcasting, as a float32 mask."""


@_binary(_comparison_to_onnx("Greater"), "greater")
def greater(a: Array, b: Array) -> Array:
    """``a > b`` elementwise with numpy broadcasting, as a float32 mask."""


@_binary(_comparison_to_onnx("GreaterOrEqual"), "greater_equal")
def greater_equal(a: Array, b: Array) -> Array:
    """``a >= b`` elementwise with numpy broadcasting, as a float32 mask."""


@_binary(_comparison_to_onnx("Equal"), "equal")
def equal(a: Array, b: Array) -> Array:
    """``a == b`` elementwise with numpy broadcasting, as a float32 mask."""


def _where_rule(shapes, attrs):
    try:
        return {}, tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"condition, a, b: expected broadcastable shapes (got {shapes[0]}, {shapes[1]} and "
                         f"{shapes[2]})") from None


def _where_kernel(condition, a, b, *, out):
    _core.where(*(np.broadcast_to(v, out.shape) for v in (condition, a, b)), out)
    return out


def _where_to_onnx(em, node):
    condition, a, b = node.inputs
    n = node.name
    mask = em.node("Cast", [condition], em.fresh(f"{node.outputs[0]}.condition"), f"{n}.condition",
                   to=ONNX_BOOL)
    return em.node("Where", [mask, a, b], node.outputs[0], n)


@declare(("condition", "a", "b"), _where_rule, _where_kernel, onnx=_where_to_onnx, allow_empty=True,
         plan=PlanRule(lambda low, node: low.where(node), elementwise_plan_ok, needs=frozenset({"where"}),
                       sequences=True, elementwise=True))
def where(condition: Array, a: Array, b: Array) -> Array:
    """``a`` where ``condition`` is non-zero, else ``b`` (numpy broadcasting over the three; a comparison's mask is
    a condition)."""
