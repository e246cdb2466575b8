"""Graph passes: rewrites of a `Graph` that keep its results (up to float rounding).

Passes return a new Graph and never modify the input graph or its parameter arrays (a traced graph's params are the
model's own arrays).
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import broadcasts_to
from ..ops import OPS
from .ir import Graph, NameSet, Node, unique_name


def _uses(graph: Graph) -> dict[str, int]:
    """How many times each value is read: by nodes, and once more as a graph output."""
    uses: dict[str, int] = {}
    for name in [n for node in graph.nodes for n in node.inputs if n] + list(graph.outputs):
        uses[name] = uses.get(name, 0) + 1
    return uses


def _index(graph: Graph) -> tuple[dict[str, int], dict[str, Node], dict[str, list[Node]]]:
    """(read counts, the node computing each value, the nodes reading each value) of `graph`."""
    producer = {out: node for node in graph.nodes for out in node.outputs}
    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    return _uses(graph), producer, readers


def _rebuilt(graph: Graph, replaced: dict, dropped: set, params: dict) -> Graph:
    """`graph` with nodes replaced (by id: a node, or a list of nodes in order) and dropped, keeping the params
    something still reads; shapes inferred."""
    nodes = []
    for n in graph.nodes:
        if id(n) not in dropped:
            new = replaced.get(id(n), n)
            nodes += new if isinstance(new, list) else [new]
    used = {name for node in nodes for name in node.inputs if name} | set(graph.outputs)
    params = {name: array for name, array in params.items() if name in used}
    folded = Graph(nodes, graph.inputs, graph.outputs, params, name=graph.name,
                   values={n: graph.values[n] for n in graph.inputs})
    folded.infer_shapes()
    return folded


def fold_batchnorm(graph: Graph) -> Graph:
    """Fold every inference batch norm that directly follows a convolution into that convolution.

    `batch_norm(conv(x, w, b))` becomes `conv(x, w * s, (b - mean) * s + beta)` with `s = gamma / sqrt(var + eps)`
    per output channel, for every op whose declaration names its per-output-channel weight and bias
    (`channel_params`: conv2d, depthwise_conv2d, and separable_conv2d's pointwise pair). A batch norm is folded only
    when its input is produced by a convolution that nothing else reads (no other node, not a graph output) and all its
    statistics are graph params; a batch norm after anything else (an add, a pool, a graph input) is kept as it is.
    The folded convolution keeps its node name and takes over the batch norm's output value name, so consumers and
    graph outputs are unchanged.

    Args:
        graph: a `Graph` (not modified).

    Returns:
        A new Graph; its folded weights are new arrays (computed in float64, stored as float32).

    Example:
        >>> g = fold_batchnorm(convcore.trace(resnet18(), (1, 3, 224, 224)))
        >>> any(node.op == "batch_norm" for node in g.nodes)
        False
    """
    uses = _uses(graph)
    producer = {out: node for node in graph.nodes for out in node.outputs}
    params = dict(graph.params)
    replaced, dropped = {}, set()
    taken = NameSet(set(params) | set(graph.inputs) | set(producer))

    def new_name(base):
        return unique_name(base, taken)

    for bn in graph.nodes:
        if bn.op != "batch_norm":
            continue
        x = bn.inputs[0]
        conv = producer.get(x)
        stats = list(bn.inputs[1:]) + [""] * (5 - len(bn.inputs))
        if (conv is None or not OPS[conv.op].channel_params or id(conv) in replaced or uses.get(x) != 1
                or any(name and name not in params for name in stats) or not stats[0] or not stats[1]):
            continue
        w_index, b_index = (OPS[conv.op].inputs.index(name) for name in OPS[conv.op].channel_params)
        inputs = list(conv.inputs) + [""] * (b_index + 1 - len(conv.inputs))  # absent trailing bias -> ""
        if inputs[w_index] not in params or (inputs[b_index] and inputs[b_index] not in params):
            continue  # a computed weight or bias: nothing to fold into
        mean, var = (np.asarray(params[n], np.float64) for n in stats[:2])
        gamma = np.asarray(params[stats[2]], np.float64) if stats[2] else np.ones_like(mean)
        beta = np.asarray(params[stats[3]], np.float64) if stats[3] else np.zeros_like(mean)
        scale = gamma / np.sqrt(var + bn.attrs["eps"])
        weight = np.asarray(params[inputs[w_index]], np.float64)
        bias = np.asarray(params[inputs[b_index]], np.float64) if inputs[b_index] else np.zeros_like(mean)
        # New names: a weight or bias shared with another node must keep its old value for that node.
        w_name = inputs[w_index] if uses.get(inputs[w_index]) == 1 else new_name(f"{conv.name}.weight")
        b_name = inputs[b_index] if inputs[b_index] and uses.get(inputs[b_index]) == 1 else new_name(
            f"{conv.name}.bias")
        params[w_name] = (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(np.float32)
        params[b_name] = ((bias - mean) * scale + beta).astype(np.float32)
        inputs[w_index], inputs[b_index] = w_name, b_name
        replaced[id(conv)] = Node(conv.op, conv.name, inputs, [bn.outputs[0]], dict(conv.attrs))
        dropped.add(id(bn))

    return _rebuilt(graph, replaced, dropped, params)


# --- per-channel arithmetic ------------------------------------------------------------------------------------------

def _channel_vector(array, channels):
    """`array` as a (channels,) float64 vector when it broadcasts against (N, C, H, W) along the channels only."""
    a = np.asarray(array, np.float64)
    if a.ndim > 4:
        return None
    shape = (1,) * (4 - a.ndim) + a.shape
    if shape[0] != 1 or shape[2] != 1 or shape[3] != 1 or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(a.reshape(-1), (channels,)).copy()


def _affine_of(node, graph):
    """(x, scale, shift) when `node` computes scale * x + shift per channel of a computed 4-D x (a batch norm, or an
    add / sub / mul / div with a per-channel or scalar constant), else None."""
    params = graph.params
    if node.op == "batch_norm":
        x, mean, var, gamma, beta = (list(node.inputs) + [""] * 5)[:5]
        if not mean or not var or any(v and v not in params for v in (mean, var, gamma, beta)):
            return None
        if x in params or len(graph.shapes[x]) != 4:
            return None
        mean64, var64 = (np.asarray(params[v], np.float64) for v in (mean, var))
        scale = (np.asarray(params[gamma], np.float64) if gamma else 1.0) / np.sqrt(var64 + node.attrs["eps"])
        shift = (np.asarray(params[beta], np.float64) if beta else 0.0) - mean64 * scale
        return x, np.broadcast_to(scale, mean64.shape).copy(), np.broadcast_to(shift, mean64.shape).copy()
    if node.op not in ("add", "sub", "mul", "div") or len(node.inputs) < 2:
        return None
    a, b = node.inputs[:2]
    if (a in params) == (b in params):
        return None
    x, c = (b, a) if a in params else (a, b)
    shape = tuple(graph.shapes[x])
    if len(shape) != 4 or tuple(graph.shapes[node.outputs[0]]) != shape:
        return None
    v = _channel_vector(params[c], shape[1])
    if v is None:
        return None
    one, zero = np.ones_like(v), np.zeros_like(v)
    if node.op == "add":
        return x, one, v
    if node.op == "mul":
        return x, v, zero
    if node.op == "sub":
        return (x, one, -v) if c == b else (x, -one, v)
    if c == b and np.all(np.isfinite(v) & (v != 0)):  # x / c as x * (1 / c): within an ulp or so
        return x, 1.0 / v, zero
    return None


def fold_affine(graph: Graph) -> Graph:
    """Fold per-channel arithmetic into as few ops as it takes, most of them into convolutions.

    Chains of `_affine_of` nodes (batch norms, and add / sub / mul / div by a scalar or per-channel constant: what
    exporters write for scale layers, PP-LCNet's learnable affine blocks, normalisation) compose into one
    ``scale * x + shift``, computed in float64. Each chain then folds into the convolution reading it when that
    convolution has no padding (``conv(s * x + b) = conv'(x)``: its weights scaled per input channel, the shift
    carried into its bias), or else stays as one batch norm node, which `fold_batchnorm` folds into the convolution
    producing its input when it can. Only values with a single reader (and not graph outputs) are absorbed.
    """
    uses = _uses(graph)
    chains: dict[str, tuple] = {}  # output value -> (base value, scale, shift, ids of its nodes, its last node)
    for node in graph.nodes:
        affine = _affine_of(node, graph)
        if affine is None:
            continue
        x, scale, shift = affine
        ids = [id(node)]
        if x in chains and uses.get(x) == 1:
            base, s1, b1, earlier, _ = chains.pop(x)
            x, scale, shift, ids = base, scale * s1, scale * b1 + shift, earlier + ids
        chains[node.outputs[0]] = (x, scale, shift, ids, node)
    if not chains:
        return graph
    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    params = dict(graph.params)
    taken = NameSet(set(params) | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs})
    dropped: set[int] = set()
    replaced: dict[int, Node] = {}
    for out, (x, scale, shift, ids, last) in chains.items():
        reader = readers.get(out, [None])[0]
        if uses.get(out) == 1 and reader is not None and id(reader) not in replaced and _fold_into_conv(
                reader, out, x, scale, shift, graph, params, taken, uses, replaced):
            dropped.update(ids)
            continue
        if len(ids) == 1 and last.op == "batch_norm":
            continue  # as it is
        names = [unique_name(f"{last.name}.{what}", taken) for what in ("mean", "var", "scale", "shift")]
        channels = scale.shape[0]
        for name, value in zip(names, (np.zeros(channels), np.ones(channels), scale, shift)):
            params[name] = value.astype(np.float32)
        dropped.update(ids[:-1])
        replaced[ids[-1]] = Node("batch_norm", last.name, [x, *names], [out], {"eps": 0.0})
    return _rebuilt(graph, replaced, dropped, params)


def _fold_into_conv(conv, value, x, scale, shift, graph, params, taken, uses, replaced):
    """Folds `value = scale * x + shift` into `conv` reading it (an unpadded conv2d / depthwise_conv2d with constant
    weights): records the new conv in `replaced`; False when it cannot."""
    if conv.op not in ("conv2d", "depthwise_conv2d") or conv.inputs[0] != value or any(conv.attrs["padding"]):
        return False
    weight_name = conv.inputs[1]
    bias_name = conv.inputs[2] if len(conv.inputs) > 2 else ""
    if weight_name not in params or (bias_name and bias_name not in params):
        return False
    w = np.asarray(params[weight_name], np.float64)  # (K, C / groups, R, S)
    k, cg = w.shape[:2]
    groups = conv.attrs.get("groups", scale.shape[0])
    if cg * groups != scale.shape[0]:
        return False
    per_group = k // groups
    s = scale.reshape(groups, 1, cg, 1, 1)
    b = shift.reshape(groups, cg)
    wg = w.reshape(groups, per_group, cg, *w.shape[2:])
    bias = np.asarray(params[bias_name], np.float64) if bias_name else np.zeros(k)
    bias = bias + np.einsum("gkcrs,gc->gk", wg, b).reshape(k)
    new_w = unique_name(f"{conv.name}.weight", taken)
    new_b = unique_name(f"{conv.name}.bias", taken)
    params[new_w] = (wg * s).reshape(w.shape).astype(np.float32)
    params[new_b] = bias.astype(np.float32)
    inputs = [x, new_w, new_b] + list(conv.inputs[3:])
    replaced[id(conv)] = Node(conv.op, conv.name, inputs, list(conv.outputs), dict(conv.attrs))
    return True


def _channel_permutation(graph: Graph, node: Node, producer: dict, uses: dict) -> tuple | None:
    """(x, [the three nodes], indices) when `node` ends a channel shuffle: ``reshape`` (N, C, H, W) -> (N, g, C / g,
    H, W), ``transpose`` (0, 2, 1, 3, 4), ``reshape`` back to (N, C, H, W) (ShuffleNet's, as every exporter writes
    it; the last reshape may be imported as a flatten of axes 1-2), the two values between read once; output
    channel ``k * g + j`` is input channel ``j * (C / g) + k``."""
    if node.op not in ("reshape", "flatten"):
        return None
    t = producer.get(node.inputs[0])
    if t is None or t.op != "transpose" or tuple(t.attrs["perm"]) != (0, 2, 1, 3, 4) or uses.get(t.outputs[0]) != 1:
        return None
    r = producer.get(t.inputs[0])
    if r is None or r.op != "reshape" or uses.get(r.outputs[0]) != 1:
        return None
    x = r.inputs[0]
    shape, split, out = graph.shapes[x], graph.shapes[r.outputs[0]], graph.shapes[node.outputs[0]]
    if len(shape) != 4 or tuple(out) != tuple(shape) or len(split) != 5:
        return None
    n, c, h, w = shape
    groups, per = split[1], split[2]
    if tuple(split) != (n, groups, per, h, w) or groups * per != c:
        return None
    indices = tuple(j * per + k for k in range(per) for j in range(groups))
    return x, [r, t, node], indices


def fold_channel_shuffle(graph: Graph) -> Graph:
    """Each channel shuffle (`_channel_permutation`) as one ``gather`` of the channels: a permutation a compiled Plan
    runs in its channels-last layout as one copy, where the 5-D transpose would leave the Plan."""
    uses, producer, _ = _index(graph)
    dropped: set[int] = set()
    replaced: dict[int, Node] = {}
    for node in graph.nodes:
        found = _channel_permutation(graph, node, producer, uses)
        if found is None:
            continue
        x, nodes, indices = found
        dropped.update(id(n) for n in nodes[:2])
        replaced[id(node)] = Node("gather", node.name, [x], list(node.outputs),
                                  {"indices": indices, "indices_shape": (len(indices),), "axis": 1})
    if not replaced:
        return graph
    return _rebuilt(graph, replaced, dropped, dict(graph.params))


def _trailing_axes(node: Node, rank: int) -> int | None:
    """The first axis of a keepdims mean over the trailing axes (axes a..rank-1), else None."""
    axes = tuple(node.attrs.get("axes") or ())
    if node.op != "reduce_mean" or not node.attrs.get("keepdims") or not axes or axes != tuple(
            range(axes[0], rank)):
        return None
    return axes[0]


def _scalar(graph: Graph, value: str) -> float | None:
    if value in graph.params and np.size(graph.params[value]) == 1:
        return float(np.asarray(graph.params[value]).reshape(-1)[0])
    return None


def _spelled_layer_norm(graph: Graph, node: Node, producer: dict, uses: dict) -> tuple | None:
    """(x, axis, eps, the nodes) when `node` (a div, or a mul by a reciprocal) ends a layer norm spelled out:
    ``(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)``, the means over trailing axes (paddle2onnx, the torch
    exporter before opset 17); the values between read by the pattern only."""
    def once(value, count=1):
        n = producer.get(value)
        return n if n is not None and uses.get(value) == count else None

    if node.op == "div":
        centred, std = node.inputs[:2]
        taken = []
    elif node.op == "mul" and (r := once(node.inputs[1])) is not None and r.op == "reciprocal":
        centred, std, taken = node.inputs[0], r.inputs[0], [r]
    else:
        return None
    sub, sqrt = producer.get(centred), once(std)
    if sub is None or sub.op != "sub" or sqrt is None or sqrt.op != "sqrt":
        return None
    x, mean = sub.inputs[:2]
    shifted = once(sqrt.inputs[0])
    if shifted is None or shifted.op != "add":
        return None
    var, eps = (shifted.inputs[0], _scalar(graph, shifted.inputs[1]))
    var_node, square = once(var), None
    if var_node is not None:
        square = once(var_node.inputs[0])
    m = once(mean)
    if eps is None or eps < 0 or m is None or m.inputs[0] != x or var_node is None or square is None:
        return None
    rank = len(graph.shapes[x])
    axis = _trailing_axes(m, rank)
    if axis is None or _trailing_axes(var_node, rank) != axis:
        return None
    squares = square.op == "pow" and square.inputs[0] == centred and _scalar(graph, square.inputs[1]) == 2.0 or \
        square.op == "mul" and square.inputs[:2] == [centred, centred]
    if not squares or uses.get(centred) != (3 if square.op == "mul" else 2):
        return None
    return x, axis, eps, [m, sub, square, var_node, shifted, sqrt, *taken]


def fold_layer_norm(graph: Graph) -> Graph:
    """Each layer norm spelled out in elementary ops (`_spelled_layer_norm`) as one ``layer_norm``, with the
    per-channel scale and shift after it when there are (constants over the normalized axes): one pass a compiled
    Plan runs per position of a channels-last value."""
    uses, producer, readers = _index(graph)
    dropped: set[int] = set()
    replaced: dict[int, Node] = {}
    for node in graph.nodes:
        found = _spelled_layer_norm(graph, node, producer, uses)
        if found is None or any(id(n) in dropped for n in found[3]):
            continue
        x, axis, eps, nodes = found
        normalized = tuple(graph.shapes[x][axis:])
        last, inputs = node, [x, "", ""]
        for slot, op in ((1, "mul"), (2, "add")):  # y * scale, then + shift
            out = last.outputs[0]
            reader = readers.get(out, [None])[0] if uses.get(out) == 1 else None
            if reader is None or reader.op != op:
                continue
            other = reader.inputs[1] if reader.inputs[0] == out else reader.inputs[0]
            if other not in graph.params or not broadcasts_to(np.shape(graph.params[other]), normalized):
                continue
            inputs[slot] = other
            dropped.add(id(last))
            last = reader
        dropped.update(id(n) for n in nodes)
        dropped.discard(id(last))
        replaced[id(last)] = Node("layer_norm", last.name, inputs, list(last.outputs), {"axis": axis, "eps": eps})
    if not replaced:
        return graph
    return _rebuilt(graph, replaced, dropped, dict(graph.params))


def _scaled(graph: Graph, producer: dict, uses: dict, value: str) -> tuple[str, float, list]:
    """(the value before, the factor, the nodes) when `value` is made from it by multiplies or divides by scalars
    (and adds of a scalar 0, which paddle2onnx writes for an absent mask), each read once; (value, 1, []) else."""
    factor = 1.0
    nodes: list[Node] = []
    while True:
        node = producer.get(value)
        if node is None or node.op not in ("mul", "div", "add") or uses.get(value) != 1 or len(node.inputs) < 2:
            return value, factor, nodes
        c, other = _scalar(graph, node.inputs[1]), node.inputs[0]
        if c is None and node.op in ("mul", "add"):
            c, other = _scalar(graph, node.inputs[0]), node.inputs[1]
        if c is None or not np.isfinite(c) or (c == 0) != (node.op == "add"):
            return value, factor, nodes
        factor *= c if node.op == "mul" else 1.0 / c if node.op == "div" else 1.0
        value = other
        nodes.append(node)


_VIEWS = ("reshape", "flatten", "transpose", "slice", "gather")  # ops that only move values: followed by index maps


def _walk_back(graph: Graph, producer: dict, uses: dict, value: str) -> tuple[list, float, str]:
    """(the view ops and scalar multiplies making `value`, in order, their factor, the value they start from),
    following values read once only."""
    chain: list[Node] = []
    factor = 1.0
    while uses.get(value) == 1 and value in producer:
        node = producer[value]
        if node.op in _VIEWS and len(node.inputs) == 1:
            chain.append(node)
            value = node.inputs[0]
            continue
        before, f, scalings = _scaled(graph, producer, uses, value)
        if not scalings:
            break
        chain += scalings[::-1]
        factor *= f
        value = before
    return chain[::-1], factor, value


def _mapped(chain: list, array: np.ndarray) -> np.ndarray | None:
    """Where each element of `array` (element indices, exact in float32) ends up after the view ops of `chain`."""
    from .ir import call_node

    for node in chain:
        if node.op in _VIEWS:
            try:
                array = call_node(node, [array])
            except (ValueError, TypeError):
                return None
    return array


def _attention_at(graph: Graph, node: Node, producer: dict, readers: dict, uses: dict) -> tuple | None:
    """(qkv, (N, L, 3 * heads * D), heads, scale, the nodes, the last node, its shape) when `node` is
    ``softmax(scale q k^T) @ v`` whose q, k and v are views of one tensor laid out as (N, L, 3, heads, D) and whose
    result is viewed as (N, L, heads * D): multi-head self-attention with a fused qkv projection, however the
    exporter reshapes, transposes, slices or gathers the parts (paddle2onnx's SVTR, torch's nn.MultiheadAttention
    at batch 1). The views are checked by following element indices through them; else None."""
    if node.op != "matmul" or len(graph.shapes[node.inputs[0]]) != 4:
        return None
    soft = producer.get(node.inputs[0])
    if soft is None or soft.op != "softmax" or uses.get(node.inputs[0]) != 1 or \
            soft.attrs["axis"] != len(graph.shapes[soft.inputs[0]]) - 1:
        return None
    biased, bias, additions = _biased(graph, producer, uses, soft.inputs[0])
    scores_value, c2, scalings = _scaled(graph, producer, uses, biased)
    scores = producer.get(scores_value)
    if scores is None or scores.op != "matmul" or uses.get(scores_value) != 1:
        return None
    n, heads, length, d = graph.shapes[scores.inputs[0]]
    if bias is not None:
        bias = _windows(bias)
    c = heads * d
    chains, factor, sources = [], c2, []
    for value in (scores.inputs[0], scores.inputs[1], node.inputs[1]):
        chain, f, source = _walk_back(graph, producer, uses, value)
        chains.append(chain)
        factor *= f
        sources.append(source)
    if len(set(sources)) != 1:
        return None
    split = producer.get(sources[0])  # the view all three start from (read three times), and the views before it
    if uses.get(sources[0]) != 3 or split is None or split.op not in _VIEWS:
        return None
    before, f, qkv = _walk_back(graph, producer, uses, split.inputs[0])
    prefix, factor = [*before, split], factor * f
    if not qkv or graph.shapes[qkv][0] != n and n != 1 or math.prod(graph.shapes[qkv]) != n * length * 3 * c or \
            n * length * 3 * c >= 2 ** 24:
        return None
    index = np.arange(n * length * 3 * c, dtype=np.float32).reshape(graph.shapes[qkv])
    base = np.arange(n * length * 3 * c, dtype=np.float32).reshape(n, length, 3, heads, d).transpose(2, 0, 3, 1, 4)
    expected = (base[0], base[1].transpose(0, 1, 3, 2), base[2])
    start = _mapped(prefix, index)
    for chain, want in zip(chains, expected):
        got = _mapped(chain, start) if start is not None else None
        if got is None or got.shape != want.shape or not np.array_equal(got, want):
            return None
    out, value = [], node.outputs[0]
    while len(readers.get(value, [])) == 1 and uses.get(value) == 1 and readers[value][0].op in _VIEWS[:3]:
        out.append(readers[value][0])
        value = out[-1].outputs[0]
    merged = _mapped(out, np.arange(n * heads * length * d, dtype=np.float32).reshape(n, heads, length, d))
    want = np.arange(n * heads * length * d, dtype=np.float32).reshape(n, heads, length, d).transpose(0, 2, 1, 3)
    if not out or merged is None or not np.array_equal(merged.reshape(-1), want.reshape(-1)):
        return None
    nodes = [*prefix, *(x for chain in chains for x in chain), scores, *scalings, *additions, soft, node, *out]
    return qkv, (n, length, 3 * c), heads, factor, bias, nodes, out[-1], tuple(graph.shapes[value])


def _biased(graph: Graph, producer: dict, uses: dict, value: str) -> tuple[str, np.ndarray | None, list]:
    """(the value before, the bias, the nodes) when `value` (N, heads, L, L) is made from a value of its shape by adds
    of constants, through reshapes (Swin: the relative-position bias, then the shifted windows' mask added to the
    scores viewed as (N / windows, windows, heads, L, L)), each read once; the bias is what they add, of `value`'s
    shape. (value, None, []) when there are none."""
    nodes: list[Node] = []
    at = value
    while uses.get(at) == 1 and at in producer:
        node = producer[at]
        if node.op in ("reshape", "flatten"):
            at = node.inputs[0]
        elif node.op == "add" and len(node.inputs) == 2 and sum(v in graph.params for v in node.inputs) == 1:
            at = node.inputs[0] if node.inputs[1] in graph.params else node.inputs[1]
        else:
            break
        nodes.insert(0, node)
    while nodes and nodes[0].op != "add":  # reshapes before the first add belong to what comes before
        at = nodes.pop(0).outputs[0]
    shape = tuple(graph.shapes[value])
    if not nodes or tuple(graph.shapes[at]) != shape or len(shape) != 4 or shape[2] != shape[3]:
        return value, None, []
    from .ir import call_node

    total = np.zeros(shape, np.float32)
    for node in nodes:
        if node.op == "add":
            operands = [total if v not in graph.params else np.asarray(graph.params[v], np.float32)
                        for v in node.inputs]
            total = np.add(*operands, dtype=np.float32)
        else:
            total = call_node(node, [total])
    if total.shape != shape or not np.all(np.isfinite(total) | (total == -np.inf)):
        return value, None, []
    return at, total, nodes


def _windows(bias: np.ndarray) -> np.ndarray | None:
    """A bias of the scores' shape (N, heads, L, L) as the attention op takes it: (windows, 1 or heads, L, L), the
    fewest windows repeating along N (sequence i adds window i % windows); None when it adds nothing."""
    if not np.any(bias):
        return None
    n = bias.shape[0]
    windows = next(w for w in range(1, n + 1) if n % w == 0 and np.array_equal(
        bias.reshape(n // w, w, *bias.shape[1:]), np.broadcast_to(bias[:w], (n // w, w, *bias.shape[1:]))))
    bias = bias[:windows]
    return np.ascontiguousarray(bias[:, :1] if np.array_equal(bias, np.broadcast_to(bias[:, :1], bias.shape))
                                else bias)


def fold_attention(graph: Graph) -> Graph:
    """Each multi-head self-attention spelled out (`_attention_at`) as one ``attention`` node: a compiled Plan runs it
    as one op on the channels-last qkv sequence."""
    uses, producer, readers = _index(graph)
    dropped: set[int] = set()
    replaced: dict[int, Node | list[Node]] = {}
    params = dict(graph.params)
    for node in graph.nodes:
        found = _attention_at(graph, node, producer, readers, uses)
        if found is None or any(id(n) in dropped for n in found[5]):
            continue
        qkv, qkv_shape, heads, scale, bias, nodes, last, out_shape = found
        dropped.update(id(n) for n in nodes)
        dropped.discard(id(last))
        made: list[Node] = []
        if tuple(graph.shapes[qkv]) != qkv_shape:  # (a view: torch's sequence-first layout at batch 1)
            made.append(Node("reshape", f"{last.name}.qkv", [qkv], [f"{last.outputs[0]}.qkv"], {"shape": qkv_shape}))
            qkv = made[-1].outputs[0]
        attrs = {"heads": int(heads), "scale": float(scale)}
        inputs = [qkv]
        if bias is not None:
            inputs.append(f"{last.outputs[0]}.bias")
            params[inputs[-1]] = bias
        if out_shape != (qkv_shape[0], qkv_shape[1], qkv_shape[2] // 3):
            made.append(Node("attention", last.name, inputs, [f"{last.outputs[0]}.attention"], attrs))
            made.append(Node("reshape", f"{last.name}.merge", [made[-1].outputs[0]], list(last.outputs),
                             {"shape": out_shape}))
        else:
            made.append(Node("attention", last.name, inputs, list(last.outputs), attrs))
        replaced[id(last)] = made
    if not replaced:
        return graph
    return _rebuilt(graph, replaced, dropped, params)


def _keeps_last(graph: Graph, node: Node) -> bool:
    """A view op that keeps the last axis in place (it only regroups or reorders the positions before it)."""
    x, out = graph.shapes[node.inputs[0]], graph.shapes[node.outputs[0]]
    if node.op == "transpose":
        return tuple(node.attrs["perm"])[-1] == len(x) - 1
    return node.op in ("reshape", "flatten") and len(x) >= 2 and len(out) >= 2 and x[-1] == out[-1]


def _position_map(graph: Graph, chain: list, shape: tuple) -> np.ndarray | None:
    """Where each position (all axes but the last) of a value of `shape` ends up after `chain`'s views."""
    rows = math.prod(shape[:-1])
    if rows * shape[-1] >= 2 ** 24:
        return None
    index = np.repeat(np.arange(rows, dtype=np.float32), shape[-1]).reshape(shape)
    moved = _mapped(chain, index)
    return None if moved is None else moved[..., 0]


def commute_views(graph: Graph) -> Graph:
    """A linear layer between views that only regroup positions and cancel out (torch's sequence-first attention at
    batch 1: transpose (1, 0, 2) -> linear -> reshape back) reads and writes the outer values directly: the layer
    acts on the last axis, so the views commute with it, and a compiled Plan keeps the sequence in one segment."""
    uses, producer, readers = _index(graph)
    dropped: set[int] = set()
    replaced: dict[int, Node] = {}
    for node in graph.nodes:
        if node.op != "linear" or any(v not in graph.params for v in node.inputs[1:] if v):
            continue
        before: list[Node] = []
        value = node.inputs[0]
        while uses.get(value) == 1 and value in producer and producer[value].op in _VIEWS[:3] and \
                _keeps_last(graph, producer[value]):
            before.insert(0, producer[value])
            value = producer[value].inputs[0]
        after: list[Node] = []
        out = node.outputs[0]
        while len(readers.get(out, [])) == 1 and uses.get(out) == 1 and readers[out][0].op in _VIEWS[:3] and \
                _keeps_last(graph, readers[out][0]):
            after.append(readers[out][0])
            out = after[-1].outputs[0]
        if not before and not after or any(id(n) in dropped for n in before + after):
            continue
        source_shape, target_shape = graph.shapes[value], graph.shapes[out]
        if tuple(source_shape[:-1]) != tuple(target_shape[:-1]):
            continue
        into = _position_map(graph, before, tuple(source_shape))
        if into is None:
            continue
        rows = into.reshape(-1).astype(np.int64)
        out_index = np.repeat(rows.astype(np.float32), target_shape[-1]).reshape(*graph.shapes[node.outputs[0]])
        moved = _mapped(after, out_index)
        if moved is None or not np.array_equal(moved[..., 0].reshape(-1), np.arange(rows.size, dtype=np.float32)):
            continue
        dropped.update(id(n) for n in before + after)
        replaced[id(node)] = Node("linear", node.name, [value, *node.inputs[1:]], [out], dict(node.attrs))
    if not replaced:
        return graph
    return _rebuilt(graph, replaced, dropped, dict(graph.params))


def fold_fake_quant(graph: Graph) -> Graph:
    """Each per-tensor ``quantize_linear`` whose every reader is a ``dequantize_linear`` of the same parameters (a QDQ
    file's pair around an activation) as one ``fake_quantize``: the same values in one pass, which a compiled Plan
    fuses into the producer's epilogue and whose grid an int8 convolution reads."""
    uses, _, readers = _index(graph)
    dropped: set[int] = set()
    replaced: dict[int, Node] = {}
    renamed: dict[str, str] = {}
    for node in graph.nodes:
        out = node.outputs[0]
        if node.op != "quantize_linear" or len(node.attrs["scale"]) != 1 or out in graph.outputs:
            continue
        deqs = readers.get(out, [])
        if not deqs or len(deqs) != uses.get(out, 0) or any(
                d.op != "dequantize_linear" or d.attrs != node.attrs or d.inputs[0] != out for d in deqs) or any(
                d.outputs[0] in graph.outputs for d in deqs[1:]):
            continue
        attrs = {"scale": node.attrs["scale"][0], "zero_point": node.attrs["zero_point"][0],
                 "dtype": node.attrs["dtype"]}
        value = deqs[0].outputs[0]
        replaced[id(node)] = Node("fake_quantize", node.name, [node.inputs[0]], [value], attrs)
        dropped.update(id(d) for d in deqs)
        renamed.update((d.outputs[0], value) for d in deqs[1:])
    for node in graph.nodes:  # Q -> max pooling / views -> DQ: the grid's order and values pass through them
        chain = _through_commuting(node, graph, uses, readers) if id(node) not in replaced else None
        if chain is not None:
            attrs = {"scale": node.attrs["scale"][0], "zero_point": node.attrs["zero_point"][0],
                     "dtype": node.attrs["dtype"]}
            replaced[id(node)] = Node("fake_quantize", node.name, list(node.inputs), list(node.outputs), attrs)
            dq = chain[-1]
            if dq.outputs[0] not in graph.outputs:
                dropped.add(id(dq))
                renamed[dq.outputs[0]] = chain[-2].outputs[0]
            else:
                del replaced[id(node)]
    if not replaced:
        return graph
    if renamed:  # the other dequantized copies read the first
        for node in graph.nodes:
            if id(node) not in dropped and any(i in renamed for i in node.inputs):
                base = replaced.get(id(node), node)
                replaced[id(node)] = Node(base.op, base.name, [renamed.get(i, i) for i in base.inputs],
                                          list(base.outputs), dict(base.attrs))
    return _rebuilt(graph, replaced, dropped, dict(graph.params))


# Ops through which quantized integers and their dequantized values correspond one to one (dequantization is
# increasing and elementwise): a QuantizeLinear -> these -> DequantizeLinear chain is a fake_quantize before them.
_COMMUTING = frozenset({"max_pool2d", "global_max_pool2d", "adaptive_max_pool2d", "flatten", "reshape", "identity",
                        "transpose"})


def _through_commuting(node, graph, uses, readers):
    """The single-reader chain (commuting ops, then a dequantize_linear of the same parameters) after per-tensor
    quantize_linear `node`, or None."""
    if node.op != "quantize_linear" or len(node.attrs["scale"]) != 1:
        return None
    chain, value = [], node.outputs[0]
    while value not in graph.outputs and uses.get(value, 0) == 1 and len(readers.get(value, [])) == 1:
        reader = readers[value][0]
        if reader.inputs[0] != value:
            return None
        if reader.op == "dequantize_linear":
            return chain + [reader] if chain and reader.attrs == node.attrs else None
        if reader.op not in _COMMUTING:
            return None
        chain.append(reader)
        value = reader.outputs[0]
    return None
