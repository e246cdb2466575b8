"""`export`: a convcore model (traced into a `Graph`) -> an ONNX `ModelProto`.

Each Graph node becomes one or a few ONNX nodes that compute exactly the functional op's (torch's) semantics:
'same' / 'full' convolution padding becomes explicit pads, torch's pooling `ceil_mode` becomes explicit end padding
(so no runtime's own ceil rule is relied on), SiLU is Sigmoid + Mul, an even-sized LRN is written out with its torch
window. Value and node names are the graph's (module paths); extra values get a suffix ("fc.matmul").
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..graph import Graph, conv_pads, trace
from ..graph.ir import unique_name
from ..graph.passes import fold_batchnorm as _fold_batchnorm

MIN_OPSET, MAX_OPSET = 13, 21


def _pair(value):
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    return tuple(int(v) for v in value)


def _pads4(padding):
    """Pool padding (int, pair or 4 ints) -> (top, bottom, left, right)."""
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    return (padding[0], padding[0], padding[1], padding[1]) if len(padding) == 2 else padding


class _Emitter:
    """Collects ONNX nodes and initializers for one graph."""

    def __init__(self, graph, opset):
        self.graph, self.opset = graph, opset
        self.nodes, self.initializers = [], []
        self.emitted = set()  # graph params already written as initializers
        self.taken = set(graph.params) | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs}

    def fresh(self, base):
        return unique_name(base, self.taken)

    def const(self, base, array, dtype=np.float32):
        """A new initializer holding `array`; returns its name."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def value(self, name):
        """An input value: graph params become initializers on first use."""
        if name in self.graph.params and name not in self.emitted:
            self.emitted.add(name)
            array = np.ascontiguousarray(self.graph.params[name], np.float32)
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op_type, inputs, output, name, **attrs):
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attrs))
        return output

    def axes_input_or_attr(self, op_type, x, axes, output, name, **attrs):
        """A Reduce* node: `axes` is an attribute before opset 18, an input from then on."""
        if self.opset >= 18:
            return self.node(op_type, [x, self.const(f"{name}.axes", axes, np.int64)], output, name, **attrs)
        return self.node(op_type, [x], output, name, axes=list(axes), **attrs)


def _conv(em, name, x, weight, bias, out, attrs, groups, in_hw=None):
    g = em.graph
    kernel = g.shapes[weight][2:]
    stride, dilation = _pair(attrs.get("stride", 1)), _pair(attrs.get("dilation", 1))
    in_hw = g.shapes[x][2:] if in_hw is None else in_hw
    top, bottom, left, right = conv_pads(attrs.get("padding", 0), in_hw, kernel, stride, dilation)
    inputs = [x, em.value(weight)] + ([em.value(bias)] if bias else [])
    return em.node("Conv", inputs, out, name, kernel_shape=list(kernel), strides=list(stride),
                   dilations=list(dilation), pads=[top, left, bottom, right], group=int(groups))


