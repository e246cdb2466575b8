"""A gradient step as one compiled Plan: the forward pass and then the backward pass to the input, in one C++ call.

`GradientProgram` (program.py) lowers its forward nodes as `convcore.compile` does (`plan.lower.Lowering`, keeping
every value a backward op reads) and then each backward node through its op's declared Plan backward
(``plan_backward`` in `convcore.ops`), which calls the methods of `GradientPlan` below:

- a convolution's input gradient is a transposed convolution: one stride-1 convolution per output phase over dy
  (`Phase`, computed by the C++ that rearranges the weights), run by the Plan's conv kernels, then put together by
  `interleave` (a stride-1 convolution is one phase, written directly); a stem with few input channels is one GEMM
  and a gather (`col2im`);
- a gradient reaching a value from several readers is summed: a convolution's gradient takes what is already there
  as its residual (a ResNet block's skip path), otherwise an add op;
- activations: `act_grad` (the kernels' derivative), or, for a ReLU / ReLU6, the mask the op making the last
  contribution to its output's gradient applies in its epilogue; max pooling: `max_pool_grad`; average pooling:
  `avg_pool_grad`, or a broadcast multiply to 1x1; linear: a 1x1 convolution with the transposed weights; batch norm
  left unfolded: a per-channel scale.

Guided backpropagation (`guided_rules()`) runs here too: dy is clamped at 0 before a rectifying activation's backward
(in the epilogue of the op applying its mask, else in `act_grad`).

The Plan's inputs are x and one seed per value the objective reads (d objective / d value, which does not depend on
x); its outputs are those values (for the objective's value), the kept activations and the gradients asked for.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..ops import OPS
from ..plan.lower import NO_ACT, Lowering, epilogue_of
from ..plan.transposed import Phase, phases, transposed_conv

__all__ = ["GradientPlan", "Phase", "phases", "backward_ops"]

CLAMPS = {"relu": (0.0, float("inf")), "relu6": (0.0, 6.0)}  # dx = dy where lo < y < hi: a mask any op can apply
# Forward fusions that keep every value a backward op reads (an inverted-residual block or a gated convolution
# would hide theirs).
FUSIONS = frozenset({"batchnorm", "activation", "residual", "concat"})


def backward_ops():
    """The ops a gradient Plan lowers: those declared with a ``plan_backward``."""
    return frozenset(name for name, op in OPS.items() if op.plan_backward is not None)


class GradientPlan:
    """The forward and backward passes of a `GradientProgram` as one `_core.Plan` (raises NotImplementedError for a
    graph it cannot lower).

    Args:
        program: the GradientProgram (its graph, forward and backward nodes, targets, wrt, keep, saved values).
        isa: the kernels to pack for.
        winograd: Winograd in the forward convolutions (the program's choice: off by default, see its docstring).
        backward_winograd: Winograd in the backward convolutions where the forward Plan would use it ("auto"): their
            rounding error only scales the gradient, it moves no ReLU or max-pool decision.
    """

    def __init__(self, program, isa, winograd=False, backward_winograd="auto"):
        g = program.graph
        lowerable = backward_ops()
        unsupported = sorted({n.op for n in program.backward_nodes if n.op not in lowerable})
        if unsupported:
            raise NotImplementedError(f"gradient plan: no backward op for {', '.join(unsupported)}")
        self.graph, self.guided = g, frozenset(program.guided)  # the activations guided backprop clamps dy at
        self.targets, self.keep, self.wrt = list(program.targets), dict(program.keep), list(program.wrt)
        self.input = g.inputs[0]
        saved = [v for node in program.backward_nodes for v in program.saved_values(node)]
        pinned = sorted(set(saved) | set(self.targets) | set(self.keep.values()) | set(self.wrt))
        low = Lowering(g, program.forward_nodes, [self.input], pinned, isa, winograd, FUSIONS)
        self.low, self.builder = low, low.builder
        shape = g.shapes[self.input]
        low.define(self.input, self.builder.add_input(*shape[1:]), shape)
        seeds = [self._add_input(v) for v in self.targets]
        for node in program.forward_nodes:
            low.lower_node(node)
        for value in pinned:
            if value not in low.env:
                raise NotImplementedError(f"gradient plan: value '{value}' was fused away")
        self.backward_winograd = backward_winograd
        self.grads = dict(zip(self.targets, seeds))
        self.ready_4d = set()  # flatten outputs whose gradient linear already laid out as the 4-D input
        # Gradient contributions each value has still to receive, and the clamps whose mask an op already applied.
        self.needs = {id(node): program.gradient_needs(node) for node in program.backward_nodes}
        self.pending = {}
        for node in program.backward_nodes:
            for name, need in zip(node.inputs, self.needs[id(node)]):
                if need:
                    self.pending[name] = self.pending.get(name, 0) + 1
        self.producer = {node.outputs[0]: node for node in program.backward_nodes}
        self.masked = set()
        for node in reversed(program.backward_nodes):
            needs = self.needs[id(node)]
            for name, need in zip(node.inputs, needs):
                if need:
                    self.pending[name] -= 1
            dy = self.grads.get(node.outputs[0])
            if dy is not None:
                OPS[node.op].plan_backward(self, node, dy, needs)
        # Outputs: the objective's values, the kept activations, the gradients.
        self.outputs = [("value", v) for v in self.targets] + [("keep", v) for v in self.keep.values()] + \
                       [("grad", v) for v in self.wrt if v in self.grads]
        tids = [self.grads[value] if kind == "grad" else low.materialize(low.env[value], value).tid
                for kind, value in self.outputs]  # ops first, then outputs
        for tid, (_, value) in zip(tids, self.outputs):
            self.builder.add_output(tid, len(g.shapes[value]) == 4)

    # ------------------------------------------------------------------------------------------------ running
    def run(self, x, seeds, threads):
        """{(kind, value): array} for x and the seeds (one per target, NCHW, batch of x)."""
        n = x.shape[0]
        outs = [np.empty((n, *self.graph.shapes[v][1:]), np.float32) for _, v in self.outputs]
        self.builder.run([x, *seeds], outs, threads)
        return dict(zip(self.outputs, outs))

    def profile(self, x, seeds, threads, repeats):
        """The Plan's per-op rows (name, kind, detail, flops, seconds)."""
        outs = [np.empty((x.shape[0], *self.graph.shapes[v][1:]), np.float32) for _, v in self.outputs]
        return self.builder.profile([x, *seeds], outs, threads, repeats)

    # ----------------------------------------------------------------------------------------------- building
    def _add_input(self, value):
        shape = self.graph.shapes[value]
        return self.builder.add_input(*shape[1:]) if len(shape) == 4 else self.builder.add_input(shape[1], 1, 1)

    def _mask(self, value, epilogue=True):
        """The epilogue (mask tensor, bounds) of the op making the last contribution to `value`'s gradient when
        `value` is a ReLU / ReLU6 output: that op applies the clamp's gradient (and its own step then passes the
        gradient on); (NO_ACT, -1) otherwise. Guided backpropagation clamps dy at 0 first, which only an op with an
        epilogue (`epilogue`) can do."""
        node = self.producer.get(value)
        guided = node is not None and node.op in self.guided
        if node is None or node.op not in CLAMPS or self.pending.get(value) != 0 or value in self.wrt or \
                not self.needs[id(node)][0] or (guided and not epilogue):
            return NO_ACT, -1
        self.masked.add(id(node))
        lo, hi = CLAMPS[node.op]
        act = _core.Act.relu if guided else _core.Act.none
        return _core.Epilogue(act=act, mask_lo=lo, mask_hi=hi), self.low.env[value].tid

    def _accumulate(self, value, tid, name):
        have = self.grads.get(value)
        self.grads[value] = tid if have is None else \
            self.builder.binary(name + ".grad_sum", have, tid, _core.BinaryOp.add)

    def conv_backward(self, node, dy, needs):
        if any(needs[1:]):
            raise NotImplementedError("gradient plan: weight gradients")
        if not needs[0]:
            return
        g, a = self.graph, node.attrs
        x = node.inputs[0]
        weight = np.ascontiguousarray(g.params[node.inputs[1]], np.float32)
        groups = a.get("groups", g.shapes[x][1])
        self._transposed_conv(node.name, x, dy, weight, tuple(a["stride"]), tuple(a["padding"]),
                              tuple(a["dilation"]), groups)

    def _transposed_conv(self, name, x, dy, weight, stride, padding, dilation, groups):
        """dx of a convolution (x -> y) from dy (plan/transposed.py); what x's gradient already holds comes in as
        the residual, and a ReLU's mask at x is applied by the op writing dx."""
        _, c, h, w = self.graph.shapes[x]
        self.grads[x] = transposed_conv(self.builder, name + ".dx", dy, weight, (c, h, w), stride, padding, dilation,
                                        groups, self.grads.get(x, -1),
                                        lambda single: self._mask(x, epilogue=single), self.backward_winograd)

    def activation_backward(self, node, dy, needs):
        if not needs[0]:
            return
        if id(node) in self.masked:  # the op making dy applied this clamp's mask
            return self._accumulate(node.inputs[0], dy, node.name)
        epilogue = epilogue_of(node)
        v = node.outputs[0] if _core.act_grad_from(epilogue.act) == "output" else node.inputs[0]
        tid = self.builder.act_grad(node.name + ".dx", dy, self.low.env[v].tid, epilogue, node.op in self.guided)
        self._accumulate(node.inputs[0], tid, node.name)

    def add_backward(self, node, dy, needs):
        for name, need in zip(node.inputs[:2], needs):
            if need:
                self._accumulate(name, self._unbroadcast(name, node, dy), node.name)

    def _unbroadcast(self, value, node, grad):
        """The gradient of operand `value` of a broadcasting node from `grad` (the output's shape): summed over the
        pixels for a per-channel operand (N, C, 1, 1)."""
        out = tuple(self.graph.shapes[node.outputs[0]])
        shape = tuple(self.graph.shapes[value])
        if shape == out:
            return grad
        if len(out) == 4 and shape == (out[0], out[1], 1, 1):
            mean = self.builder.global_pool(f"{node.name}.d{value}.sum", grad, False)
            return self.builder.affine(f"{node.name}.d{value}.scale", mean,
                                       np.full(out[1], out[2] * out[3], np.float32), None)
        raise NotImplementedError(f"gradient plan: {node.op} of shapes {shape} and {out}")

    def mul_backward(self, node, dy, needs):
        """d a = dy * b (summed over the pixels for a per-channel gate (N, C, 1, 1), as squeeze-excitation's)."""
        g, low = self.graph, self.low
        out = g.shapes[node.outputs[0]]
        a, b = node.inputs[:2]
        for this, other, need in ((a, b, needs[0]), (b, a, needs[1] if len(needs) > 1 else False)):
            if not need:
                continue
            ref = low.ref(other, len(out))
            ref = low.materialize(ref, node.name) if other not in g.params else ref
            prod = self.builder.binary(f"{node.name}.d{this}", dy, ref.tid, _core.BinaryOp.mul)
            self._accumulate(this, self._unbroadcast(this, node, prod), node.name)

    def concat_backward(self, node, dy, needs):
        """Each input's gradient is its channel slice of dy (a view: nothing is copied)."""
        offset = 0
        h, w, _ = self.builder.dims(dy)
        for name, need in zip(node.inputs, needs):
            channels = self.graph.shapes[name][1]
            if need:
                view = self.builder.tensor(h, w, channels)
                self.builder.alias(view, dy, offset)
                self._accumulate(name, view, node.name)
            offset += channels

    def avg_pool_backward(self, node, dy, needs):
        if not needs[0]:
            return
        a, x = node.attrs, node.inputs[0]
        _, _, h, w = self.graph.shapes[x]
        tid = self.builder.avg_pool_grad(node.name + ".dx", dy, h, w, a["kernel_size"], a["stride"], a["padding"],
                                         a["count_include_pad"])
        self._accumulate(x, tid, node.name)

    def max_pool_backward(self, node, dy, needs):
        if not needs[0]:
            return
        a, x = node.attrs, node.inputs[0]
        pads = a["padding"]
        epilogue, mask = self._mask(x, epilogue=False) if x not in self.grads else (NO_ACT, -1)
        tid = self.builder.max_pool_grad(node.name + ".dx", self.low.env[x].tid, dy, a["kernel_size"], a["stride"],
                                         a["dilation"], (pads[0], pads[2]), mask, epilogue.mask_lo, epilogue.mask_hi)
        self._accumulate(x, tid, node.name)

    def adaptive_avg_pool_backward(self, node, dy, needs):
        if not needs[0]:
            return
        x = node.inputs[0]
        _, c, h, w = self.graph.shapes[x]
        out_hw = tuple(self.graph.shapes[node.outputs[0]][2:])
        if out_hw == (h, w):
            return self._accumulate(x, dy, node.name)
        if out_hw != (1, 1):
            raise NotImplementedError("gradient plan: adaptive average pooling to more than 1x1")
        spread = self.builder.constant(np.full((h, w, 1), 1.0 / (h * w), np.float32))
        self._accumulate(x, self.builder.binary(node.name + ".dx", dy, spread, _core.BinaryOp.mul), node.name)

    def flatten_backward(self, node, dy, needs):
        if not needs[0]:
            return
        x = node.inputs[0]
        shape = self.graph.shapes[x]
        if node.outputs[0] in self.ready_4d or len(shape) != 4 or shape[2] * shape[3] == 1:
            return self._accumulate(x, dy, node.name)  # (N, C, 1, 1) and (N, C) are both stored as 1 x 1 x C
        raise NotImplementedError("gradient plan: flatten of a map read other than by linear")

    def linear_backward(self, node, dy, needs):
        if any(needs[1:]):
            raise NotImplementedError("gradient plan: weight gradients")
        if not needs[0]:
            return
        g, x = self.graph, node.inputs[0]
        wt = np.ascontiguousarray(np.asarray(g.params[node.inputs[1]], np.float32).T)  # (F, K)
        producer = self.low.producer.get(x)
        flat = None
        if producer is not None and producer.op == "flatten" and len(g.shapes[producer.inputs[0]]) == 4 and \
                len(self.low.readers.get(x, [])) == 1 and x not in self.grads:
            _, c, h, w = g.shapes[producer.inputs[0]]
            if h * w > 1:  # the rows in (h, w, c) order: dx is then the 4-D input's gradient as stored
                flat = (c, h, w)
                wt = np.ascontiguousarray(wt.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(wt.shape))
        f, k = wt.shape
        epilogue, mask = self._mask(x) if flat is None else (NO_ACT, -1)
        tid = self.builder.conv(node.name + ".dx", dy, wt.reshape(f, k, 1, 1), None, spec=_core.ConvSpec(),
                                epilogue=epilogue, residual=self.grads.get(x, -1), mask=mask)
        if flat is not None:
            c, h, w = flat
            tid = self.builder.reshape(tid, h, w, c)
            self.ready_4d.add(x)
        self.grads[x] = tid

    def batch_norm_backward(self, node, dy, needs):
        if any(needs[1:]):
            raise NotImplementedError("gradient plan: batch-norm parameter gradients")
        if not needs[0]:
            return
        g, a = self.graph, node.attrs
        x, mean, var, weight = (list(node.inputs) + [""] * 5)[:4]
        var64 = np.asarray(g.params[var], np.float64)
        scale = (np.asarray(g.params[weight], np.float64) if weight else 1.0) / np.sqrt(var64 + a["eps"])
        if len(g.shapes[x]) not in (2, 4):
            raise NotImplementedError("gradient plan: batch norm of a 3-D value")
        tid = self.builder.affine(node.name + ".dx", dy, np.ascontiguousarray(scale, np.float32), None)
        self._accumulate(x, tid, node.name)

