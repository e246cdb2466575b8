"""Dense and structural ops: linear, matmul, add, mul, concat, flatten (kernels: csrc/ops/linear, csrc/ops/matmul,
csrc/ops/eltwise)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array
from .registry import Backward, OnnxOp, PlanRule, declare, plan_binary

__all__ = ["linear", "matmul", "attention", "add", "mul", "concat", "flatten"]


# --- linear -----------------------------------------------------------------------------------------------------

def _linear_rule(shapes, attrs):
    x, weight, bias = shapes
    V.rank(x, "x", (1, 2, 3, 4))
    V.rank(weight, "weight", 2)
    if weight[1] != x[-1]:
        raise ValueError(f"x: expected input with last dimension {weight[1]} for weight of shape {weight} (got "
                         f"shape {x})")
    V.shape_is(bias, "bias", (weight[0],))
    return {}, (*x[:-1], weight[0])


def _linear_kernel(x, weight, bias, *, out):
    _core.linear(x.reshape(-1, x.shape[-1]), weight, bias, out.reshape(-1, weight.shape[0]))
    return out


def _linear_to_onnx(em, node):
    x, weight, bias = (list(node.inputs) + [""])[:3]
    out = node.outputs[0]
    if len(em.shape(x)) == 2:
        inputs = [x, em.value(weight)] + ([em.value(bias)] if bias else [])
        return em.node("Gemm", inputs, out, node.name, transB=1)
    w_t = em.const(f"{weight}.T", np.ascontiguousarray(np.asarray(em.param(weight)).T))
    product = em.node("MatMul", [x, w_t], em.fresh(f"{out}.matmul") if bias else out,
                      f"{node.name}.matmul" if bias else node.name)
    return em.node("Add", [product, em.value(bias)], out, node.name) if bias else product


def _linear_macs(shapes, out):
    return int(np.prod(out)) * shapes[1][1]


def _linear_backward(dy, call):
    """dx = dy @ weight (the linear kernel with the transposed weights, kept in the cache); weight and bias
    gradients in float64 when asked for."""
    x, weight, _ = call.inputs
    x_shape = call.shapes[0]
    g = dy.reshape(-1, dy.shape[-1])
    dx = dweight = dbias = None
    if call.needs[0]:
        weight_t = call.cached("weight_t", weight, lambda w: np.ascontiguousarray(w.T))
        dx = np.empty(x_shape, np.float32)
        _core.linear(g, weight_t, None, dx.reshape(-1, x_shape[-1]))
    if call.needs[1]:
        dweight = (g.T.astype(np.float64) @ x.reshape(-1, x_shape[-1]).astype(np.float64)).astype(np.float32)
    if call.needs[2]:
        dbias = g.sum(axis=0, dtype=np.float64).astype(np.float32)
    return [dx, dweight, dbias]


def _linear_saves(attrs, needs):
    return ("weight", "x") if needs["weight"] else ("weight",)


def _constant_linear(node, graph):
    return all(v in graph.params for v in node.inputs[1:] if v)


def _plan_linear_ok(node, graph):
    return len(graph.shapes[node.inputs[0]]) == 2 and _constant_linear(node, graph)


@declare(("x", "weight", "bias"), _linear_rule, _linear_kernel, onnx=_linear_to_onnx, macs=_linear_macs,
         backward=Backward(_linear_backward, _linear_saves), plan=PlanRule(lambda low, node: low.linear(node),
                                                                           _plan_linear_ok, per_pixel=_constant_linear),
         plan_backward=lambda gp, node, dy, needs: gp.linear_backward(node, dy, needs))
def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """Fully connected layer ``y = x @ weight.T + bias``.

    Args:
        x: ``(..., in_features)``.
        weight: ``(out_features, in_features)`` (torch layout).
        bias: optional ``(out_features,)``.

    Shape:
        output ``(..., out_features)``.
    """


# --- matmul -----------------------------------------------------------------------------------------------------

def _matmul_shapes(a, b):
    """numpy.matmul's shapes: (batch, M, K, N, output shape), 1-D operands promoted and their dim dropped."""
    if not a or not b:
        raise ValueError(f"a, b: expected at least 1D operands (got shapes {a} and {b})")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"a, b: expected a's last dim to equal b's {'only' if len(b) == 1 else 'second-to-last'} "
                         f"dim (got shapes {a} and {b})")
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise ValueError(f"a, b: expected broadcastable batch dims (got shapes {a} and {b})") from None
    out = (*batch, *((a2[-2],) if len(a) > 1 else ()), *((b2[-1],) if len(b) > 1 else ()))
    return batch, a2, b2, out


