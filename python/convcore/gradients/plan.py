"""A gradient step as one compiled Plan: the forward pass and then the backward pass to the input, in one C++ call.

`GradientProgram` (program.py) runs the backward rules of `convcore.ops` one node at a time, each a numpy call on
NCHW arrays. For a program run many times that costs layout conversions and a pass over memory per rule. Here the
same rules are lowered to Plan ops over the Plan's channels-last arena, after the forward ops (`plan.lower`):

- a convolution's input gradient is a transposed convolution: one stride-1 convolution per output phase over dy
  (the weights rearranged by `conv2d_input_grad_weights`, as the eager rule does), run by the Plan's conv kernels,
  then put together by `interleave` (a stride-1 convolution is one phase, written directly);
- a gradient reaching a value from several readers is summed: a convolution's gradient takes what is already there
  as its residual (a ResNet block's skip path), otherwise an add op;
- activations, max pooling: the `act_grad` and `max_pool_grad` ops, reading the forward values the Plan keeps (only
  those: the others are planned away as in a forward Plan); average pooling to 1x1: a broadcast multiply; linear:
  a 1x1 convolution with the transposed weights; batch norm left unfolded: a per-channel scale.

The Plan's inputs are x and one seed per value the objective reads (d objective / d value, which does not depend on
x); its outputs are those values (for the objective's value), the kept activations and the gradients asked for.
Graphs with an op outside `BACKWARD_OPS`, or programs with their own rules, run the node-by-node path instead.
"""

from __future__ import annotations

import numpy as np

from ..plan.lower import ALGO_AUTO, ALGO_WINOGRAD, BINARY, NO_ACT, Lowering
from .compiled import phases

__all__ = ["GradientPlan", "BACKWARD_OPS"]

ACTIVATIONS = {"relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid"}
FROM_OUTPUT = {"relu", "relu6", "sigmoid", "tanh"}  # as the eager rules (ops/activation.py): their output is kept
FEW_CHANNELS = 16  # a convolution with fewer input channels gets its input gradient by col2im (see plan_col2im)
CLAMPS = {"relu": (0.0, float("inf")), "relu6": (0.0, 6.0)}  # dx = dy where lo < y < hi: a mask any op can apply
BACKWARD_OPS = ACTIVATIONS | {"conv2d", "depthwise_conv2d", "add", "mul", "concat", "max_pool2d", "avg_pool2d",
                              "adaptive_avg_pool2d", "global_avg_pool2d", "flatten", "linear", "batch_norm"}
# Forward fusions that keep every value a backward op reads (an inverted-residual block or a gated convolution
# would hide theirs).
FUSIONS = frozenset({"batchnorm", "activation", "residual", "concat"})


