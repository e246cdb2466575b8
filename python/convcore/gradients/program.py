"""The gradient program: a traced graph run forward (keeping what the backward rules read), then backward through
the ops' declared rules (`convcore.ops.Backward`) in reverse order, from an objective's seeds to the values asked for.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from .. import _core
from .._types import Array
from ..graph import Graph, Node, fold_batchnorm, trace
from ..graph.ir import call_node
from ..nn import Module
from ..ops import OPS, Backward, BackwardCall
from .objective import ObjectiveLike, as_objective

__all__ = ["GradientProgram", "GradResult", "Layers", "model_graph", "layer_names", "guided_rules"]


def model_graph(model: Any, input_shape: Optional[Sequence[int]] = None) -> tuple[Graph, dict[str, str]]:
    """(graph, names) for a model: a `Graph`; anything with a `graph` (an ONNX model from `convcore.onnx.load`, a
    compiled `Plan`); a `LoadedModel` (its module); an `nn.Module`, traced at `input_shape`. `names` maps module
    paths (containers included) to the values they return."""
    names: dict[str, str] = {}
    if isinstance(model, Graph):
        return model, names
    if isinstance(getattr(model, "graph", None), Graph):
        return model.graph, names
    module = getattr(model, "module", None)
    if isinstance(module, Module) and hasattr(model, "preprocess"):
        model = module
    if not isinstance(model, Module) and not callable(model):
        raise TypeError(f"model: expected a convcore.nn.Module, a Graph, an imported ONNX model or a LoadedModel "
                        f"(got {type(model).__name__})")
    if input_shape is None:
        raise TypeError("input_shape: required to trace a module, e.g. (1, 3, 224, 224)")
    graph = trace(model, tuple(int(d) for d in input_shape), module_outputs=names)
    return graph, names


class Layers:
    """Layer name -> graph value: node names (a leaf module's path, e.g. "layer3.1.conv2"), module paths of
    containers ("layer3", "features.4"), and value names."""

    def __init__(self, graph: Graph, names: Mapping[str, str]) -> None:
        self.graph = graph
        self.map: dict[str, str] = {}
        for node in graph.nodes:
            self.map.setdefault(node.name, node.outputs[0])
        for path, value in names.items():
            self.map.setdefault(path, value)
        for value in graph.values:
            if value not in graph.params:
                self.map.setdefault(value, value)

    def names(self) -> list[str]:
        """The names in graph order (a container after its last node)."""
        order = {v: i for i, v in enumerate(list(self.graph.inputs) + [n.outputs[0] for n in self.graph.nodes])}
        return sorted(self.map, key=lambda name: (order.get(self.map[name], -1), name.count(".") * -1, name))

    def resolve(self, name: str) -> str:
        if name in self.map:
            return self.map[name]
        names = self.names()
        close = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        if len(names) <= 60:
            listing = ", ".join(names)
        else:  # the containers and the first and last layers; layer_names(model) lists them all
            top = [n for n in names if n.count(".") <= 1 and n in self.map and not n.startswith("input")]
            listing = ", ".join(top[:60]) + f", ... ({len(names)} names in all: convcore.gradients.layer_names" \
                                            f"(model) or the command 'convcore layers MODEL' list them)"
        raise ValueError(f"layer: expected a layer of this model (got {name!r}){hint}; the layers: {listing}")


def layer_names(model: Any, input_shape: Optional[Sequence[int]] = None) -> list[str]:
    """Every name an objective may use for `model` (module paths, node and value names), in graph order."""
    graph, names = model_graph(model, input_shape or _default_shape(model))
    return Layers(graph, names).names()


def _default_shape(model):
    size = getattr(model, "input_size", None)
    return (1, *size) if size is not None else None


GUIDED = ("relu", "relu6", "leaky_relu", "silu", "hardswish")  # the rectifying activations


class GuidedRules(dict[str, Backward]):
    """The rules of `guided_rules()`: a gradient Plan knows them (it clamps dy in its own ops), so a program given
    them still runs as one Plan."""


def guided_rules() -> GuidedRules:
    """Backward rules for guided backpropagation (Springenberg et al. 2015): at every rectifying activation (ReLU,
    ReLU6, leaky ReLU, SiLU, hard-swish) only positive gradients pass, through the op's own rule."""
    rules = GuidedRules()
    for name in GUIDED:
        own = OPS[name].backward

        def rule(dy, call, own=own):
            return own.rule(np.maximum(dy, 0.0), call)

        rules[name] = Backward(rule, own.saves)
    return rules


@dataclass
class GradResult:
    """What one run gives.

    Attributes:
        value: the objective, summed over the batch (a float).
        values: the objective per image (N,).
        grads: value name (a `wrt`) -> its gradient, shaped like it.
        activations: layer name -> its forward value, for the program's `keep` layers.
    """

    value: float
    values: NDArray[Any]
    grads: dict[str, Array]
    activations: dict[str, Array] = field(default_factory=dict)


class GradientProgram:
    """The gradient of an objective with respect to the input (or other values) of a model, prepared once and run
    on any batch.

    Building it traces the model (an `nn.Module`) at `input_shape`, folds each batch norm into the convolution before
    it (unless that convolution's output is asked for), and works out which nodes the objective needs forward, which
    the backward pass runs through, and which forward values the backward rules read: only those are kept.

    Args:
        model: an `nn.Module`, `Graph`, ONNX model from `convcore.onnx.load`, `LoadedModel` or `Plan`.
        input_shape: (N, C, H, W) to trace a module at (the batch may differ at run time).
        objective: what to differentiate (`convcore.gradients.as_objective`: an int logit, "layer:channel", ...).
        wrt: the layer name(s) the gradient is taken with respect to; None: the model input.
        keep: layer names whose forward values each run also returns (`GradResult.activations`).
        rules: op name -> `Backward` replacing the declared rule (e.g. `guided_rules()`, which a gradient Plan runs
            too; other rules run node by node).
        fold: fold batch norms into convolutions first (faster; the same function up to float rounding).
        forward: "plan": forward and backward run as one compiled Plan (`convcore.gradients.plan`; compiling costs a
            few steps' time once: for programs run many times), ValueError when the graph has an op without a Plan
            backward; "eager": op by op through the declared rules; "auto" (default): "plan" where it can.
        winograd: let those Plans use Winograd convolutions (False by default: their ~1e-5 relative error moves
            values across ReLU and max-pool decision boundaries, which a gradient does not forgive: DenseNet-121's
            input gradient then differs from torch's by 1e-2 of its maximum, against 1e-6 without).

    Example:
        >>> program = GradientProgram(model, (1, 3, 224, 224), "layer3:17")
        >>> result = program(x)
        >>> result.value, result.grads[program.wrt[0]].shape
    """

    def __init__(self, model: Any, input_shape: Optional[Sequence[int]] = None, objective: ObjectiveLike = 0,
                 wrt: Union[str, Sequence[str], None] = None, keep: Union[str, Sequence[str]] = (),
                 rules: Optional[Mapping[str, Backward]] = None, fold: bool = True, forward: str = "auto",
                 winograd: bool = False) -> None:
        if forward not in ("auto", "plan", "eager"):
            raise ValueError(f"forward: expected 'auto', 'plan' or 'eager' (got {forward!r})")
        graph, names = model_graph(model, input_shape)
        if len(graph.inputs) != 1:
            raise ValueError(f"model: expected one input (got {len(graph.inputs)})")
        self.layers = Layers(graph, names)
        self.input_shape = tuple(graph.shapes[graph.inputs[0]])
        self.objective = as_objective(objective)
        self.wrt = [graph.inputs[0]] if wrt is None else [self.layers.resolve(n) for n in _as_list(wrt, "wrt")]
        self.keep = {name: self.layers.resolve(name) for name in _as_list(keep, "keep")}
        self.output = graph.outputs[0]
        self._targets = self._objective_values(self.objective, graph)
        self.winograd = winograd
        self.rules = {name: op.backward for name, op in OPS.items()}
        self.rules.update(rules or {})
        # The activations whose dy a gradient Plan clamps at 0 (guided backpropagation).
        self.guided = frozenset(rules) if isinstance(rules, GuidedRules) else frozenset()
        protected = set(self._targets) | set(self.wrt) | set(self.keep.values())
        if fold:
            marked = Graph(graph.nodes, graph.inputs, list(graph.outputs) + sorted(protected), graph.params,
                           name=graph.name, values=graph.values)
            graph = fold_batchnorm(marked)
        self.graph = graph
        self._plan(protected)
        # A program run many times: forward and backward as one compiled Plan where every op has a Plan backward and
        # the rules are the declared (or the guided) ones; otherwise the rules node by node.
        plannable = forward != "eager" and self.backward_nodes and (not rules or self.guided)
        self._step = self._compile_step(forward == "plan") if plannable else None
        if forward == "plan" and self._step is None:
            raise ValueError("forward: this program cannot run as one Plan (custom rules, or no backward pass)")

    def _compile_step(self, required):
        """The whole step as one Plan (`gradients.plan.GradientPlan`), or None when the graph has an op it lacks."""
        from .plan import GradientPlan

        try:
            return GradientPlan(self, _core.get_isa(), self.winograd)
        except (ValueError, TypeError, NotImplementedError) as e:
            if required:
                raise ValueError(f"forward: this program cannot run as one Plan: {e}") from e
            return None

    # What the gradient Plan reads (gradients/plan.py).
    @property
    def targets(self) -> list[str]:
        """The values the objective reads, in order."""
        return list(self._targets)

    @property
    def forward_nodes(self) -> list[Node]:
        """The nodes the objective and the kept values depend on, in graph order."""
        return list(self._forward)

    @property
    def backward_nodes(self) -> list[Node]:
        """The forward nodes that depend on a `wrt` value (their backward rules run, in reverse order)."""
        return list(self._backward)

    def gradient_needs(self, node: Node) -> list[bool]:
        """Per tensor input of a backward node: whether its gradient is wanted."""
        return list(self._needs[id(node)])

    def saved_values(self, node: Node) -> list[str]:
        """The forward values the backward node's rule reads (its declared `Backward.saves`)."""
        return list(self._reads[id(node)])

    @property
    def one_plan(self) -> bool:
        """Whether forward and backward run as one compiled Plan (see `convcore.gradients.plan`)."""
        return self._step is not None

    def profile(self, x: Array, repeats: int = 5) -> Optional[list[tuple[Any, ...]]]:
        """The one-Plan step's per-op rows (name, kind, detail, flops, seconds) for x (None for a program run node by
        node)."""
        if self._step is None:
            return None
        x = _check_input(x, self.input_shape)
        seeds = _seeds(self.objective, self.graph.shapes, self._targets, self.output, self.layers, x.shape[0])
        return self._step.profile(x, [seeds[v] for v in self._targets], _core.get_num_threads(), repeats)

    # ---------------------------------------------------------------------------------------------- planning
    def _objective_values(self, objective, graph):
        """The values the objective's terms read (validated: the layer exists, the channel and position fit)."""
        values = []
        for term in objective.terms:
            value = self.output if term.layer is None else self.layers.resolve(term.layer)
            _check_term(term, graph.shapes[value])
            values.append(value)
        return list(dict.fromkeys(values))

    def _plan(self, protected):
        g = self.graph
        producer = {node.outputs[0]: i for i, node in enumerate(g.nodes)}
        # Forward: the nodes the objective and the kept values depend on.
        needed, stack = set(), list(self._targets) + list(self.keep.values())
        while stack:
            value = stack.pop()
            i = producer.get(value)
            if i is None or i in needed:
                continue
            needed.add(i)
            stack.extend(name for name in g.nodes[i].inputs if name)
        self._forward = [g.nodes[i] for i in sorted(needed)]
        # Backward: forward nodes that depend on a wrt value.
        depends = set(self.wrt)
        self._backward = []
        for node in self._forward:
            if any(name in depends for name in node.inputs if name):
                depends.add(node.outputs[0])
                self._backward.append(node)
        missing = sorted({n.op for n in self._backward if self.rules.get(n.op) is None})
        if missing:
            nodes = [n.name for n in self._backward if n.op in missing]
            have = sorted(name for name, rule in self.rules.items() if rule is not None)
            raise NotImplementedError(f"gradients: no backward rule for op(s) {', '.join(missing)} (nodes "
                                      f"{', '.join(nodes[:5])}); ops with one: {', '.join(have)}")
        # What each backward node reads, and when each forward value may go.
        self._needs, self._reads, saved = {}, {}, {}
        for step, node in enumerate(reversed(self._backward)):
            op = OPS[node.op]
            names = _node_inputs(node, op)
            needs = [bool(name) and name in depends and name not in g.params for name in names]
            by_name = ({op.inputs[0]: any(needs)} if op.variadic else
                       {arg: need for arg, need in zip(op.inputs, needs + [False] * len(op.inputs))})
            wanted = self.rules[node.op].saved(node.attrs, by_name)
            reads = []
            for index, name in enumerate(names):
                arg = op.inputs[0] if op.variadic else op.inputs[index]
                if name and arg in wanted and name not in g.params:
                    reads.append(name)
            if "out" in wanted:
                reads.append(node.outputs[0])
            self._needs[id(node)] = needs
            self._reads[id(node)] = reads
            for name in reads:
                saved[name] = step  # the last backward step reading it
        self._saved_until = saved
        self._retained = set(saved) | set(self._targets) | set(self.keep.values())
        last_use = {}
        for i, node in enumerate(self._forward):
            for name in node.inputs:
                if name:
                    last_use[name] = i
        self._last_forward_use = last_use
        self._caches = {id(node): {} for node in self._backward}
        self.protected = protected

    # --------------------------------------------------------------------------------------------------- running
    def __call__(self, x: Array, objective: Optional[ObjectiveLike] = None) -> GradResult:
        """Run forward and backward on `x` (N, C, H, W float32). `objective`: another objective over the same layers
        (e.g. other neurons, other samples' targets); default: the program's. Returns a `GradResult`."""
        g = self.graph
        objective = self.objective if objective is None else as_objective(objective)
        if objective is not self.objective:
            for value in self._objective_values(objective, g):
                if value not in self._targets:
                    raise ValueError(f"objective: expected the layers this program was built for (got {objective})")
        x = _check_input(x, self.input_shape)
        if self._step is not None:
            return self._run_step(x, objective)
        env = {g.inputs[0]: x}
        params = g.params
        for i, node in enumerate(self._forward):
            args = [(env[name] if name in env else params[name]) if name else None for name in node.inputs]
            env[node.outputs[0]] = call_node(node, args)
            for name in node.inputs:
                if name and self._last_forward_use.get(name) == i and name not in self._retained and name in env:
                    del env[name]
        values, grads = _seed(objective, env, self.output, self.layers, x.shape[0])
        activations = {name: env[value] for name, value in self.keep.items()}
        grads = {v: (a, True) for v, a in grads.items()}
        wrt = set(self.wrt)
        for step, node in enumerate(reversed(self._backward)):
            out_name = node.outputs[0]
            entry = grads.get(out_name) if out_name in wrt else grads.pop(out_name, None)
            reads = self._reads[id(node)]
            if entry is not None:
                dy = np.ascontiguousarray(entry[0], dtype=np.float32)
                names = _node_inputs(node, OPS[node.op])
                inputs = [(env.get(name) if name in reads else params.get(name)) if name else None for name in names]
                shapes = [g.shapes[name] if name else None for name in names]
                shapes = [None if s is None else (x.shape[0], *s[1:]) if name not in params else s
                          for s, name in zip(shapes, names)]
                out = env.get(node.outputs[0]) if node.outputs[0] in reads else None
                call = BackwardCall(inputs, shapes, out, node.attrs, self._needs[id(node)], self._caches[id(node)])
                result = self.rules[node.op].rule(dy, call)
                for name, need, gi in zip(names, call.needs, result):
                    if need and gi is not None:
                        _accumulate(grads, name, gi)
            for name in reads:
                if self._saved_until.get(name) == step and name not in self._targets and name not in self.keep.values():
                    env.pop(name, None)
        wanted: dict[str, Array] = {}
        for value in self.wrt:
            entry = grads.get(value)
            shape = (x.shape[0], *g.shapes[value][1:])
            wanted[value] = np.zeros(shape, np.float32) if entry is None else np.array(entry[0], np.float32, order="C")
        return GradResult(float(values.sum()), values, wanted, activations)

    def _run_step(self, x, objective):
        batch = x.shape[0]
        seeds = _seeds(objective, self.graph.shapes, self._targets, self.output, self.layers, batch)
        got = self._step.run(x, [seeds[v] for v in self._targets], _core.get_num_threads())
        env = {v: got[("value", v)] for v in self._targets}
        env.update({v: got[("keep", v)] for v in self.keep.values()})
        values = _values(objective, env, self.output, self.layers, batch)
        grads = {}
        for value in self.wrt:
            grad = got.get(("grad", value))
            grads[value] = grad if grad is not None else np.zeros((batch, *self.graph.shapes[value][1:]), np.float32)
        activations = {name: env[value] for name, value in self.keep.items()}
        return GradResult(float(values.sum()), values, grads, activations)

    def __repr__(self) -> str:
        return (f"GradientProgram({self.graph.name}, input_shape={self.input_shape}, objective={self.objective}, "
                f"forward={len(self._forward)} nodes, backward={len(self._backward)} nodes)")


def _node_inputs(node, op):
    """A node's input names, one per tensor argument of the op ("" for absent trailing optional ones)."""
    if op.variadic or len(node.inputs) >= len(op.inputs):
        return list(node.inputs)
    return list(node.inputs) + [""] * (len(op.inputs) - len(node.inputs))


def _as_list(v, name):
    if isinstance(v, str):
        return [v]
    if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
        return list(v)
    raise TypeError(f"{name}: expected a layer name or a list of them (got {v!r})")


def _check_input(x, shape):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy.ndarray of float32 (got {type(x).__name__})")
    if x.dtype != np.float32:
        raise TypeError(f"x: expected dtype float32 (got {x.dtype}); convert with .astype(numpy.float32)")
    if x.ndim != len(shape) or tuple(x.shape[1:]) != tuple(shape[1:]) or x.shape[0] < 1:
        raise ValueError(f"x: expected shape (N, {', '.join(map(str, shape[1:]))}) (got {x.shape})")
    return np.ascontiguousarray(x)


def _check_term(term, shape):
    """ValueError naming the valid choices when a term does not fit the value of `shape` it reads."""
    where = "the model output" if term.layer is None else f"layer {term.layer!r}"
    if term.kind == "logit":
        count = math.prod(shape[1:])
        if not 0 <= term.channel < count:
            raise ValueError(f"target: expected a class index in 0..{count - 1} (got {term.channel})")
        return
    if term.kind == "layer":
        return
    if len(shape) < 2:
        raise ValueError(f"channel: {where} has shape {tuple(shape)}, without channels")
    channels = shape[1]
    if not 0 <= term.channel < channels:
        raise ValueError(f"channel: expected a channel of {where} in 0..{channels - 1} (got {term.channel}; "
                         f"its shape is {tuple(shape)})")
    if term.kind == "neuron" and term.position is not None:
        if len(shape) != 4:
            raise ValueError(f"neuron: expected a 4-D layer for a position (got {where} of shape {tuple(shape)})")
        y, x = term.position
        if not (0 <= y < shape[2] and 0 <= x < shape[3]):
            raise ValueError(f"neuron: expected a position of {where} in (0..{shape[2] - 1}, 0..{shape[3] - 1}) "
                             f"(got ({y}, {x}))")


def _seed(objective, env, output, layers, batch):
    """(per-image objective values, value name -> d objective / d value) for the forward values in `env`."""
    shapes = {name: np.shape(a) for name, a in env.items()}
    targets = list(dict.fromkeys(output if t.layer is None else layers.resolve(t.layer) for t in objective.terms))
    return _values(objective, env, output, layers, batch), _seeds(objective, shapes, targets, output, layers, batch)


def _terms(objective, output, layers, batch):
    """(term, value name, batch rows) per term of the objective."""
    for term in objective.terms:
        if term.sample is not None and not 0 <= term.sample < batch:
            raise ValueError(f"sample: expected a batch index in 0..{batch - 1} (got {term.sample})")
        rows = slice(None) if term.sample is None else slice(term.sample, term.sample + 1)
        yield term, (output if term.layer is None else layers.resolve(term.layer)), rows


def _values(objective, env, output, layers, batch):
    """The objective per image, from the forward values in `env`."""
    values = np.zeros(batch, np.float64)
    for term, name, rows in _terms(objective, output, layers, batch):
        a, w = env[name], term.weight
        if term.kind == "logit":
            values[rows] += w * a.reshape(batch, -1)[rows, term.channel]
        elif term.kind == "layer":
            values[rows] += w * a.reshape(batch, -1)[rows].mean(axis=1, dtype=np.float64)
        elif term.kind == "channel" or a.ndim != 4:
            values[rows] += w * a[:, term.channel].reshape(batch, -1)[rows].mean(axis=1, dtype=np.float64)
        else:  # a neuron of a 4-D value
            y, x = term.position if term.position is not None else (a.shape[2] // 2, a.shape[3] // 2)
            values[rows] += w * a[rows, term.channel, y, x]
    return values


def _seeds(objective, shapes, targets, output, layers, batch):
    """value name -> d objective / d value (N, ...) for each of `targets` (values with no term get zeros); `shapes`
    gives the values' shapes (the batch is replaced by `batch`). They do not depend on the values."""
    seeds = {name: np.zeros((batch, *shapes[name][1:]), np.float32) for name in targets}
    for term, name, rows in _terms(objective, output, layers, batch):
        seed, w = seeds[name], term.weight
        if term.kind == "logit":
            seed.reshape(batch, -1)[rows, term.channel] += w
        elif term.kind == "layer":
            grad = seed.reshape(batch, -1)
            grad[rows] += w / grad.shape[1]
        elif term.kind == "channel" or seed.ndim != 4:
            grad = seed[:, term.channel].reshape(batch, -1)
            grad[rows] += w / grad.shape[1]
        else:
            y, x = term.position if term.position is not None else (seed.shape[2] // 2, seed.shape[3] // 2)
            seed[rows, term.channel, y, x] += w
    return seeds


def _accumulate(grads, name, g):
    """Add gradient `g` into grads[name]: the first one is kept as it is (it may alias another gradient), a second
    one makes a new array that later ones are added into."""
    entry = grads.get(name)
    if entry is None:
        grads[name] = (g, False)
    elif entry[1]:
        np.add(entry[0], g, out=entry[0])
    else:
        grads[name] = (np.add(entry[0], g, dtype=np.float32), True)
