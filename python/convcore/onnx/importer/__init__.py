"""`load`: an ONNX model -> a `Graph` of declared convcore ops, wrapped in a `convcore.nn.Module`.

Reads ai.onnx opsets 6 to the newest the installed onnx package defines, each op with the semantics of its version
(see docs/onnx.md for the op table). Constants (initializers, Constant nodes, folded shape arithmetic) become params;
float16 / float64 weights are converted to float32 (the precision convcore computes in), integer tensors are
accepted only where ONNX expects integers (shapes, axes, pads, indices). Every shape is static once the input shapes
are known (a dynamic batch is imported as 1 and followed at run time where the graph allows; a graph that cannot
follow it refuses another batch: see `onnx_to_graph`).

One converter per ONNX op type, found by op family: `conv`, `pool` (with Reduce*), `padding`, `normalization`,
`activation`, `arithmetic`, `shape`, `resize`; ops declared with a one-to-one ONNX form (`convcore.ops.OnnxOp`)
need none. `folding` computes constant subgraphs, `structure` checks and orders the nodes, `context` holds the
state of one import.
"""

from __future__ import annotations

import itertools
import os
from types import SimpleNamespace
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from ..._validate import check_size
from .._reader import FLOAT_TYPES, read_model, tensor_to_array
from . import activation, arithmetic, conv, normalization, padding, pool, quantize, recurrent, resize, shape
from .attributes import node_attrs
from .context import ImportContext
from .folding import FOLDERS, fold, is_constant
from .qoperator import expand_qoperators
from ...graph.ir import BatchGuard, NameSet, unique_name
from .binding import BoundONNXModule
from .module import ONNXModule
from .structure import MAX_OPSET, MIN_OPSET, check_ops, check_text, input_shape_of, opset_of, sorted_nodes

# ONNX op type -> converter(ctx, node, attrs). Explicit converters take precedence over declared one-to-one forms.
CONVERTERS = {**activation.declared_forms(), **conv.CONVERTERS, **pool.CONVERTERS, **padding.CONVERTERS,
              **normalization.CONVERTERS, **activation.CONVERTERS, **arithmetic.CONVERTERS, **shape.CONVERTERS,
              **resize.CONVERTERS, **recurrent.CONVERTERS, **quantize.CONVERTERS}

IMPORTED_OPS = tuple(sorted(CONVERTERS))
MULTI_OUTPUT = frozenset(recurrent.CONVERTERS)  # ops whose first output may be left out (only Y_h read, say)
CONSTANT_ONLY_OPS = tuple(sorted(set(FOLDERS) - set(CONVERTERS)))

__all__ = ["CONSTANT_ONLY_OPS", "IMPORTED_OPS", "MAX_OPSET", "MIN_OPSET", "BoundONNXModule", "ONNXModule", "load",
           "onnx_to_graph"]


def _input_shapes(real_inputs, input_shape):
    """name -> override shape (or None) from load's `input_shape`: one shape, or a dict by input name."""
    if input_shape is None:
        return {}
    if isinstance(input_shape, dict):
        unknown = sorted(set(input_shape) - {v.name for v in real_inputs})
        if unknown:
            raise ValueError(f"input_shape: expected names of the model's inputs (got {unknown})")
        return dict(input_shape)
    if len(real_inputs) != 1:
        raise ValueError(f"input_shape: expected a model with 1 input (got {len(real_inputs)} inputs); pass a dict "
                         f"by input name")
    if not isinstance(input_shape, (tuple, list)):
        raise ValueError(f"input_shape: expected a tuple of ints (got {input_shape!r})")
    return {real_inputs[0].name: tuple(input_shape)}


