"""ONNX padding: `pads` / `auto_pad` of Conv and pooling nodes, and Pad nodes, which fold into the window op that
reads them (a Pad is left pending until its consumer takes it; see `ImportContext.pending_pads`)."""

import numpy as np

from ...ops import window
from .attributes import float_const, int_const


def explicit_pads(node, a, in_hw, kernel, stride, dilation):
    """(top, bottom, left, right) from ONNX pads / auto_pad."""
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "VALID":
        return 0, 0, 0, 0
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return window.same_padding(in_hw, kernel, stride, dilation, lower=auto == "SAME_LOWER")
    if auto != "NOTSET":
        raise ValueError(f"node '{node.name}': expected auto_pad NOTSET, VALID, SAME_UPPER or SAME_LOWER (got "
                         f"{auto!r})")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or any(p < 0 for p in pads):
        raise ValueError(f"node '{node.name}': expected 4 non-negative pads (got {pads})")
    return window.from_onnx_pads(pads)


def take_pad(ctx, name, fill):
    """(graph value, pads) if ONNX value `name` is a Pad with `fill` that its only consumer may fold, else None."""
    if name in ctx.pending_pads and ctx.uses.get(name) == 1 and ctx.pending_pads[name][2] == fill:
        return ctx.pending_pads.pop(name)[:2]
    return None


def window_pads(ctx, node, a, x, folded, kernel, stride, dilation):
    """Explicit pads of a conv / pool window over x, plus those of a Pad node folded into it (folded[1])."""
    in_hw = ctx.shape(x)[2:]
    if folded:
        in_hw = (in_hw[0] + folded[1][0] + folded[1][1], in_hw[1] + folded[1][2] + folded[1][3])
    pads = explicit_pads(node, a, in_hw, kernel, stride, dilation)
    return tuple(p + q for p, q in zip(pads, folded[1])) if folded else pads


def convert_pad(ctx, node, a):
    mode = a.get("mode", "constant")
    if mode != "constant":
        raise ValueError(f"node '{node.name}' (Pad): expected mode 'constant' (got mode {mode!r})")
    if ctx.opset < 11:
        pads, value = list(a.get("pads", [])), float(a.get("value", 0.0))
    else:
        pads = int_const(ctx, node, 1, "pads")
        value = float_const(ctx, node, 2, "constant_value") or 0.0
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axes = int_const(ctx, node, 3, "axes") if ctx.opset >= 18 else None
    if axes is not None:  # pads for the listed axes only: expand to all axes
        full = [0] * (2 * rank)
        for i, axis in enumerate(axes):
            full[axis % rank], full[axis % rank + rank] = pads[i], pads[i + len(axes)]
        pads = full
    if value not in (0.0, -np.inf) or pads is None or len(pads) != 2 * rank or rank != 4 or any(
            p < 0 for p in pads) or any(pads[i] or pads[i + 4] for i in (0, 1)):
        raise ValueError(f"node '{node.name}' (Pad): expected non-negative padding of H and W of a 4D NCHW input "
                         f"with 0 (or -inf before a MaxPool) (got pads {pads}, value {value})")
    ctx.pending_pads[node.output[0]] = (x, (pads[2], pads[6], pads[3], pads[7]), value)


CONVERTERS = {"Pad": convert_pad}
