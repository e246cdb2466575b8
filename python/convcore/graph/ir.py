"""The Graph IR: nodes calling declared ops (`convcore.ops`) over named, typed values, parameters as numpy arrays.

It is the one representation between the front ends (tracing an `nn.Module`, importing ONNX) and the back ends
(`Graph.run`, the ONNX exporter). Graph passes (`fold_batchnorm`) rewrite it. Node attributes are stored
normalised (the op's rule has resolved them: pairs, 4-sided padding, 'same' padding for the traced size, ...) and
every value carries a `TensorType`, so a back end never parses an op's arguments again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._types import Array, Outputs
from ..ops import OPS, get


class NameSet(set):
    """A set of taken names that remembers, per base, the last suffix `unique_name` gave: naming n values from one
    base costs O(n) in all instead of O(n^2) (4000 ONNX nodes all named "h")."""

    def __init__(self, names=()):
        super().__init__(names)
        self.suffixes = {}


def unique_name(base, taken):
    """`base`, or `base_1`, `base_2`, ... : the first not in `taken` (a set, which the name is added to).

    With a `NameSet`, the search for a base starts after the suffix it last gave (names are never removed, so every
    smaller suffix is still taken): linear in the number of names made."""
    if base not in taken:
        taken.add(base)
        return base
    suffixes = getattr(taken, "suffixes", None)
    k = suffixes.get(base, 0) if suffixes is not None else 0
    while True:
        k += 1
        name = f"{base}_{k}"
        if name not in taken:
            break
    if suffixes is not None:
        suffixes[base] = k
    taken.add(name)
    return name


@dataclass(frozen=True)
class TensorType:
    """What a graph value is: its shape (the batch size is the traced one), element type and layout.

    Attributes:
        shape: tuple of ints.
        dtype: element type name; every value convcore computes is "float32".
        layout: the axis order of a 4-D feature map, "NCHW" (the public layout), or None for parameters and values
            of other ranks (plain row-major arrays).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: Optional[str] = None

    @classmethod
    def activation(cls, shape: Sequence[int]) -> TensorType:
        """The type of a computed value (a graph input or a node output) of `shape`."""
        shape = tuple(int(d) for d in shape)
        return cls(shape, "float32", "NCHW" if len(shape) == 4 else None)

    @classmethod
    def param(cls, array: ArrayLike) -> TensorType:
        """The type of a parameter array."""
        return cls(tuple(int(d) for d in np.shape(array)), str(np.asarray(array).dtype))


class _Shapes(Mapping[str, tuple[int, ...]]):
    """Read-only view of `Graph.values`: value name -> shape."""

    def __init__(self, values: Mapping[str, TensorType]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> tuple[int, ...]:
        return self._values[name].shape

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True)
class BatchGuard:
    """What a guard node (a reshape of a graph input to its own shape) checks: the graph was specialised to the
    input's batch size (an ONNX model whose shape arithmetic folded at that batch), so another batch is refused
    with `reason` instead of computing a wrong result. `call_node` checks it, in `Graph.run` and in compiled plans
    (which run a reshape eagerly).

    Attributes:
        input: the graph input's name.
        shape: its imported shape (the batch first).
        reason: which node froze the batch, e.g. "node 'mul' (Mul) reads a value computed at import from the batch
            size (by node 'shape' (Shape))".
    """

    input: str
    shape: tuple
    reason: str

    def check(self, x: Any) -> None:
        shape = tuple(getattr(x, "shape", ()))
        if shape[:1] != self.shape[:1]:
            wanted = (shape[0], *self.shape[1:]) if shape else self.shape
            raise ValueError(f"input '{self.input}': expected batch {self.shape[0]} (got shape {shape}): this model "
                             f"was imported for batch {self.shape[0]} and cannot follow another batch size: "
                             f"{self.reason}; load it again with input_shape={wanted} to run that batch")


@dataclass
class Node:
    """One call of a declared op (`convcore.ops.OPS`, also a `convcore.functional` function).

    Attributes:
        op: the op's name, e.g. "conv2d".
        name: unique node name, from the module path that made the call, e.g. "layer1.0.conv1".
        inputs: value names of the op's tensor arguments in the declaration's `inputs` order ("" for an absent
            optional one, e.g. no bias); for "concat", one name per concatenated value.
        outputs: value names the node defines (one; the tracer names it like the node).
        attrs: the op's other arguments, normalised by its rule, defaults included, e.g.
            {"stride": (2, 2), "padding": (3, 3, 3, 3), "dilation": (1, 1), "groups": 1}.
        guard: a `BatchGuard` on a node guarding a graph input (None on every other node).
    """

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    guard: Optional[BatchGuard] = None


