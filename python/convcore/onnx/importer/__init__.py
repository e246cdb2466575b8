"""`load`: an ONNX CNN -> a `Graph` of declared convcore ops, wrapped in a `convcore.nn.Module`.

Covers the CNN subset written by `torch.onnx.export`, tf2onnx and `convcore.onnx.export`, opsets 9 to 21, NCHW.
Weights must be constants (initializers or Constant nodes); float16 / float64 weights are converted to float32 (the
precision convcore computes in), integer tensors are accepted only where ONNX expects integers (shapes, axes, pads).

One converter per ONNX op type, found by op family: `conv`, `pool`, `padding`, `normalization`, `activation`,
`arithmetic`, `shape`; ops declared with a one-to-one ONNX form (`convcore.ops.OnnxOp`) need none. `folding`
computes constant subgraphs, `structure` checks and orders the nodes, `context` holds the state of one import.
"""

from types import SimpleNamespace

import numpy as np

from .._reader import FLOAT_TYPES, read_model, tensor_to_array
from . import activation, arithmetic, conv, normalization, padding, pool, shape
from .attributes import node_attrs
from .context import ImportContext
from .folding import FOLDERS, fold, is_constant
from .module import ONNXModule
from .structure import MAX_OPSET, MIN_OPSET, check_ops, input_shape_of, opset_of, sorted_nodes

# ONNX op type -> converter(ctx, node, attrs). Explicit converters take precedence over declared one-to-one forms.
CONVERTERS = {**activation.declared_forms(), **conv.CONVERTERS, **pool.CONVERTERS, **padding.CONVERTERS,
              **normalization.CONVERTERS, **activation.CONVERTERS, **arithmetic.CONVERTERS, **shape.CONVERTERS}

IMPORTED_OPS = tuple(sorted(CONVERTERS))
CONSTANT_ONLY_OPS = tuple(sorted(set(FOLDERS) - set(CONVERTERS)))

__all__ = ["CONSTANT_ONLY_OPS", "IMPORTED_OPS", "MAX_OPSET", "MIN_OPSET", "ONNXModule", "load", "onnx_to_graph"]


def onnx_to_graph(proto, folder=None, input_shape=None):
    """Convert a parsed ModelProto into a Graph (see `load`); returns (graph, opset)."""
    opset = opset_of(proto)
    g = proto.graph
    if len(g.sparse_initializer):
        raise ValueError("expected dense initializers (got sparse ones)")
    ctx = ImportContext(g, folder, opset)
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
        raise ValueError("expected a graph input that is not an initializer (got none)")
    if input_shape is not None and len(real_inputs) != 1:
        raise ValueError(f"input_shape: expected a model with 1 input (got {len(real_inputs)} inputs)")
    for value in real_inputs:
        ctx.graph.add_input(value.name, input_shape_of(value, input_shape))
        ctx.values[value.name] = value.name
    order = sorted_nodes(g, set(ctx.consts) | {v.name for v in real_inputs})
    check_ops(order, ctx.consts, CONVERTERS)
    for node in order:
        if not node.name:
            node.name = node.output[0] if node.output else node.op_type
        if not node.output or not node.output[0]:
            raise ValueError(f"node '{node.name}' ({node.op_type}): expected an output (got none)")
        try:
            if is_constant(node, ctx.consts):
                fold(ctx, node, node_attrs(node, ctx))
            elif not node.input or not node.input[0]:
                raise ValueError(f"node '{node.name}' ({node.op_type}): expected a data input (got none)")
            else:
                CONVERTERS[node.op_type](ctx, node, node_attrs(node, ctx))
        except (KeyError, IndexError, TypeError, AttributeError, OverflowError, ZeroDivisionError) as exc:
            # a required attribute or input missing, or one of the wrong kind: a malformed node
            raise ValueError(f"node '{node.name}' ({node.op_type}): malformed ({type(exc).__name__}: {exc})") from None
    for out in g.output:
        if out.name in ctx.consts:
            raise ValueError(f"graph output '{out.name}': expected a computed value (got a constant)")
        ctx.graph.outputs.append(ctx.tensor(out.name, SimpleNamespace(name=f"output {out.name}")))
    graph = ctx.graph
    used = {i for n in graph.nodes for i in n.inputs if i}
    for name in [k for k in graph.params if k not in used]:  # e.g. a weight replaced by a derived one
        del graph.params[name], graph.values[name]
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
