"""Reshapes, transposes and flattens that move values, inside a Plan: each is one gather of every image's values
(of the whole tensor in a batch-1 plan), its table computed here once, or a view where the table is the identity.
Concatenations along any axis and padding of any axis in any mode (`is_assembly`) are one gather too, from their
inputs copied side by side into one buffer (a constant fill value after them).

Where a value lives: a Plan stores a 4-D NCHW value as (H, W, C), a 3-D (N, C, L) one as L pixels of C channels, a
2-D (N, F) one as one pixel of F channels (`plan.lower`); a value in `channels_last_values` - NHWC maps, (N, L, C)
sequences, and what this module makes of other shapes - in its logical row-major order, its last axis the channels.
In a batch-1 plan a moved value need not keep the batch first: the LSTM of a CRNN reads (L, 1, I) and gives
(L, D, 1, H), its head transposes and flattens them. Such a value is stored whole in its row-major order, as one image
("raw" below); only ops that compute each pixel from its own channels (and these moves, and the LSTM) read it.
"""

from __future__ import annotations

import math

import numpy as np

MOVES = ("reshape", "transpose", "flatten")


def graph_batch(graph):
    """The batch the graph was compiled at (its first input's first axis)."""
    return graph.shapes[graph.inputs[0]][0] if graph.inputs else None


def is_raw(graph, value):
    """Whether a value stored in row-major order is stored in blocks of rows: one whose first axis is not the batch but
    a multiple of it (Swin's windows, 64 per image: image n holds rows [64 n, 64 n + 64), which is its n-th share of
    the values in row-major order, as for any value whose first axis is the batch). In a batch-1 graph: the whole
    value as one image."""
    shape = graph.shapes[value]
    if not shape:  # a scalar (a dynamic quantization's scale): not per image
        return False
    batch, first = graph_batch(graph), shape[0]
    return first != batch and first % batch == 0


def image_shape(shape, batch):
    """The logical shape of one image's share of a value of `shape`: its block of rows (`is_raw`), or else one row (a
    value whose first axis is not a multiple of the batch, computed outside the Plan, runs in segments of that axis
    as their batch)."""
    return (shape[0] // batch if shape[0] % batch == 0 else 1, *shape[1:])


def is_odd(graph, value):
    """A value only row-major order can hold: stored whole, or of a rank other than 2, 3 and 4."""
    return is_raw(graph, value) or len(graph.shapes[value]) not in (2, 3, 4)


def is_move(node, graph):
    """A reshape / transpose / flatten of a computed value a Plan can run as a gather: any, in a batch-1 graph;
    else one that keeps the batch as the first axis (each image's values move among themselves)."""
    if node.op not in MOVES or node.inputs[0] in graph.params:
        return False
    x, out = graph.shapes.get(node.inputs[0]), graph.shapes.get(node.outputs[0])
    if not x or not out or not all(x) or not all(out) or len(out) < 2 or math.prod(x) != math.prod(out):
        return False
    batch = graph_batch(graph)
    if batch == 1:
        return True
    # Each image's share stays its own: first axes of whole multiples of the batch (rows in blocks: `is_raw`), a
    # transpose keeping the first axis first.
    return x[0] % batch == 0 and out[0] % batch == 0 and (node.op != "transpose" or node.attrs["perm"][0] == 0)


def is_assembly(node, graph):
    """A concatenation, padding, gather or slice the Plan runs as one gather of values: along any axis but the
    batch's (that one too in a batch-1 graph), constant inputs only in a batch-1 graph (a Plan constant is the same
    for every image)."""
    if node.op not in ASSEMBLIES:
        return False
    out = graph.shapes.get(node.outputs[0])
    sources = node.inputs if node.op == "concat" else node.inputs[:1]
    if not out or not all(out) or len(out) < 2 or any(v not in graph.shapes for v in sources):
        return False
    if node.op != "concat" and sources[0] in graph.params or node.op == "pad" and node.attrs["mode"] not in PAD_MODES:
        return False
    if not all(all(graph.shapes[v]) for v in sources) or all(v in graph.params for v in sources):
        return False
    if graph_batch(graph) == 1:
        return True
    a = node.attrs
    if node.op == "concat" or node.op == "gather":
        batch_axis = a["axis"] == 0
    elif node.op == "pad":
        batch_axis = any(a["pads"][:2])
    else:
        batch_axis = any(axis == 0 and range(*np.s_[start:end:step].indices(out[0] + 1)) != range(out[0])
                         for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]))
    return not batch_axis and all(v not in graph.params for v in sources)