class GradientPlan:
    """The forward and backward passes of a `GradientProgram` as one `_core.Plan` (raises NotImplementedError for a
    graph it cannot lower).

    Args:
        program: the GradientProgram (its graph, forward and backward nodes, objective values, wrt and keep).
        isa: the kernels to pack for.
        winograd: Winograd in the forward convolutions (the program's choice: off by default, see its docstring).
        backward_winograd: Winograd in the backward convolutions where the forward Plan would use it ("auto"): their
            rounding error only scales the gradient, it moves no ReLU or max-pool decision.
    """

    def __init__(self, program, isa, winograd=False, backward_winograd="auto"):
        g = program.graph
        unsupported = sorted({n.op for n in program._backward if n.op not in BACKWARD_OPS})
        if unsupported:
            raise NotImplementedError(f"gradient plan: no backward op for {', '.join(unsupported)}")
        self.graph = g
        self.targets = list(program._targets)
        self.keep = dict(program.keep)
        self.wrt = list(program.wrt)
        self.input = g.inputs[0]
        needs = {id(node): program._needs[id(node)] for node in program._backward}
        saved = self._saved(program._backward, needs)
        pinned = sorted(set(saved) | set(self.targets) | set(self.keep.values()) | set(self.wrt))
        low = Lowering(g, program._forward, [self.input], pinned, isa, winograd, FUSIONS)
        self.low, self.plan = low, low.plan
        shape = g.shapes[self.input]
        low.define(self.input, self.plan.add_input(*shape[1:]), shape)
        seeds = [self._add_input(v) for v in self.targets]
        for node in program._forward:
            if id(node) not in low.skip:
                getattr(low, "op_" + node.op)(node)
        for value in pinned:
            if value not in low.env:
                raise NotImplementedError(f"gradient plan: value '{value}' was fused away")
        self.forward_ops = len(self.plan.ops())  # the Plan's ops before this index are the forward pass
        self.backward_winograd = backward_winograd
        self.grads = dict(zip(self.targets, seeds))
        self.ready_4d = set()  # flatten outputs whose gradient linear already laid out as the 4-D input
        # Gradient contributions each value has still to receive, and the clamps whose mask an op already applied.
        self.pending = {}
        for node in program._backward:
            for name, need in zip(node.inputs, needs[id(node)]):
                if need:
                    self.pending[name] = self.pending.get(name, 0) + 1
        self.producer = {node.outputs[0]: node for node in program._backward}
        self.needs = needs
        self.masked = set()
        for node in reversed(program._backward):
            for name, need in zip(node.inputs, needs[id(node)]):
                if need:
                    self.pending[name] -= 1
            dy = self.grads.get(node.outputs[0])
            if dy is not None:
                getattr(self, "_bw_" + node.op)(node, dy, needs[id(node)])
        # Outputs: the objective's values, the kept activations, the gradients.
        self.outputs = [("value", v) for v in self.targets] + [("keep", v) for v in self.keep.values()] + \
                       [("grad", v) for v in self.wrt if v in self.grads]
        for kind, value in self.outputs:
            ref = low.materialize(low.env[value], value) if kind != "grad" else None
            tid = ref.tid if ref is not None else self.grads[value]
            self.plan.add_output(tid, len(g.shapes[value]) == 4)

    # ------------------------------------------------------------------------------------------------ running
    def run(self, x, seeds, threads):
        """{(kind, value): array} for x and the seeds (one per target, NCHW, batch of x)."""
        n = x.shape[0]
        outs = [np.empty((n, *self.graph.shapes[v][1:]), np.float32) for _, v in self.outputs]
        self.plan.run([x, *seeds], outs, threads)
        return dict(zip(self.outputs, outs))

    def profile(self, x, seeds, threads, repeats):
        """The Plan's per-op rows (name, kind, detail, flops, seconds)."""
        outs = [np.empty((x.shape[0], *self.graph.shapes[v][1:]), np.float32) for _, v in self.outputs]
        return self.plan.profile([x, *seeds], outs, threads, repeats)

    # ----------------------------------------------------------------------------------------------- building
    def _saved(self, nodes, needs):
        """The forward values the backward ops read."""
        saved = []
        for node in nodes:
            if node.op in ACTIVATIONS:
                saved.append(node.outputs[0] if node.op in FROM_OUTPUT else node.inputs[0])
            elif node.op == "max_pool2d" and needs[id(node)][0]:
                saved.append(node.inputs[0])
            elif node.op == "mul":  # each operand's gradient reads the other
                saved.extend(v for v, need in zip(node.inputs[1::-1], needs[id(node)]) if need and
                             v not in self.graph.params)
        return saved

    def _add_input(self, value):
        shape = self.graph.shapes[value]
        return self.plan.add_input(*shape[1:]) if len(shape) == 4 else self.plan.add_input(shape[1], 1, 1)

    def _mask(self, value):
        """(mask tensor, lo, hi) when the contribution being made is the last one `value` receives and `value` is a
        ReLU / ReLU6 output: the op making it applies that clamp's gradient (the clamp's own step then passes the
        gradient on); (-1, 0, 0) otherwise."""
        node = self.producer.get(value)
        if node is None or node.op not in CLAMPS or self.pending.get(value) != 0 or value in self.wrt or \
                not self.needs[id(node)][0]:
            return -1, 0.0, 0.0
        self.masked.add(id(node))
        return (self.low.env[value].tid, *CLAMPS[node.op])

    def _accumulate(self, value, tid, name):
        have = self.grads.get(value)
        self.grads[value] = tid if have is None else \
            self.plan.binary(name + ".grad_sum", have, tid, BINARY["add"], *NO_ACT)

    def _bw_conv2d(self, node, dy, needs):
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

    _bw_depthwise_conv2d = _bw_conv2d

    def _transposed_conv(self, name, x, dy, weight, stride, padding, dilation, groups):
        """dx of a convolution (x -> y) from dy: per output phase a stride-1 convolution over dy (see compiled.py),
        then interleaved; what x's gradient already holds comes in as the residual."""
        _, c, h, w = self.graph.shapes[x]
        k, _, r, s = weight.shape
        oh, ow, _ = self.plan.dims(dy)
        residual = self.grads.get(x, -1)
        mask = self._mask(x)
        if groups == 1 and c < FEW_CHANNELS:  # one GEMM into the taps' columns, then gathered
            taps = weight.transpose(2, 3, 1, 0).reshape(r * s * c, k, 1, 1)  # row (r, s, c) = W[:, c, r, s]
            t = self.plan.conv(name + ".cols", dy, np.ascontiguousarray(taps), None, (1, 1), (1, 1), (0, 0, 0, 0), 1,
                               *NO_ACT, -1, ALGO_AUTO)
            self.grads[x] = self.plan.col2im(name + ".dx", t, h, w, c, (r, s), stride, dilation,
                                             (padding[0], padding[2]), residual, *mask)
            return
        rows, cols, all_phases = phases(weight, (h, w), (oh, ow), stride, padding, dilation, groups)
        grid = []
        for phase in all_phases:
            if phase.weight is None:
                grid.append(-1)
                continue
            pt, pb, pl, pr = phase.pads
            out_hw = (oh + pt + pb - phase.dilation[0] * (phase.rows[0] - 1),
                      ow + pl + pr - phase.dilation[1] * (phase.cols[0] - 1))
            one = stride == (1, 1) and phase.crop == (0, 0) and out_hw == (h, w)  # the one phase is dx itself
            tid = self._conv(f"{name}.dx{len(grid)}", dy, np.ascontiguousarray(phase.weight), phase.dilation,
                             phase.pads, groups, residual if one else -1, mask if one else (-1, 0.0, 0.0))
            if one:
                self.grads[x] = tid
                return
            grid.append(tid)
        # Per residue of dx rows (columns): which phase, its first row, its row count, its crop.
        row_slots = [[-1, 0, 0, 0] for _ in rows]
        col_slots = [[-1, 0, 0, 0] for _ in cols]
        for phase, tid in zip(all_phases, grid):
            if tid >= 0:
                (i, j), (ph, pw), (a, b) = phase.index, (phase.rows, phase.cols), phase.crop
                row_slots[ph[3]] = [i, ph[3], ph[2], a]
                col_slots[pw[3]] = [j, pw[3], pw[2], b]
        self.grads[x] = self.plan.interleave(name + ".dx", h, w, c, row_slots, col_slots, grid, residual, *mask)

    def _conv(self, name, dy, weight, dilation, pads, groups, residual, mask):
        ok = self.backward_winograd is not False and weight.shape[2:] == (3, 3) and dilation == (1, 1) and groups == 1
        if ok and self.backward_winograd == "auto":
            h, w, _ = self.plan.dims(dy)
            ok = weight.shape[0] >= 32 and weight.shape[1] >= 32 and -(-h // 4) * -(-w // 4) >= 32
        algo = ALGO_WINOGRAD if ok else ALGO_AUTO
        return self.plan.conv(name, dy, weight, None, (1, 1), dilation, pads, groups, *NO_ACT, residual, algo, -1,
                              *mask)

    def _activation(self, node, dy, needs):
        if not needs[0]:
            return
        if id(node) in self.masked:  # the op making dy applied this clamp's mask
            return self._accumulate(node.inputs[0], dy, node.name)
        v = node.outputs[0] if node.op in FROM_OUTPUT else node.inputs[0]
        alpha = node.attrs.get("negative_slope", 0.0)
        tid = self.plan.act_grad(node.name + ".dx", dy, self.low.env[v].tid, node.op, alpha)
        self._accumulate(node.inputs[0], tid, node.name)

    _bw_relu = _bw_relu6 = _bw_leaky_relu = _bw_sigmoid = _bw_tanh = _bw_silu = _bw_hardswish = _bw_hardsigmoid = \
        _activation

    def _bw_add(self, node, dy, needs):
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
            mean = self.plan.global_pool(f"{node.name}.d{value}.sum", grad, False)
            return self.plan.affine(f"{node.name}.d{value}.scale", mean,
                                    np.full(out[1], out[2] * out[3], np.float32), None, *NO_ACT)
        raise NotImplementedError(f"gradient plan: {node.op} of shapes {shape} and {out}")

    def _bw_mul(self, node, dy, needs):
        """d a = dy * b (summed over the pixels for a per-channel gate (N, C, 1, 1), as squeeze-excitation's)."""
        g, low = self.graph, self.low
        out = g.shapes[node.outputs[0]]
        a, b = node.inputs[:2]
        for this, other, need in ((a, b, needs[0]), (b, a, needs[1] if len(needs) > 1 else False)):
            if not need:
                continue
            ref = low.ref(other, len(out))
            ref = low.materialize(ref, node.name) if other not in g.params else ref
            prod = self.plan.binary(f"{node.name}.d{this}", dy, ref.tid, BINARY["mul"], *NO_ACT)
            self._accumulate(this, self._unbroadcast(this, node, prod), node.name)

    def _bw_concat(self, node, dy, needs):
        """Each input's gradient is its channel slice of dy (a view: nothing is copied)."""
        if node.attrs["axis"] != 1:
            raise NotImplementedError("gradient plan: concat along an axis other than channels")
        offset = 0
        h, w, _ = self.plan.dims(dy)
        for name, need in zip(node.inputs, needs):
            channels = self.graph.shapes[name][1]
            if need:
                view = self.plan.tensor(h, w, channels)
                self.plan.alias(view, dy, offset)
                self._accumulate(name, view, node.name)
            offset += channels

    def _bw_avg_pool2d(self, node, dy, needs):
        if not needs[0]:
            return
        a, x = node.attrs, node.inputs[0]
        _, _, h, w = self.graph.shapes[x]
        tid = self.plan.avg_pool_grad(node.name + ".dx", dy, h, w, a["kernel_size"], a["stride"], a["padding"],
                                      a["count_include_pad"])
        self._accumulate(x, tid, node.name)

    def _bw_max_pool2d(self, node, dy, needs):
        if not needs[0]:
            return
        a, x = node.attrs, node.inputs[0]
        pads = a["padding"]
        mask = self._mask(x) if x not in self.grads else (-1, 0.0, 0.0)
        tid = self.plan.max_pool_grad(node.name + ".dx", self.low.env[x].tid, dy, a["kernel_size"], a["stride"],
                                      a["dilation"], (pads[0], pads[2]), *mask)
        self._accumulate(x, tid, node.name)

    def _bw_adaptive_avg_pool2d(self, node, dy, needs):
        if not needs[0]:
            return
        x = node.inputs[0]
        _, c, h, w = self.graph.shapes[x]
        out_hw = tuple(self.graph.shapes[node.outputs[0]][2:])
        if out_hw == (h, w):
            return self._accumulate(x, dy, node.name)
        if out_hw != (1, 1):
            raise NotImplementedError("gradient plan: adaptive average pooling to more than 1x1")
        spread = self.plan.constant(np.full((h, w, 1), 1.0 / (h * w), np.float32))
        self._accumulate(x, self.plan.binary(node.name + ".dx", dy, spread, BINARY["mul"], *NO_ACT), node.name)

    _bw_global_avg_pool2d = _bw_adaptive_avg_pool2d

    def _bw_flatten(self, node, dy, needs):
        if not needs[0]:
            return
        x = node.inputs[0]
        shape = self.graph.shapes[x]
        if node.outputs[0] in self.ready_4d or len(shape) != 4 or shape[2] * shape[3] == 1:
            return self._accumulate(x, dy, node.name)  # (N, C, 1, 1) and (N, C) are both stored as 1 x 1 x C
        raise NotImplementedError("gradient plan: flatten of a map read other than by linear")

    def _bw_linear(self, node, dy, needs):
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
        mask = self._mask(x) if flat is None else (-1, 0.0, 0.0)
        tid = self.plan.conv(node.name + ".dx", dy, wt.reshape(f, k, 1, 1), None, (1, 1), (1, 1), (0, 0, 0, 0), 1,
                             *NO_ACT, self.grads.get(x, -1), ALGO_AUTO, -1, *mask)
        if flat is not None:
            c, h, w = flat
            tid = self.plan.reshape(tid, h, w, c)
            self.ready_4d.add(x)
        self.grads[x] = tid

    def _bw_batch_norm(self, node, dy, needs):
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
        tid = self.plan.affine(node.name + ".dx", dy, np.ascontiguousarray(scale, np.float32), None, *NO_ACT)
        self._accumulate(x, tid, node.name)
