"""Graph inputs convcore needs as constants, bound when the model is called.

An ONNX input may carry what convcore computes at import: an integer tensor (a shape, axes, pads, indices) or a
float one feeding such a place (Resize's scales, Pad's value, Range's bounds). `BoundONNXModule` takes those
inputs with the others at each call and runs the model imported for their values (and the fed shapes): one import
per distinct set, the last `MAX_SPECIALIZATIONS` kept. `convcore.onnx.load` returns one for such a model, and the
ONNX backend (`convcore.onnx.backend`) runs every model through one.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from onnx import TensorProto

from ..._types import Outputs
from ...nn import Module
from .module import ONNXModule

# ONNX op type -> input positions convcore needs as constants.
CONSTANT_SLOTS = {
    "Reshape": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Resize": (1, 2, 3), "Upsample": (1,), "Split": (1,),
    "Squeeze": (1,), "Unsqueeze": (1,), "Tile": (1,), "Expand": (1,), "Gather": (1,), "Dropout": (1, 2),
    "ConstantOfShape": (0,), "Range": (0, 1, 2), "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,),
    "ReduceMin": (1,), "ReduceProd": (1,), "ReduceL1": (1,), "ReduceL2": (1,), "ReduceSumSquare": (1,),
    "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "OneHot": (1,), "TopK": (1,),
}
SHAPE_ONLY = {"Shape", "Size"}  # read only their input's (static) shape
INTEGER_TYPES = {TensorProto.INT64, TensorProto.INT32, TensorProto.INT16, TensorProto.INT8, TensorProto.UINT64,
                 TensorProto.UINT32, TensorProto.UINT16, TensorProto.UINT8, TensorProto.BOOL}
MAX_SPECIALIZATIONS = 8


def bound_inputs(model) -> list[str]:
    """The graph inputs a convcore import needs as constants: every integer or bool input and every float32 input
    from which a constant slot (see `CONSTANT_SLOTS`) is computed. ValueError for inputs of any other type (float16,
    float64, strings, sequences, optionals: convcore computes float32 tensors)."""
    g = model.graph
    initializers = {i.name for i in g.initializer}
    inputs = [v for v in g.input if v.name not in initializers]
    producer = {o: n for n in g.node for o in n.output if o}
    needed, stack = set(), []
    for node in g.node:
        for i in CONSTANT_SLOTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i]:
                stack.append(node.input[i])
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producer.get(name)
        if node is not None and node.op_type not in SHAPE_ONLY:
            stack.extend(i for i in node.input if i)
    bound = []
    for v in inputs:
        kind = v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else None
        if kind == TensorProto.FLOAT and v.name not in needed:
            continue
        if kind != TensorProto.FLOAT and kind not in INTEGER_TYPES:
            shown = TensorProto.DataType.Name(kind) if kind in TensorProto.DataType.values() else \
                v.type.WhichOneof("value") or "no type"
            raise ValueError(f"input '{v.name}': expected a float32 tensor, or an integer one bound as a constant "
                             f"(got {shown}: convcore computes float32 tensors only)")
        bound.append(v.name)
    return bound


class BoundONNXModule(Module):
    """An ONNX model some of whose inputs are bound as constants at each call (see the module docstring).

    Call it with one array per model input, in the model's order (`input_names`), or with keyword arguments by
    name; the float32 ones are computed on, the bound ones (`bound`) select the import. `specialize(...)` gives the
    `ONNXModule` for one set of bound values (for `convcore.compile`, which needs a fixed graph).

    Attributes:
        input_names: the model's inputs (initializers excluded), in order.
        bound: those bound at each call.
    """

    def __init__(self, proto, folder: Optional[str] = None,
                 input_shape: Union[Sequence[int], Mapping[str, Sequence[int]], None] = None,
                 constants: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        self._proto, self._folder, self._input_shape = proto, folder, input_shape
        self._given = {name: np.asarray(a) for name, a in (constants or {}).items()}
        initializers = {i.name for i in proto.graph.initializer}
        self.input_names = [v.name for v in proto.graph.input if v.name not in initializers]
        self.bound = [name for name in bound_inputs(proto) if name not in self._given]
        self._imports: OrderedDict[tuple, ONNXModule] = OrderedDict()

    def specialize(self, constants: Mapping[str, Any], shapes: Optional[Mapping[str, Sequence[int]]] = None
                   ) -> ONNXModule:
        """The model imported with the bound inputs set to `constants` (and the float inputs at `shapes`, or as
        declared / given at load), cached."""
        from . import onnx_to_graph

        missing = [name for name in self.bound if name not in constants]
        if missing:
            raise ValueError(f"expected values for the bound inputs {missing}")
        values = {**self._given, **{name: np.asarray(constants[name]) for name in self.bound}}
        key = (tuple((n, a.dtype.str, a.shape, a.tobytes()) for n, a in sorted(values.items())),
               None if shapes is None else tuple(sorted((n, tuple(s)) for n, s in shapes.items())))
        module = self._imports.pop(key, None)
        if module is None:
            graph, opset = onnx_to_graph(self._proto, self._folder, shapes or self._input_shape, values)
            module = ONNXModule(graph, opset).eval()
        self._imports[key] = module  # the most recent last
        while len(self._imports) > MAX_SPECIALIZATIONS:
            self._imports.popitem(last=False)
        return module

    def forward(self, *inputs: Any, **named: Any) -> Outputs:
        if inputs and named:
            raise TypeError("expected the inputs by position or by name, not both")
        if len(inputs) > len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} input array(s) {self.input_names} (got {len(inputs)})")
        arrays = dict(zip(self.input_names, inputs)) if inputs else dict(named)
        unknown = sorted(set(arrays) - set(self.input_names))
        if unknown:
            raise TypeError(f"unknown input(s) {unknown}; the model's inputs are {self.input_names}")
        missing = [name for name in self.input_names if name not in arrays and name not in self._given]
        if missing:
            raise TypeError(f"expected values for the inputs {missing}")
        constants = {name: np.asarray(arrays[name]) for name in self.bound}
        fed = {name: arrays[name] for name in self.input_names if name in arrays and name not in constants}
        for name, a in fed.items():
            if getattr(a, "dtype", None) != np.float32:
                raise TypeError(f"input '{name}': expected a float32 array (got "
                                f"{getattr(a, 'dtype', type(a).__name__)})")
        module = self.specialize(constants, {name: tuple(a.shape) for name, a in fed.items()})
        return module(*[fed[name] for name in module.graph.inputs])

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, bound at each call={self.bound}"
