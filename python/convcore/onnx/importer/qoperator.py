"""onnxruntime's QOperator format read as the QDQ nodes it means: each quantized operator (QLinearConv, QLinearMatMul,
and the com.microsoft QGemm, QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat,
QLinearSigmoid, QLinearLeakyRelu) becomes DequantizeLinear of its quantized inputs, the float operator, and
QuantizeLinear of its output (an int32 bias dequantized with input scale x weight scale). The importer then reads a
QDQ graph: constant weights fold to their float values, each QuantizeLinear -> DequantizeLinear pair runs as one
fake_quantize, and compiled plans run the convolutions in int8 (docs/quantization.md). Scales must be constants."""

import numpy as np
from onnx import helper, numpy_helper

from .attributes import fail

MS = "com.microsoft"


def _node(op_type, inputs, output, name, **attrs):
    return helper.make_node(op_type, inputs, [output], name=name, **attrs)


class _Expansion:
    """The nodes replacing one quantized operator; `fresh` names new values."""

    def __init__(self, node, consts, taken):
        self.node, self.consts, self.taken, self.nodes, self.created = node, consts, taken, [], []

    def fresh(self, base):
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def input(self, i):
        return self.node.input[i] if i < len(self.node.input) else ""

    def dequantize(self, value, scale, zero, what, axis=None):
        """A DequantizeLinear of input `value` (an axis for per-channel scales); returns its float value."""
        out = self.fresh(f"{self.node.output[0]}.{what}")
        inputs = [value, scale] + ([zero] if zero else [])
        attrs = {"axis": axis} if axis is not None and np.size(self.consts.get(scale, 0)) > 1 else {}
        self.nodes.append(_node("DequantizeLinear", inputs, out, f"{self.node.name}.dequantize_{what}", **attrs))
        return out

    def quantize(self, value, scale, zero):
        """QuantizeLinear of `value` onto the operator's output."""
        inputs = [value, scale] + ([zero] if zero else [])
        self.nodes.append(_node("QuantizeLinear", inputs, self.node.output[0], f"{self.node.name}.quantize"))

    def float_op(self, op_type, inputs, what="float", **attrs):
        out = self.fresh(f"{self.node.output[0]}.{what}")
        self.nodes.append(_node(op_type, inputs, out, self.node.name or op_type, **attrs))
        return out

    def bias(self, i, x_scale, w_scale):
        """The float value of int32 bias input i (scale: input scale x weight scale), or '' when absent."""
        name = self.input(i)
        if not name:
            return ""
        scales = [self.consts.get(x_scale), self.consts.get(w_scale)]
        if any(s is None for s in scales):
            raise fail(self.node, "expected constant input and weight scales (to dequantize the int32 bias)")
        product = (np.asarray(scales[0], np.float32) * np.asarray(scales[1], np.float32)).astype(np.float32)
        scale, zero = self.fresh(f"{self.node.output[0]}.bias_scale"), self.fresh(f"{self.node.output[0]}.bias_zero")
        self.consts[scale], self.consts[zero] = product, np.zeros(product.shape, np.int32)
        self.created += [scale, zero]
        return self.dequantize(name, scale, zero, "bias", axis=0)


def _attrs(node, skip=()):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in skip}


def _conv(e):
    n = e.node
    x = e.dequantize(e.input(0), e.input(1), e.input(2), "x")
    w = e.dequantize(e.input(3), e.input(4), e.input(5), "w", axis=0)
    b = e.bias(8, e.input(1), e.input(4))
    y = e.float_op("Conv", [x, w] + ([b] if b else []), **_attrs(n))
    e.quantize(y, e.input(6), e.input(7))


def _matmul(e):
    a = e.dequantize(e.input(0), e.input(1), e.input(2), "a")
    b = e.dequantize(e.input(3), e.input(4), e.input(5), "b", axis=-1)
    e.quantize(e.float_op("MatMul", [a, b]), e.input(6), e.input(7))


def _gemm(e):
    a = e.dequantize(e.input(0), e.input(1), e.input(2), "a")
    trans_b = _attrs(e.node).get("transB", 0)
    b = e.dequantize(e.input(3), e.input(4), e.input(5), "b", axis=0 if trans_b else 1)
    c = e.bias(6, e.input(1), e.input(4))
    attrs = {k: v for k, v in _attrs(e.node).items() if k in ("alpha", "transA", "transB")}
    y = e.float_op("Gemm", [a, b] + ([c] if c else []), **attrs)
    if e.input(7):
        e.quantize(y, e.input(7), e.input(8))
    else:  # a float output: the Gemm's own
        e.nodes[-1].output[0] = e.node.output[0]


def _binary(op_type):
    def expand(e):
        a = e.dequantize(e.input(0), e.input(1), e.input(2), "a")
        b = e.dequantize(e.input(3), e.input(4), e.input(5), "b")
        e.quantize(e.float_op(op_type, [a, b]), e.input(6), e.input(7))
    return expand


def _unary(op_type, keep=()):
    def expand(e):
        attrs = _attrs(e.node)
        if attrs.get("channels_last", 0):
            raise fail(e.node, "expected channels_last=0 (NCHW)")
        x = e.dequantize(e.input(0), e.input(1), e.input(2), "x")
        y = e.float_op(op_type, [x], **{k: v for k, v in attrs.items() if k in keep})
        e.quantize(y, e.input(3), e.input(4))
    return expand


def _concat(e):
    inputs = [e.dequantize(e.input(i), e.input(i + 1), e.input(i + 2), f"x{(i - 2) // 3}")
              for i in range(2, len(e.node.input), 3)]
    e.quantize(e.float_op("Concat", inputs, axis=_attrs(e.node)["axis"]), e.input(0), e.input(1))


_POOL = ("kernel_shape", "pads", "strides", "auto_pad", "ceil_mode", "count_include_pad", "dilations")
EXPANDERS = {"QLinearConv": _conv, "QLinearMatMul": _matmul, f"{MS}:QGemm": _gemm,
             f"{MS}:QLinearAdd": _binary("Add"), f"{MS}:QLinearMul": _binary("Mul"),
             f"{MS}:QLinearGlobalAveragePool": _unary("GlobalAveragePool"),
             f"{MS}:QLinearAveragePool": _unary("AveragePool", _POOL), f"{MS}:QLinearSigmoid": _unary("Sigmoid"),
             f"{MS}:QLinearLeakyRelu": _unary("LeakyRelu", ("alpha",)), f"{MS}:QLinearConcat": _concat}


def _key(node):
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def expand_qoperators(g, consts):
    """GraphProto `g` with each quantized operator replaced by its QDQ nodes (a copy; `g` itself when it has none).
    New constants (bias scales) are added to `consts`."""
    if not any(_key(n) in EXPANDERS for n in g.node):
        return g
    taken = set(consts) | {v.name for v in g.input} | {o for n in g.node for o in n.output}
    nodes, created = [], []
    for node in g.node:
        expand = EXPANDERS.get(_key(node))
        if expand is None:
            nodes.append(node)
            continue
        e = _Expansion(node, consts, taken)
        expand(e)
        nodes += e.nodes
        created += e.created
    out = type(g)()
    out.CopyFrom(g)
    del out.node[:]
    out.node.extend(nodes)
    out.initializer.extend(numpy_helper.from_array(consts[name], name) for name in created)
    return out
