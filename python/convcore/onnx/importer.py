"""`load`: an ONNX CNN -> a `Graph` of convcore functional ops, wrapped in a `convcore.nn.Module`.

Covers the CNN subset written by `torch.onnx.export`, tf2onnx and `convcore.onnx.export`, opsets 9 to 21, NCHW.
Weights must be constants (initializers or Constant nodes); float16 / float64 weights are converted to float32 (the
precision convcore computes in), integer tensors are accepted only where ONNX expects integers (shapes, axes, pads).
"""

import math
from types import SimpleNamespace

import numpy as np
from onnx import TensorProto, helper

from .. import functional as F
from ..graph import TENSOR_ARGS, Graph, Node, conv_pads, infer_shape
from ..graph.ir import unique_name
from ..nn import Module
from ._reader import FLOAT_TYPES, read_model, tensor_to_array

MIN_OPSET, MAX_OPSET = 9, 21


class ONNXModule(Module):
    """A model imported from ONNX: a `convcore.nn.Module` that runs its `Graph` with `convcore.functional`.

    Its parameters are the graph's constant tensors, by their ONNX initializer names (`state_dict()` keys such as
    'layer1.0.conv1.weight'); `load_state_dict` replaces them in place. It is callable on numpy arrays and traceable
    by `convcore.trace` (then nodes are named by op, parameters keep their names). `graph` holds the imported Graph
    with the ONNX node names.

    Attributes:
        graph: the imported `Graph` (its params are this module's parameter arrays).
        opset: the model's ai.onnx opset version.
    """

    def __init__(self, graph, opset):
        super().__init__()
        self.graph = graph
        self.opset = opset
        for name, array in graph.params.items():
            # Dotted ONNX names are kept as flat keys: register_parameter refuses '.', the stores do not.
            self._parameters[name] = array

    def forward(self, *inputs):
        """Run the graph on one array per graph input, shaped (N, ...) like the ONNX input; returns the
        output(s)."""
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise TypeError(f"expected {len(g.inputs)} input array(s) (got {len(inputs)})")
        env = dict(self._parameters)
        for name, x in zip(g.inputs, inputs):
            expected, shape = g.shapes[name], getattr(x, "shape", None)
            if shape is None or len(shape) != len(expected) or tuple(shape[1:]) != tuple(expected[1:]):
                raise ValueError(f"expected input '{name}' of shape (N, {', '.join(map(str, expected[1:]))}) "
                                 f"(got {shape if shape is not None else type(x).__name__})")
            env[name] = x
        # Intermediates are dropped after their last use, so memory stays near the model's working set.
        last_use = {name: i for i, node in enumerate(g.nodes) for name in node.inputs}
        keep = set(g.outputs) | set(env)
        for i, node in enumerate(g.nodes):
            args = [env[name] if name else None for name in node.inputs]
            if node.op == "concat":
                env[node.outputs[0]] = F.concat(args, **node.attrs)
            else:
                kwargs = dict(zip(TENSOR_ARGS[node.op], args))
                env[node.outputs[0]] = getattr(F, node.op)(**kwargs, **node.attrs)
            for name in node.inputs:
                if last_use.get(name) == i and name not in keep:
                    env.pop(name, None)
        results = tuple(env[name] for name in g.outputs)
        return results[0] if len(results) == 1 else results

    def extra_repr(self):
        return (f"inputs={self.graph.inputs}, outputs={self.graph.outputs}, nodes={len(self.graph.nodes)}, "
                f"opset={self.opset}")


class _Context:
    """State of one import: ONNX values -> graph values or constants, and the Graph being built."""

    def __init__(self, proto_graph, folder, opset):
        self.opset, self.folder = opset, folder
        self.graph = Graph(name=proto_graph.name or "onnx")
        self.consts = {}  # ONNX value -> numpy constant
        self.values = {}  # ONNX value -> graph value name
        # ONNX value -> (graph value, (top, bottom, left, right), fill value) of a Pad left for its consumer to fold
        self.pending_pads = {}
        self.param_of = {}  # id(const array) -> (param name, array): a constant used twice is one param
        self.producer = {}  # graph value -> the Node computing it
        self.taken = set()
        self.uses = {}
        for node in proto_graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
        for out in proto_graph.output:
            self.uses[out.name] = self.uses.get(out.name, 0) + 1

    # ----------------------------------------------------------------------------------------------- values
    def fresh(self, base):
        return unique_name(base, self.taken)

    def const(self, name):
        """The constant behind ONNX value `name`, or None when it is computed at run time."""
        return self.consts.get(name) if name else None

    def param(self, array, base, exact=False):
        """A graph param holding float `array` (one param per constant array); returns its name.

        `exact`: `base` is the ONNX name of this very constant, so the param takes it unchanged.
        """
        if id(array) in self.param_of:
            return self.param_of[id(array)][0]
        name = base if exact and base not in self.graph.params else self.fresh(base)
        self.graph.params[name] = np.ascontiguousarray(array, np.float32)
        self.graph.shapes[name] = tuple(array.shape)
        self.param_of[id(array)] = (name, array)  # holding the array keeps its id unique
        return name

    def tensor(self, name, node):
        """The graph value for ONNX value `name` used as a tensor argument (constants become params)."""
        if name in self.pending_pads:
            source, pads, fill = self.pending_pads.pop(name)
            if fill != 0:
                raise ValueError(f"node '{node.name}': padding with {fill} is supported only before a MaxPool (-inf)")
            self.values[name] = self._zero_pad(source, pads, name)
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            array = self.consts[name]
            if array.dtype.kind != "f":
                raise ValueError(f"node '{node.name}': expected a float tensor for '{name}' (got {array.dtype})")
            return self.param(array, name, exact=True)
        raise ValueError(f"node '{node.name}': input '{name}' is not defined")

    def shape(self, value):
        return self.graph.shapes[value]

    def emit(self, op, name, inputs, attrs, output=None):
        """Append a functional-op node; its output value is `output` (an ONNX name) or a fresh one."""
        out = output if output is not None else self.fresh(f"{name}.{op}")
        try:
            shape = infer_shape(op, [self.graph.shapes[i] if i else None for i in inputs], attrs)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"node '{name}': {exc}") from None
        self.graph.nodes.append(Node(op, name, list(inputs), [out], dict(attrs)))
        self.producer[out] = self.graph.nodes[-1]
        self.graph.shapes[out] = shape
        return out

    def _zero_pad(self, source, pads, name):
        """Zero padding on its own: a depthwise 1x1 convolution with weight 1 and the padding (exact)."""
        channels = self.shape(source)[1]
        ones = self.param(np.ones((channels, 1, 1, 1), np.float32), f"{name}.identity_weight")
        return self.emit("depthwise_conv2d", name, [source, ones], {"padding": pads}, self.fresh(name))