def assembly(node, shape, pad_indices):
    """(the node's sources, combine): combine(positions of each source) gives the output's positions (-1: the
    padding constant)."""
    a = node.attrs
    if node.op == "concat":
        return node.inputs, lambda parts: np.concatenate(parts, axis=a["axis"])
    if node.op == "pad":
        return node.inputs[:1], lambda parts: padded(parts[0], a["pads"], a["mode"], pad_indices)
    if node.op == "gather":
        index = np.asarray(a["indices"], np.int64).reshape(a["indices_shape"])
        return node.inputs[:1], lambda parts: np.take(parts[0], index, axis=a["axis"])
    kept = [np.arange(n) for n in shape]
    for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        kept[axis] = np.arange(*np.s_[start:end:step].indices(shape[axis]))

    def sliced(parts):
        rows = kept[0] if parts[0].shape[0] == shape[0] else np.arange(parts[0].shape[0])  # one image's rows
        return parts[0][np.ix_(rows, *kept[1:])]
    return node.inputs[:1], sliced


ASSEMBLIES = ("concat", "pad", "gather", "slice")
PAD_MODES = ("constant", "reflect", "edge", "wrap")


def stored_dims(shape, row_major, batch):
    """(H, W, C) of one image of a value of logical `shape` as a Plan of `batch` stores it."""
    if row_major:
        if len(shape) == 4 and shape[0] == batch:
            return shape[1], shape[2], shape[3]
        if len(shape) == 1 and shape[0] == batch:  # (N,): one value per image
            return 1, 1, 1
        return math.prod(image_shape(shape, batch)) // shape[-1], 1, shape[-1]
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) == 3:
        return shape[2], 1, shape[1]
    return 1, 1, shape[1]


def positions(shape, row_major, flat, batch):
    """For each element of one image's share of the value (`image_shape`), its offset in the stored order, as an
    array of that logical shape."""
    s = image_shape(shape, batch)
    size = math.prod(s)
    if flat is not None:  # a flatten of (C, H, W) still stored as (H, W, C)
        c, h, w = flat
        return np.arange(size).reshape(h, w, c).transpose(2, 0, 1).reshape(s)
    if row_major or len(s) == 2:
        return np.arange(size).reshape(s)
    if len(s) == 4:
        return np.arange(size).reshape(s[0], s[2], s[3], s[1]).transpose(0, 3, 1, 2)
    return np.arange(size).reshape(s[0], s[2], s[1]).transpose(0, 2, 1)


def _stored(logical, row_major):
    """The inverse of `positions`' layout: a logical array's elements in stored order, flat."""
    if row_major or logical.ndim == 2:
        return logical.reshape(-1)
    if logical.ndim == 4:
        return logical.transpose(0, 2, 3, 1).reshape(-1)
    return logical.transpose(0, 2, 1).reshape(-1)


def gather_table(node, x_shape, x_row_major, x_flat, out_shape, out_row_major, batch):
    """For a move `node` (None: the value itself, laid out another way): for each stored element of one output image,
    the stored offset in the input image it copies (the whole values in a batch-1 plan); None when that is the
    identity (a view)."""
    logical = positions(x_shape, x_row_major, x_flat, batch)
    if node is not None and node.op == "transpose":
        logical = logical.transpose(tuple(node.attrs["perm"]))
    else:
        logical = logical.reshape(image_shape(out_shape, batch))
    return table_of(logical, out_row_major)


def table_of(logical, row_major):
    """The gather table giving a value of logical positions `logical` in its stored order (None: the identity)."""
    table = _stored(logical, row_major)
    return None if np.array_equal(table, np.arange(table.size)) else np.ascontiguousarray(table, np.int64)


def padded(logical, pads, mode, pad_indices):
    """Positions padded as ONNX Pad does (-1: the constant), `pad_indices` the per-axis index rule."""
    for axis in range(logical.ndim):
        begin, end = pads[2 * axis], pads[2 * axis + 1]
        if begin or end:
            index = pad_indices(logical.shape[axis], begin, end, mode)
            taken = np.take(logical, np.maximum(index, 0), axis=axis)
            shape = [1] * logical.ndim
            shape[axis] = len(index)
            logical = np.where(index.reshape(shape) < 0, -1, taken)
    return logical