def _pool(em, node, is_max):
    """Max / average pooling with torch's ceil_mode and count_include_pad semantics made explicit."""
    g, attrs = em.graph, node.attrs
    x, out = node.inputs[0], node.outputs[0]
    h, w = g.shapes[x][2:]
    oh, ow = g.shapes[out][2:]
    kernel = _pair(attrs["kernel_size"])
    stride = kernel if attrs.get("stride") is None else _pair(attrs["stride"])
    dilation = _pair(attrs.get("dilation", 1)) if is_max else (1, 1)
    top, bottom, left, right = _pads4(attrs.get("padding", 0))
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    # End padding that makes floor mode give the traced (torch ceil_mode) size; the overflow beyond the real
    # padding is excluded from averages, as in torch.
    end_h = max(bottom, (oh - 1) * stride[0] + extent[0] - h - top)
    end_w = max(right, (ow - 1) * stride[1] + extent[1] - w - left)
    common = dict(kernel_shape=list(kernel), strides=list(stride))
    if is_max:
        pads = [top, left, end_h, end_w]
        if any(p >= k for p, k in zip(pads, kernel * 2)):  # onnxruntime wants pads < kernel: pad explicitly
            x = em.node("Pad", [x, em.const(f"{node.name}.pads", [0, 0, top, left, 0, 0, end_h, end_w], np.int64),
                                em.const(f"{node.name}.pad_value", -np.inf)], em.fresh(f"{out}.pad"),
                        f"{node.name}.pad")
            pads = [0, 0, 0, 0]
        return em.node("MaxPool", [x], out, node.name, pads=pads, dilations=list(dilation), **common)
    real_pad = any((top, bottom, left, right))
    overflow = end_h > bottom or end_w > right
    if attrs.get("count_include_pad", True) and real_pad and overflow:
        # torch counts the real padding but not the ceil overflow: zeros padded explicitly are counted.
        x = em.node("Pad", [x, em.const(f"{node.name}.pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)],
                    em.fresh(f"{out}.pad"), f"{node.name}.pad")
        pads, include = [0, 0, end_h - bottom, end_w - right], 0
    else:
        pads, include = [top, left, end_h, end_w], int(bool(attrs.get("count_include_pad", True)) and real_pad)
    return em.node("AveragePool", [x], out, node.name, pads=pads, count_include_pad=include, **common)


def _adaptive(em, node, is_max):
    g = em.graph
    x, out = node.inputs[0], node.outputs[0]
    h, w = g.shapes[x][2:]
    oh, ow = g.shapes[out][2:]
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


def _lrn(em, node):
    x, out, a = node.inputs[0], node.outputs[0], node.attrs
    size, alpha, beta, k = int(a["size"]), float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)), float(
        a.get("k", 1.0))
    if size % 2:  # odd sizes: ONNX's window is torch's
        return em.node("LRN", [x], out, node.name, size=size, alpha=alpha, beta=beta, bias=k)
    # Even sizes: ONNX centres the window one channel later than torch, so write torch's formula out:
    # x / (k + alpha * avg_pool_over_channels(x^2, size, pads (size//2, (size-1)//2)))^beta.
    rank = len(em.graph.shapes[x])
    if rank > 4:
        raise ValueError(f"node '{node.name}': an even-sized local_response_norm exports only for 3D / 4D input "
                         f"(got {rank}D)")
    n = node.name
    sq = em.node("Mul", [x, x], em.fresh(f"{out}.square"), f"{n}.square")
    axes1 = em.const(f"{n}.axes", [1], np.int64)
    lifted = em.node("Unsqueeze", [sq, axes1], em.fresh(f"{out}.unsqueeze"), f"{n}.unsqueeze")
    spatial = rank - 1
    pads = [size // 2] + [0] * (spatial - 1) + [(size - 1) // 2] + [0] * (spatial - 1)
    avg = em.node("AveragePool", [lifted], em.fresh(f"{out}.window"), f"{n}.window",
                  kernel_shape=[size] + [1] * (spatial - 1), pads=pads, count_include_pad=1)
    avg = em.node("Squeeze", [avg, axes1], em.fresh(f"{out}.sum"), f"{n}.squeeze")
    scaled = em.node("Mul", [avg, em.const(f"{n}.alpha", alpha)], em.fresh(f"{out}.scaled"), f"{n}.scale")
    shifted = em.node("Add", [scaled, em.const(f"{n}.k", k)], em.fresh(f"{out}.shifted"), f"{n}.shift")
    denom = em.node("Pow", [shifted, em.const(f"{n}.beta", beta)], em.fresh(f"{out}.denominator"), f"{n}.pow")
    return em.node("Div", [x, denom], out, n)


def _linear(em, node):
    x, weight, bias = (list(node.inputs) + [""])[:3]
    out = node.outputs[0]
    if len(em.graph.shapes[x]) == 2:
        inputs = [x, em.value(weight)] + ([em.value(bias)] if bias else [])
        return em.node("Gemm", inputs, out, node.name, transB=1)
    w_t = em.const(f"{weight}.T", np.ascontiguousarray(np.asarray(em.graph.params[weight]).T))
    product = em.node("MatMul", [x, w_t], em.fresh(f"{out}.matmul") if bias else out, f"{node.name}.matmul"
                      if bias else node.name)
    return em.node("Add", [product, em.value(bias)], out, node.name) if bias else product


def _flatten(em, node):
    x, out = node.inputs[0], node.outputs[0]
    shape = em.graph.shapes[x]
    rank = max(len(shape), 1)
    start, end = node.attrs.get("start_dim", 1) % rank, node.attrs.get("end_dim", -1) % rank
    if start == 1 and end == rank - 1:
        return em.node("Flatten", [x], out, node.name, axis=1)
    # Reshape: 0 copies a leading dim (the dynamic batch), -1 is the merged one.
    target = [0] * start + [-1] + [int(d) for d in shape[end + 1:]]
    return em.node("Reshape", [x, em.const(f"{node.name}.shape", target, np.int64)], out, node.name)


def _unary(op_type, **fixed):
    def lower(em, node):
        attrs = {**fixed}
        if "alpha" in attrs and attrs["alpha"] is None:
            attrs["alpha"] = float(node.attrs.get("negative_slope", 0.01))
        return em.node(op_type, [node.inputs[0]], node.outputs[0], node.name, **attrs)

    return lower


def _relu6(em, node):
    inputs = [node.inputs[0], em.const(f"{node.name}.min", 0.0), em.const(f"{node.name}.max", 6.0)]
    return em.node("Clip", inputs, node.outputs[0], node.name)


def _silu(em, node):
    x, out = node.inputs[0], node.outputs[0]
    gate = em.node("Sigmoid", [x], em.fresh(f"{out}.sigmoid"), f"{node.name}.sigmoid")
    return em.node("Mul", [x, gate], out, node.name)


def _hardswish(em, node):
    x, out = node.inputs[0], node.outputs[0]
    if em.opset >= 14:
        return em.node("HardSwish", [x], out, node.name)
    gate = em.node("HardSigmoid", [x], em.fresh(f"{out}.gate"), f"{node.name}.gate", alpha=1 / 6, beta=0.5)
    return em.node("Mul", [x, gate], out, node.name)


def _binary(op_type):
    def lower(em, node):
        return em.node(op_type, [em.value(i) for i in node.inputs], node.outputs[0], node.name)

    return lower


def _softmax(op_type):
    def lower(em, node):
        return em.node(op_type, [node.inputs[0]], node.outputs[0], node.name, axis=int(node.attrs.get("axis", 1)))

    return lower


_LOWER = {
    "conv2d": lambda em, n: _conv(em, n.name, n.inputs[0], n.inputs[1], (list(n.inputs) + [""])[2], n.outputs[0],
                                  n.attrs, n.attrs.get("groups", 1)),
    "depthwise_conv2d": lambda em, n: _conv(em, n.name, n.inputs[0], n.inputs[1], (list(n.inputs) + [""])[2],
                                            n.outputs[0], n.attrs, em.graph.shapes[n.inputs[0]][1]),
    "max_pool2d": lambda em, n: _pool(em, n, True),
    "avg_pool2d": lambda em, n: _pool(em, n, False),
    "adaptive_avg_pool2d": lambda em, n: _adaptive(em, n, False),
    "adaptive_max_pool2d": lambda em, n: _adaptive(em, n, True),
    "global_avg_pool2d": lambda em, n: em.node("GlobalAveragePool", [n.inputs[0]], n.outputs[0], n.name),
    "global_max_pool2d": lambda em, n: em.node("GlobalMaxPool", [n.inputs[0]], n.outputs[0], n.name),
    "relu": _unary("Relu"),
    "relu6": _relu6,
    "leaky_relu": _unary("LeakyRelu", alpha=None),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "silu": _silu,
    "hardswish": _hardswish,
    "hardsigmoid": _unary("HardSigmoid", alpha=1 / 6, beta=0.5),
    "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"),
    "local_response_norm": _lrn,
    "linear": _linear,
    "add": _binary("Add"),
    "mul": _binary("Mul"),
    "concat": lambda em, n: em.node("Concat", list(n.inputs), n.outputs[0], n.name,
                                    axis=int(n.attrs.get("axis", 1))),
    "flatten": _flatten,
}