def _matmul_rule(shapes, attrs):
    return {}, _matmul_shapes(*shapes)[3]


def _batch_offsets(shape, batch, matrix):
    """Element offsets of each matrix of a (..., r, c) array of `shape` broadcast to the batch dims `batch`."""
    lead = shape[:-2]
    count = int(np.prod(lead, dtype=np.int64)) if lead else 1
    index = np.arange(count, dtype=np.int64).reshape(lead) * matrix
    return np.ascontiguousarray(np.broadcast_to(index, batch).reshape(-1))


def _matmul_kernel(a, b, *, out):
    batch, a2, b2, _ = _matmul_shapes(a.shape, b.shape)
    m, k, n = a2[-2], a2[-1], b2[-1]
    if out.size:
        _core.matmul(a, b, out, m, n, k, _batch_offsets(a2, batch, m * k), _batch_offsets(b2, batch, k * n))
    return out


def _matmul_macs(shapes, out):
    a = shapes[0]
    return int(np.prod(out)) * a[-1]


@declare(("a", "b"), _matmul_rule, _matmul_kernel, onnx=OnnxOp("MatMul"), macs=_matmul_macs, allow_empty=True)
def matmul(a: Array, b: Array) -> Array:
    """``numpy.matmul(a, b)``: matrix products over the last two dims, the leading dims broadcast; a 1-D operand is
    a row (a) or column (b) vector whose dim the result drops."""


# --- attention ---------------------------------------------------------------------------------------------------

