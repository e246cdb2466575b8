"""Elementwise activations, PReLU and softmax (kernels: csrc/ops/activation, csrc/ops/eltwise, csrc/ops/softmax)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array
from .registry import Backward, OnnxOp, PlanRule, _Spec, declare, plan_binary

__all__ = ["relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "elu", "selu",
           "celu", "softplus", "softsign", "gelu", "mish", "prelu", "softmax", "log_softmax"]


def _same_shape(shapes, attrs):
    return {}, shapes[0]


def _plan_activation(low, node):
    low.activation(node)


def _plan_activation_backward(gp, node, dy, needs):
    gp.activation_backward(node, dy, needs)


def activation(onnx: Any, rule: Callable[..., Any] = _same_shape, params: tuple[Any, ...] = (),
               act: Optional[Callable[[dict[str, Any]], str]] = None) -> Callable[[_Spec], _Spec]:
    """Declaration of an elementwise function computed by the kernels' activation of the same name
    (`_core.Act`, the list in csrc/kernels/elementwise.h), or by ``act(attrs)`` (a name) for an op with variants;
    `params` name the attributes that are its alpha and beta (or compute them: callables of the attributes).

    Everything else follows from the kernels' declaration: the eager kernel, the backward rule (from the input or
    the output, as ``_core.act_grad_from`` says; none when it says 'none'), the Plan form (an epilogue a producer may
    fuse, else one op) and the gradient Plan's backward op."""

    def register(spec: _Spec) -> _Spec:
        def name_of(attrs: dict[str, Any]) -> str:
            return act(attrs) if act is not None else spec.__name__

        def epilogue(attrs):
            values = (float(p(attrs) if callable(p) else attrs[p]) for p in params)
            return (name_of(attrs), *values, *(0.0,) * (2 - len(params)))

        def kernel(x, *, out, **attrs):
            if x.size:
                a, alpha, beta = epilogue(attrs)
                _core.unary(x, out, _core.Act.__members__[a], alpha, beta)
            return out

        defaults = {n: p.default for n, p in inspect.signature(spec).parameters.items() if p.default is not p.empty}
        has_grad = _core.act_grad_from(_core.Act.__members__[name_of(defaults)]) != "none"
        backward = _activation_backward(epilogue) if has_grad else None
        return declare(("x",), rule, kernel, onnx=onnx, allow_empty=True, backward=backward,
                       plan=PlanRule(_plan_activation, epilogue=epilogue),
                       plan_backward=_plan_activation_backward if backward else None)(spec)

    return register


def _activation_backward(epilogue):
    """dx = dy * act'(v), v the input or the output as the kernels declare (after a fused convolution + activation
    only the output exists, so activations that can read it do)."""

    def saved(attrs, needs):
        return ("out",) if _core.act_grad_from(_core.Act.__members__[epilogue(attrs)[0]]) == "output" else ("x",)

    def rule(dy, call):
        dx = np.empty_like(dy)
        if dy.size:
            a, alpha, beta = epilogue(call.attrs)
            act = _core.Act.__members__[a]
            v = call.out if _core.act_grad_from(act) == "output" else call.inputs[0]
            _core.unary_input_grad(v, dy, dx, act, alpha, beta)
        return [dx]

    return Backward(rule, saved)


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


@activation(OnnxOp("Relu"))
def relu(x: Array) -> Array:
    """``max(x, 0)``, elementwise (any shape)."""


@activation(_relu6_to_onnx)
def relu6(x: Array) -> Array:
    """``min(max(x, 0), 6)``, elementwise."""


@activation(OnnxOp("LeakyRelu", {"alpha": "negative_slope"}, defaults={"alpha": 0.01}), _leaky_relu_rule,
            ("negative_slope",))
def leaky_relu(x: Array, negative_slope: float = 0.01) -> Array:
    """``x if x >= 0 else negative_slope * x``, elementwise."""