# ------------------------------------------------------------------------------------------------- attributes
def _attrs(node, ctx):
    """Node attributes as Python values (tensors converted with the size checks)."""
    out = {}
    for a in node.attribute:
        if a.type == helper.AttributeProto.TENSOR:
            out[a.name] = tensor_to_array(a.t, ctx.folder, f"node '{node.name}' attribute '{a.name}'")
        elif a.type in (helper.AttributeProto.GRAPH, helper.AttributeProto.GRAPHS):
            raise ValueError(f"node '{node.name}': subgraph attributes are not supported")
        else:
            value = helper.get_attribute_value(a)
            out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _int_const(ctx, node, index, what):
    """An optional integer-list input (pads, axes, shape) that must be constant; None when absent."""
    if len(node.input) <= index or not node.input[index]:
        return None
    value = ctx.const(node.input[index])
    if value is None:
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected a constant {what} (got a computed value)")
    if value.dtype.kind not in "iu":
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected integer {what} (got {value.dtype})")
    return [int(v) for v in value.reshape(-1)]


def _float_const(ctx, node, index, what):
    if len(node.input) <= index or not node.input[index]:
        return None
    value = ctx.const(node.input[index])
    if value is None or value.size != 1 or value.dtype.kind != "f":
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected a constant float scalar {what}")
    return float(value.reshape(-1)[0])


def _need_4d(ctx, node, value, kind):
    rank = len(ctx.shape(value))
    if rank != 4:
        raise ValueError(f"node '{node.name}' ({node.op_type}): only 2-D {kind} on NCHW input is supported (got a "
                         f"{rank}D input)")


def _explicit_pads(node, a, in_hw, kernel, stride, dilation):
    """(top, bottom, left, right) from ONNX pads / auto_pad."""
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "VALID":
        return 0, 0, 0, 0
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        top, bottom, left, right = conv_pads("same", in_hw, kernel, stride, dilation)
        return (bottom, top, right, left) if auto == "SAME_LOWER" else (top, bottom, left, right)
    if auto != "NOTSET":
        raise ValueError(f"node '{node.name}': unknown auto_pad {auto!r}")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or any(p < 0 for p in pads):
        raise ValueError(f"node '{node.name}': expected 4 non-negative pads (got {pads})")
    return pads[0], pads[2], pads[1], pads[3]


def _two(node, a, key, default):
    value = list(a.get(key, default))
    if len(value) != 2 or any(v < 1 for v in value):
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected 2 positive {key} (got {value})")
    return tuple(int(v) for v in value)


def _take_pad(ctx, name, fill):
    """(graph value, pads) if ONNX value `name` is a Pad with `fill` that its only consumer may fold, else None."""
    if name in ctx.pending_pads and ctx.uses.get(name) == 1 and ctx.pending_pads[name][2] == fill:
        return ctx.pending_pads.pop(name)[:2]
    return None


# --------------------------------------------------------------------------------------------------- handlers
def _conv(ctx, node, a):
    weight = ctx.const(node.input[1])
    if weight is None:
        raise ValueError(f"node '{node.name}' (Conv): expected the weight as an initializer or Constant")
    if weight.ndim != 4:
        raise ValueError(f"node '{node.name}' (Conv): only 2-D convolution is supported (got a {weight.ndim - 2}-D "
                         f"kernel)")
    folded = _take_pad(ctx, node.input[0], 0.0)
    x = folded[0] if folded else ctx.tensor(node.input[0], node)
    _need_4d(ctx, node, x, "convolution")
    kernel = weight.shape[2:]
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(kernel):
        raise ValueError(f"node '{node.name}' (Conv): kernel_shape {a['kernel_shape']} does not match the weight's "
                         f"{weight.shape}")
    stride, dilation = _two(node, a, "strides", (1, 1)), _two(node, a, "dilations", (1, 1))
    pads = _window_pads(ctx, node, a, x, folded, kernel, stride, dilation)
    bias = ctx.tensor(node.input[2], node) if len(node.input) > 2 and node.input[2] else ""
    inputs = [x, ctx.tensor(node.input[1], node)] + ([bias] if bias else [])
    attrs = {"stride": stride, "padding": pads, "dilation": dilation, "groups": int(a.get("group", 1))}
    ctx.values[node.output[0]] = ctx.emit("conv2d", node.name, inputs, attrs, node.output[0])