def onnx_to_graph(proto, folder=None, input_shape=None, constants=None):
    """Convert a parsed ModelProto into a Graph (see `load`); returns (graph, opset).

    A model with a dynamic batch is imported at batch 1 (or `input_shape`'s); every Shape folds to constants of that
    batch. So that no other batch gives a silent wrong result, the model is converted a second time at the next
    batch size: where anything but the values' shapes differs (a folded value that depends on the batch reaches a
    node, an attribute or a param; a converter decided otherwise), or the second conversion fails, the graph is
    specialised to its batch: a guard node on each dynamic-batch input refuses another batch at run time (eager,
    compiled), naming the node that froze it (`_specialise`).

    Args:
        constants: optional graph input name -> numpy array: inputs bound to these values (imported as constants,
            e.g. the shapes, axes or indices an ONNX backend test feeds at run time).
    """
    opset = opset_of(proto)
    g = proto.graph
    check_text(g)
    if len(g.sparse_initializer):
        raise ValueError("expected dense initializers (got sparse ones)")
    consts = {}
    for init in g.initializer:
        if init.name in consts:
            raise ValueError(f"initializer '{init.name}' is defined more than once")
        array = tensor_to_array(init, folder, f"initializer '{init.name}'")
        if init.data_type in FLOAT_TYPES:
            array = array.astype(np.float32)  # float16 / float64 weights: computed in float32 by convcore
        consts[init.name] = array
    for name, array in (constants or {}).items():
        if name not in {v.name for v in g.input}:
            raise ValueError(f"constants: '{name}' is not an input of the model")
        array = np.asarray(array)
        consts[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    g = expand_qoperators(g, consts)  # onnxruntime's QOperator format as the QDQ nodes it means
    real_inputs = [v for v in g.input if v.name not in consts]
    names = [v.name for v in real_inputs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"graph input(s) {', '.join(map(repr, twice))}: declared more than once")
    shapes = _input_shapes(real_inputs, input_shape)
    declared = {}
    for value in real_inputs:
        declared[value.name] = input_shape_of(value, shapes.get(value.name))
        check_size(declared[value.name], f"input '{value.name}'")  # the tensor bound, as on every value
    order = sorted_nodes(g, set(consts) | {v.name for v in real_inputs})
    check_ops(order, consts, CONVERTERS)
    ctx, records = _convert(g, folder, opset, consts, declared, order)
    dynamic = [v.name for v in real_inputs if declared[v.name] and _dynamic_batch(v)]
    if dynamic:
        other = {name: (shape[0] + 1, *shape[1:]) if name in dynamic else shape for name, shape in declared.items()}
        try:
            other_ctx, other_records = _convert(g, folder, opset, consts, other, order)
        except ValueError as exc:
            _specialise(ctx.graph, dynamic, f"importing it at batch {other[dynamic[0]][0]} fails ({exc})")
        else:
            reason = _batch_dependence(order, records, other_records, ctx, other_ctx, g)
            if reason is not None:
                _specialise(ctx.graph, dynamic, reason)
    graph = ctx.graph
    graph.validate()
    return graph, opset


def _convert(g, folder, opset, consts, input_shapes, order):
    """One conversion of the ONNX graph at `input_shapes` (name -> shape of every real input). Returns the context
    (its `graph`) and one record per node of `order` (then one for the graph outputs): what the node added to the
    graph, to compare conversions at two batch sizes (`_batch_dependence`)."""
    ctx = ImportContext(g, folder, opset)
    ctx.taken.update(i.name for i in g.initializer)
    ctx.taken.update(v.name for v in g.input)
    ctx.taken.update(o for n in g.node for o in n.output)
    ctx.consts.update(consts)
    for name, dims in input_shapes.items():
        ctx.graph.add_input(name, dims)
        ctx.values[name] = name
    known = lambda name: ctx.static_shape(name) is not None  # noqa: E731
    records, mark = [], [0, 0]

    def record(outputs, where=None):  # linear in all: only the nodes and params added since the last record
        nodes = ctx.graph.nodes[mark[0]:]
        params = list(itertools.islice(reversed(ctx.graph.params), len(ctx.graph.params) - mark[1]))[::-1]
        mark[:] = len(ctx.graph.nodes), len(ctx.graph.params)
        if where is None:  # where each output went: a graph value, a pending pad, a folded constant
            where = tuple(("value", ctx.values[o]) if o in ctx.values else
                          ("pad", repr(ctx.pending_pads[o][1:])) if o in ctx.pending_pads else
                          ("const",) if o in ctx.consts else None for o in outputs)
        records.append((tuple((n.op, n.name, tuple(n.inputs), tuple(n.outputs), repr(n.attrs)) for n in nodes),
                        where, tuple((name, ctx.graph.params[name]) for name in params)))

    for node in order:
        if not node.name:
            node.name = next((o for o in node.output if o), node.op_type)
        if not any(node.output) or not node.output[0] and node.op_type not in MULTI_OUTPUT:
            raise ValueError(f"node '{node.name}' ({node.op_type}): expected an output (got none)")
        try:
            if is_constant(node, ctx.consts, known):
                fold(ctx, node, node_attrs(node, ctx))
            elif not node.input or not node.input[0]:
                raise ValueError(f"node '{node.name}' ({node.op_type}): expected a data input (got none)")
            else:
                CONVERTERS[node.op_type](ctx, node, node_attrs(node, ctx))
        except (KeyError, IndexError, TypeError, AttributeError, OverflowError, ZeroDivisionError) as exc:
            # a required attribute or input missing, or one of the wrong kind: a malformed node
            raise ValueError(f"node '{node.name}' ({node.op_type}): malformed ({type(exc).__name__}: {exc})") from None
        record(node.output)
    for out in g.output:
        if out.name in ctx.consts and ctx.consts[out.name].dtype.kind != "f":
            raise ValueError(f"graph output '{out.name}': expected a float tensor (got a constant of "
                             f"{ctx.consts[out.name].dtype}: convcore computes float32 only)")
        value = ctx.tensor(out.name, SimpleNamespace(name=f"output {out.name}", op_type="output"))
        if value in ctx.masks:
            raise ValueError(f"graph output '{out.name}': expected a float tensor (got a bool one: convcore computes "
                             f"float32 only)")
        if value in ctx.graph.inputs or value in ctx.graph.params or value in ctx.graph.outputs:
            # an output that no node computes (or one already listed): an identity names it
            value = ctx.emit("identity", f"{out.name}.identity", [value], {}, ctx.fresh(out.name))
        ctx.graph.outputs.append(value)
    record([], tuple(ctx.graph.outputs))
    graph = ctx.graph
    used = {i for n in graph.nodes for i in n.inputs if i} | set(graph.outputs)
    for name in [k for k in graph.params if k not in used]:  # e.g. a weight replaced by a derived one
        del graph.params[name], graph.values[name]
    return ctx, records


def _dynamic_batch(value):
    """Whether graph input `value` declares no fixed batch size (a symbolic or unknown first dim, or no shape)."""
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return True
    return len(t.shape.dim) > 0 and not (t.shape.dim[0].HasField("dim_value") and t.shape.dim[0].dim_value > 0)


def _same_record(a, b):
    if len(a) != len(b) or a[:2] != b[:2] or len(a[2]) != len(b[2]):
        return False
    for (name_a, x), (name_b, y) in zip(a[2], b[2]):
        if name_a != name_b or not (x is y or (x.shape == y.shape and x.dtype == y.dtype and
                                               np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))):
            return False
    return True