def _separable(em, node):
    x, dw, pw, dw_b, pw_b = (list(node.inputs) + [""] * 5)[:5]
    mid = em.fresh(f"{node.outputs[0]}.depthwise")
    _conv(em, f"{node.name}.depthwise", x, dw, dw_b, mid, node.attrs, em.graph.shapes[x][1])
    return _conv(em, node.name, mid, pw, pw_b, node.outputs[0], {}, 1, in_hw=em.graph.shapes[node.outputs[0]][2:])


def _batch_norm(em, node):
    x, mean, var, weight, bias = (list(node.inputs) + [""] * 5)[:5]
    channels = em.graph.shapes[x][1]
    scale = em.value(weight) if weight else em.const(f"{node.name}.weight", np.ones(channels))
    shift = em.value(bias) if bias else em.const(f"{node.name}.bias", np.zeros(channels))
    return em.node("BatchNormalization", [x, scale, shift, em.value(mean), em.value(var)], node.outputs[0],
                   node.name, epsilon=float(node.attrs.get("eps", 1e-5)))


_LOWER["separable_conv2d"] = _separable
_LOWER["batch_norm"] = _batch_norm

EXPORTED_OPS = tuple(sorted(_LOWER))


def _symbolic_dims(graph, names, dynamic_batch):
    """Declared dims of the graph inputs / outputs `names`: ints, "N" for the batch, None for other dims that
    change with the batch (e.g. a flatten that merges it)."""
    if not dynamic_batch:
        return {name: list(graph.shapes[name]) for name in names}
    # Re-infer the shapes at another batch size: the dims that follow the batch are the dynamic ones.
    batch = graph.shapes[graph.inputs[0]][0]
    other = Graph(graph.nodes, graph.inputs, graph.outputs, graph.params,
                  {n: (graph.shapes[n][0] + 1, *graph.shapes[n][1:]) for n in graph.inputs}, graph.name)
    other.infer_shapes()
    return {name: ["N" if (a, b) == (batch, batch + 1) else None if a != b else a
                   for a, b in zip(graph.shapes[name], other.shapes[name])] for name in names}


