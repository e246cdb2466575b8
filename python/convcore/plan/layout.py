"""Layout assignment: where each value lives in a Plan and which nodes a Plan runs.

A Plan stores maps channels-last; a value keeps its logical NCHW shape and is stored (H, W, C). The values in
`channels_last_values` are stored in their logical row-major order instead (NHWC maps, (N, L, C) sequences, and the
values moves make of other shapes: plan/permute.py), so the transposes exporters write around them cost nothing.
`supported` says which nodes a Plan runs, given that assignment; the others run eagerly between Plan segments.
"""

from __future__ import annotations

import math

from ..ops import OPS
from .fusion import GraphIndex
from .permute import ASSEMBLIES, MOVES, graph_batch, is_assembly, is_move, is_odd, is_raw

TO_CHANNELS_LAST, TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def _keeps_layout(node, graph, capabilities=None):
    """Whether `node` computes each pixel's channels from that pixel's channels only, on one input: it reads and
    writes an NHWC value as it is (an activation; a softmax, layer norm or linear layer over the last axis: the op's
    `PlanRule.per_pixel`)."""
    op = OPS.get(node.op)
    if op is None or op.plan is None or capabilities is not None and not op.plan.needs <= capabilities:
        return False
    return op.plan.epilogue is not None or op.plan.per_pixel is not None and bool(op.plan.per_pixel(node, graph))


def channels_last_values(graph, outside=frozenset()):
    """The values a Plan keeps in their logical order, which is the order it stores maps in: (N, H, W, C) maps and
    (N, L, C) sequences. Transposes NCHW -> NHWC (what TensorFlow / Keras graphs end in) and (N, C, L) -> (N, L, C),
    what per-position ops (`_keeps_layout`), binary ops and concatenations make of them, graph inputs read only by a
    transpose NHWC -> NCHW (what they start with), and values in `outside` (computed outside the Plan, or graph
    inputs) read by per-position ops only (the layer norm and linear layers after an attention block). No transpose
    copies anything: the Plan takes such an input and gives such an output as it is. Values of other ranks, or
    stored whole (`permute.is_odd`), are stored in their row-major order too, and so are a Plan LSTM's outputs."""
    index = GraphIndex(graph)
    values = set()
    for name in outside:  # values computed outside the Plan, read by ops over their last axis only: taken as stored
        readers = index.readers.get(name, [])
        if len(graph.shapes[name]) in (3, 4) and readers and name not in graph.outputs and all(
                _keeps_layout(r, graph) and OPS[r.op].plan.epilogue is None and r.op != "reshape" for r in readers):
            values.add(name)
    for name in graph.inputs:
        readers = index.readers.get(name, [])
        if len(graph.shapes[name]) == 4 and readers and name not in graph.outputs and all(
                r.op == "transpose" and tuple(r.attrs["perm"]) == TO_CHANNELS_FIRST for r in readers):
            values.add(name)
    for node in graph.nodes:
        computed = [v for v in node.inputs if v and v not in graph.params]
        if not computed:
            continue
        x, op = computed[0], OPS.get(node.op)
        if is_odd(graph, node.outputs[0]) or node.op == "lstm" and OPS["lstm"].plan.accepts(node, graph):
            values.add(node.outputs[0])  # stored whole, or of another rank: in row-major order (module permute)
        elif len(graph.shapes[x]) not in (3, 4) and x not in values:
            continue
        elif node.op == "transpose" and _layout_transpose(graph, x, tuple(node.attrs["perm"])) in ("to_last", "swap") \
                and x not in values:
            values.add(node.outputs[0])
        elif len(computed) == 1 and x in values and _keeps_layout(node, graph):
            values.add(node.outputs[0])
        elif (op is not None and op.plan is not None and op.plan.elementwise and _mixed_ok(node, graph, values)
              or node.op == "concat" and all(v in values for v in computed)):
            values.add(node.outputs[0])  # binary ops and concatenations of channels-last values
        elif (node.op in MOVES and is_move(node, graph) or is_assembly(node, graph)) and _rows_wanted(
                node.outputs[0], graph, index) and not supported_in_place(node, graph, None, values):
            values.add(node.outputs[0])
    return frozenset(values)


def _mixed_ok(node, graph, values):
    """A binary op with a channels-last operand: the others channels-last too, of the output's shape (relaid by
    one gather: `Lowering.operands`), or one value per image (either order)."""
    computed = [v for v in node.inputs if v and v not in graph.params]
    out = tuple(graph.shapes[node.outputs[0]])
    return any(v in values for v in computed) and all(
        v in values or tuple(graph.shapes[v]) == out or math.prod(graph.shapes[v][1:]) == 1 for v in computed)


