"""`convcore.onnx.backend`: the ONNX Backend API (`onnx.backend.base`), so that `onnx.backend.test.BackendTest`
and other ONNX tooling can run models with convcore.

    >>> import convcore.onnx.backend as backend
    >>> rep = backend.prepare(model_proto)          # or backend.run_model(model_proto, [x])
    >>> (y,) = rep.run([x])

Models run eagerly through `convcore.onnx.load` (`Graph.run`). Inputs that feed what convcore needs as constants
-- integer tensors (shapes, axes, pads, indices) and float tensors in such places (Resize's scales, Pad's value,
Range's bounds) -- are bound to the values fed at run time: the model is imported once per distinct set of those
values and input shapes (a specialisation, cached on the rep). Only the CPU device exists.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .importer import ONNXModule, onnx_to_graph
from .importer.structure import MAX_OPSET

# ONNX op type -> input positions convcore needs as constants (from the opset given, if a pair).
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


def bound_inputs(model):
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


class ConvcoreRep(BackendRep):
    """A prepared model: `run(inputs)` returns the outputs as a tuple of float32 arrays."""

    def __init__(self, model, folder=None):
        super().__init__()
        self.model = model
        self.folder = folder
        initializers = {i.name for i in model.graph.initializer}
        self.input_names = [v.name for v in model.graph.input if v.name not in initializers]
        self.bound = bound_inputs(model)
        self._modules = {}
        if not self.bound:  # static inputs: import now, so a refusal surfaces at prepare
            try:
                self._module({}, None)
            except ValueError as exc:
                if "static shape" not in str(exc):  # dynamic input dims: imported at run with the fed shapes
                    raise

    def _module(self, constants, shapes):
        key = (tuple((n, a.dtype.str, a.shape, a.tobytes()) for n, a in sorted(constants.items())),
               None if shapes is None else tuple(sorted(shapes.items())))
        if key not in self._modules:
            graph, opset = onnx_to_graph(self.model, self.folder, shapes, constants)
            self._modules[key] = ONNXModule(graph, opset).eval()
        return self._modules[key]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            arrays = {name: np.asarray(inputs[name]) for name in self.input_names if name in inputs}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            arrays = {name: np.asarray(x) for name, x in zip(self.input_names, inputs)}
        missing = [name for name in self.input_names if name not in arrays]
        if missing:
            raise ValueError(f"expected values for the inputs {missing}")
        constants = {name: arrays[name] for name in self.bound}
        fed = {name: a for name, a in arrays.items() if name not in constants}
        for name, a in fed.items():
            if a.dtype != np.float32:
                raise TypeError(f"input '{name}': expected float32 (got {a.dtype})")
        module = self._module(constants, {name: tuple(a.shape) for name, a in fed.items()})
        result = module(*[fed[name] for name in module.graph.inputs])
        return tuple(np.asarray(r, np.float32) for r in (result if isinstance(result, tuple) else (result,)))


class ConvcoreBackend(Backend):
    """convcore as an ONNX backend (CPU only)."""

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        if not cls.supports_device(device):
            raise ValueError(f"expected device 'CPU' (got {device!r})")
        if isinstance(model, (bytes, bytearray)):
            proto = onnx.ModelProto()
            proto.ParseFromString(bytes(model))
            model = proto
        super().prepare(model, device, **kwargs)
        return ConvcoreRep(model, kwargs.get("folder"))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Run one NodeProto on `inputs` (a list in node.input order, or a dict by name)."""
        names = [n for n in node.input if n]
        values = inputs if isinstance(inputs, dict) else dict(zip(names, inputs))
        graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.asarray(values[n]).dtype),
                                                      np.asarray(values[n]).shape) for n in names]
        graph_outputs = [onnx.ValueInfoProto(name=n) for n in node.output if n]  # types follow from the inputs
        opset = kwargs.pop("opset_version", MAX_OPSET)
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        if not cls.supports_device(device):
            raise ValueError(f"expected device 'CPU' (got {device!r})")
        return ConvcoreRep(model).run([values[n] for n in names])

    @classmethod
    def supports_device(cls, device):
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:  # an unknown device string
            return False


prepare = ConvcoreBackend.prepare
run_model = ConvcoreBackend.run_model
run_node = ConvcoreBackend.run_node
supports_device = ConvcoreBackend.supports_device
is_compatible = ConvcoreBackend.is_compatible

__all__ = ["ConvcoreBackend", "ConvcoreRep", "bound_inputs", "is_compatible", "prepare", "run_model", "run_node",
           "supports_device"]
