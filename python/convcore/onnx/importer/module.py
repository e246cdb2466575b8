"""`ONNXModule`: an imported ONNX model as a `convcore.nn.Module` running its `Graph`."""

from __future__ import annotations

from ..._types import Array, Outputs
from ...graph import Graph
from ...nn import Module


class ONNXModule(Module):
    """A model imported from ONNX: a `convcore.nn.Module` that runs its `Graph` (`Graph.run`).

    Its parameters are the graph's constant tensors, by their ONNX initializer names (`state_dict()` keys such as
    'layer1.0.conv1.weight'); `load_state_dict` replaces them in place. It is callable on numpy arrays and traceable
    by `convcore.trace` (then nodes are named by op, parameters keep their names). `graph` holds the imported Graph
    with the ONNX node names.

    Attributes:
        graph: the imported `Graph` (its params are this module's parameter arrays).
        opset: the model's ai.onnx opset version.
    """

    def __init__(self, graph: Graph, opset: int) -> None:
        super().__init__()
        self.graph = graph
        self.opset = opset
        for name, array in graph.params.items():
            # Dotted ONNX names are kept as flat keys: register_parameter refuses '.', the stores do not.
            self._parameters[name] = array

    def forward(self, *inputs: Array) -> Outputs:
        """Run the graph on one array per graph input, shaped (N, ...) like the ONNX input; returns the
        output(s)."""
        return self.graph.run(*inputs, params=self._parameters)

    def extra_repr(self) -> str:
        return (f"inputs={self.graph.inputs}, outputs={self.graph.outputs}, nodes={len(self.graph.nodes)}, "
                f"opset={self.opset}")
