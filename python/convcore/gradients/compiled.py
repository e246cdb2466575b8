"""Compiled backward convolutions: a convolution's input gradient run as `convcore.compile`d Plans.

The declared rule (`convcore.ops.conv`, csrc/ops/conv2d/conv2d_backward.cpp) splits a transposed convolution into
stride-1 convolutions, one per output phase, and runs them on the eager kernels. A `GradientProgram` run many times
usually lowers its whole step into one Plan (`gradients/plan.py`, which reuses `_phase` from here); when it cannot
(a rule override such as guided backpropagation's, an op without a Plan backward), its rules run node by node and
these compile each convolution's phase convolutions once, as a Plan of their own. Same phases, same arithmetic up to
float rounding; the rules here fall back to the declared ones for anything else (weight gradients).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..graph import Graph
from ..ops import OPS, Backward
from ..plan import compile as compile_plan

__all__ = ["compiled_conv_rules", "phases", "Phase", "TransposedConv"]

MIN_CHANNELS = 16  # input channels of a convolution below which its gradient stays on the eager kernels


def _phase(size, out, k, stride, dil, pad_lo, p):
    """One axis of output phase p (as PhaseAxis in conv2d_backward.cpp): (taps, dilation, count, start, lo, hi)."""
    g = math.gcd(dil, stride)
    step, d = stride // g, dil // g
    first = next((r for r in range(k) if (r * dil) % stride == p), k)
    taps = (k - 1 - first) // step + 1 if first < k else 0
    j0 = -((p - pad_lo) // stride)
    j1 = (size - 1 - p + pad_lo) // stride
    count = max(j1 - j0 + 1, 0)
    start = p - pad_lo + stride * j0
    if taps == 0:
        return taps, d, count, start, 0, 0
    t0 = (first * dil - p) // stride
    span = (taps - 1) * d
    lo = t0 + span - j0
    return taps, d, count, start, lo, count - out - lo + span


class Phase:
    """One output phase of a convolution's input gradient: dx rows `rows[3] + stride * i` (i < rows[2]) and columns
    likewise are a stride-1 convolution over dy with `weight` (None: the phase has no taps or no pixels: zero),
    dilation `dilation`, nonnegative `pads` (top, bottom, left, right); the first `crop` (rows, columns) of its
    output are dropped (where dy would have needed cropping, extra rows are computed instead). `index`: (row
    phase, column phase)."""

    __slots__ = ("index", "rows", "cols", "weight", "dilation", "pads", "crop")

    def __init__(self, index, rows, cols, weight):
        self.index, self.rows, self.cols = index, rows, cols
        self.weight = weight if rows[0] and cols[0] and rows[2] and cols[2] else None
        self.dilation = (rows[1], cols[1])
        self.pads = (max(rows[4], 0), max(rows[5], 0), max(cols[4], 0), max(cols[5], 0))
        self.crop = (max(-rows[4], 0), max(-cols[4], 0))


def phases(weight, in_hw, out_hw, stride, padding, dilation, groups):
    """(row axes, column axes, [Phase]) of the input gradient of a convolution with `weight` (K, C / groups, R, S)
    from in_hw to out_hw, the phases in the order `conv2d_input_grad_weights` packs their weights."""
    (h, w), (oh, ow) = in_hw, out_hw
    k, cg, r, s = weight.shape
    rows = [_phase(h, oh, r, stride[0], dilation[0], padding[0], p) for p in range(stride[0])]
    cols = [_phase(w, ow, s, stride[1], dilation[1], padding[2], p) for p in range(stride[1])]
    packed = np.empty_like(weight)
    _core.conv2d_input_grad_weights(weight, packed, tuple(stride), tuple(dilation), groups)
    out, offset, c = [], 0, cg * groups
    for i, ph in enumerate(rows):
        for j, pw in enumerate(cols):
            size = c * (k // groups) * ph[0] * pw[0]
            weights = packed.reshape(-1)[offset:offset + size].reshape(c, k // groups, ph[0], pw[0])
            out.append(Phase((i, j), ph, pw, weights))
            offset += size
    return rows, cols, out


class TransposedConv:
    """dx = the input gradient of one convolution, as one compiled Plan holding every output phase.

    Args:
        weight: (K, C / groups, R, S) float32.
        x_shape, y_shape: the convolution's input and output shapes (N, ...); any batch at run time.
        stride, padding, dilation, groups: the convolution's normalised attributes.
        winograd: as `convcore.compile`'s (see `GradientProgram`).
    """

    def __init__(self, weight, x_shape, y_shape, stride, padding, dilation, groups, winograd=False):
        self.x_shape = tuple(x_shape)
        self.stride = tuple(stride)
        n, _, h, w = x_shape
        oh, ow = y_shape[2:]
        _, _, all_phases = phases(weight, (h, w), (oh, ow), stride, padding, dilation, groups)
        graph = Graph(name="transposed_conv")
        graph.add_input("dy", (n, weight.shape[0], oh, ow))
        self.phases = []
        for phase in all_phases:
            if phase.weight is None:
                continue
            name = f"phase{len(self.phases)}"
            graph.add_param(f"{name}.weight", np.ascontiguousarray(phase.weight))
            graph.add_node("conv2d", name, ["dy", f"{name}.weight"], name,
                           {"stride": 1, "padding": phase.pads, "dilation": phase.dilation, "groups": groups})
            self.phases.append((name, phase.rows, phase.cols, *phase.crop))
        graph.outputs = [p[0] for p in self.phases]
        self.graph = graph
        self.direct = (len(self.phases) == 1 and stride == (1, 1) and
                       graph.shapes[self.phases[0][0]][2:] == (h, w))  # the one phase is dx itself
        self.plan = compile_plan(graph, winograd=winograd) if self.phases else None
        self.zero = len(self.phases) < len(all_phases)

    def __call__(self, dy):
        shape = (dy.shape[0], *self.x_shape[1:])
        if self.plan is None:
            return np.zeros(shape, np.float32)
        if self.direct:
            return self.plan.run(dy, out=np.empty(shape, np.float32))
        outs = self.plan(dy)
        outs = outs if isinstance(outs, tuple) else (outs,)
        dx = np.zeros(shape, np.float32) if self.zero else np.empty(shape, np.float32)
        sh, sw = self.stride
        for out, (_, ph, pw, a, b) in zip(outs, self.phases):
            dx[:, :, ph[3]::sh, pw[3]::sw][:, :, :ph[2], :pw[2]] = out[:, :, a:a + ph[2], b:b + pw[2]]
        return dx


def _rule(op_name, winograd):
    declared = OPS[op_name].backward

    def rule(dy, call):
        if any(call.needs[1:]):
            return declared.rule(dy, call)
        weight, attrs = call.inputs[1], call.attrs
        groups = attrs.get("groups", call.shapes[0][1])

        def make(w):
            try:
                return TransposedConv(w, call.shapes[0], dy.shape, attrs["stride"], attrs["padding"],
                                      attrs["dilation"], groups, winograd)
            except (ValueError, TypeError, NotImplementedError):
                return None

        # Few output channels leave the Plan's register tiles mostly empty (a stem's 3): the eager kernels do better.
        transposed = call.cached("transposed_conv", weight, make) if call.shapes[0][1] >= MIN_CHANNELS else None
        if transposed is None or not call.needs[0]:
            return declared.rule(dy, call)
        return [transposed(dy), None, None]

    return Backward(rule, declared.saves)


def compiled_conv_rules(winograd=False):
    """op name -> a `Backward` running conv2d's and depthwise_conv2d's input gradients as compiled Plans (for
    `GradientProgram(..., rules=...)`; its default when the forward pass is compiled)."""
    return {name: _rule(name, winograd) for name in ("conv2d", "depthwise_conv2d")}
