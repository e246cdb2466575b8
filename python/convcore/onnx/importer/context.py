"""The state of one import: ONNX value names -> graph values or constants, and the Graph being built."""

import numpy as np

from ..._validate import check_size
from ...graph import Graph
from ...graph.ir import NameSet, unique_name


class ImportContext:
    """ONNX values -> graph values (or constants), the Graph being built, and what converters need to know.

    Attributes:
        opset: the model's ai.onnx opset.
        folder: the model file's folder (external data), or None.
        graph: the Graph being built.
        consts: ONNX value -> numpy constant (initializers, Constant nodes, folded constant expressions, inputs
            bound to values).
        values: ONNX value -> graph value name.
        pending_pads: ONNX value -> (graph value, (top, bottom, left, right), fill value) of a zero or -inf Pad of H
            and W left for its consumer (a convolution or pooling) to fold.
        producer: graph value -> the Node computing it.
        uses: ONNX value -> how many node inputs and graph outputs read it.
    """

    def __init__(self, proto_graph, folder, opset):
        self.opset, self.folder = opset, folder
        self.graph = Graph(name=proto_graph.name or "onnx")
        self.consts = {}
        self.values = {}
        self.pending_pads = {}
        self.param_of = {}  # id(const array) -> (param name, array): a constant used twice is one param
        self.producer = {}
        self.taken = NameSet()
        self.uses = {}
        self.folded_elements = 0  # elements of the constants folding has computed (bounded: see folding)
        self.masks = set()  # graph values holding an ONNX bool tensor as a float mask (1.0 / 0.0)
        for node in proto_graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
        for out in proto_graph.output:
            self.uses[out.name] = self.uses.get(out.name, 0) + 1

    def fresh(self, base):
        """A new value name from `base`."""
        return unique_name(base, self.taken)

    def const(self, name):
        """The constant behind ONNX value `name`, or None when it is computed at run time."""
        return self.consts.get(name) if name else None

    def param(self, array, base, exact=False):
        """A graph param holding float `array` (one param per constant array); returns its name.

        `exact`: `base` is the ONNX name of this very constant, so the param takes it unchanged.
        """
        if id(array) in self.param_of:
            return self.param_of[id(array)][0]
        name = base if exact and base not in self.graph.params and base not in self.graph.values else \
            self.fresh(base)
        self.graph.add_param(name, np.ascontiguousarray(array, np.float32))
        self.param_of[id(array)] = (name, array)  # holding the array keeps its id unique
        return name

    def constant(self, array, base):
        """A new float32 param holding `array` (a value the importer derived); returns its name."""
        return self.param(np.asarray(array, np.float32), base)

    def tensor(self, name, node):
        """The graph value for ONNX value `name` used as a tensor argument (constants become params)."""
        if name in self.pending_pads:
            source, pads, fill = self.pending_pads.pop(name)
            pads4 = (0, 0, 0, 0, *pads)
            self.values[name] = self.emit("pad", name, [source], {"pads": pads4, "value": fill}, self.fresh(name))
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            array = self.consts[name]
            if array.dtype.kind != "f":
                raise ValueError(f"node '{node.name}' ({getattr(node, 'op_type', '')}): expected a float tensor for "
                                 f"'{name}' (got {array.dtype})")
            return self.param(array, name, exact=True)
        raise ValueError(f"node '{node.name}': input '{name}' is not defined")

    def static_shape(self, name):
        """The shape of ONNX value `name` (a graph value, a constant or a pending pad); None if unknown."""
        if name in self.consts:
            return tuple(self.consts[name].shape)
        if name in self.pending_pads:
            source, (t, b, l, r), _ = self.pending_pads[name]
            n, c, h, w = self.shape(source)
            return (n, c, h + t + b, w + l + r)
        if name in self.values:
            return self.shape(self.values[name])
        return None

    def shape(self, value):
        """The shape of graph value `value`."""
        return self.graph.values[value].shape

    def emit(self, op, name, inputs, attrs, output=None):
        """Append a node calling declared op `op` (its attributes normalised by the op's rule); its output value is
        `output` (an ONNX name) or a fresh one. Returns the output value."""
        out = output if output is not None else self.fresh(f"{name}.{op}")
        try:
            self.producer[out] = self.graph.add_node(op, name, inputs, out, attrs)
            # The tensor bound on every value (nothing is allocated yet): a Conv with huge pads would otherwise load
            # and have compile / run allocate its output (and a plan arena) of any size.
            check_size(self.graph.values[out].shape, f"{op} output '{out}'")
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"node '{name}': {exc}") from None
        return out

    def define(self, node, op, inputs, attrs):
        """Emit `op` as ONNX `node`'s own output value."""
        self.values[node.output[0]] = self.emit(op, node.name, inputs, attrs, node.output[0])

    def alias(self, node, value):
        """ONNX `node`'s output is graph value `value` (no computation)."""
        self.values[node.output[0]] = value
