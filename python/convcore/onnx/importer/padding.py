"""ONNX padding: `pads` / `auto_pad` of window nodes (Conv, pooling) and Pad nodes. A zero (or -inf) Pad of H and W
is left pending until its consumer takes it: a convolution or pooling folds it into its own padding, anything else
gets a `pad` node (see `ImportContext.pending_pads`); every other Pad is a `pad` node of its mode at once."""

import numpy as np

from ...ops import window
from .attributes import axes_of, fail, float_const, input_name, int_const, ints_attr, str_attr

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def auto_pad_of(node, a):
    return str_attr(node, a, "auto_pad", "NOTSET", AUTO_PADS + ("",)) or "NOTSET"


def explicit_pads(node, a, in_sizes, kernel, stride, dilation):
    """Begin / end pads per spatial axis, [(b0, e0), (b1, e1), ...], from ONNX pads / auto_pad."""
    rank = len(in_sizes)
    auto = auto_pad_of(node, a)
    if auto == "VALID":
        return [(0, 0)] * rank
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        flat = window.same_padding(in_sizes, kernel, stride, dilation, lower=auto == "SAME_LOWER")
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(rank)]
    pads = ints_attr(node, a, "pads", [0] * 2 * rank)
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise fail(node, f"expected {2 * rank} non-negative pads (got {pads})")
    return [(pads[i], pads[i + rank]) for i in range(rank)]


def take_pad(ctx, name, fill):
    """(graph value, pads) if ONNX value `name` is a Pad with `fill` that its only consumer may fold, else None."""
    if name in ctx.pending_pads and ctx.uses.get(name) == 1 and ctx.pending_pads[name][2] == fill:
        return ctx.pending_pads.pop(name)[:2]
    return None


def convert_pad(ctx, node, a):
    if ctx.opset < 11:
        pads = ints_attr(node, a, "pads", [])
        value = float(a.get("value", 0.0))
    else:
        pads = int_const(ctx, node, 1, "pads")
        value = float_const(ctx, node, 2, "constant_value") or 0.0
    modes = ("constant", "reflect", "edge", "wrap") if ctx.opset >= 19 else ("constant", "reflect", "edge")
    mode = str_attr(node, a, "mode", "constant", modes)
    source = input_name(node, 0)
    shape = ctx.static_shape(source)
    rank = len(shape)
    if pads is None:
        raise fail(node, "expected pads (got none)")
    axes = int_const(ctx, node, 3, "axes") if ctx.opset >= 18 else None
    if axes is not None:  # pads for the listed axes only: expand to all axes
        if len(pads) != 2 * len(axes):
            raise fail(node, f"expected 2 pads per listed axis (got {len(pads)} pads for axes {axes})")
        full = [0] * (2 * rank)
        for i, axis in enumerate(axes_of(node, axes, rank)):
            full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
        pads = full
    if len(pads) != 2 * rank:
        raise fail(node, f"expected {2 * rank} pads (begin and end per axis of the {rank}D input) (got {len(pads)})")
    if mode == "constant" and value in (0.0, -np.inf) and rank == 4 and min(pads) >= 0 and not any(
            pads[i] or pads[i + 4] for i in (0, 1)) and source not in ctx.consts and source not in ctx.pending_pads:
        ctx.pending_pads[node.output[0]] = (ctx.tensor(source, node), (pads[2], pads[6], pads[3], pads[7]), value)
        return
    x = ctx.tensor(source, node)
    ours = [v for axis in range(rank) for v in (pads[axis], pads[axis + rank])]
    ctx.define(node, "pad", [x], {"pads": ours, "mode": mode, "value": value})


CONVERTERS = {"Pad": convert_pad}
