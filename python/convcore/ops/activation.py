"""Elementwise activations, PReLU and softmax (kernels: csrc/ops/activation, csrc/ops/eltwise, csrc/ops/softmax)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _validate as V
from .registry import Backward, OnnxOp, declare

__all__ = ["relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "elu", "selu",
           "celu", "softplus", "softsign", "gelu", "mish", "prelu", "softmax", "log_softmax"]


def _same_shape(shapes, attrs):
    return {}, shapes[0]


def _unary_kernel(name, *params):
    """The elementwise kernel `name` of `_core.unary` (csrc/ops/activation); `params` name the attributes the
    kernel takes as its parameters (alpha, beta), in that order."""

    def kernel(x, *, out, **attrs):
        if x.size:
            _core.unary(x, out, name, *(attrs[p] for p in params))
        return out

    return kernel


def unary(onnx, rule=_same_shape, *params, kernel_name=None, backward=None):
    """Declaration of an elementwise op computed by `_core.unary`: its name is the kernel's op name (or
    `kernel_name`), `params` name the attributes the kernel takes as its parameters."""

    def register(spec):
        kernel = _unary_kernel(kernel_name or spec.__name__, *params)
        return declare(("x",), rule, kernel, onnx=onnx, allow_empty=True, backward=backward)(spec)

    return register


# The activations with a backward kernel (csrc/ops/activation/activation_backward.h). Those whose gradient is
# computed from their output keep the output rather than their input: after a fused conv + activation only the output
# exists.
_GRAD_KERNELS = frozenset({"relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid"})
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
    """Declaration of an activation with one parameter at most (`alpha`), and its backward rule when it has a
    backward kernel."""

    def register(spec):
        name = spec.__name__
        backward = _unary_backward(name, alpha) if name in _GRAD_KERNELS else None
        return unary(onnx, rule, *([alpha] if alpha else []), backward=backward)(spec)

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


def _gelu_kernel(x, *, out, approximate):
    if x.size:
        _core.unary(x, out, "gelu_tanh" if approximate == "tanh" else "gelu")
    return out


SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875  # ONNX's defaults (float32 values)


@_unary(OnnxOp("Elu", {"alpha": "alpha"}, defaults={"alpha": 1.0}), _float_attrs("alpha"), alpha="alpha")
def elu(x, alpha=1.0):
    """``x if x >= 0 else alpha * (exp(x) - 1)``, elementwise."""


@unary(OnnxOp("Selu", {"alpha": "alpha", "gamma": "gamma"}, defaults={"alpha": SELU_ALPHA, "gamma": SELU_GAMMA}),
       _float_attrs("alpha", "gamma"), "alpha", "gamma")
def selu(x, alpha=SELU_ALPHA, gamma=SELU_GAMMA):
    """``gamma * (x if x > 0 else alpha * (exp(x) - 1))``, elementwise (ONNX's default constants)."""


@_unary(OnnxOp("Celu", {"alpha": "alpha"}, defaults={"alpha": 1.0}), _celu_rule, alpha="alpha")
def celu(x, alpha=1.0):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, elementwise."""


@_unary(OnnxOp("Softplus"))
def softplus(x):
    """``log(1 + exp(x))``, elementwise (no overflow for large x)."""


@_unary(OnnxOp("Softsign"))
def softsign(x):
    """``x / (1 + |x|)``, elementwise."""


@declare(("x",), _gelu_rule, _gelu_kernel, onnx=_gelu_to_onnx, allow_empty=True)
def gelu(x, approximate="none"):
    """``0.5 * x * (1 + erf(x / sqrt(2)))``, or with ``approximate='tanh'`` the tanh form
    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))``, elementwise."""


@_unary(_decomposed("Mish", 18, _mish_lower))
def mish(x):
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
    _core.binary(x, np.broadcast_to(slope, out.shape), out, "prelu")
    return out


@declare(("x", "slope"), _prelu_rule, _prelu_kernel, onnx=OnnxOp("PRelu"), allow_empty=True)
def prelu(x, slope):
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
@declare(("x",), _softmax_rule, _softmax_kernel(False), onnx=OnnxOp("Softmax", {"axis": "axis"}),
         backward=Backward(_softmax_backward, ("out",)))
def softmax(x, axis=1):
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow)."""


@declare(("x",), _softmax_rule, _softmax_kernel(True), onnx=OnnxOp("LogSoftmax", {"axis": "axis"}),
         backward=Backward(_log_softmax_backward, ("out",)))
def log_softmax(x, axis=1):
    """``log(softmax(x))`` along ``axis``, computed without forming the softmax."""
