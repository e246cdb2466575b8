"""`trace(model, input_shape)`: run a module on a symbolic `Value` and record each op call as a Node.

The tracer is installed for the calling thread only (`convcore.ops.tracing`, a context variable): other threads keep
computing while one traces.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from numpy.typing import DTypeLike

from .. import functional as F
from ..nn import Module
from ..ops import active_tracer, tracing
from .ir import Graph, NameSet, unique_name


class Value:
    """A symbolic tensor flowing through a traced forward: a name, a shape and a dtype, no data.

    Modules see it like an array: `.shape`, `.ndim` and `.dtype` work, `a + b` and `a * b` record `add` / `mul`
    nodes (numpy broadcasting), and every `convcore.functional` op accepts it while tracing. Numpy functions do not:
    a forward must use functional ops for the trace to see them.
    """

    __array_ufunc__ = None  # makes `ndarray + Value` defer to Value.__radd__ instead of building an object array

    def __init__(self, name: str, shape: Sequence[int], dtype: DTypeLike = np.float32) -> None:
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(other, self)

    def __mul__(self, other):
        return F.mul(self, other)

    def __rmul__(self, other):
        return F.mul(other, self)

    def __array__(self, *args, **kwargs):
        raise TypeError(f"a traced Value ('{self.name}') has no data: use convcore.functional ops on it, not numpy")

    def __repr__(self) -> str:
        return f"Value({self.name!r}, shape={self.shape}, dtype={self.dtype})"


class _Tracer:
    """State of one trace: the module call stack, value names, and the graph being built."""

    def __init__(self, model, graph, module_outputs=None):
        self.graph = graph
        self.module_outputs = module_outputs
        self.paths = {id(m): path for path, m in model.named_modules()}
        self.leaves = {id(m) for m in model.modules() if next(m.children(), None) is None}
        # Parameters and buffers by array identity; the arrays are held here so their ids stay valid.
        owned = list(model.named_parameters()) + list(model.named_buffers())
        self.owned = {id(array): (name, array) for name, array in owned}
        self.constants = {}
        self.used = NameSet(name for name, _ in owned)  # reserved so no node or constant takes a parameter's name
        self.stack = []

    def call_module(self, module, args, kwargs):
        self.stack.append(module)
        try:
            out = module.forward(*args, **kwargs)
        finally:
            self.stack.pop()
        if self.module_outputs is not None and isinstance(out, Value) and self.paths.get(id(module)):
            self.module_outputs[self.paths[id(module)]] = out.name
        return out

    def _unique(self, base):
        return unique_name(base, self.used)

    def _node_name(self, op):
        # The innermost module of the model on the call stack names the node: a leaf by its path
        # ("layer1.0.conv1"), a container making its own call by path and op ("layer1.0.add").
        for module in reversed(self.stack):
            path = self.paths.get(id(module))
            if path is not None:
                if not path:
                    return self._unique(op)
                return self._unique(path if id(module) in self.leaves else f"{path}.{op}")
        return self._unique(op)

    def _value_name(self, value, node_name, arg):
        if value is None:
            return ""
        if isinstance(value, Value):
            return value.name
        if id(value) in self.owned:
            name, array = self.owned[id(value)]
        elif id(value) in self.constants:
            name, array = self.constants[id(value)]
        else:  # an array the model does not own, or a Python number: a constant of the graph
            array = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=np.float32)
            name = self._unique(f"{node_name}.{arg}")
            self.constants[id(array)] = (name, array)  # holds the array, so its id stays unique
        self.graph.add_param(name, array)
        return name

    def record(self, op, arguments):
        """Record one call of `op` (a `convcore.ops.Op`) with its bound `arguments` as a node."""
        tensors = list(arguments[op.inputs[0]]) if op.variadic else [arguments[a] for a in op.inputs]
        if not any(isinstance(t, Value) for t in tensors):
            return op.compute(arguments)  # only constants: compute now, the result is a constant
        if arguments.get("out") is not None:
            raise ValueError(f"convcore.trace: expected {op.name} without out= (got an out array)")
        attrs = {k: arguments[k] for k in op.attrs}
        for key, value in attrs.items():
            if isinstance(value, Value):
                raise TypeError(f"convcore.trace: expected a constant {op.name} argument '{key}' (got a traced Value)")
        name = self._node_name(op.name)
        args = op.inputs * len(tensors) if op.variadic else op.inputs
        inputs = [self._value_name(t, name, a) for t, a in zip(tensors, args)]
        self.graph.add_node(op.name, name, inputs, name, attrs)
        return Value(name, self.graph.values[name].shape)


def trace(model: Union[Module, Callable[..., Any]], input_shape: Optional[Sequence[int]] = None, *,
          module_outputs: Optional[dict[str, str]] = None) -> Graph:
    """Trace `model` on one float32 input of `input_shape` into a `Graph`.

    The model runs in eval mode (its previous modes are restored afterwards) on a symbolic `Value`; each
    `convcore.functional` call becomes one Node named after the module that made it (its attributes normalised by
    the op's rule), module parameters become graph params named by their path ("layer1.0.conv1.weight"), and output
    types come from the ops' rules (no kernel runs). Python control flow is resolved for this input shape. The
    graph's params are the model's own arrays, not copies: graph passes must replace them, never modify them in
    place. Only the calling thread traces: other threads' calls compute as usual meanwhile.

    Args:
        model: a `convcore.nn.Module` (or any callable built from functional ops).
        input_shape: the input's shape, (N, C, H, W) for an image model, e.g. (1, 3, 224, 224); default: batch 1 at
            the model's registered input size (zoo models carry it as `model.input_size`).
        module_outputs: optional dict to fill with module path -> the name of the value that module returned (its
            last call's), for every submodule returning one traced value: containers too ("layer3", "layer3.1"),
            whose outputs are the values of the nodes inside them.

    Returns:
        A Graph with one input named "input"; its outputs are the Value(s) the model returns (a Value or a
        tuple / list of them).

    Example:
        >>> g = convcore.trace(resnet18().eval(), (1, 3, 224, 224))
        >>> g.nodes[0].name, g.nodes[0].op
        ('conv1', 'conv2d')
    """
    input_shape = batch_shape(model, input_shape)
    if not isinstance(input_shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in input_shape):
        raise TypeError(f"expected input_shape as a tuple of ints (got {input_shape!r})")
    if any(d < 1 for d in input_shape):
        raise ValueError(f"expected positive dimensions in input_shape (got {tuple(input_shape)})")
    if active_tracer() is not None:
        raise RuntimeError("convcore.trace cannot run inside another trace")
    graph = Graph(name=type(model).__name__)
    module = model if isinstance(model, Module) else None
    tracer = _Tracer(module if module is not None else Module(), graph, module_outputs)
    x = Value(tracer._unique("input"), input_shape)
    graph.add_input(x.name, x.shape)
    modes = [(m, m.training) for m in module.modules()] if module is not None else []
    if module is not None:
        module.eval()
    try:
        with tracing(tracer):
            out = model(x)
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    for value in outputs:
        if not isinstance(value, Value):
            raise TypeError(f"expected the model to return a traced Value or a tuple of them (got "
                            f"{type(value).__name__}): outputs must be computed with convcore.functional ops")
    graph.outputs = [value.name for value in outputs]
    return graph


def batch_shape(model: Any, input_shape: Optional[Sequence[int]]) -> Any:
    """The (N, C, H, W) to trace `model` at: `input_shape`, or batch 1 at the model's registered input size (a zoo
    model's `input_size`, (C, H, W)). A (C, H, W) given for such a model is an error that says to add the batch."""
    size = getattr(model, "input_size", None)
    if not (isinstance(size, tuple) and len(size) == 3):
        size = None
    if input_shape is None:
        if size is None:
            raise TypeError("input_shape: required for a model without a registered input size, e.g. (1, 3, 224, 224)")
        return (1, *size)
    if size is not None and isinstance(input_shape, (tuple, list)) and len(input_shape) == 3:
        raise ValueError(f"input_shape: expected (N, C, H, W) (got {tuple(input_shape)}, without the batch): e.g. "
                         f"(1, {', '.join(map(str, input_shape))})")
    return input_shape
