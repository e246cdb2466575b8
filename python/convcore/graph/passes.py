"""Graph passes: rewrites of a `Graph` that keep its results (up to float rounding).

Passes return a new Graph and never modify the input graph or its parameter arrays (a traced graph's params are the
model's own arrays).
"""

from __future__ import annotations

import numpy as np

from ..ops import OPS
from .ir import Graph, NameSet, Node, unique_name


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
    uses: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.inputs:
            if name:
                uses[name] = uses.get(name, 0) + 1
    for name in graph.outputs:
        uses[name] = uses.get(name, 0) + 1
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

    nodes = [replaced.get(id(node), node) for node in graph.nodes if id(node) not in dropped]
    used = {name for node in nodes for name in node.inputs if name} | set(graph.outputs)
    params = {name: array for name, array in params.items() if name in used}
    folded = Graph(nodes, graph.inputs, graph.outputs, params, name=graph.name,
                   values={n: graph.values[n] for n in graph.inputs})
    folded.infer_shapes()
    return folded
