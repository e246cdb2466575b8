"""`export`: a convcore model (traced into a `Graph`) -> an ONNX `ModelProto`.

Each Graph node becomes one or a few ONNX nodes, written by its op's declared ONNX lowering (`convcore.ops`), that
compute exactly the op's (torch's) semantics: resolved convolution padding becomes explicit pads, torch's pooling
`ceil_mode` becomes explicit end padding (so no runtime's own ceil rule is relied on), SiLU is Sigmoid + Mul, an
even-sized LRN is written out with its torch window. Value and node names are the graph's (module paths); extra
values get a suffix ("fc.matmul").
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import _core
from ..graph import Graph, Node, trace
from ..graph.ir import NameSet, unique_name
from ..graph.passes import fold_batchnorm as _fold_batchnorm
from ..nn import Module
from ..ops import OPS
from ..graph.quantized import quantized_weights
from .importer.module import ONNXModule

MIN_OPSET, MAX_OPSET = 13, 21
DEFAULT_INPUT_SHAPE = (1, 3, 224, 224)
# A protobuf message cannot exceed 2 GiB: weights beyond this many bytes go to an external data file beside the model.
EXTERNAL_DATA_BYTES = 2**31 - 2**26


class _Emitter:
    """Collects ONNX nodes and initializers for one graph; the ops' ONNX lowerings (`Op.onnx`) write through it."""

    def __init__(self, graph, opset):
        self.graph, self.opset = graph, opset
        self.nodes, self.initializers = [], []
        self.emitted = set()  # graph params already written as initializers
        self.taken = NameSet(set(graph.params) | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs})
        self.node_names = NameSet()  # ONNX node names must be unique (onnxruntime refuses a model otherwise)
        self.int8 = quantized_weights(graph)  # weights an int8 Plan runs: int8 initializers + DequantizeLinear

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
        if name in self.int8 and name not in self.emitted:
            self.emitted.add(name)
            q, scale = self.int8[name]
            inputs = [self.const(f"{name}.int8", q, np.int8), self.const(f"{name}.scale", scale),
                      self.const(f"{name}.zero_point", np.zeros(len(scale)), np.int8)]
            self.node("DequantizeLinear", inputs, name, f"{name}.dequantize", axis=0)
        if name in self.graph.params and name not in self.emitted:
            self.emitted.add(name)
            array = np.ascontiguousarray(self.graph.params[name], np.float32)
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op_type, inputs, output, name, **attrs):
        """Append ONNX node `op_type` computing `output` from `inputs` (graph params among them become initializers);
        returns `output`. The node is named `name`, or `name_1`, ... when another node has that name already
        (graph nodes may share a name, e.g. an imported node that became two ops, and a lowering's extra nodes are
        named after their graph node)."""
        inputs = [self.value(i) if i else i for i in inputs]
        name = unique_name(name or op_type, self.node_names)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output

    def node_outputs(self, op_type, inputs, outputs, name, **attrs):
        """`node` for an op with several output slots: `outputs` lists them ("" for one not computed); returns the
        last."""
        inputs = [self.value(i) if i else i for i in inputs]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=unique_name(name or op_type, self.node_names),
                                           **attrs))
        return outputs[-1]

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
    if not graph.inputs or any(not graph.shapes[n] for n in graph.inputs):
        return {name: list(graph.shapes[name]) for name in names}
    batch = graph.shapes[graph.inputs[0]][0]
    try:
        other = graph.at_batch(batch + 1)
    except (ValueError, TypeError):  # a graph that cannot follow another batch size (e.g. inputs that broadcast)
        return {name: list(graph.shapes[name]) for name in names}
    return {name: ["N" if (a, b) == (batch, batch + 1) else None if a != b else a
                   for a, b in zip(graph.shapes[name], other.shapes[name])] for name in names}


def _graph_of(model, input_shape):
    """The Graph to export: a Graph as it is; an imported model's own graph (its current weights; re-inferred when
    another input shape is given); any other module traced at `input_shape` (default 1x3x224x224)."""
    if isinstance(model, Graph):
        return model
    if not isinstance(model, ONNXModule):
        return trace(model, tuple(DEFAULT_INPUT_SHAPE if input_shape is None else input_shape))
    g = model.graph
    values = {n: g.values[n] for n in g.inputs}
    if input_shape is not None:
        if len(g.inputs) != 1:
            raise ValueError(f"input_shape: expected None for a model with {len(g.inputs)} inputs (their imported "
                             f"shapes are exported)")
        values = {g.inputs[0]: type(values[g.inputs[0]]).activation(tuple(input_shape))}
    params = {name: model._parameters.get(name, array) for name, array in g.params.items()}
    nodes = [Node(n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in g.nodes]
    graph = Graph(nodes, g.inputs, g.outputs, params, name=g.name, values=values)
    graph.infer_shapes()
    return graph


def _check_and_save(proto, path, external_data):
    """check_model(full_check) and strict shape inference, then save; weights go to `<file>.data` beside the model
    when asked or when they would take the model past protobuf's 2 GiB."""
    weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    if external_data is None:
        external_data = weight_bytes > EXTERNAL_DATA_BYTES
    if not external_data:
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        if path is not None:
            onnx.save_model(proto, os.fspath(path))
        return proto
    if path is None:
        raise ValueError(f"path: expected a file path for a model with {weight_bytes} bytes of weights (written with "
                         f"external data: a single ONNX file holds at most 2 GiB)")
    path = os.fspath(path)
    location = os.path.basename(path) + ".data"
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=1024)
    onnx.checker.check_model(path, full_check=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as folder:
        onnx.shape_inference.infer_shapes_path(path, os.path.join(folder, "inferred.onnx"), check_type=True,
                                               strict_mode=True)
    return proto


def export(model: Union[Module, Graph], path: Union[str, os.PathLike[str], None] = None,
           input_shape: Optional[Sequence[int]] = None, opset: int = 17, dynamic_batch: bool = True,
           fold_batchnorm: bool = False, external_data: Optional[bool] = None) -> onnx.ModelProto:
    """Export a model (or a traced Graph) to ONNX.

    Runs `onnx.checker.check_model(full_check=True)` and strict shape inference on the result before returning it.

    Args:
        model: a `convcore.nn.Module` (traced with `convcore.trace(model, input_shape)`), a model imported with
            `convcore.onnx.load` (its graph is exported as imported, with its current weights) or a `Graph`.
        path: optional file path to save the model to (required with external data).
        input_shape: the input shape (N, C, H, W) to trace at; None takes an imported model's own input shapes (and
            1x3x224x224 for other modules); ignored for a Graph.
        opset: ONNX opset, 13 to 21.
        dynamic_batch: name the batch dimension "N" (any batch size) instead of fixing it, where the graph follows
            the batch size (a graph that cannot keeps its shapes).
        fold_batchnorm: fold batch norms that follow a convolution into it (see `convcore.graph.passes`).
        external_data: write the weights to ``<path>.data`` beside the model; None (default) does so exactly when
            they exceed `EXTERNAL_DATA_BYTES` (a single protobuf file holds at most 2 GiB).

    Returns:
        The `onnx.ModelProto` (ir_version: the lowest that supports the opset; producer "convcore"); with external
        data its initializers refer to the data file.

    Example:
        >>> proto = convcore.onnx.export(resnet18(), "resnet18.onnx", input_shape=(1, 3, 224, 224))
        >>> [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][:1]
        ['N']
    """
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"expected opset between {MIN_OPSET} and {MAX_OPSET} (got {opset!r})")
    opset = int(opset)
    graph = _graph_of(model, input_shape)
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
    return _check_and_save(proto, path, external_data)