def _rows_wanted(value, graph, index):
    """Whether a moved value (a gather's output: any layout costs the same) is best stored in row-major order: an
    op over its last axis reads it (a layer norm, a linear layer: Swin's window merges), and every reader takes that
    order (ops over the last axis, activations, binary ops, other moves)."""
    shape = graph.shapes[value]
    readers = index.readers.get(value, [])
    if len(shape) not in (3, 4) or not readers or shape[0] != graph_batch(graph):
        return False
    takes = [_keeps_layout(r, graph) or OPS.get(r.op) is not None and OPS[r.op].plan is not None and (
        OPS[r.op].plan.elementwise) or r.op in (*MOVES, *ASSEMBLIES) for r in readers]
    wants = [OPS[r.op].plan.per_pixel is not None and OPS[r.op].plan.epilogue is None and _keeps_layout(r, graph)
             for r in readers if OPS.get(r.op) is not None and OPS[r.op].plan is not None]
    return all(takes) and any(wants)


def _layout_transpose(graph, x, perm):
    """How a transpose relates the stored order and the logical one: "to_last" / "to_first" for NCHW -> NHWC /
    NHWC -> NCHW of a map, "swap" for (N, C, L) <-> (N, L, C) of a sequence (either way, by x's layout); else None."""
    rank = len(graph.shapes[x]) if x in graph.shapes else 0
    if rank == 4:
        return "to_last" if perm == TO_CHANNELS_LAST else "to_first" if perm == TO_CHANNELS_FIRST else None
    return "swap" if rank == 3 and perm == (0, 2, 1) else None


def supported(node, graph, capabilities=None, channels_last=frozenset()):
    """Whether compiled plans run `node` (its op's `PlanRule` accepts it, on a builder with `capabilities`); the
    others run eagerly between plan segments. `channels_last`: `channels_last_values(graph)`; a node reading one
    runs in the Plan only when it keeps that order (or flattens it, or transposes it back), or moves values
    (`permute.is_move`); a value stored whole or of another rank (`permute.is_odd`) is read only by ops over its
    last axis, moves and LSTMs."""
    computed = [v for v in node.inputs if v and v not in graph.params]
    if any(is_raw(graph, v) and v not in channels_last for v in computed):
        return False  # a value in blocks of rows is stored in row-major order (`channels_last_values`)
    if node.op in MOVES and is_move(node, graph) or is_assembly(node, graph):
        return True
    if any(v in channels_last and is_odd(graph, v) for v in computed):
        op = OPS.get(node.op)
        if op is None or op.plan is None or not (_keeps_layout(node, graph, capabilities) or node.op == "lstm" or (
                op.plan.elementwise and all(math.prod(graph.shapes[v][:-1]) == 1 for v in node.inputs[:2]
                                            if v in graph.params))):
            return False
    return supported_in_place(node, graph, capabilities, channels_last)


def supported_in_place(node, graph, capabilities, channels_last):
    """`supported` but for moves: the Plan rules of ops that keep values where they are stored."""
    op = OPS.get(node.op)
    if op is None or op.plan is None:
        return False
    computed = [v for v in node.inputs if v and v not in graph.params]
    if node.op in (*MOVES, *ASSEMBLIES) and any(v in channels_last and is_odd(graph, v) for v in computed):
        return False  # a move (`Lowering.move`), a view where nothing moves, or a gather (`Lowering.assemble`)
    if node.op == "transpose":
        x = node.inputs[0]
        kind = _layout_transpose(graph, x, tuple(node.attrs["perm"])) if x not in graph.params else None
        return all(graph.shapes[x]) and (kind == "swap" or kind == "to_last" and x not in channels_last
                                         or kind == "to_first" and x in channels_last)
    if any(v in channels_last for v in computed):
        if op.plan.elementwise:  # constants laid out to match; an operand of the output's shape stored otherwise
            return _mixed_ok(node, graph, channels_last) and op.plan.accepts(node, graph, capabilities)  # relaid
        if node.op == "concat" and len(graph.shapes[node.outputs[0]]) == 3:
            return all(v in channels_last for v in computed) and op.plan.accepts(node, graph, capabilities)
        if len(computed) != 1:
            return False
        if op.plan.any_layout:
            return op.plan.accepts(node, graph, capabilities)
        return _keeps_layout(node, graph, capabilities) or (
            node.op == "flatten" and len(graph.shapes[node.outputs[0]]) == 2 and op.plan.accepts(node, graph,
                                                                                                capabilities))
    return op.plan.accepts(node, graph, capabilities)