def _version():
    try:
        from .. import __version__
        return str(__version__)
    except ImportError:
        return "unknown"


def export(model, path=None, input_shape=(1, 3, 224, 224), opset=17, dynamic_batch=True, fold_batchnorm=False):
    """Export a model (or a traced Graph) to ONNX.

    Runs `onnx.checker.check_model(full_check=True)` and strict shape inference on the result before returning it.

    Args:
        model: a `convcore.nn.Module` (traced with `convcore.trace(model, input_shape)`) or a `Graph`.
        path: optional file path to save the model to.
        input_shape: the traced input shape (N, C, H, W); ignored for a Graph.
        opset: ONNX opset, 13 to 21.
        dynamic_batch: name the batch dimension "N" (any batch size) instead of fixing it.
        fold_batchnorm: fold batch norms that follow a convolution into it (see `convcore.graph.passes`).

    Returns:
        The `onnx.ModelProto` (ir_version: the lowest that supports the opset; producer "convcore").

    Example:
        >>> proto = convcore.onnx.export(resnet18(), "resnet18.onnx", input_shape=(1, 3, 224, 224))
        >>> [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][:1]
        ['N']
    """
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"expected opset between {MIN_OPSET} and {MAX_OPSET} (got {opset!r})")
    opset = int(opset)
    graph = model if isinstance(model, Graph) else trace(model, tuple(input_shape))
    if fold_batchnorm:
        graph = _fold_batchnorm(graph)
    graph.validate()
    unknown = sorted({n.op for n in graph.nodes if n.op not in _LOWER})
    if unknown:
        raise ValueError(f"cannot export op(s) {', '.join(unknown)} to ONNX")
    em = _Emitter(graph, opset)
    for node in graph.nodes:
        _LOWER[node.op](em, node)
    for name in graph.outputs:  # an output that no node computes (an input or a param) needs a node to name it
        if name in graph.inputs or name in graph.params:
            raise ValueError(f"graph output '{name}' is not computed by any node")
    dims = _symbolic_dims(graph, graph.inputs + graph.outputs, dynamic_batch)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims[n]) for n in graph.inputs]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims[n]) for n in graph.outputs]
    onnx_graph = helper.make_graph(em.nodes, graph.name, inputs, outputs, em.initializers)
    opset_ids = [helper.make_opsetid("", opset)]
    proto = helper.make_model(onnx_graph, opset_imports=opset_ids, producer_name="convcore",
                              producer_version=_version())
    proto.ir_version = helper.find_min_ir_version_for(opset_ids)
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    if path is not None:
        onnx.save_model(proto, os.fspath(path))
    return proto
