"""ONNX MaxPool / AveragePool -> max_pool2d / avg_pool2d; ReduceMean / ReduceMax over H and W -> global pools."""

import numpy as np

from ...ops import window
from .attributes import int_const, need_4d, pair_attr
from .padding import take_pad, window_pads


def convert_pool(ctx, node, a):
    is_max = node.op_type == "MaxPool"
    if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1]):
        raise ValueError(f"node '{node.name}' (MaxPool): expected the Indices output unused (got it read)")
    kernel_list = list(a.get("kernel_shape", []))
    if len(kernel_list) != 2:
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected 2-D pooling (got kernel_shape "
                         f"{kernel_list})")
    kernel = pair_attr(node, a, "kernel_shape", ())
    include = bool(a.get("count_include_pad", 0))
    # Padding folds into a max pool when it pads with -inf, into an average pool counting zero padding.
    if is_max:
        folded = take_pad(ctx, node.input[0], -np.inf)
    else:
        folded = take_pad(ctx, node.input[0], 0.0) if include and not a.get("ceil_mode", 0) else None
    x = folded[0] if folded else ctx.tensor(node.input[0], node)
    need_4d(ctx, node, x, "pooling")
    stride, dilation = pair_attr(node, a, "strides", (1, 1)), pair_attr(node, a, "dilations", (1, 1))
    if not is_max and dilation != (1, 1):
        raise ValueError(f"node '{node.name}' (AveragePool): expected dilations [1, 1] (got {list(dilation)})")
    pads = window_pads(ctx, node, a, x, folded, kernel, stride, dilation)
    ceil_mode = bool(a.get("ceil_mode", 0))
    limits = window.pool_pad_limits(kernel, dilation, is_max)
    if any(p > limits[i // 2] for i, p in enumerate(pads)):
        refit = None if include and not is_max else _refit_end_pads(ctx.shape(x)[2:], pads, kernel, stride,
                                                                     dilation, ceil_mode, limits)
        if refit is None:
            raise ValueError(f"node '{node.name}' ({node.op_type}): expected pads of at most half the kernel "
                             f"{list(kernel)} (got {list(pads)})")
        pads, ceil_mode = refit
    attrs = {"kernel_size": kernel, "stride": stride, "padding": pads, "ceil_mode": ceil_mode}
    if is_max:
        attrs["dilation"] = dilation
    else:
        attrs["count_include_pad"] = include
    ctx.define(node, "max_pool2d" if is_max else "avg_pool2d", [x], attrs)


def _refit_end_pads(in_hw, pads, kernel, stride, dilation, ceil_mode, limits):
    """Pads within convcore's limit (half the kernel) giving the same windows as large end pads, or None.

    When padding cells never count (max pooling, average pooling without count_include_pad), a large end pad only
    adds output positions, which a smaller end pad with torch's ceil_mode can reproduce (exporters write torch's
    ceil_mode this way). Returns ((top, bottom, left, right), ceil_mode).
    """
    begins, ends = (pads[0], pads[2]), (pads[1], pads[3])
    if any(b > limit for b, limit in zip(begins, limits)):
        return None
    spans = [window.extent(k, d) for k, d in zip(kernel, dilation)]
    targets = [window.window_count(n, b, e, span, s, ceil_mode, torch_ceil=False)
               for n, b, e, span, s in zip(in_hw, begins, ends, spans, stride)]
    for ceil in (False, True):
        found = []
        for n, b, span, s, limit, target in zip(in_hw, begins, spans, stride, limits, targets):
            ok = [e for e in range(limit + 1) if window.window_count(n, b, e, span, s, ceil) == target]
            found.append(ok[0] if ok else None)
        if None not in found:
            return (begins[0], found[0], begins[1], found[1]), ceil
    return None


def convert_reduce(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axes = a.get("axes")
    if axes is None:
        axes = int_const(ctx, node, 1, "axes")
    if rank != 4 or axes is None or sorted(v % rank for v in axes) != [2, 3]:
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected a reduction over H and W of a 4D NCHW "
                         f"input (got axes {axes} on a {rank}D input)")
    op = "global_max_pool2d" if node.op_type == "ReduceMax" else "global_avg_pool2d"
    if a.get("keepdims", 1):
        ctx.define(node, op, [x], {})
    else:
        pooled = ctx.emit(op, node.name, [x], {})
        ctx.values[node.output[0]] = ctx.emit("flatten", f"{node.name}.flatten", [pooled],
                                              {"start_dim": 1, "end_dim": -1}, node.output[0])


CONVERTERS = {"MaxPool": convert_pool, "AveragePool": convert_pool, "ReduceMean": convert_reduce,
              "ReduceMax": convert_reduce}