@activation(OnnxOp("Sigmoid"))
def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``, elementwise."""


@activation(OnnxOp("Tanh"))
def tanh(x: Array) -> Array:
    """Hyperbolic tangent, elementwise."""


@activation(_silu_to_onnx)
def silu(x: Array) -> Array:
    """``x * sigmoid(x)`` (swish), elementwise."""


@activation(_hardswish_to_onnx)
def hardswish(x: Array) -> Array:
    """``x * relu6(x + 3) / 6``, elementwise."""


@activation(OnnxOp("HardSigmoid", fixed={"alpha": 1 / 6, "beta": 0.5}))
def hardsigmoid(x: Array) -> Array:
    """``relu6(x + 3) / 6``, elementwise."""


# --- activations of the ONNX spec (portable kernels) --------------------------------------------------------------

def _float_attrs(*names):
    def rule(shapes, attrs):
        return {n: V.number(attrs[n], n) for n in names}, shapes[0]

    return rule


def _celu_rule(shapes, attrs):
    alpha = V.number(attrs["alpha"], "alpha")
    if alpha == 0:
        raise ValueError("alpha: expected a non-zero value (got 0.0)")
    return {"alpha": alpha}, shapes[0]


def _decomposed(op_type, since, lower):
    """An ONNX lowering: `op_type` from opset `since`, `lower(em, node)` (older ops) before it."""

    def lowering(em, node):
        if em.opset >= since:
            return em.node(op_type, [node.inputs[0]], node.outputs[0], node.name)
        return lower(em, node)

    return lowering


def _mish_lower(em, node):
    x, out, n = node.inputs[0], node.outputs[0], node.name
    sp = em.node("Softplus", [x], em.fresh(f"{out}.softplus"), f"{n}.softplus")
    th = em.node("Tanh", [sp], em.fresh(f"{out}.tanh"), f"{n}.tanh")
    return em.node("Mul", [x, th], out, n)


def _gelu_to_onnx(em, node):
    x, out, n = node.inputs[0], node.outputs[0], node.name
    approximate = node.attrs["approximate"]
    if em.opset >= 20:
        return em.node("Gelu", [x], out, n, approximate=approximate)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = em.node("Mul", [x, em.node("Mul", [x, x], em.fresh(f"{out}.sq"), f"{n}.sq")], em.fresh(f"{out}.cube"),
                       f"{n}.cube")
        inner = em.node("Add", [x, em.node("Mul", [cube, em.const(f"{n}.c", 0.044715)], em.fresh(f"{out}.c3"),
                                           f"{n}.c3")], em.fresh(f"{out}.inner"), f"{n}.inner")
        arg = em.node("Mul", [inner, em.const(f"{n}.k", float(np.sqrt(2 / np.pi)))], em.fresh(f"{out}.arg"), f"{n}.arg")
        gate = em.node("Tanh", [arg], em.fresh(f"{out}.tanh"), f"{n}.tanh")
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        arg = em.node("Mul", [x, em.const(f"{n}.k", float(1 / np.sqrt(2)))], em.fresh(f"{out}.arg"), f"{n}.arg")
        gate = em.node("Erf", [arg], em.fresh(f"{out}.erf"), f"{n}.erf")
    one = em.node("Add", [gate, em.const(f"{n}.one", 1.0)], em.fresh(f"{out}.one"), f"{n}.one")
    half = em.node("Mul", [x, em.const(f"{n}.half", 0.5)], em.fresh(f"{out}.half"), f"{n}.half")
    return em.node("Mul", [half, one], out, n)


def _gelu_rule(shapes, attrs):
    approximate = attrs["approximate"]
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate: expected 'none' or 'tanh' (got {approximate!r})")
    return {"approximate": approximate}, shapes[0]


SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875  # ONNX's defaults (float32 values)


@activation(OnnxOp("Elu", {"alpha": "alpha"}, defaults={"alpha": 1.0}), _float_attrs("alpha"), ("alpha",))
def elu(x: Array, alpha: float = 1.0) -> Array:
    """``x if x >= 0 else alpha * (exp(x) - 1)``, elementwise."""


@activation(OnnxOp("Selu", {"alpha": "alpha", "gamma": "gamma"}, defaults={"alpha": SELU_ALPHA, "gamma": SELU_GAMMA}),
            _float_attrs("alpha", "gamma"), ("alpha", "gamma"))
def selu(x: Array, alpha: float = SELU_ALPHA, gamma: float = SELU_GAMMA) -> Array:
    """``gamma * (x if x > 0 else alpha * (exp(x) - 1))``, elementwise (ONNX's default constants)."""


@activation(OnnxOp("Celu", {"alpha": "alpha"}, defaults={"alpha": 1.0}), _celu_rule, ("alpha",))
def celu(x: Array, alpha: float = 1.0) -> Array:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, elementwise."""


@activation(OnnxOp("Softplus"))
def softplus(x: Array) -> Array:
    """``log(1 + exp(x))``, elementwise (no overflow for large x)."""


@activation(OnnxOp("Softsign"))
def softsign(x: Array) -> Array:
    """``x / (1 + |x|)``, elementwise."""


@activation(_gelu_to_onnx, _gelu_rule, act=lambda attrs: "gelu_tanh" if attrs["approximate"] == "tanh" else "gelu")
def gelu(x: Array, approximate: str = "none") -> Array:
    """``0.5 * x * (1 + erf(x / sqrt(2)))``, or with ``approximate='tanh'`` the tanh form
    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))``, elementwise."""


@activation(_decomposed("Mish", 18, _mish_lower))
def mish(x: Array) -> Array:
    """``x * tanh(softplus(x))``, elementwise."""


def _prelu_rule(shapes, attrs):
    x, slope = shapes
    try:
        shape = tuple(np.broadcast_shapes(x, slope))
    except ValueError:
        shape = None
    if shape != tuple(x):
        raise ValueError(f"slope: expected a shape that broadcasts to x's {x} (got {slope})")
    return {}, x


def _prelu_kernel(x, slope, *, out):
    _core.binary(x, np.broadcast_to(slope, out.shape), out, _core.BinaryOp.prelu)
    return out


@declare(("x", "slope"), _prelu_rule, _prelu_kernel, onnx=OnnxOp("PRelu"), allow_empty=True,
         plan=plan_binary("prelu"))
def prelu(x: Array, slope: Array) -> Array:
    """``x if x >= 0 else slope * x`` with `slope` broadcast to x (e.g. one slope per channel: ``(C, 1, 1)``)."""


# --- softmax ----------------------------------------------------------------------------------------------------

def _softmax_rule(shapes, attrs):
    if len(shapes[0]) == 0:  # one element along one axis (as torch: dims 0 and -1); the shape stays ()
        axis = V.integer(attrs["axis"], "axis")
        if axis not in (0, -1):
            raise ValueError(f"axis: expected 0 or -1 for a 0D input (got {axis})")
        return {"axis": 0}, ()
    return {"axis": V.axis(attrs["axis"], len(shapes[0]))}, shapes[0]


def _softmax_kernel(log):
    def kernel(x, *, out, axis):
        if x.ndim == 0:
            _core.softmax(x.reshape(1), out.reshape(1), axis, log)  # out.reshape(1): a view of the 0-d out
        else:
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
def _channels_axis(node, graph):
    return node.attrs["axis"] == 1


def _last_axis(node, graph):
    return node.attrs["axis"] == len(graph.shapes[node.inputs[0]]) - 1


@declare(("x",), _softmax_rule, _softmax_kernel(False), onnx=OnnxOp("Softmax", {"axis": "axis"}),
         backward=Backward(_softmax_backward, ("out",)),
         plan=PlanRule(lambda low, node: low.softmax(node, False), _channels_axis, per_pixel=_last_axis,
                       sequences=True))
def softmax(x: Array, axis: int = 1) -> Array:
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow)."""


@declare(("x",), _softmax_rule, _softmax_kernel(True), onnx=OnnxOp("LogSoftmax", {"axis": "axis"}),
         backward=Backward(_log_softmax_backward, ("out",)),
         plan=PlanRule(lambda low, node: low.softmax(node, True), _channels_axis, per_pixel=_last_axis,
                       sequences=True))
def log_softmax(x: Array, axis: int = 1) -> Array:
    """``log(softmax(x))`` along ``axis``, computed without forming the softmax."""