def _window_pads(ctx, node, a, x, folded, kernel, stride, dilation):
    """Explicit pads of a conv / pool window over x, plus those of a Pad node folded into it (folded[1])."""
    in_hw = ctx.shape(x)[2:]
    if folded:
        in_hw = (in_hw[0] + folded[1][0] + folded[1][1], in_hw[1] + folded[1][2] + folded[1][3])
    pads = _explicit_pads(node, a, in_hw, kernel, stride, dilation)
    return tuple(p + q for p, q in zip(pads, folded[1])) if folded else pads


def _pool(ctx, node, a):
    is_max = node.op_type == "MaxPool"
    if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1]):
        raise ValueError(f"node '{node.name}' (MaxPool): the Indices output is not supported")
    kernel_list = list(a.get("kernel_shape", []))
    if len(kernel_list) != 2:
        raise ValueError(f"node '{node.name}' ({node.op_type}): only 2-D pooling is supported (got kernel_shape "
                         f"{kernel_list})")
    kernel = _two(node, a, "kernel_shape", ())
    include = bool(a.get("count_include_pad", 0))
    # Padding folds into a max pool when it pads with -inf, into an average pool counting zero padding.
    if is_max:
        folded = _take_pad(ctx, node.input[0], -np.inf)
    else:
        folded = _take_pad(ctx, node.input[0], 0.0) if include and not a.get("ceil_mode", 0) else None
    x = folded[0] if folded else ctx.tensor(node.input[0], node)
    _need_4d(ctx, node, x, "pooling")
    stride, dilation = _two(node, a, "strides", (1, 1)), _two(node, a, "dilations", (1, 1))
    if not is_max and dilation != (1, 1):
        raise ValueError(f"node '{node.name}' (AveragePool): dilations are not supported")
    pads = _window_pads(ctx, node, a, x, folded, kernel, stride, dilation)
    ceil_mode = bool(a.get("ceil_mode", 0))
    limits = [(d * (k - 1) + 1) // 2 if is_max else k // 2 for k, d in zip(kernel, dilation)]
    if any(p > limits[i // 2] for i, p in enumerate(pads)):
        refit = None if include and not is_max else _refit_end_pads(ctx.shape(x)[2:], pads, kernel, stride,
                                                                     dilation, ceil_mode, limits)
        if refit is None:
            raise ValueError(f"node '{node.name}' ({node.op_type}): pads {pads} exceed half the kernel, which "
                             f"convcore pooling does not support")
        pads, ceil_mode = refit
    attrs = {"kernel_size": kernel, "stride": stride, "padding": pads, "ceil_mode": ceil_mode}
    if is_max:
        attrs["dilation"] = dilation
    else:
        attrs["count_include_pad"] = include
    ctx.values[node.output[0]] = ctx.emit("max_pool2d" if is_max else "avg_pool2d", node.name, [x], attrs,
                                          node.output[0])


def _refit_end_pads(in_hw, pads, kernel, stride, dilation, ceil_mode, limits):
    """Pads within convcore's limit (half the kernel) giving the same windows as large end pads, or None.

    When padding cells never count (max pooling, average pooling without count_include_pad), a large end pad only
    adds output positions, which a smaller end pad with torch's ceil_mode can reproduce (exporters write torch's
    ceil_mode this way). Returns ((top, bottom, left, right), ceil_mode).
    """
    begins, ends = (pads[0], pads[2]), (pads[1], pads[3])
    if any(b > limit for b, limit in zip(begins, limits)):
        return None
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    targets = [_window_count(n, b, e, ext, s, ceil_mode, torch_rule=False)
               for n, b, e, ext, s in zip(in_hw, begins, ends, extents, stride)]
    for ceil in (False, True):
        found = []
        for n, b, ext, s, limit, target in zip(in_hw, begins, extents, stride, limits, targets):
            ok = [e for e in range(limit + 1) if _window_count(n, b, e, ext, s, ceil, torch_rule=True) == target]
            found.append(ok[0] if ok else None)
        if None not in found:
            return (begins[0], found[0], begins[1], found[1]), ceil
    return None


def _window_count(size, begin, end, extent, stride, ceil, torch_rule):
    """Output length of a pooling window: ONNX's formula, or torch's (ceil windows must start before the end pad)."""
    span = size + begin + end - extent
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and torch_rule and (out - 1) * stride >= size + begin:
        out -= 1
    return out


def _global_pool(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    _need_4d(ctx, node, x, "pooling")
    op = "global_max_pool2d" if node.op_type == "GlobalMaxPool" else "global_avg_pool2d"
    ctx.values[node.output[0]] = ctx.emit(op, node.name, [x], {}, node.output[0])


def _reduce(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axes = a.get("axes")
    if axes is None:
        axes = _int_const(ctx, node, 1, "axes")
    if rank != 4 or axes is None or sorted(v % rank for v in axes) != [2, 3]:
        raise ValueError(f"node '{node.name}' ({node.op_type}): only a reduction over H and W of NCHW input is "
                         f"supported (got axes {axes} on a {rank}D input)")
    op = "global_max_pool2d" if node.op_type == "ReduceMax" else "global_avg_pool2d"
    if a.get("keepdims", 1):
        ctx.values[node.output[0]] = ctx.emit(op, node.name, [x], {}, node.output[0])
    else:
        pooled = ctx.emit(op, node.name, [x], {})
        ctx.values[node.output[0]] = ctx.emit("flatten", f"{node.name}.flatten", [pooled],
                                              {"start_dim": 1, "end_dim": -1}, node.output[0])


def _batch_norm(ctx, node, a):
    if a.get("training_mode", 0) or any(o and ctx.uses.get(o) for o in node.output[1:]):
        raise ValueError(f"node '{node.name}' (BatchNormalization): only inference mode is supported")
    for i, what in zip(range(1, 5), ("scale", "B", "mean", "var")):
        if ctx.const(node.input[i]) is None:
            raise ValueError(f"node '{node.name}' (BatchNormalization): expected a constant {what}")
    inputs = [ctx.tensor(n, node) for n in (node.input[0], node.input[3], node.input[4], node.input[1],
                                              node.input[2])]
    attrs = {"eps": float(a.get("epsilon", 1e-5))}
    ctx.values[node.output[0]] = ctx.emit("batch_norm", node.name, inputs, attrs, node.output[0])


def _unary(op, **fixed):
    def handle(ctx, node, a):
        attrs = dict(fixed)
        if op == "leaky_relu":
            attrs["negative_slope"] = float(a.get("alpha", 0.01))
        ctx.values[node.output[0]] = ctx.emit(op, node.name, [ctx.tensor(node.input[0], node)], attrs,
                                              node.output[0])

    return handle


def _hard_sigmoid(ctx, node, a):
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    x = ctx.tensor(node.input[0], node)
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        ctx.values[node.output[0]] = ctx.emit("hardsigmoid", node.name, [x], {}, node.output[0])
        return
    # clip(alpha * x + beta, 0, 1) == relu6(6 * alpha * x + 6 * beta) / 6
    n = node.name
    scaled = ctx.emit("mul", f"{n}.scale", [x, ctx.param(np.float32(6 * alpha), f"{n}.alpha")], {})
    shifted = ctx.emit("add", f"{n}.shift", [scaled, ctx.param(np.float32(6 * beta), f"{n}.beta")], {})
    clipped = ctx.emit("relu6", f"{n}.clip", [shifted], {})
    ctx.values[node.output[0]] = ctx.emit("mul", n, [clipped, ctx.param(np.float32(1 / 6), f"{n}.sixth")], {},
                                          node.output[0])


def _clip(ctx, node, a):
    if ctx.opset < 11:
        low, high = a.get("min"), a.get("max")
    else:
        low, high = _float_const(ctx, node, 1, "min"), _float_const(ctx, node, 2, "max")
    low = None if low is None or low <= -3.4e38 else low
    high = None if high is None or high >= 3.4e38 else high
    x = ctx.tensor(node.input[0], node)
    if low is None and high is None:
        ctx.values[node.output[0]] = x
    elif low == 0 and high in (None, 6.0):
        op = "relu" if high is None else "relu6"
        ctx.values[node.output[0]] = ctx.emit(op, node.name, [x], {}, node.output[0])
    else:
        raise ValueError(f"node '{node.name}' (Clip): only [0, 6] (ReLU6) and [0, inf) (ReLU) are supported (got "
                         f"[{low}, {high}])")


def _softmax(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axis = int(a.get("axis", -1 if ctx.opset >= 13 else 1)) % rank
    # Before opset 13 the op worked on the input flattened to 2D at `axis`: one axis only if the rest are 1.
    if ctx.opset < 13 and any(d != 1 for d in ctx.shape(x)[axis + 1:]):
        raise ValueError(f"node '{node.name}' ({node.op_type}): opset < 13 softmax over several axes is not "
                         f"supported")
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    ctx.values[node.output[0]] = ctx.emit(op, node.name, [x], {"axis": axis}, node.output[0])


def _lrn(ctx, node, a):
    size = int(a["size"])
    if size % 2 == 0:
        raise ValueError(f"node '{node.name}' (LRN): even sizes are not supported (ONNX centres the window "
                         f"differently from convcore / torch)")
    attrs = {"size": size, "alpha": float(a.get("alpha", 1e-4)), "beta": float(a.get("beta", 0.75)),
             "k": float(a.get("bias", 1.0))}
    ctx.values[node.output[0]] = ctx.emit("local_response_norm", node.name, [ctx.tensor(node.input[0], node)],
                                          attrs, node.output[0])


def _binary(ctx, node, a):
    op_type, (left, right) = node.op_type, node.input[:2]
    ca, cb = ctx.const(left), ctx.const(right)
    if op_type in ("Sub", "Div") and ca is not None:
        raise ValueError(f"node '{node.name}' ({op_type}): only a computed value {op_type.lower()} a constant is "
                         f"supported")
    if op_type == "Div":
        if cb is None:
            raise ValueError(f"node '{node.name}' (Div): only division by a constant is supported")
        # x / c as x * (1 / c): within one rounding of the division
        right = _derived_const(ctx, right, (1.0 / cb.astype(np.float64)).astype(np.float32))
    elif op_type == "Sub":
        if cb is not None:
            right = _derived_const(ctx, right, -cb.astype(np.float32))
        else:
            right_value = ctx.tensor(right, node)
            neg = ctx.emit("mul", f"{node.name}.negate", [right_value, ctx.param(np.float32(-1), f"{node.name}.-1")],
                           {})
            ctx.values[node.output[0]] = ctx.emit("add", node.name, [ctx.tensor(left, node), neg], {},
                                                  node.output[0])
            return
    op = "mul" if op_type in ("Mul", "Div") else "add"
    if op == "add" and _fold_bias(ctx, node, left, right):
        return
    ctx.values[node.output[0]] = ctx.emit(op, node.name, [ctx.tensor(left, node), ctx.tensor(right, node)], {},
                                          node.output[0])


def _derived_const(ctx, name, array):
    derived = ctx.fresh(f"{name}.derived")
    ctx.consts[derived] = array
    return derived


def _fold_bias(ctx, node, left, right):
    """MatMul + Add(bias): put the bias into the linear node the MatMul became. Returns whether it did."""
    for x, b in ((left, right), (right, left)):
        bias = ctx.const(b)
        value = ctx.values.get(x)
        last = ctx.producer.get(value)
        if (bias is None or last is None or last.op != "linear" or len(last.inputs) > 2 or ctx.uses.get(x) != 1
                or bias.dtype.kind != "f"):
            continue
        out_features = ctx.shape(last.inputs[1])[0]
        if bias.size != out_features or bias.ndim > 1 and bias.shape[-1] != out_features or bias.ndim > 2:
            continue
        last.inputs.append(ctx.param(bias.reshape(-1), b, exact=True))
        ctx.values[node.output[0]] = value
        return True
    return False


def _variadic(ctx, node, a):
    """Sum / Mean of several inputs: a chain of adds (then a scale by 1 / count for Mean)."""
    names = [n for n in node.input if n]
    total = ctx.tensor(names[0], node)
    for i, name in enumerate(names[1:], 1):
        total = ctx.emit("add", f"{node.name}.add{i}", [total, ctx.tensor(name, node)], {})
    if node.op_type == "Mean" and len(names) > 1:
        total = ctx.emit("mul", node.name, [total, ctx.param(np.float32(1 / len(names)), f"{node.name}.scale")], {})
    ctx.values[node.output[0]] = total


def _matmul(ctx, node, a):
    weight = ctx.const(node.input[1])
    if weight is None or weight.ndim != 2 or ctx.const(node.input[0]) is not None:
        raise ValueError(f"node '{node.name}' (MatMul): only activation @ constant 2D weight is supported")
    base = node.input[1][:-2] if node.input[1].endswith(".T") else f"{node.input[1]}.T"
    w = ctx.param(np.ascontiguousarray(weight.T), base)
    ctx.values[node.output[0]] = ctx.emit("linear", node.name, [ctx.tensor(node.input[0], node), w], {},
                                          node.output[0])


def _gemm(ctx, node, a):
    weight = ctx.const(node.input[1])
    if weight is None or weight.ndim != 2 or a.get("transA", 0):
        raise ValueError(f"node '{node.name}' (Gemm): only A @ constant B (transA=0) is supported")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    w = weight if a.get("transB", 0) else weight.T
    w_name = ctx.param(w if alpha == 1 else w * np.float32(alpha), node.input[1], exact=w is weight and alpha == 1)
    inputs = [ctx.tensor(node.input[0], node), w_name]
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const(node.input[2])
        out_features = w.shape[0]
        if c is None or c.size not in (1, out_features) or c.ndim > 2:
            raise ValueError(f"node '{node.name}' (Gemm): only a constant C of shape (M,) or (1, M) is supported")
        bias = np.broadcast_to(c.reshape(-1), (out_features,)).astype(np.float32)
        same = c.size == out_features and beta == 1  # the initializer's values as they are: keep its name
        inputs.append(ctx.param(bias if beta == 1 else bias * np.float32(beta), node.input[2], exact=same))
    ctx.values[node.output[0]] = ctx.emit("linear", node.name, inputs, {}, node.output[0])


def _as_flatten(ctx, node, x, target):
    """A reshape of `x` to `target` (resolved dims) expressed as flatten(start, end), or ValueError."""
    shape = ctx.shape(x)
    if tuple(target) == tuple(shape):
        ctx.values[node.output[0]] = x
        return
    for start in list(range(1, len(shape))) + [0]:  # prefer keeping the batch dim
        for end in range(start, len(shape)):
            merged = tuple(shape[:start]) + (math.prod(shape[start:end + 1]),) + tuple(shape[end + 1:])
            if merged == tuple(target):
                ctx.values[node.output[0]] = ctx.emit("flatten", node.name, [x],
                                                      {"start_dim": start, "end_dim": end}, node.output[0])
                return
    raise ValueError(f"node '{node.name}' ({node.op_type}): only flattening reshapes are supported (got "
                     f"{tuple(shape)} -> {tuple(target)})")


def _reshape(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    spec = _int_const(ctx, node, 1, "shape")
    if spec is None:
        raise ValueError(f"node '{node.name}' (Reshape): expected a constant shape")
    target = [shape[i] if d == 0 and not a.get("allowzero", 0) and i < len(shape) else d for i, d in enumerate(spec)]
    if target.count(-1) > 1 or any(d < -1 for d in target):
        raise ValueError(f"node '{node.name}' (Reshape): invalid shape {spec}")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        if known == 0 or math.prod(shape) % known:
            raise ValueError(f"node '{node.name}' (Reshape): cannot reshape {shape} to {spec}")
        target[target.index(-1)] = math.prod(shape) // known
    if math.prod(target) != math.prod(shape):
        raise ValueError(f"node '{node.name}' (Reshape): cannot reshape {shape} to {spec}")
    _as_flatten(ctx, node, x, target)


def _squeeze(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = list(ctx.shape(x))
    axes = a.get("axes") if ctx.opset < 13 else _int_const(ctx, node, 1, "axes")
    if node.op_type == "Squeeze":
        drop = {v % len(shape) for v in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        if any(shape[i] != 1 for i in drop):
            raise ValueError(f"node '{node.name}' (Squeeze): axes {axes} are not of size 1 in {tuple(shape)}")
        target = [d for i, d in enumerate(shape) if i not in drop]
    else:
        rank = len(shape) + len(axes or [])
        target = list(shape)
        for axis in sorted(v % rank for v in axes or []):
            target.insert(axis, 1)
    _as_flatten(ctx, node, x, target)


def _flatten(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axis = int(a.get("axis", 1))
    axis = axis % rank if rank else 0
    if axis != 1:
        raise ValueError(f"node '{node.name}' (Flatten): only axis=1 is supported (got axis={a.get('axis', 1)})")
    ctx.values[node.output[0]] = ctx.emit("flatten", node.name, [x], {"start_dim": 1, "end_dim": -1},
                                          node.output[0])


def _concat(ctx, node, a):
    inputs = [ctx.tensor(n, node) for n in node.input if n]
    ctx.values[node.output[0]] = ctx.emit("concat", node.name, inputs, {"axis": int(a["axis"])}, node.output[0])


def _identity(ctx, node, a):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1]):
        raise ValueError(f"node '{node.name}' (Dropout): the mask output is not supported")
    training = ctx.const(node.input[2]) if node.op_type == "Dropout" and len(node.input) > 2 else None
    if training is not None and training.size == 1 and bool(training.reshape(-1)[0]):
        raise ValueError(f"node '{node.name}' (Dropout): training mode is not supported")
    source = node.input[0]
    if source in ctx.consts:
        ctx.consts[node.output[0]] = ctx.consts[source]
    elif source in ctx.pending_pads and ctx.uses.get(source) == 1:
        ctx.pending_pads[node.output[0]] = ctx.pending_pads.pop(source)
    else:
        ctx.values[node.output[0]] = ctx.tensor(source, node)


def _pad(ctx, node, a):
    mode = a.get("mode", "constant")
    if mode != "constant":
        raise ValueError(f"node '{node.name}' (Pad): only constant (zero) padding is supported (got mode {mode!r})")
    if ctx.opset < 11:
        pads, value = list(a.get("pads", [])), float(a.get("value", 0.0))
    else:
        pads = _int_const(ctx, node, 1, "pads")
        value = _float_const(ctx, node, 2, "constant_value") or 0.0
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axes = _int_const(ctx, node, 3, "axes") if ctx.opset >= 18 else None
    if axes is not None:  # pads for the listed axes only: expand to all axes
        full = [0] * (2 * rank)
        for i, axis in enumerate(axes):
            full[axis % rank], full[axis % rank + rank] = pads[i], pads[i + len(axes)]
        pads = full
    if value not in (0.0, -np.inf) or pads is None or len(pads) != 2 * rank or rank != 4 or any(
            p < 0 for p in pads) or any(pads[i] or pads[i + 4] for i in (0, 1)):
        raise ValueError(f"node '{node.name}' (Pad): only non-negative zero (or -inf before a MaxPool) padding of "
                         f"H and W of NCHW input is supported (got pads {pads}, value {value})")
    ctx.pending_pads[node.output[0]] = (x, (pads[2], pads[6], pads[3], pads[7]), value)


_HANDLERS = {
    "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool, "ReduceMean": _reduce, "ReduceMax": _reduce,
    "BatchNormalization": _batch_norm,
    "Relu": _unary("relu"), "Sigmoid": _unary("sigmoid"), "Tanh": _unary("tanh"), "LeakyRelu": _unary("leaky_relu"),
    "HardSwish": _unary("hardswish"), "HardSigmoid": _hard_sigmoid, "Clip": _clip,
    "Softmax": _softmax, "LogSoftmax": _softmax, "LRN": _lrn,
    "Add": _binary, "Mul": _binary, "Sub": _binary, "Div": _binary, "Sum": _variadic, "Mean": _variadic,
    "MatMul": _matmul, "Gemm": _gemm, "Flatten": _flatten, "Reshape": _reshape, "Squeeze": _squeeze,
    "Unsqueeze": _squeeze, "Concat": _concat, "Identity": _identity, "Dropout": _identity,
    "Pad": _pad,
}



# ------------------------------------------------------------------------------------------ constant folding
# Nodes whose inputs are all constants are computed at import time with numpy (exporters leave shape and pad
# arithmetic in the graph, e.g. torch's F.pad: ConstantOfShape, Concat, Slice, Transpose, Reshape, Cast).
MAX_FOLDED_ELEMENTS = 1 << 24  # a constant computed at import time may not be larger (ConstantOfShape)


def _axes_of(node, a, inputs, index, opset, since):
    if opset < since:
        return a.get("axes")
    return [int(v) for v in inputs[index].reshape(-1)] if len(inputs) > index and inputs[index] is not None else None


def _fold_constant_of_shape(node, a, inputs, opset):
    shape = [int(d) for d in inputs[0].reshape(-1)]
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_FOLDED_ELEMENTS:
        raise ValueError(f"node '{node.name}' (ConstantOfShape): refusing shape {shape}")
    value = a.get("value", np.zeros(1, np.float32))
    return np.full(shape, value.reshape(-1)[0], value.dtype)


def _fold_reshape(node, a, inputs, opset):
    data, spec = inputs[0], [int(d) for d in inputs[1].reshape(-1)]
    target = [data.shape[i] if d == 0 and not a.get("allowzero", 0) else d for i, d in enumerate(spec)]
    return data.reshape(target)


def _fold_slice(node, a, inputs, opset):
    data = inputs[0]
    if opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = (list(inputs[i].reshape(-1)) for i in (1, 2))
        axes = list(inputs[3].reshape(-1)) if len(inputs) > 3 and inputs[3] is not None else None
        steps = list(inputs[4].reshape(-1)) if len(inputs) > 4 and inputs[4] is not None else None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _fold_squeeze(node, a, inputs, opset):
    axes = _axes_of(node, a, inputs, 1, opset, 13)
    if node.op_type == "Squeeze":
        return np.squeeze(inputs[0], axis=None if axes is None else tuple(axes))
    return np.expand_dims(inputs[0], tuple(axes))


def _fold_div(node, a, inputs, opset):
    x, y = inputs
    if x.dtype.kind in "iu":
        return np.trunc(x / y).astype(x.dtype)  # ONNX integer division truncates
    return x / y


def _fold_constant(node, a, inputs, opset):
    for key, value in a.items():
        if key == "value":
            return value
        if key in ("value_float", "value_floats"):
            return np.asarray(value, np.float32)
        if key in ("value_int", "value_ints"):
            return np.asarray(value, np.int64)
        raise ValueError(f"node '{node.name}' (Constant): attribute '{key}' is not supported")
    raise ValueError(f"node '{node.name}' (Constant): no value")


_FOLDERS = {
    "Constant": _fold_constant,
    "Identity": lambda node, a, inputs, opset: inputs[0],
    "Cast": lambda node, a, inputs, opset: inputs[0].astype(helper.tensor_dtype_to_np_dtype(a["to"])),
    "ConstantOfShape": _fold_constant_of_shape,
    "Concat": lambda node, a, inputs, opset: np.concatenate([i for i in inputs if i is not None], axis=a["axis"]),
    "Reshape": _fold_reshape,
    "Slice": _fold_slice,
    "Transpose": lambda node, a, inputs, opset: np.transpose(inputs[0], a.get("perm")),
    "Squeeze": _fold_squeeze,
    "Unsqueeze": _fold_squeeze,
    "Gather": lambda node, a, inputs, opset: np.take(inputs[0], inputs[1], axis=a.get("axis", 0)),
    "Shape": lambda node, a, inputs, opset: np.asarray(inputs[0].shape, np.int64),
    "Add": lambda node, a, inputs, opset: inputs[0] + inputs[1],
    "Sub": lambda node, a, inputs, opset: inputs[0] - inputs[1],
    "Mul": lambda node, a, inputs, opset: inputs[0] * inputs[1],
    "Div": _fold_div,
}

IMPORTED_OPS = tuple(sorted(_HANDLERS))
CONSTANT_ONLY_OPS = tuple(sorted(set(_FOLDERS) - set(_HANDLERS)))


def _is_constant(node, consts):
    return node.op_type in _FOLDERS and node.domain in ("", "ai.onnx") and all(not i or i in consts
                                                                                for i in node.input)


def _fold(ctx, node, a):
    inputs = [ctx.consts[i] if i else None for i in node.input]
    try:
        value = np.asarray(_FOLDERS[node.op_type](node, a, inputs, ctx.opset))
    except ValueError:
        raise
    except Exception as exc:  # numpy's IndexError / TypeError / AxisError on a malformed constant expression
        raise ValueError(f"node '{node.name}' ({node.op_type}): cannot compute it on its constant inputs: "
                         f"{exc}") from None
    if value.size > MAX_FOLDED_ELEMENTS:
        raise ValueError(f"node '{node.name}' ({node.op_type}): constant result too large ({value.size} elements)")
    ctx.consts[node.output[0]] = value


# ------------------------------------------------------------------------------------------------ graph checks
def _opset(proto):
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ValueError("the model imports no ai.onnx opset")
    if not MIN_OPSET <= versions[0] <= MAX_OPSET:
        raise ValueError(f"expected an ai.onnx opset between {MIN_OPSET} and {MAX_OPSET} (got {versions[0]})")
    return int(versions[0])


def _check_ops(order, consts):
    """One ValueError listing every op type that is neither supported nor computable from constants."""
    unsupported, consts = {}, set(consts)
    for node in order:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        if _is_constant(node, consts):
            consts.update(o for o in node.output if o)
        elif key not in _HANDLERS:
            unsupported.setdefault(key, []).append(node.name or (node.output[0] if node.output else "?"))
    if unsupported:
        listed = "; ".join(f"{op} ({', '.join(names)})" for op, names in sorted(unsupported.items()))
        raise ValueError(f"unsupported ONNX content: {len(unsupported)} op type(s) convcore cannot import: {listed}")


def _sorted_nodes(g, defined):
    """The nodes in dependency order; ValueError for duplicate definitions, dangling inputs and cycles."""
    producer = {}
    for node in g.node:
        for out in node.output:
            if out and (out in producer or out in defined):
                raise ValueError(f"node '{node.name}': value '{out}' is defined more than once")
            if out:
                producer[out] = node
    dangling = sorted({f"'{i}' (node '{n.name}')" for n in g.node for i in n.input
                       if i and i not in producer and i not in defined})
    if dangling:
        raise ValueError(f"the graph reads undefined value(s): {', '.join(dangling)}")
    # Kahn's algorithm, keeping the file order among ready nodes.
    waiting = {id(n): sum(1 for i in set(n.input) if i in producer) for n in g.node}
    readers = {}
    for n in g.node:
        for i in set(n.input):
            if i in producer:
                readers.setdefault(i, []).append(n)
    ready = [n for n in g.node if waiting[id(n)] == 0]
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for out in node.output:
            for reader in readers.get(out, ()):
                waiting[id(reader)] -= 1
                if waiting[id(reader)] == 0:
                    ready.append(reader)
    if len(order) != len(g.node):
        stuck = [n.name or n.output[0] for n in g.node if waiting[id(n)] > 0]
        raise ValueError(f"the graph has a cycle through node(s) {', '.join(map(repr, stuck[:10]))}")
    return order


def _input_shape(value, override):
    t = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if t is None or t.elem_type != TensorProto.FLOAT:
        kind = TensorProto.DataType.Name(t.elem_type) if t is not None and t.elem_type in \
            TensorProto.DataType.values() else "not a tensor"
        raise ValueError(f"input '{value.name}': expected a float32 tensor (got {kind})")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] if t.HasField("shape") else None
    if override is not None:
        if dims is not None and len(dims) != len(override):
            raise ValueError(f"input_shape: expected {len(dims)} dims for input '{value.name}' (got {override})")
        return tuple(int(d) for d in override)
    if dims is None or any(d is None or d < 1 for d in dims[1:]):
        raise ValueError(f"input '{value.name}': expected a static shape except the batch (got {dims}); pass "
                         f"input_shape=")
    return (1 if dims and (dims[0] is None or dims[0] < 1) else dims[0], *dims[1:]) if dims else ()


def onnx_to_graph(proto, folder=None, input_shape=None):
    """Convert a parsed ModelProto into a Graph (see `load`); returns (graph, opset)."""
    opset = _opset(proto)
    g = proto.graph
    if len(g.sparse_initializer):
        raise ValueError("sparse initializers are not supported")
    ctx = _Context(g, folder, opset)
    ctx.taken.update(i.name for i in g.initializer)
    ctx.taken.update(v.name for v in g.input)
    ctx.taken.update(o for n in g.node for o in n.output)
    for init in g.initializer:
        if init.name in ctx.consts:
            raise ValueError(f"initializer '{init.name}' is defined more than once")
        array = tensor_to_array(init, folder, f"initializer '{init.name}'")
        if init.data_type in FLOAT_TYPES:
            array = array.astype(np.float32)  # float16 / float64 weights: computed in float32 by convcore
        ctx.consts[init.name] = array
    real_inputs = [v for v in g.input if v.name not in ctx.consts]
    if not real_inputs:
        raise ValueError("the graph has no (non-initializer) input")
    if input_shape is not None and len(real_inputs) != 1:
        raise ValueError(f"input_shape: the model has {len(real_inputs)} inputs, expected 1")
    for value in real_inputs:
        shape = _input_shape(value, input_shape)
        ctx.graph.inputs.append(value.name)
        ctx.graph.shapes[value.name] = shape
        ctx.values[value.name] = value.name
    order = _sorted_nodes(g, set(ctx.consts) | {v.name for v in real_inputs})
    _check_ops(order, ctx.consts)
    for node in order:
        if not node.name:
            node.name = node.output[0] if node.output else node.op_type
        if not node.output or not node.output[0]:
            raise ValueError(f"node '{node.name}' ({node.op_type}): no output")
        try:
            if _is_constant(node, ctx.consts):
                _fold(ctx, node, _attrs(node, ctx))
            elif not node.input or not node.input[0]:
                raise ValueError(f"node '{node.name}' ({node.op_type}): no data input")
            else:
                _HANDLERS[node.op_type](ctx, node, _attrs(node, ctx))
        except (KeyError, IndexError, TypeError, AttributeError, OverflowError, ZeroDivisionError) as exc:
            # a required attribute or input missing, or one of the wrong kind: a malformed node
            raise ValueError(f"node '{node.name}' ({node.op_type}): malformed ({type(exc).__name__}: {exc})") from None
    for out in g.output:
        if out.name in ctx.consts:
            raise ValueError(f"graph output '{out.name}' is a constant")
        ctx.graph.outputs.append(ctx.tensor(out.name, SimpleNamespace(name=f"output {out.name}")))
    graph = ctx.graph
    used = {i for n in graph.nodes for i in n.inputs if i}
    unused = {k for k in graph.params if k not in used}  # e.g. a weight replaced by a derived one
    graph.params = {k: v for k, v in graph.params.items() if k not in unused}
    graph.shapes = {k: v for k, v in graph.shapes.items() if k not in unused}
    graph.validate()
    return graph, opset


def load(source, input_shape=None):
    """Load an ONNX CNN as a convcore module.

    Reads the file without trusting it (see `convcore.onnx._reader`): corrupt or truncated files, external data
    outside the model's folder, tensors whose declared size does not match their data, cycles, undefined values and
    non-float inputs are ValueErrors. Every unsupported op type is listed, with its node names, in one ValueError.

    Supported (ai.onnx opsets 9-21, 2-D NCHW): see `IMPORTED_OPS`. Zero Pads fold into the next Conv (or
    AveragePool with count_include_pad); Sub / Div need a constant right-hand side; Reshape / Squeeze / Unsqueeze
    only where they flatten.

    Args:
        source: a file path or the model's bytes.
        input_shape: optional full input shape (N, C, H, W) for models whose H / W are dynamic.

    Returns:
        An `ONNXModule` (a `convcore.nn.Module`) in eval mode.

    Example:
        >>> net = convcore.onnx.load("resnet18.onnx")
        >>> net(np.zeros((2, 3, 224, 224), np.float32)).shape
        (2, 1000)
    """
    proto, folder = read_model(source)
    graph, opset = onnx_to_graph(proto, folder, input_shape)
    return ONNXModule(graph, opset).eval()
