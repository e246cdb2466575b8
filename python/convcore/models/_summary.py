"""Counting a model: parameters, and multiply-accumulates from its traced graph (no kernel runs)."""

from __future__ import annotations

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
        input_size: (C, H, W) or (H, W); default: the registered model's `input_size` (required for a bare Module).

    Returns:
        dict with 'params', 'macs', 'gmacs', 'gflops', 'input_size' (C, H, W) and 'output_shape'.

    Example:
        >>> summary('resnet50')['gmacs']  # torchvision lists 4.089
        4.089
    """
    if isinstance(name_or_model, str):
        info = get_model_info(name_or_model)
        model = info.builder().eval()
        default = info.input_size
    elif isinstance(name_or_model, Module):
        model, default = name_or_model, None
    else:
        raise TypeError(f"expected a model name or a Module for name_or_model (got {type(name_or_model).__name__})")
    if input_size is None:
        if default is None:
            raise ValueError("expected input_size for a Module that is not in the registry (got None)")
        input_size = default
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) == 2:
        if default is not None:
            channels = default[0]
        else:  # the input channels of the first conv (its weight is the first 4-D parameter)
            first = next((p for p in model.parameters() if p.ndim == 4), None)
            channels = 3 if first is None else first.shape[1]
        input_size = (channels,) + input_size
    if len(input_size) != 3:
        raise ValueError(f"expected input_size as (C, H, W) or (H, W) (got {input_size})")

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
