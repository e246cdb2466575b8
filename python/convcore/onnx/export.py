"""`export`: a convcore model (traced into a `Graph`) -> an ONNX `ModelProto`.

Each Graph node becomes one or a few ONNX nodes, written by its op's declared ONNX lowering (`convcore.ops`), that
compute exactly the op's (torch's) semantics: resolved convolution padding becomes explicit pads, torch's pooling
`ceil_mode` becomes explicit end padding (so no runtime's own ceil rule is relied on), SiLU is Sigmoid + Mul, an
even-sized LRN is written out with its torch window. Value and node names are the graph's (module paths); extra
values get a suffix ("fc.matmul").
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import _core
from ..graph import Graph, Node, trace
from ..graph.ir import unique_name
from ..graph.passes import fold_batchnorm as _fold_batchnorm
from ..ops import OPS

MIN_OPSET, MAX_OPSET = 13, 21


class _Emitter:
    """Collects ONNX nodes and initializers for one graph; the ops' ONNX lowerings (`Op.onnx`) write through it."""

    def __init__(self, graph, opset):
        self.graph, self.opset = graph, opset
        self.nodes, self.initializers = [], []
        self.emitted = set()  # graph params already written as initializers
        self.taken = set(graph.params) | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs}

    def fresh(self, base):
        """A new value name from `base`."""
        return unique_name(base, self.taken)

    def shape(self, name):
        """The shape of graph value `name` (at the traced batch size)."""
        return self.graph.values[name].shape

    def param(self, name):
        """The array of graph parameter `name`."""
        return self.graph.params[name]

    def const(self, base, array, dtype=np.float32):
        """A new initializer holding `array`; returns its name."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def value(self, name):
        """An input value: graph params become initializers on first use."""
        if name in self.graph.params and name not in self.emitted:
            self.emitted.add(name)
            array = np.ascontiguousarray(self.graph.params[name], np.float32)
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op_type, inputs, output, name, **attrs):
        """Append ONNX node `op_type` computing `output` from `inputs`; returns `output`."""
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attrs))
        return output

    def axes_input_or_attr(self, op_type, x, axes, output, name, **attrs):
        """A Reduce* node: `axes` is an attribute before opset 18, an input from then on."""
        if self.opset >= 18:
            return self.node(op_type, [x, self.const(f"{name}.axes", axes, np.int64)], output, name, **attrs)
        return self.node(op_type, [x], output, name, axes=list(axes), **attrs)


EXPORTED_OPS = tuple(sorted(name for name, op in OPS.items() if op.onnx is not None))


def _symbolic_dims(graph, names, dynamic_batch):
    """Declared dims of the graph inputs / outputs `names`: ints, "N" for the batch, None for other dims that
    change with the batch (e.g. a flatten that merges it)."""
    if not dynamic_batch:
        return {name: list(graph.shapes[name]) for name in names}
    # Re-infer the shapes at another batch size: the dims that follow the batch are the dynamic ones.
    batch = graph.shapes[graph.inputs[0]][0]
    nodes = [Node(n.op, n.name, n.inputs, n.outputs, n.attrs) for n in graph.nodes]  # infer_shapes sets attrs
    other = Graph(nodes, graph.inputs, graph.outputs, graph.params,
                  {n: (graph.shapes[n][0] + 1, *graph.shapes[n][1:]) for n in graph.inputs}, graph.name)
    other.infer_shapes()
    return {name: ["N" if (a, b) == (batch, batch + 1) else None if a != b else a
                   for a, b in zip(graph.shapes[name], other.shapes[name])] for name in names}


def export(model, path=None, input_shape=(1, 3, 224, 224), opset=17, dynamic_batch=True, fold_batchnorm=False):
    """Export a model (or a traced Graph) to ONNX.

    Runs `onnx.checker.check_model(full_check=True)` and strict shape inference on the result before returning it.

    Args:
        model: a `convcore.nn.Module` (traced with `convcore.trace(model, input_shape)`) or a `Graph`.
        path: optional file path to save the model to.
        input_shape: the traced input shape (N, C, H, W); ignored for a Graph.
        opset: ONNX opset, 13 to 21.
        dynamic_batch: name the batch dimension "N" (any batch size) instead of fixing it.
        fold_batchnorm: fold batch norms that follow a convolution into it (see `convcore.graph.passes`).

    Returns:
        The `onnx.ModelProto` (ir_version: the lowest that supports the opset; producer "convcore").

    Example:
        >>> proto = convcore.onnx.export(resnet18(), "resnet18.onnx", input_shape=(1, 3, 224, 224))
        >>> [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][:1]
        ['N']
    """
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"expected opset between {MIN_OPSET} and {MAX_OPSET} (got {opset!r})")
    opset = int(opset)
    graph = model if isinstance(model, Graph) else trace(model, tuple(input_shape))
    if fold_batchnorm:
        graph = _fold_batchnorm(graph)
    graph.validate()
    unknown = sorted({n.op for n in graph.nodes if OPS[n.op].onnx is None})
    if unknown:
        raise ValueError(f"expected ops with an ONNX form (got {', '.join(unknown)})")
    em = _Emitter(graph, opset)
    for node in graph.nodes:
        OPS[node.op].onnx(em, node)
    for name in graph.outputs:  # an output that no node computes (an input or a param) needs a node to name it
        if name in graph.inputs or name in graph.params:
            raise ValueError(f"graph output '{name}' is not computed by any node")
    dims = _symbolic_dims(graph, graph.inputs + graph.outputs, dynamic_batch)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims[n]) for n in graph.inputs]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims[n]) for n in graph.outputs]
    onnx_graph = helper.make_graph(em.nodes, graph.name, inputs, outputs, em.initializers)
    opset_ids = [helper.make_opsetid("", opset)]
    proto = helper.make_model(onnx_graph, opset_imports=opset_ids, producer_name="convcore",
                              producer_version=_core.config()["version"])
    proto.ir_version = helper.find_min_ir_version_for(opset_ids)
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    if path is not None:
        onnx.save_model(proto, os.fspath(path))
    return proto
