"""Counting a model: parameters, and multiply-accumulates from its traced graph (no kernel runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..graph import Graph, trace
from ..nn import Module
from ..ops import OPS
from ._registry import get_model_info


def count_parameters(model: Module) -> int:
    """Number of parameter elements of a module (buffers such as BN running statistics excluded)."""
    return int(sum(np.prod(p.shape, dtype=np.int64) for p in model.parameters()))


def count_macs(graph: Graph) -> int:
    """Multiply-accumulates of a graph: each node's by its op's declared rule (`Op.macs`: convolutions and linear
    layers; ops without one count 0)."""
    total = 0
    for node in graph.nodes:
        macs = OPS[node.op].macs
        if macs is not None:
            total += macs([graph.shapes[i] if i else None for i in node.inputs], graph.shapes[node.outputs[0]])
    return total


def summary(name_or_model: Union[str, Module], input_size: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """Parameters and compute of a model at one input size.

    Counts the multiply-accumulates (MACs) of every convolution and linear layer in the model's traced graph at batch
    1 (so it counts exactly what the model executes, without running any kernel).
    `gflops` is 2 * MACs / 1e9 (one MAC = a multiply and an add). Note that torchvision's "GFLOPS" column (its
    weights' `_ops` metadata) is really GMACs, i.e. our `gmacs`.

    Args:
        name_or_model: a registered name or a built `Module`.
        input_size: (N, C, H, W) as `compile` and `trace` take it (counted per image), (C, H, W) or (H, W);
            default: the registered model's `input_size` (required for a Module that is not from the zoo).

    Returns:
        dict with 'params', 'macs', 'gmacs', 'gflops', 'input_size' (C, H, W) and 'output_shape'.

    Example:
        >>> summary('resnet50')['gmacs']  # torchvision lists 4.089
        4.089
    """
    default: Optional[tuple[int, ...]]
    if isinstance(name_or_model, str):
        info = get_model_info(name_or_model)
        model = info.builder().eval()
        default = info.input_size
    elif isinstance(name_or_model, Module):
        size = getattr(name_or_model, "input_size", None)  # a zoo model's registered (C, H, W)
        model, default = name_or_model, (tuple(size) if isinstance(size, tuple) and len(size) == 3 else None)
    else:
        raise TypeError(f"expected a model name or a Module for name_or_model (got {type(name_or_model).__name__})")
    if input_size is None:
        if default is None:
            raise ValueError("input_size: required for a Module that is not from the zoo, e.g. (1, 3, 224, 224) "
                             "(got None)")
        input_size = default
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) == 4:  # (N, C, H, W), as trace and compile take it: counted per image
        input_size = input_size[1:]
    if len(input_size) == 2:
        if default is not None:
            channels = default[0]
        else:  # the input channels of the first conv (its weight is the first 4-D parameter)
            first = next((p for p in model.parameters() if p.ndim == 4), None)
            channels = 3 if first is None else first.shape[1]
        input_size = (channels,) + input_size
    if len(input_size) != 3:
        raise ValueError(f"input_size: expected (N, C, H, W), (C, H, W) or (H, W) (got {input_size})")

    graph = trace(model, (1,) + input_size)
    macs = count_macs(graph)
    return {
        "params": count_parameters(model),
        "macs": macs,
        "gmacs": round(macs / 1e9, 3),
        "gflops": round(2 * macs / 1e9, 3),
        "input_size": input_size,
        "output_shape": tuple(graph.shapes[graph.outputs[0]]),
    }


@dataclass(frozen=True)
class LayerInfo:
    """One row of `layers`: a name the gradient objectives and `convcore.visualize` accept, with its output.

    Attributes:
        name: a node's name (a leaf module's path, e.g. 'layer3.1.conv2') or a container's path ('layer3').
        op: the node's op ('conv2d', 'relu', ...), or 'block' for a container of several nodes.
        output_shape: its output at batch 1, (1, C, H, W) for feature maps.
        params: parameter elements it holds, batch-norm statistics not counted (a container: all of its nodes').
        macs: multiply-accumulates per image (a container: all of its nodes').
    """

    name: str
    op: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def layers(model: Union[str, Module, Graph, Any], input_size: Optional[Sequence[int]] = None) -> list[LayerInfo]:
    """Every layer of a model with its output shape, parameters and MACs, in graph order (a container after its last
    node): the names `convcore.grad` objectives and `convcore.visualize` accept (`layer`, `layer:channel`).

    Args:
        model: a registered name, a `Module` (a zoo model, or any with `input_size`), a `Graph`, or a model that
            carries one (an ONNX model from `convcore.onnx.load`, a `Plan`).
        input_size: (N, C, H, W), (C, H, W) or (H, W); default: the model's registered input size (a Graph's own).

    Example:
        >>> [(l.name, l.output_shape) for l in layers("resnet18")][:2]
        [('conv1', (1, 64, 112, 112)), ('bn1', (1, 64, 112, 112))]
    """
    names: dict[str, str] = {}
    graph = model if isinstance(model, Graph) else getattr(model, "graph", None)
    if not isinstance(graph, Graph):
        if isinstance(model, str):
            model = get_model_info(model).builder().eval()
        if not isinstance(model, Module):
            raise TypeError(f"model: expected a model name, a Module, a Graph or an imported ONNX model (got "
                            f"{type(model).__name__})")
        shape = summary(model, input_size)["input_size"] if input_size is not None or hasattr(model, "input_size") \
            else None
        if shape is None:
            raise ValueError("input_size: required for a Module that is not from the zoo, e.g. (1, 3, 224, 224) "
                             "(got None)")
        graph = trace(model, (1, *shape), module_outputs=names)
    # A module's parameters, not its buffers (batch-norm statistics), as count_parameters counts: the graph's params
    # are the module's own arrays. A Graph's (an ONNX model's) are all counted.
    own = {id(p) for p in model.parameters()} if isinstance(model, Module) else None
    rows: dict[str, list[Any]] = {}
    for node in graph.nodes:
        params = sum(int(np.prod(graph.shapes[i])) for i in node.inputs
                     if i in graph.params and (own is None or id(graph.params[i]) in own))
        rule = OPS[node.op].macs
        macs = rule([graph.shapes[i] if i else None for i in node.inputs], graph.shapes[node.outputs[0]]) if rule \
            else 0
        row = rows.setdefault(node.name, [node.op, node.outputs[0], 0, 0])
        row[1:] = [node.outputs[0], row[2] + params, row[3] + macs]
    nodes = dict(rows)
    for path, value in names.items():
        if path in rows or not path:
            continue
        inside = [r for n, r in nodes.items() if n.startswith(path + ".")]
        rows[path] = ["block", value, sum(r[2] for r in inside), sum(r[3] for r in inside)]
    order = {v: i for i, v in enumerate(n.outputs[0] for n in graph.nodes)}
    listed = sorted(rows.items(), key=lambda item: (order.get(item[1][1], -1), -item[0].count("."), item[0]))
    return [LayerInfo(name, op, tuple(graph.shapes[value]), params, macs) for name, (op, value, params, macs) in listed]