def _batch_dependence(order, records, other_records, ctx, other_ctx, g):
    """None when the two conversions (at two batch sizes) agree on everything but shapes; else which node made them
    differ, and the Shape / Size whose folded value it reads, when there is one."""
    for i, (a, b) in enumerate(zip(records, other_records)):
        if _same_record(a, b):
            continue
        if i >= len(order):
            return "the graph outputs were converted for that batch size"
        node = order[i]
        where = f"node '{node.name}' ({node.op_type})"
        source = _batch_source(node, ctx, other_ctx, g)
        if source is None:
            return f"{where} was converted for that batch size"
        return f"{where} reads a value computed at import from the batch size (by node '{source.name}' " \
               f"({source.op_type}))"
    return None


def _batch_source(node, ctx, other_ctx, g):
    """The first node (Shape, Size) whose folded output differs between the two conversions that `node` reads,
    following folded values back; None when `node` reads none."""
    producer = {o: n for n in g.node for o in n.output if o}
    stack, seen, found = [node], set(), []
    while stack:
        current = stack.pop()
        for name in current.input:
            if not name or name in seen or name not in ctx.consts or name not in other_ctx.consts:
                continue
            seen.add(name)
            x, y = ctx.consts[name], other_ctx.consts[name]
            if x.shape == y.shape and np.array_equal(x, y):
                continue
            if name in producer:
                found.append(producer[name])
                stack.append(producer[name])
    roots = [n for n in found if n.op_type in ("Shape", "Size")]
    return (roots or found or [None])[0]


