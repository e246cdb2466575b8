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
from onnx import helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .importer.binding import CONSTANT_SLOTS, BoundONNXModule, bound_inputs
from .importer.structure import MAX_OPSET

class ConvcoreRep(BackendRep):
    """A prepared model: `run(inputs)` returns the outputs as a tuple of float32 arrays."""

    def __init__(self, model, folder=None):
        super().__init__()
        self.model = model
        self.module = BoundONNXModule(model, folder)
        self.input_names = self.module.input_names
        if not self.module.bound:  # static inputs: import now, so a refusal surfaces at prepare
            try:
                self.module.specialize({})
            except ValueError as exc:
                if "static shape" not in str(exc):  # dynamic input dims: imported at run with the fed shapes
                    raise

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
        result = self.module(**arrays)
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

__all__ = ["CONSTANT_SLOTS", "ConvcoreBackend", "ConvcoreRep", "bound_inputs", "is_compatible", "prepare",
           "run_model", "run_node", "supports_device"]
