"""Transposed convolutions in a Plan: the input gradient of a convolution, which is also `conv_transpose2d`.

dx of a convolution (x -> y) from dy is one stride-1 convolution over dy per output phase (`Phase`, computed by the
C++ that rearranges the weights), run by the Plan's conv kernels and put together by `interleave` (a stride-1
convolution is one phase, written directly); with few output channels, one GEMM into the taps' columns and a gather
(`col2im`). The gradient Plan (`convcore.gradients.plan`) and the forward `conv_transpose2d` (`Lowering`) both use
it; it needs a builder with the "backward" capability (the CPU Plan's interleave and col2im ops).
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .lower import NO_ACT, use_winograd

__all__ = ["FEW_CHANNELS", "Phase", "phases", "transposed_conv"]

FEW_CHANNELS = 16  # fewer output channels than this: col2im (one GEMM and a gather) instead of phases


class Phase:
    """One output phase of a convolution's input gradient: dx rows `rows.start + stride * i` (i < rows.count) and
    columns likewise are a stride-1 convolution over dy with `weight` (None: the phase has no taps or no pixels:
    zero), dilation `dilation`, nonnegative `pads` (top, bottom, left, right); the first `crop` (rows, columns) of
    its output are dropped (where dy would have needed cropping, extra rows are computed instead). `index`: (row
    phase, column phase); `rows` / `cols`: the `_core.ConvGradPhase` of each axis."""

    __slots__ = ("index", "rows", "cols", "weight", "dilation", "pads", "crop")

    def __init__(self, index, rows, cols, weight):
        self.index, self.rows, self.cols = index, rows, cols
        self.weight = weight if rows.taps and cols.taps and rows.count and cols.count else None
        self.dilation = (rows.dilation, cols.dilation)
        self.pads = (max(rows.lo, 0), max(rows.hi, 0), max(cols.lo, 0), max(cols.hi, 0))
        self.crop = (max(-rows.lo, 0), max(-cols.lo, 0))


def phases(weight, in_hw, out_hw, stride, padding, dilation, groups):
    """(row axes, column axes, [Phase]) of the input gradient of a convolution with `weight` (K, C / groups, R, S)
    from in_hw to out_hw, the phases in the order `conv2d_input_grad_weights` packs their weights."""
    (h, w), (oh, ow) = in_hw, out_hw
    k, cg, r, s = weight.shape
    rows = _core.conv_grad_phases(h, oh, r, stride[0], dilation[0], padding[0])
    cols = _core.conv_grad_phases(w, ow, s, stride[1], dilation[1], padding[2])
    packed = np.empty_like(weight)
    _core.conv2d_input_grad_weights(weight, packed, tuple(stride), tuple(dilation), groups)
    out, offset, c = [], 0, cg * groups
    for i, ph in enumerate(rows):
        for j, pw in enumerate(cols):
            size = c * (k // groups) * ph.taps * pw.taps
            weights = packed.reshape(-1)[offset:offset + size].reshape(c, k // groups, ph.taps, pw.taps)
            out.append(Phase((i, j), ph, pw, weights))
            offset += size
    return rows, cols, out


def _phase_conv(builder, name, dy, weight, dilation, pads, groups, residual, epilogue, mask, winograd):
    h, w, c = builder.dims(dy)
    fast = use_winograd(winograd, weight.shape, (1, c, h, w), (1, 1), dilation, groups)
    spec = _core.ConvSpec(dilation=dilation, padding=pads, groups=groups)
    return builder.conv(name, dy, weight, None, spec=spec, epilogue=epilogue, residual=residual,
                        algo=_core.ConvAlgo.winograd if fast else _core.ConvAlgo.automatic, mask=mask)


def transposed_conv(builder, name, dy, weight, x_chw, stride, padding, dilation, groups, residual=-1,
                    epilogue_for=None, winograd="auto"):
    """The tensor dx (x_chw = (C, H, W) per image) of a convolution with `weight` (K, C / groups, R, S), `stride`,
    `padding` (top, bottom, left, right), `dilation` and `groups`, from the tensor `dy`; `residual` (a tensor of dx's
    shape, or -1) is added. ``epilogue_for(single) -> (Epilogue, mask tensor)`` gives the epilogue and mask dx's
    last op applies (single: that op is a convolution, which can also apply an activation); default none."""
    c, h, w = x_chw
    k, _, r, s = weight.shape
    oh, ow, _ = builder.dims(dy)
    epilogue_for = epilogue_for or (lambda single: (NO_ACT, -1))
    if groups == 1 and c < FEW_CHANNELS:  # one GEMM into the taps' columns, then gathered
        epilogue, mask = epilogue_for(False)
        taps = weight.transpose(2, 3, 1, 0).reshape(r * s * c, k, 1, 1)  # row (r, s, c) = W[:, c, r, s]
        t = builder.conv(name + ".cols", dy, np.ascontiguousarray(taps), None, spec=_core.ConvSpec())
        return builder.col2im(name, t, h, w, c, (r, s), stride, dilation, (padding[0], padding[2]), residual, mask,
                              epilogue.mask_lo, epilogue.mask_hi)
    rows, cols, all_phases = phases(weight, (h, w), (oh, ow), stride, padding, dilation, groups)
    # A stride-1 convolution's one phase is dx itself: written directly, with the residual and mask.
    first = all_phases[0]
    single = stride == (1, 1) and first.weight is not None and first.crop == (0, 0) and \
        (oh + first.pads[0] + first.pads[1] - first.dilation[0] * (first.rows.taps - 1),
         ow + first.pads[2] + first.pads[3] - first.dilation[1] * (first.cols.taps - 1)) == (h, w)
    epilogue, mask = epilogue_for(single)
    if single:
        return _phase_conv(builder, f"{name}0", dy, np.ascontiguousarray(first.weight), first.dilation,
                           first.pads, groups, residual, epilogue, mask, winograd)
    grid = [-1 if phase.weight is None else
            _phase_conv(builder, f"{name}{i}", dy, np.ascontiguousarray(phase.weight), phase.dilation, phase.pads,
                        groups, -1, NO_ACT, -1, winograd) for i, phase in enumerate(all_phases)]
    # Per residue of dx rows (columns): which phase, its first row, its row count, its crop.
    row_slots = [[-1, 0, 0, 0] for _ in rows]
    col_slots = [[-1, 0, 0, 0] for _ in cols]
    for phase, tid in zip(all_phases, grid):
        if tid >= 0:
            (i, j), (ph, pw), (a, b) = phase.index, (phase.rows, phase.cols), phase.crop
            row_slots[ph.start] = [i, ph.start, ph.count, a]
            col_slots[pw.start] = [j, pw.start, pw.count, b]
    return builder.interleave(name, h, w, c, row_slots, col_slots, grid, residual, mask, epilogue.mask_lo,
                              epilogue.mask_hi)