def _specialise(graph, inputs, reason):
    """Guard each input in `inputs` with a reshape to its own shape (a view) that refuses any other batch: the graph
    computes the model at its imported batch only (see `convcore.graph.ir.BatchGuard`). Its other readers read the
    guard's output."""
    taken = NameSet(set(graph.values))
    for name in inputs:
        shape = tuple(graph.shapes[name])
        guarded = unique_name(f"{name}.batch{shape[0]}", taken)
        node = graph.add_node("reshape", f"{name}.batch_guard", [name], guarded, {"shape": shape})
        graph.nodes.pop()
        for other in graph.nodes:
            other.inputs = [guarded if i == name else i for i in other.inputs]
        graph.outputs = [guarded if o == name else o for o in graph.outputs]
        node.guard = BatchGuard(name, shape, reason)
        graph.nodes.insert(0, node)


def load(source: Union[str, os.PathLike[str], bytes],
         input_shape: Union[Sequence[int], Mapping[str, Sequence[int]], None] = None,
         constants: Optional[Mapping[str, ArrayLike]] = None) -> Union[ONNXModule, BoundONNXModule]:
    """Load an ONNX model as a convcore module.

    Reads the file without trusting it (see `convcore.onnx._reader`): corrupt or truncated files, external data
    outside the model's folder, tensors whose declared size does not match their data, cycles, undefined values,
    non-UTF-8 text and non-float inputs are ValueErrors; so is every node whose attributes or input ranks its op
    refuses, naming the node. Every unsupported op type is listed, with its node names, in one ValueError.

    Supported: ai.onnx opsets `MIN_OPSET` to `MAX_OPSET` (the newest the installed onnx defines), the ops in
    `IMPORTED_OPS` plus constant folding of `CONSTANT_ONLY_OPS`; 1-D and 2-D windows (convolutions, pooling), any
    rank elsewhere. The op table with each op's notes is docs/onnx.md.

    Args:
        source: a file path or the model's bytes.
        input_shape: optional full input shape for models whose non-batch dims are dynamic: one shape, or a dict by
            input name for a model with several inputs.
        constants: optional dict binding graph inputs to arrays (integer inputs such as shapes or indices).

    Returns:
        An `ONNXModule` (a `convcore.nn.Module`) in eval mode; for a model with inputs convcore needs as constants
        (integer shapes, axes, pads, ...) and `constants` does not give, a `BoundONNXModule`, which takes them with
        the other inputs at each call (`convcore.onnx.importer.binding`).

    Example:
        >>> net = convcore.onnx.load("resnet18.onnx")
        >>> net(np.zeros((2, 3, 224, 224), np.float32)).shape
        (2, 1000)
    """
    proto, folder = read_model(source)
    bound = BoundONNXModule(proto, folder, input_shape, constants)
    if bound.bound:
        return bound.eval()
    graph, opset = onnx_to_graph(proto, folder, input_shape, constants)
    return ONNXModule(graph, opset).eval()