class Graph:
    """A dataflow graph of declared ops; nodes are kept in topological (execution) order.

    Attributes:
        nodes: list of `Node`, each using only values defined before it.
        inputs: names of the graph inputs (fed to `run` in this order).
        outputs: names of the values `run` returns.
        params: value name -> numpy array: parameters by module path ("layer1.0.conv1.weight") and constants.
        values: value name -> `TensorType`, for every value (inputs, params and node outputs).
        shapes: value name -> shape, a read-only view of `values`.
        name: a label, e.g. the traced module's class name.

    Example:
        >>> g = convcore.trace(model, (1, 3, 224, 224))
        >>> print(g)              # a table: node, op, inputs, output shape, attributes
        >>> y = g.run(x)          # same result as model.eval()(x)
        >>> g.values["conv1"]
        TensorType(shape=(1, 64, 112, 112), dtype='float32', layout='NCHW')
    """

    def __init__(self, nodes: Iterable[Node] = (), inputs: Iterable[str] = (), outputs: Iterable[str] = (),
                 params: Optional[Mapping[str, NDArray[Any]]] = None,
                 shapes: Optional[Mapping[str, Sequence[int]]] = None, name: str = "graph",
                 values: Optional[Mapping[str, TensorType]] = None) -> None:
        self.nodes = list(nodes)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.params = dict(params or {})
        self.name = name
        self.values = dict(values or {})
        for value, shape in (shapes or {}).items():
            self.values[value] = (TensorType.param(self.params[value]) if value in self.params
                                  else TensorType.activation(shape))

    @property
    def shapes(self) -> Mapping[str, tuple[int, ...]]:
        return _Shapes(self.values)

    # ------------------------------------------------------------------------------------------------- building
    def add_input(self, name: str, shape: Sequence[int]) -> None:
        """Append a graph input `name` of `shape`."""
        self.inputs.append(name)
        self.values[name] = TensorType.activation(shape)

    def add_param(self, name: str, array: NDArray[Any]) -> None:
        """Add (or replace) parameter `name`."""
        self.params[name] = array
        self.values[name] = TensorType.param(array)

    def add_node(self, op: str, name: str, inputs: Sequence[str], output: str, attrs: Mapping[str, Any]) -> Node:
        """Append a node calling `op` on values `inputs` with attributes `attrs` (normalised here by the op's
        rule, which raises what the op would raise) and define its `output` value; returns the Node."""
        attrs, shape = get(op).infer([self.values[i].shape if i else None for i in inputs], attrs)
        node = Node(op, name, list(inputs), [output], attrs)
        self.nodes.append(node)
        self.values[output] = TensorType.activation(shape)
        return node

    # -------------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise ValueError unless every value is defined once, before it is used, and every op is declared."""
        defined = set(self.inputs) | set(self.params)
        if len(defined) != len(self.inputs) + len(self.params):
            raise ValueError("graph input names clash with parameter names")
        for node in self.nodes:
            if node.op not in OPS:
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

    def topological_sort(self) -> None:
        """Reorder `nodes` so each comes after the producers of its inputs (stable: keeps the order otherwise)."""
        producer = {out: node for node in self.nodes for out in node.outputs}
        ordered: list[Node] = []
        state: dict[int, int] = {}  # id -> 1 while visiting, 2 when placed

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

    def infer_shapes(self) -> None:
        """Recompute the types of params and node outputs from the input types with the ops' rules (normalising
        every node's attributes on the way). A rule's ValueError is raised naming its node."""
        values = {name: self.values[name] for name in self.inputs}
        values.update({name: TensorType.param(array) for name, array in self.params.items()})
        for node in self.nodes:
            try:
                node.attrs, shape = get(node.op).infer([values[i].shape if i else None for i in node.inputs],
                                                       node.attrs)
            except ValueError as exc:
                raise ValueError(f"node '{node.name}' ({node.op}): {exc}") from None
            values[node.outputs[0]] = TensorType.activation(shape)
        self.values = values

    def at_batch(self, batch: int) -> Graph:
        """A copy whose inputs have batch size `batch` (their first axis), every shape re-inferred by the ops' rules
        from there.

        Raises:
            ValueError: naming the first node whose rule refuses the new shapes (a reshape to a size frozen at the
                traced batch, say).
        """
        values = {n: TensorType.activation((int(batch), *self.values[n].shape[1:])) for n in self.inputs}
        for node in self.nodes:  # a graph guarded to its batch says why, in the guard's words
            if node.guard is not None:
                node.guard.check(SimpleNamespace(shape=(int(batch), *self.values[node.guard.input].shape[1:])))
        copy = Graph([replace(n, inputs=list(n.inputs), outputs=list(n.outputs), attrs=dict(n.attrs))
                      for n in self.nodes], self.inputs, self.outputs, self.params, name=self.name, values=values)
        try:
            copy.infer_shapes()
        except ValueError as exc:
            raise ValueError(f"at batch {batch}, {exc}") from None
        return copy

    def batch_fixed_at(self) -> Optional[str]:
        """None when every value computed from the inputs keeps the batch as its first axis (so the graph runs at any
        batch as it is), else why not: the first node whose output does not, or whose rule refuses another batch."""
        batch = self.values[self.inputs[0]].shape[0]
        try:
            other = self.at_batch(batch + 1)
        except ValueError as exc:
            return str(exc)
        variable = set(self.inputs)
        for node in self.nodes:
            if not any(i in variable for i in node.inputs):
                continue  # computed from parameters only: the same at every batch
            out = node.outputs[0]
            variable.add(out)
            here, there = tuple(self.values[out].shape), tuple(other.values[out].shape)
            if not here or here[0] != batch or there != (batch + 1, *here[1:]):
                return (f"node '{node.name}' ({node.op}) gives {here} at batch {batch} and {there} at batch "
                        f"{batch + 1}: its first axis is not the batch")
        return None

    # ------------------------------------------------------------------------------------------------- running
    def run(self, *inputs: Array, params: Optional[Mapping[str, NDArray[Any]]] = None) -> Outputs:
        """Evaluate the graph with the ops' eager kernels (`convcore.functional`), one op at a time.

        Args:
            *inputs: one float32 array per graph input. The batch size may differ from the traced one; the other
                dimensions must match.
            params: optional mapping to take the parameter arrays from instead of `params` (same names).

        Returns:
            The output array, or a tuple of them when the graph has several outputs.
        """
        if len(inputs) != len(self.inputs):
            raise TypeError(f"expected {len(self.inputs)} input array(s) (got {len(inputs)})")
        env = dict(self.params if params is None else params)
        for name, x in zip(self.inputs, inputs):
            expected = self.values[name].shape
            shape = getattr(x, "shape", None)
            if shape is None or len(shape) != len(expected) or tuple(shape[1:]) != tuple(expected[1:]):
                raise ValueError(f"expected input '{name}' of shape (N, {', '.join(map(str, expected[1:]))}) "
                                 f"(got {shape if shape is not None else type(x).__name__})")
            env[name] = x
        # Drop intermediates after their last use so peak memory stays near the model's working set.
        last_use = {name: i for i, node in enumerate(self.nodes) for name in node.inputs}
        keep = set(self.outputs) | set(env)
        for i, node in enumerate(self.nodes):
            env[node.outputs[0]] = call_node(node, [env[name] if name else None for name in node.inputs])
            for name in node.inputs:
                if last_use.get(name) == i and name not in keep:
                    env.pop(name, None)
        results = tuple(env[name] for name in self.outputs)
        return results[0] if len(results) == 1 else results

    # ------------------------------------------------------------------------------------------------ printing
    def __str__(self) -> str:
        n_params = sum(int(np.asarray(a).size) for a in self.params.values())
        head = [f"Graph {self.name}: {len(self.nodes)} nodes, {n_params:,} parameter values",
                "inputs: " + ", ".join(f"{n} {self.shapes.get(n)}" for n in self.inputs)]
        rows = [("name", "op", "inputs", "output shape", "attributes")]
        for node in self.nodes:
            data_inputs = [i for i in node.inputs if i and i not in self.params]  # parameters are implied by the op
            rows.append((node.name, node.op, ", ".join(data_inputs), str(self.shapes.get(node.outputs[0], "?")),
                         _shown_attrs(node)))
        widths = [max(len(row[c]) for row in rows) for c in range(4)]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
        tail = ["outputs: " + ", ".join(f"{n} {self.shapes.get(n)}" for n in self.outputs)]
        return "\n".join(head + [line.rstrip() for line in table] + tail)

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, inputs={self.inputs}, outputs={self.outputs}, nodes={len(self.nodes)}, "
                f"params={len(self.params)})")


def call_node(node: Node, args: Sequence[Any]) -> Any:
    """Run one node eagerly on its input arrays (None for an absent optional one)."""
    if node.guard is not None:
        node.guard.check(args[0])
    op = OPS[node.op]
    if op.variadic:
        return op.function(args, **node.attrs)
    return op.function(**dict(zip(op.inputs, args)), **node.attrs)


def _shown_attrs(node):
    """The attributes that differ from the op's defaults, as 'k=v' text; symmetric padding in its (h, w) form."""
    defaults = OPS[node.op].attrs if node.op in OPS else {}
    shown = []
    for key, value in node.attrs.items():
        if key in defaults and _is_default(defaults[key], value):
            continue
        if key == "padding" and isinstance(value, tuple) and len(value) == 4 and value[0::2] == value[1::2]:
            value = value[0::2]
        shown.append(f"{key}={value}")
    return " ".join(shown)


def _is_default(default, value):
    """Whether an attribute equals the default, treating 1 and (1, 1) alike."""
    if isinstance(value, (tuple, list)) and not isinstance(default, (tuple, list, str)) and default is not None:
        return all(v == default for v in value)
    try:
        return bool(default == value)
    except (TypeError, ValueError):
        return False
