"""The Graph IR: nodes calling `convcore.functional` ops over named values, with parameters as numpy arrays.

It is the one representation between the front ends (tracing an `nn.Module`, importing ONNX) and the back ends
(`Graph.run`, the ONNX exporter, the C++ compiler). Graph passes (BN folding, fusion) rewrite it.
"""

import inspect
from dataclasses import dataclass, field

import numpy as np

from .. import functional as F
from .shapes import TENSOR_ARGS, infer_shape


def unique_name(base, taken):
    """`base`, or `base_1`, `base_2`, ... : the first not in `taken` (a set, which the name is added to)."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


@dataclass
class Node:
    """One call of a `convcore.functional` op.

    Attributes:
        op: the functional op's name, e.g. "conv2d" (a key of `convcore.graph.shapes.TENSOR_ARGS`).
        name: unique node name, from the module path that made the call, e.g. "layer1.0.conv1".
        inputs: value names of the op's tensor arguments in TENSOR_ARGS order ("" for an absent optional one, e.g.
            no bias); for "concat", one name per concatenated value.
        outputs: value names the node defines (one; the tracer names it like the node).
        attrs: the op's other arguments as keyword arguments of the functional call, defaults included, e.g.
            {"stride": (2, 2), "padding": (3, 3), "dilation": (1, 1), "groups": 1}.
    """

    op: str
    name: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)


def _call(op, args, attrs):
    """Call functional `op` with tensor values `args` (TENSOR_ARGS order) and attributes."""
    if op == "concat":
        return F.concat(list(args), **attrs)
    kwargs = {name: value for name, value in zip(TENSOR_ARGS[op], args)}
    return getattr(F, op)(**kwargs, **attrs)


class Graph:
    """A dataflow graph of functional ops; nodes are kept in topological (execution) order.

    Attributes:
        nodes: list of `Node`, each using only values defined before it.
        inputs: names of the graph inputs (fed to `run` in this order).
        outputs: names of the values `run` returns.
        params: value name -> numpy array: parameters by module path ("layer1.0.conv1.weight") and constants.
        shapes: value name -> shape tuple, for every value (inputs, params and node outputs; the batch size is the
            traced one). All values are float32.
        name: a label, e.g. the traced module's class name.

    Example:
        >>> g = convcore.trace(model, (1, 3, 224, 224))
        >>> print(g)              # a table: node, op, inputs, output shape, attributes
        >>> y = g.run(x)          # same result as model.eval()(x)
    """

    def __init__(self, nodes=(), inputs=(), outputs=(), params=None, shapes=None, name="graph"):
        self.nodes = list(nodes)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.params = dict(params or {})
        self.shapes = dict(shapes or {})
        self.name = name

    def validate(self):
        """Raise ValueError unless every value is defined once, before it is used, and every op is known."""
        defined = set(self.inputs) | set(self.params)
        if len(defined) != len(self.inputs) + len(self.params):
            raise ValueError("graph input names clash with parameter names")
        for node in self.nodes:
            if node.op not in TENSOR_ARGS:
                raise ValueError(f"node '{node.name}': unknown op '{node.op}'")
            for name in node.inputs:
                if name and name not in defined:
                    raise ValueError(f"node '{node.name}': input '{name}' is not defined before it")
            for name in node.outputs:
                if name in defined:
                    raise ValueError(f"node '{node.name}': value '{name}' is defined twice")
                defined.add(name)
        for name in self.outputs:
            if name not in defined:
                raise ValueError(f"graph output '{name}' is not defined")

    def topological_sort(self):
        """Reorder `nodes` so each comes after the producers of its inputs (stable: keeps the order otherwise)."""
        producer = {out: node for node in self.nodes for out in node.outputs}
        ordered, state = [], {}  # state: id -> 1 while visiting, 2 when placed

        def visit(node):
            if state.get(id(node)) == 2:
                return
            if state.get(id(node)) == 1:
                raise ValueError(f"the graph has a cycle through node '{node.name}'")
            state[id(node)] = 1
            for name in node.inputs:
                if name in producer:
                    visit(producer[name])
            state[id(node)] = 2
            ordered.append(node)

        for node in self.nodes:
            visit(node)
        self.nodes = ordered

    def infer_shapes(self):
        """Recompute `shapes` of params and node outputs from the input shapes with the per-op shape rules."""
        shapes = {name: self.shapes[name] for name in self.inputs}
        shapes.update({name: tuple(array.shape) for name, array in self.params.items()})
        for node in self.nodes:
            shape = infer_shape(node.op, [shapes[i] if i else None for i in node.inputs], node.attrs)
            shapes[node.outputs[0]] = shape
        self.shapes = shapes

    def run(self, *inputs):
        """Evaluate the graph with `convcore.functional`, one op at a time.

        Args:
            *inputs: one float32 array per graph input. The batch size may differ from the traced one; the other
                dimensions must match.

        Returns:
            The output array, or a tuple of them when the graph has several outputs.
        """
        if len(inputs) != len(self.inputs):
            raise TypeError(f"expected {len(self.inputs)} input array(s) (got {len(inputs)})")
        env = dict(self.params)
        for name, x in zip(self.inputs, inputs):
            expected = self.shapes[name]
            shape = getattr(x, "shape", None)
            if shape is None or len(shape) != len(expected) or tuple(shape[1:]) != tuple(expected[1:]):
                raise ValueError(f"expected input '{name}' of shape (N, {', '.join(map(str, expected[1:]))}) "
                                 f"(got {shape if shape is not None else type(x).__name__})")
            env[name] = x
        # Drop intermediates after their last use so peak memory stays near the model's working set.
        last_use = {}
        for i, node in enumerate(self.nodes):
            for name in node.inputs:
                last_use[name] = i
        keep = set(self.outputs) | set(self.params) | set(self.inputs)
        for i, node in enumerate(self.nodes):
            args = [env[name] if name else None for name in node.inputs]
            env[node.outputs[0]] = _call(node.op, args, node.attrs)
            for name in node.inputs:
                if last_use.get(name) == i and name not in keep:
                    env.pop(name, None)
        results = tuple(env[name] for name in self.outputs)
        return results[0] if len(results) == 1 else results

    def _key_attrs(self, node):
        """Attributes that differ from the functional op's defaults, as 'k=v' text."""
        try:
            defaults = {k: p.default for k, p in inspect.signature(getattr(F, node.op)).parameters.items()}
        except (AttributeError, TypeError, ValueError):
            defaults = {}
        shown = [f"{k}={v}" for k, v in node.attrs.items() if k not in defaults or not _is_default(defaults[k], v)]
        return " ".join(shown)

    def __str__(self):
        n_params = sum(int(np.asarray(a).size) for a in self.params.values())
        head = [f"Graph {self.name}: {len(self.nodes)} nodes, {n_params:,} parameter values",
                "inputs: " + ", ".join(f"{n} {self.shapes.get(n)}" for n in self.inputs)]
        rows = [("name", "op", "inputs", "output shape", "attributes")]
        for node in self.nodes:
            data_inputs = [i for i in node.inputs if i and i not in self.params]  # parameters are implied by the op
            rows.append((node.name, node.op, ", ".join(data_inputs), str(self.shapes.get(node.outputs[0], "?")),
                         self._key_attrs(node)))
        widths = [max(len(row[c]) for row in rows) for c in range(4)]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
        tail = ["outputs: " + ", ".join(f"{n} {self.shapes.get(n)}" for n in self.outputs)]
        return "\n".join(head + [line.rstrip() for line in table] + tail)

    def __repr__(self):
        return (f"Graph(name={self.name!r}, inputs={self.inputs}, outputs={self.outputs}, nodes={len(self.nodes)}, "
                f"params={len(self.params)})")


def _is_default(default, value):
    """Whether an attribute equals the default, treating 1 and (1, 1) alike."""
    if isinstance(value, (tuple, list)) and not isinstance(default, (tuple, list, str)) and default is not None:
        return all(v == default for v in value)
    try:
        return bool(default == value)
    except (TypeError, ValueError):
        return False