def _attention_rule(shapes, attrs):
    x, bias = shapes
    heads = V.integer(attrs["heads"], "heads", 1)
    if len(x) != 3 or x[2] % (3 * heads) or 0 in x:
        raise ValueError(f"qkv: expected a non-empty (N, L, 3 * heads * D) input for heads={heads} (got shape {x})")
    if bias is not None and (len(bias) != 4 or bias[0] < 1 or x[0] % bias[0] or bias[1] not in (1, heads)
                             or tuple(bias[2:]) != (x[1], x[1])):
        raise ValueError(f"bias: expected (windows, 1 or {heads}, {x[1]}, {x[1]}) with windows dividing {x[0]} "
                         f"(got shape {bias})")
    return {"heads": heads, "scale": V.number(attrs["scale"], "scale")}, (x[0], x[1], x[2] // 3)


def _split_heads(qkv, heads):
    n, length, c = qkv.shape
    return qkv.reshape(n, length, 3, heads, c // (3 * heads)).transpose(2, 0, 3, 1, 4)  # q, k, v: (N, heads, L, D)


def _attention_kernel(qkv, bias, *, out, heads, scale):
    q, k, v = _split_heads(qkv, heads)
    s = np.matmul(q, k.transpose(0, 1, 3, 2)) * np.float32(scale)
    if bias is not None:  # sequence i adds window i % windows
        n, length = qkv.shape[:2]
        s = (s.reshape(n // bias.shape[0], bias.shape[0], heads, length, length) + bias).reshape(s.shape)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    out[...] = np.matmul(p, v).transpose(0, 2, 1, 3).reshape(out.shape)
    return out


def _attention_to_onnx(em, node):
    """Reshape to (N, L, 3, heads, D), split q / k / v, softmax(scale q k^T + bias) v per head, heads back into
    channels (the bias added to the scores viewed as (N / windows, windows, heads, L, L))."""
    qkv, bias = (list(node.inputs) + [""])[:2]
    out, n = node.outputs[0], node.name
    _, length, c = em.shape(qkv)
    heads = node.attrs["heads"]
    d = c // (3 * heads)

    def step(op_type, inputs, what, **attrs):
        return em.node(op_type, inputs, em.fresh(f"{out}.{what}"), f"{n}.{what}", **attrs)

    split = step("Reshape", [qkv, em.const(f"{n}.split", [-1, length, 3, heads, d], np.int64)], "split")
    heads_first = step("Transpose", [split], "heads", perm=[2, 0, 3, 1, 4])
    q, k, v = (step("Gather", [heads_first, em.const(f"{n}.i{i}", i, np.int64)], "qkv"[i], axis=0) for i in range(3))
    scores = step("MatMul", [q, step("Transpose", [k], "kt", perm=[0, 1, 3, 2])], "scores")
    scaled = step("Mul", [scores, em.const(f"{n}.scale", node.attrs["scale"])], "scaled")
    if bias:
        windows = em.shape(bias)[0]
        grouped = step("Reshape", [scaled, em.const(f"{n}.windows", [-1, windows, heads, length, length], np.int64)],
                       "windows")
        biased = step("Add", [grouped, bias], "biased")
        scaled = step("Reshape", [biased, em.const(f"{n}.sequences", [-1, heads, length, length], np.int64)],
                      "sequences")
    mixed = step("MatMul", [step("Softmax", [scaled], "weights", axis=-1), v], "mixed")
    merged = step("Transpose", [mixed], "merged", perm=[0, 2, 1, 3])
    return em.node("Reshape", [merged, em.const(f"{n}.shape", [-1, length, heads * d], np.int64)], out, n)


def _attention_plan_ok(node, graph):
    """A constant bias (the Plan copies it)."""
    return len(node.inputs) < 2 or not node.inputs[1] or node.inputs[1] in graph.params


@declare(("qkv", "bias"), _attention_rule, _attention_kernel, onnx=_attention_to_onnx,
         plan=PlanRule(lambda low, node: low.attention(node), _attention_plan_ok,
                       needs=frozenset({"attention"}), per_pixel=lambda node, graph: True, sequences=True))
def attention(qkv: Array, bias: Array | None = None, heads: int = 1, scale: float = 1.0) -> Array:
    """Multi-head self-attention of a sequence whose channels hold the queries, keys and values:
    ``qkv`` (N, L, 3 * heads * D) -> (N, L, heads * D), per head ``softmax(scale * q @ k.T + bias) @ v``.

    What a transformer's attention block computes between its input projection (one linear layer making q, k and v)
    and its output projection; compiled Plans run it as one op on the sequence as stored (`graph.passes
    .fold_attention` recognises it in imported graphs). ``bias``: optional (windows, 1 or heads, L, L) added to the
    scores, sequence ``i`` taking window ``i % windows`` (Swin's relative-position bias and shifted-window mask:
    the sequences are a batch's windows, ``windows`` per image).
    """


# --- broadcasting elementwise -----------------------------------------------------------------------------------

def _broadcast_rule(shapes, attrs):
    try:
        return {}, tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"a, b: expected broadcastable shapes (got {shapes[0]} and {shapes[1]})") from None


def _binary_kernel(name):
    def kernel(a, b, *, out):
        _core.binary(np.broadcast_to(a, out.shape), np.broadcast_to(b, out.shape), out,
                     _core.BinaryOp.__members__[name])
        return out

    return kernel


def reduce_to_shape(g, shape):
    """The gradient of a broadcast operand of `shape`: `g` summed over the axes broadcasting stretched (g itself when
    nothing was)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, d in enumerate(shape) if d == 1 and g.shape[extra + i] != 1)
    return np.ascontiguousarray(g.sum(axis=axes).reshape(shape), dtype=np.float32)


def _add_backward(dy, call):
    return [reduce_to_shape(dy, shape) if need else None for shape, need in zip(call.shapes, call.needs)]


def _mul_backward(dy, call):
    a, b = call.inputs
    return [reduce_to_shape(np.multiply(dy, other, dtype=np.float32), shape) if need else None
            for other, shape, need in ((b, call.shapes[0], call.needs[0]), (a, call.shapes[1], call.needs[1]))]


def _mul_saves(attrs, needs):
    return (("b",) if needs["a"] else ()) + (("a",) if needs["b"] else ())


@declare(("a", "b"), _broadcast_rule, _binary_kernel("add"), onnx=OnnxOp("Add"), allow_empty=True,
         backward=Backward(_add_backward), plan=plan_binary("add"),
         plan_backward=lambda gp, node, dy, needs: gp.add_backward(node, dy, needs))
def add(a: Array, b: Array) -> Array:
    """Elementwise ``a + b`` with numpy broadcasting (e.g. residual connections)."""


@declare(("a", "b"), _broadcast_rule, _binary_kernel("mul"), onnx=OnnxOp("Mul"), allow_empty=True,
         backward=Backward(_mul_backward, _mul_saves), plan=plan_binary("mul"),
         plan_backward=lambda gp, node, dy, needs: gp.mul_backward(node, dy, needs))
def mul(a: Array, b: Array) -> Array:
    """Elementwise ``a * b`` with numpy broadcasting (e.g. squeeze-and-excitation: ``(N, C, H, W) * (N, C, 1, 1)``)."""


# --- concat and flatten -----------------------------------------------------------------------------------------

def _concat_rule(shapes, attrs):
    if not shapes:
        raise ValueError("xs: expected at least one tensor (got none)")
    first = shapes[0]
    axis = V.axis(attrs["axis"], len(first))
    rest = first[:axis] + first[axis + 1:]
    for i, shape in enumerate(shapes[1:], 1):
        if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != rest:
            raise ValueError(f"xs[{i}]: expected a shape equal except along axis {axis} to xs[0]'s {first} (got "
                             f"{shape})")
    return {"axis": axis}, (*first[:axis], sum(s[axis] for s in shapes), *first[axis + 1:])


def _concat_kernel(xs, *, out, axis):
    _core.concat(xs, out, axis)
    return out


def _concat_backward(dy, call):
    """Each input's slice of dy along the axis (views: the gradient engine copies what a kernel needs contiguous)."""
    axis, start, grads = call.attrs["axis"], 0, []
    for shape, need in zip(call.shapes, call.needs):
        index = (slice(None),) * axis + (slice(start, start + shape[axis]),)
        grads.append(dy[index] if need else None)
        start += shape[axis]
    return grads


def _plan_concat_ok(node, graph):
    """Along the channels of maps and rows; along either axis of sequences (a constant part too: a class token)."""
    if len(graph.shapes[node.outputs[0]]) == 3:
        return node.attrs["axis"] in (1, 2)
    return node.attrs["axis"] == 1 and all(v not in graph.params for v in node.inputs)


@declare(("xs",), _concat_rule, _concat_kernel, onnx=OnnxOp("Concat", {"axis": "axis"}), variadic=True,
         backward=Backward(_concat_backward),
         plan=PlanRule(lambda low, node: low.concat(node), _plan_concat_ok, sequences=True),
         plan_backward=lambda gp, node, dy, needs: gp.concat_backward(node, dy, needs))
def concat(xs: Sequence[Array], axis: int = 1) -> Array:
    """Concatenates arrays of equal shape except along ``axis``."""


def _flat_shape(shape, start, end):
    return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])


def _flatten_rule(shapes, attrs):
    x = shapes[0]
    rank = max(len(x), 1)
    start = V.axis(attrs["start_dim"], rank, "start_dim")
    end = V.axis(attrs["end_dim"], rank, "end_dim")
    if start > end:
        raise ValueError(f"start_dim: expected start_dim <= end_dim (got {attrs['start_dim']} > {attrs['end_dim']})")
    return {"start_dim": start, "end_dim": end}, _flat_shape(x, start, end)


def _flatten_kernel(x, *, out, start_dim, end_dim):
    return x.reshape(_flat_shape(x.shape, start_dim, end_dim))


def _flatten_to_onnx(em, node):
    x, out = node.inputs[0], node.outputs[0]
    shape = em.shape(x)
    start, end = node.attrs["start_dim"], node.attrs["end_dim"]
    if start == 1 and end == max(len(shape), 1) - 1:
        return em.node("Flatten", [x], out, node.name, axis=1)
    # Reshape: 0 copies a leading dim (the dynamic batch), -1 is the merged one.
    target = [0] * start + [-1] + [int(d) for d in shape[end + 1:]]
    return em.node("Reshape", [x, em.const(f"{node.name}.shape", target, np.int64)], out, node.name)


def _flatten_backward(dy, call):
    return [dy.reshape(call.shapes[0])]


def _plan_flatten_ok(node, graph):
    """(N, C, H, W) -> (N, F), -> (N, C, H * W) (a sequence: the same pixels; (N, C, 1, W) -> (N, C, W) too), or
    nothing merged."""
    x, out = graph.shapes[node.inputs[0]], graph.shapes[node.outputs[0]]
    to_sequence = len(x) == 4 and len(out) == 3 and tuple(out) == (x[0], x[1], x[2] * x[3])
    return (len(x) == 4 and len(out) == 2) or to_sequence or tuple(x) == tuple(out)


@declare(("x",), _flatten_rule, _flatten_kernel, onnx=_flatten_to_onnx, allow_empty=True, view=True,
         backward=Backward(_flatten_backward),
         plan=PlanRule(lambda low, node: low.flatten(node), _plan_flatten_ok, sequences=True),
         plan_backward=lambda gp, node, dy, needs: gp.flatten_backward(node, dy, needs))
def flatten(x: Array, start_dim: int = 1, end_dim: int = -1) -> Array:
    """Merges dimensions ``start_dim..end_dim`` into one (a view when the input is contiguous)."""
