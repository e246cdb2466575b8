"""The op registry: `Op` (one declaration per operator), `declare` (the decorator that makes one) and `OPS`.

A declaration is a Python function whose signature and docstring are the public API (`convcore.functional.<op>`;
its body is never run), plus the parts every consumer reads:

- ``inputs``: the tensor arguments, in the order a graph `Node` lists them ("" for an absent optional one);
- ``rule(shapes, attrs) -> (attrs, shape)``: checks the input shapes and attributes exactly as the op does (the
  same errors), normalises the attributes (pairs, 4-sided padding, resolved 'same' / 'full', ...) and returns them
  with the output shape. Normalising twice changes nothing, so graph nodes store the normalised form;
- ``kernel(*arrays, out, **attrs)``: the eager computation, on validated arrays, normalised attributes and the
  output array to fill (None for a view op, which returns a view of its input instead);
- ``onnx``: the ONNX lowering, a function ``(emitter, node)`` that only talks to the exporter's emitter, or an
  `OnnxOp` for a one-to-one ONNX operator, which the importer then maps back as well;
- optional facts for graph passes and tools: ``macs`` (multiply-accumulates) and ``channel_params`` (the weight and
  bias whose axis 0 runs over the output channels, so a following batch norm folds into them);
- ``backward``: a `Backward`, the op's backward rule (the gradients of its inputs from its output's), which
  `convcore.gradients` runs in reverse graph order;
- ``plan``: a `PlanRule`, how the op runs inside a compiled Plan (`convcore.compile`); without one the op splits a
  Plan into segments and runs eagerly between them;
- ``plan_backward``: ``(gp, node, dy, needs)``, the op's backward rule inside a gradient Plan
  (`convcore.gradients.plan.GradientPlan`), written against that Plan's public methods.

The public function routes every call through the tracer of this thread or task when one is active (see
`tracing`), else validates the arrays and runs rule and kernel. See docs/adding-an-op.md and docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Tuple, TypeVar, Union, cast

from .. import _validate as V

OPS: dict[str, Op] = {}  # op name -> Op, in declaration order

# The tracer recording ops in this thread / context, or None. A context variable, so that tracing in one thread
# never changes what another thread's calls do.
_TRACER: contextvars.ContextVar = contextvars.ContextVar("convcore_tracer", default=None)


def active_tracer() -> Any:
    """The tracer recording calls in this thread (or asyncio task), or None."""
    return _TRACER.get()


@contextlib.contextmanager
def tracing(tracer: Any) -> Iterator[Any]:
    """Route op calls (``tracer.record(op, arguments)``) and module calls (``tracer.call_module(module, args,
    kwargs)``) of this thread to `tracer` inside the block."""
    token = _TRACER.set(tracer)
    try:
        yield tracer
    finally:
        _TRACER.reset(token)


@dataclass(frozen=True)
class OnnxOp:
    """A one-to-one ONNX form of an op: ONNX op type `op_type`; ``attrs`` maps ONNX attribute names to the op's
    (normalised) attribute names, ``defaults`` holds ONNX's defaults for those ONNX lets a node leave out, and
    ``fixed`` ONNX attributes are written as given.

    The exporter writes it; the importer maps an ONNX node of `op_type` back onto the op when nothing is fixed (a
    mapped attribute without an ONNX default is then required).
    """

    op_type: str
    attrs: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)

    def __call__(self, em, node):
        attrs = {onnx_name: node.attrs[name] for onnx_name, name in self.attrs.items()}
        return em.node(self.op_type, [em.value(i) for i in node.inputs], node.outputs[0], node.name,
                       **attrs, **self.fixed)

    @property
    def importable(self):
        return not self.fixed

    def import_attrs(self, onnx_attrs):
        """The op's attributes from an ONNX node's (KeyError for a missing required one)."""
        return {name: onnx_attrs[onnx_name] if onnx_name in onnx_attrs else self.defaults[onnx_name]
                for onnx_name, name in self.attrs.items()}


@dataclass
class BackwardCall:
    """What a backward rule gets besides the output gradient.

    Attributes:
        inputs: one entry per tensor input in `Op.inputs` order (per list element for a variadic op): the forward
            array where the rule saves it (`Backward.saves`) or it is a graph parameter, else None.
        shapes: the shapes of those inputs (None for an absent optional one).
        out: the forward output when the rule saves "out", else None.
        attrs: the node's normalised attributes.
        needs: one bool per entry of `inputs`: whether its gradient is wanted (False for parameters today).
        cache: a dict that lives as long as the gradient program, one per node, for data derived from parameters
            (rearranged weights); keyed by what it was derived from.
    """

    inputs: list
    shapes: list
    out: object
    attrs: dict
    needs: list
    cache: dict = field(default_factory=dict)

    def cached(self, key, array, make):
        """``make(array)``, computed once per `array` object (the parameter it is derived from) and kept in `cache`."""
        hit = self.cache.get(key)
        if hit is None or hit[0] is not array:
            hit = self.cache[key] = (array, make(array))
        return hit[1]


def _plan_inputs_ok(node, graph, ranks=(2, 4)):
    """A Plan keeps 4-D feature maps (channels-last), 2-D (N, F) values and, for the ops that take them, 3-D
    sequences, with at least one element: every computed input and every output must be one (an empty value stays
    eager, whatever its other axes' lengths)."""
    computed = [v for v in node.inputs if v and v not in graph.params]
    outputs = [v for v in node.outputs if v in graph.shapes]
    return bool(computed) and all(len(graph.shapes[v]) in ranks and all(graph.shapes[v]) for v in computed) and all(
        len(graph.shapes[v]) in ranks and all(graph.shapes[v]) for v in outputs)


@dataclass(frozen=True)
class PlanRule:
    """How an op runs inside a compiled Plan.

    Attributes:
        lower: ``lower(low, node)`` adds the node's Plan ops through ``low``, the lowering of one Plan segment
            (`convcore.plan.lower.Lowering`: ``ref``, ``define``, ``param``, ``builder``, ``conv``, ...); like an
            ONNX lowering, it only talks to the object it is given.
        supports: ``supports(node, graph) -> bool``, checked after the common rule (every computed input 2-D or
            4-D): whether this node can run in a Plan (constant weights, the axis, ...). Default: always.
        epilogue: for an elementwise activation, ``epilogue(attrs) -> (act, alpha, beta)`` (``act`` a `_core.Act`
            name): the form a producer's epilogue applies instead of a separate op.
        needs: the builder capabilities (``Plan.capabilities``) the lowering uses beyond the common builder; on a
            backend without them the node runs outside the Plan.
        per_pixel: ``per_pixel(node, graph) -> bool`` for an op that can read a channels-last 4-D value (N, H, W, C),
            the order the Plan stores maps in (`convcore.plan.lower.channels_last_values`): whether this node computes
            each pixel's values from that pixel's C values only (its last axis), so it runs on that order as it is
            and its output stays channels-last (or, like attention, reads a channels-last sequence as stored and
            gives one). Elementwise activations need not say it.
        sequences: whether the lowering also takes 3-D values (N, C, L): a Plan stores them as L pixels of C channels
            (a map of L x 1), and their channels-last form (N, L, C), a transpose (0, 2, 1) away, the same way.
            Elementwise activations take them without saying it.
        elementwise: a broadcasting binary op: it runs on channels-last operands as stored (its constants laid out
            to match), so its output stays channels-last.
        any_layout: the lowering reads its input in either stored order, laying it out itself (a reduction).
    """

    lower: Callable
    supports: Optional[Callable] = None
    epilogue: Optional[Callable] = None
    needs: frozenset = frozenset()
    per_pixel: Optional[Callable] = None
    sequences: bool = False
    elementwise: bool = False
    any_layout: bool = False

    def accepts(self, node, graph, capabilities=None):
        """Whether `node` runs inside a Plan whose builder has `capabilities` (None: any)."""
        if capabilities is not None and not self.needs <= capabilities:
            return False
        ranks = (2, 3, 4) if self.sequences or self.epilogue is not None else (2, 4)
        return _plan_inputs_ok(node, graph, ranks) and (self.supports is None or bool(self.supports(node, graph)))


def plan_binary(name):
    """The Plan form of binary op `name` (a `_core.BinaryOp`): stored operands of the output's rank (2-D, 3-D or
    4-D), a constant operand broadcast along the batch."""
    return PlanRule(lambda low, node: low.binary(node, name), elementwise_plan_ok, sequences=True, elementwise=True)


def elementwise_plan_ok(node, graph):
    """Whether a Plan runs broadcasting elementwise op `node`: operands of the output's rank (2-D, 3-D or 4-D) and
    batch, constants broadcast along the batch."""
    out_rank = len(graph.shapes[node.outputs[0]])
    for v in (v for v in node.inputs if v):
        if v in graph.params:
            shape = graph.params[v].shape
            if len(shape) > out_rank or (len(shape) == out_rank and shape[0] != 1):
                return False
        elif len(graph.shapes[v]) != out_rank or graph.shapes[v][0] != graph.shapes[node.outputs[0]][0]:
            return False
    return out_rank in (2, 3, 4)


@dataclass(frozen=True)
class Backward:
    """An op's backward rule.

    Attributes:
        rule: ``rule(grad, call) -> list``: from the gradient of the op's output (a C-contiguous float32 array shaped
            like the output) and a `BackwardCall`, one entry per tensor input: the gradient of that input (an array
            of its shape) where ``call.needs`` says so, else None.
        saves: the forward values the rule reads, among the op's tensor input names and "out": a tuple, or a function
            ``(attrs, needs) -> names`` when it depends on which gradients are wanted (a weight gradient reads x, an
            input gradient does not). Only these are kept from the forward pass for the backward one.
    """

    rule: Callable
    saves: Union[tuple, Callable] = ()

    def saved(self, attrs, needs):
        """The names (inputs and/or "out") the rule reads for a node with `attrs` when `needs` (name -> bool) are
        wanted."""
        names = self.saves(attrs, needs) if callable(self.saves) else self.saves
        return frozenset(names)


class Op:
    """One operator's declaration (see the module docstring); built by `declare`, listed in `OPS`.

    Attributes:
        name: the op name, e.g. "conv2d" (`convcore.functional.conv2d`, `Node.op`).
        inputs: tensor argument names in `Node.inputs` order; for a variadic op (concat) the one list argument.
        optional: the inputs that may be None (their default is None).
        attrs: every other argument (except ``out``) -> its default, in signature order.
        rule, kernel, onnx, macs, channel_params, backward, plan, plan_backward: the declared parts (module
            docstring); backward, plan and plan_backward are None for an op without them.
        variadic: the one tensor argument is a list of tensors (concat).
        allow_empty: arrays with a zero dimension are accepted (elementwise ops).
        view: the kernel returns a view of its input and gets ``out=None`` (flatten).
        function: the public function.
    """

    def __init__(self, spec, inputs, rule, kernel, *, onnx=None, variadic=False, allow_empty=False, view=False,
                 macs=None, channel_params=None, backward=None, plan=None, plan_backward=None):
        self.name = spec.__name__
        self.signature = inspect.signature(spec)
        params = self.signature.parameters
        if list(params)[:len(inputs)] != list(inputs):
            raise TypeError(f"{self.name}: expected the tensor arguments {inputs} first in the signature")
        if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params.values()):
            raise TypeError(f"{self.name}: expected plain (positional or keyword) parameters only")
        self._defaults = {n: p.default for n, p in params.items() if p.default is not p.empty}
        self.inputs = tuple(inputs)
        self.optional = frozenset(n for n in inputs if params[n].default is None)
        self.attrs = {n: p.default for n, p in params.items() if n not in inputs and n != "out"}
        self.rule, self.kernel, self.onnx = rule, kernel, onnx
        self.variadic, self.allow_empty, self.view = variadic, allow_empty, view
        self.macs, self.channel_params = macs, channel_params
        if backward is not None and not isinstance(backward, Backward):
            raise TypeError(f"{self.name}: expected backward as a Backward (got {type(backward).__name__})")
        self.backward = backward
        if plan is not None and not isinstance(plan, PlanRule):
            raise TypeError(f"{self.name}: expected plan as a PlanRule (got {type(plan).__name__})")
        if plan_backward is not None and (plan is None or backward is None):
            raise TypeError(f"{self.name}: a plan_backward needs the op's plan and backward rule")
        self.plan, self.plan_backward = plan, plan_backward
        self.function = self._public(spec)

    def _public(self, spec):
        @functools.wraps(spec)
        def function(*args, **kwargs):
            arguments = self._bind(args, kwargs)
            tracer = _TRACER.get()
            if tracer is not None:
                return tracer.record(self, arguments)
            return self.compute(arguments)

        function.op = self
        return function

    def _bind(self, args, kwargs):
        """The call's arguments by name, defaults filled in: `Signature.bind` in a fraction of its time (eager ops
        are called per layer), which is still what reports a call that does not fit the signature."""
        params = self.signature.parameters
        arguments = dict(zip(params, args))
        if len(args) > len(params) or not arguments.keys().isdisjoint(kwargs) or not params.keys() >= kwargs.keys():
            self.signature.bind(*args, **kwargs)  # raises the TypeError Python would
        arguments.update(kwargs)
        for name, default in self._defaults.items():
            arguments.setdefault(name, default)
        if len(arguments) < len(params):
            self.signature.bind(*args, **kwargs)  # a required argument is missing: raises
        return arguments

    def infer(self, shapes: Sequence[Optional[Sequence[int]]],
              attrs: Mapping[str, Any]) -> Tuple[dict[str, Any], Tuple[int, ...]]:
        """(normalised attributes, output shape) of the op for input shapes and attributes, without computing.

        Args:
            shapes: one shape per input in `inputs` order (None for an absent optional input; trailing ones may be
                left out), or for a variadic op one shape per list element.
            attrs: attribute values; missing ones take their defaults.

        Raises:
            ValueError / TypeError: whatever the op raises for such inputs.
        """
        if not self.attrs.keys() >= attrs.keys():
            raise TypeError(f"{self.name}: expected attributes among {list(self.attrs)} (got "
                            f"{sorted(attrs.keys() - self.attrs.keys())})")
        normal: list[Optional[Tuple[int, ...]]] = [None if s is None else tuple(map(int, s)) for s in shapes]
        if not self.variadic:
            normal += [None] * (len(self.inputs) - len(normal))
            for name, shape in zip(self.inputs, normal):
                if shape is None and name not in self.optional:
                    raise ValueError(f"{name}: expected a tensor (got none)")
        normalised, out = self.rule(normal, {**self.attrs, **attrs})
        return normalised, tuple(map(int, out))

    def arrays(self, arguments):
        """The op's tensor arguments from a bound call, validated (float32, C-contiguous, size limit); a list of
        them for a variadic op."""
        if self.variadic:
            xs = arguments[self.inputs[0]]
            if not isinstance(xs, (list, tuple)) or len(xs) == 0:
                raise TypeError(f"{self.inputs[0]}: expected a non-empty list or tuple of float32 arrays (got "
                                f"{type(xs).__name__})")
            return [V.tensor(x, f"{self.inputs[0]}[{i}]", self.allow_empty) for i, x in enumerate(xs)]
        return [None if arguments[n] is None and n in self.optional else V.tensor(arguments[n], n, self.allow_empty)
                for n in self.inputs]

    def compute(self, arguments):
        """Run the op eagerly on a bound call's arguments (name -> value, defaults applied)."""
        arrays = self.arrays(arguments)
        # The rule directly: a bound call has every attribute, and array shapes are tuples of ints already.
        shapes = [None if a is None else a.shape for a in arrays]
        attrs, shape = self.rule(shapes, {n: arguments[n] for n in self.attrs})
        out = None if self.view else V.output(arguments.get("out"), shape, "out", tuple(arrays))
        return self.kernel(*([arrays] if self.variadic else arrays), out=out, **attrs)

    def __repr__(self):
        return f"Op({self.name!r}, inputs={self.inputs}, attrs={list(self.attrs)})"


_Spec = TypeVar("_Spec", bound=Callable[..., Any])


def declare(inputs: Sequence[str], rule: Callable[..., Any], kernel: Callable[..., Any],
            **facts: Any) -> Callable[[_Spec], _Spec]:
    """Decorator declaring an op from its public signature function (see the module docstring); returns the public
    function and adds the `Op` to `OPS`. The public function has the spec's signature and annotations (which type
    checkers read as the op's)."""

    def register(spec: _Spec) -> _Spec:
        op = Op(spec, inputs, rule, kernel, **facts)
        if op.name in OPS:
            raise ValueError(f"expected a new op name (got {op.name!r}, already declared)")
        OPS[op.name] = op
        return cast(_Spec, op.function)

    return register


def get(name: str) -> Op:
    """The `Op` declared as `name`; ValueError naming the declared ops otherwise."""
    if name not in OPS:
        raise ValueError(f"expected a declared op (got {name!r}); declared: {', '.join(OPS)}")
    return OPS[name]
