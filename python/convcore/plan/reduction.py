"""Reductions and `where` in a Plan.

The Plan has one reduction op: over each pixel's channels (`Plan.reduce`). A reduction over other axes becomes one:
the value gathered so that each kept position is a pixel holding the reduced values as its channels (no copy where
the stored order already is that: the last axis of a channels-last value), or, over every axis but the batch, the
whole image read as one pixel. The results come out in the kept axes' row-major order and are laid out as the
output's readers want (a gather, or a view). `keep_reduced_dims` makes a reduction read by a reshape keep its axes,
so that no rank-1 value is left between them (tf2onnx's global minimum and maximum: ReduceMin -> (N,), then reshaped
to (N, 1, 1)).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..graph import Graph
from .fusion import GraphIndex
from .gathers import compose, source
from .permute import positions, stored_dims, table_of

REDUCTIONS = {"reduce_sum": "sum", "reduce_mean": "mean", "reduce_max": "max", "reduce_min": "min",
              "reduce_prod": "prod", "reduce_l1": "l1", "reduce_l2": "l2", "reduce_sum_square": "sum_square",
              "reduce_log_sum": "log_sum", "reduce_log_sum_exp": "log_sum_exp"}


def lower_reduce(low, node):
    """The reduction as the Plan's per-pixel one (module docstring)."""
    x = low.materialize(low.ref(node.inputs[0]), node.name)
    shape, axes = x.shape, tuple(node.attrs["axes"])
    kept = [d for d in range(1, len(shape)) if d not in axes]
    rows, width = math.prod(shape[d] for d in kept), math.prod(shape[d] for d in axes)
    base, table = source(low, x, node.name)  # (a pending gather's values: its table composes with this one)
    if kept:  # each kept position a pixel of the reduced values: a gather, none where the order is that already
        stored = positions(shape, x.nhwc, x.flat, low.batch)[0]  # the stored offset of each element (one image)
        order = np.transpose(stored, [d - 1 for d in (*kept, *axes)]).reshape(-1)
        table = compose(table, None if np.array_equal(order, np.arange(order.size)) else
                        np.ascontiguousarray(order, np.int64))
    flat = low.gathered(f"{node.name}.rows", base, table, (rows, 1, width))
    reduced = low.builder.reduce(node.name, flat, REDUCTIONS[node.op])
    out_value = node.outputs[0]
    out_shape, row_major = low.shape(out_value), out_value in low.channels_last
    placed = np.arange(rows).reshape((1, *out_shape[1:]))  # the kept axes' row-major order, size-1 axes anywhere
    table = table_of(placed, row_major)
    dims = stored_dims(out_shape, row_major, low.batch)
    low.define(out_value, low.gathered(node.name + ".out", low.builder.reshape(reduced, 1, 1, rows), table, dims),
               nhwc=row_major)


def lower_where(low, node):
    """condition ? a : b with numpy broadcasting, the operands laid out as the binary ops' (`Lowering.operands`)."""
    refs, nhwc = low.operands(node, node.inputs)
    low.define(node.outputs[0], low.builder.where(node.name, *(r.tid for r in refs)), nhwc=nhwc)


def keep_reduced_dims(graph: Graph) -> Graph:
    """A reduction without kept dims whose only reader is a reshape keeps them (the reshape then reads a value of
    the same size): the Plan stores no rank-1 values."""
    index = GraphIndex(graph)
    changed = []
    for node in graph.nodes:
        out = node.outputs[0]
        readers = index.readers.get(out, [])
        if node.op in REDUCTIONS and not node.attrs["keepdims"] and len(graph.shapes[out]) < 2 and \
                len(readers) == 1 and readers[0].op in ("reshape", "flatten") and out not in graph.outputs:
            changed.append(id(node))
    if not changed:
        return graph
    nodes = [dataclasses.replace(n, attrs={**n.attrs, "keepdims": True}) if id(n) in changed else n
             for n in graph.nodes]
    kept = Graph(nodes, graph.inputs, graph.outputs, dict(graph.params), name=graph.name,
                 values={n: graph.values[n] for n in graph.inputs})
    kept.infer_shapes()
    return kept
