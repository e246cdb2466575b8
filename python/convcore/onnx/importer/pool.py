"""ONNX MaxPool / AveragePool / LpPool -> max_pool2d / avg_pool2d / lp_pool2d (1-D ones over a height of 1), the
global pools, and ONNX Reduce* -> the global pools (over H and W of a 4-D input) or reduce_* ops.

ONNX's ceil_mode drops a last window that would start in the end padding, as torch does, so both pools map
directly. Windows convcore's pools cannot express (an average with pads beyond half the kernel or dilations, a max
pool with such pads) become an explicit sum / pad: a depthwise convolution with ones divided by the exact window
counts, or a -inf pad before the max pool.
"""

import math

import numpy as np

from ..._validate import MAX_ELEMENTS
from ...ops import window
from .attributes import axes_of, fail, int_attr, int_const, ints_attr
from .conv import drop_1d, lift_1d
from .folding import MAX_FOLDED_ELEMENTS
from .padding import auto_pad_of, explicit_pads, take_pad

MAX_EXPLICIT_WINDOW = 1 << 24  # cells of the ones-weight an average pool convcore's pool cannot express becomes


def convert_pool(ctx, node, a):
    kind = {"MaxPool": "max", "AveragePool": "avg", "LpPool": "lp"}[node.op_type]
    if kind == "max" and len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1]):
        raise fail(node, "expected the Indices output unused (got it read: convcore computes float32 only)")
    kernel = ints_attr(node, a, "kernel_shape", [], None, 1)
    rank = len(kernel)
    x_shape = ctx.static_shape(node.input[0])
    if rank not in (1, 2, 3):
        raise fail(node, f"expected 1-D, 2-D or 3-D pooling (got kernel_shape {kernel})")
    if x_shape is None or len(x_shape) != rank + 2:
        raise fail(node, f"expected a {rank + 2}D input for {rank}-D pooling (got shape {x_shape})")
    strides = ints_attr(node, a, "strides", [1] * rank, rank, 1)
    dilations = ints_attr(node, a, "dilations", [1] * rank, rank, 1)
    ceil_mode = bool(int_attr(node, a, "ceil_mode", 0))
    include = bool(int_attr(node, a, "count_include_pad", 0)) and kind == "avg"
    p = int_attr(node, a, "p", 2, 1) if kind == "lp" else None
    if ceil_mode and auto_pad_of(node, a) != "NOTSET":
        raise fail(node, "expected ceil_mode 0 with auto_pad (ONNX leaves that combination undefined)")
    if rank == 3:
        return _pool3d(ctx, node, a, kind, kernel, strides, dilations, ceil_mode, include, p)
    folded = None
    if rank == 2:  # a Pad before the pool folds when padding cells cannot change the result
        if kind == "max" and (not ceil_mode or _fold_keeps_windows(ctx, node, a, kernel, strides, dilations)):
            folded = take_pad(ctx, node.input[0], -np.inf)
        elif include and not ceil_mode:
            folded = take_pad(ctx, node.input[0], 0.0)
    x = folded[0] if folded else ctx.tensor(node.input[0], node)
    if rank == 1:
        x = lift_1d(ctx, node, x)
    in_hw = tuple(ctx.shape(x)[2:])
    if folded:
        in_hw = (in_hw[0] + folded[1][0] + folded[1][1], in_hw[1] + folded[1][2] + folded[1][3])
    kernel2, strides2, dilations2 = ([1] * (2 - rank) + list(v) for v in (kernel, strides, dilations))
    pads = explicit_pads(node, a, in_hw[2 - rank:], kernel, strides, dilations)
    pads = [(0, 0)] * (2 - rank) + pads
    pads = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    if folded:
        pads = tuple(q + f for q, f in zip(pads, folded[1]))
    out_name = node.output[0] if rank == 2 else None  # a 1-D pool's output is the reshape after it
    y = _pool(ctx, node, kind, x, tuple(kernel2), tuple(strides2), tuple(dilations2), pads, ceil_mode, include, p,
              out_name)
    if rank == 1:
        return drop_1d(ctx, node, y)
    ctx.alias(node, y)


def _fold_keeps_windows(ctx, node, a, kernel, strides, dilations):
    """Whether a pending -inf Pad before a ceil_mode max pool can become pool padding: padded cells are data to the
    pool, but as padding its ceil rule (torch's, ONNX's) drops a last window starting in the end padding, so the fold
    is exact only when every axis keeps its window count."""
    pending = ctx.pending_pads.get(node.input[0])
    if pending is None:
        return True
    source, (top, bottom, left, right), _ = pending
    h, w = ctx.shape(source)[2:]
    padded = (h + top + bottom, w + left + right)
    pads = explicit_pads(node, a, padded, kernel, strides, dilations)
    for size, (begin, end), (fb, fe), k, s, d in zip(padded, pads, ((top, bottom), (left, right)), kernel, strides,
                                                     dilations):
        span = window.extent(k, d)
        if window.window_count(size, begin, end, span, s, True) != \
                window.window_count(size - fb - fe, begin + fb, end + fe, span, s, True):
            return False
    return True


def _pool3d(ctx, node, a, kind, kernel, strides, dilations, ceil_mode, include, p):
    """A 3-D pool as two 2-D ones: over H and W with the depth in the batch, then over the depth with H and W merged.
    Max, average (the window counts are products of the axes' counts) and Lp pooling all separate exactly."""
    x = ctx.tensor(node.input[0], node)
    n, c, depth, h, w = ctx.shape(x)
    (bd, ed), (bh, eh), (bw, ew) = explicit_pads(node, a, (depth, h, w), kernel, strides, dilations)
    planes = ctx.emit("transpose", f"{node.name}.depth_first", [x], {"perm": (0, 2, 1, 3, 4)})
    planes = ctx.emit("reshape", f"{node.name}.planes", [planes], {"shape": (-1, c, h, w)})
    y = _pool(ctx, node, kind, planes, tuple(kernel[1:]), tuple(strides[1:]), tuple(dilations[1:]), (bh, eh, bw, ew),
              ceil_mode, include, p, None, f"{node.name}.hw")
    oh, ow = ctx.shape(y)[2:]
    y = ctx.emit("reshape", f"{node.name}.volume", [y], {"shape": (-1, depth, c, oh, ow)})
    y = ctx.emit("transpose", f"{node.name}.channels_first", [y], {"perm": (0, 2, 1, 3, 4)})
    y = ctx.emit("reshape", f"{node.name}.columns", [y], {"shape": (-1, c, depth, oh * ow)})
    y = _pool(ctx, node, kind, y, (kernel[0], 1), (strides[0], 1), (dilations[0], 1), (bd, ed, 0, 0), ceil_mode,
              include, p, None, f"{node.name}.d")
    ctx.define(node, "reshape", [y], {"shape": (-1, c, ctx.shape(y)[2], oh, ow)})


def _pool(ctx, node, kind, x, kernel, stride, dilation, pads, ceil_mode, include, p, out_name, name=None):
    """The pool's output value, named `out_name` (None: a fresh name); its nodes are named `name` (default the
    ONNX node's)."""
    node_name = name or node.name
    if kind == "lp":
        attrs = {"kernel_size": kernel, "stride": stride, "padding": pads, "dilation": dilation,
                 "ceil_mode": ceil_mode, "p": p}
        return ctx.emit("lp_pool2d", node_name, [x], attrs, out_name)
    limits = window.pool_pad_limits(kernel, dilation, kind == "max")
    fits = all(q <= limits[i // 2] for i, q in enumerate(pads)) and (kind == "max" or dilation == (1, 1))
    if not fits and not (kind == "avg" and include):
        refit = _refit_end_pads(ctx.shape(x)[2:], pads, kernel, stride, dilation, ceil_mode, limits)
        if refit is not None and (kind == "max" or dilation == (1, 1)):
            (pads, ceil_mode), fits = refit, True
    if fits:
        attrs = {"kernel_size": kernel, "stride": stride, "padding": pads, "ceil_mode": ceil_mode}
        if kind == "max":
            attrs["dilation"] = dilation
            return ctx.emit("max_pool2d", node_name, [x], attrs, out_name)
        attrs["count_include_pad"] = include
        return ctx.emit("avg_pool2d", node_name, [x], attrs, out_name)
    in_hw = ctx.shape(x)[2:]
    spans = [window.extent(k, d) for k, d in zip(kernel, dilation)]
    counts = [window.window_count(n, pads[2 * i], pads[2 * i + 1], spans[i], stride[i], ceil_mode)
              for i, n in enumerate(in_hw)]
    if min(counts) < 1 or ctx.shape(x)[1] * kernel[0] * kernel[1] > MAX_EXPLICIT_WINDOW or any(
            c * k > MAX_EXPLICIT_WINDOW for c, k in zip(counts, kernel)):
        raise fail(node, f"expected a window within the padded input and of at most {MAX_EXPLICIT_WINDOW} cells per "
                         f"channel group (got kernel {list(kernel)}, pads {list(pads)} on an input of {list(in_hw)})")
    # end padding that also covers a ceil_mode window running past the padded input
    ends = [max(pads[2 * i + 1], (counts[i] - 1) * stride[i] + spans[i] - in_hw[i] - pads[2 * i]) for i in range(2)]
    full = (pads[0], ends[0], pads[2], ends[1])
    # Checked before anything is allocated: the -inf padded input, the window sums and the divisor table (a constant
    # of one count per output position, computed here: bounded as folded constants are).
    batch, channels = ctx.shape(x)[:2]
    padded = (in_hw[0] + full[0] + full[1], in_hw[1] + full[2] + full[3])
    largest = batch * channels * max(math.prod(padded) if kind == "max" else 0, math.prod(counts))
    if largest > MAX_ELEMENTS or (kind == "avg" and math.prod(counts) > MAX_FOLDED_ELEMENTS):
        limit = f"{MAX_ELEMENTS} elements"
        if kind == "avg":
            limit += f" and {MAX_FOLDED_ELEMENTS} windows per channel"
        raise fail(node, f"expected pads giving at most {limit} (got {counts[0]}x{counts[1]} windows per channel from "
                         f"pads {list(pads)} on an input of {list(ctx.shape(x))}: pads beyond half the kernel are "
                         f"computed explicitly)")
    if kind == "max":  # pad with -inf explicitly, then pool without padding
        padded = ctx.emit("pad", f"{node_name}.pad", [x], {"pads": (0, 0, 0, 0, *full), "value": -math.inf})
        attrs = {"kernel_size": kernel, "stride": stride, "padding": 0, "dilation": dilation, "ceil_mode": False}
        return ctx.emit("max_pool2d", node_name, [padded], attrs, out_name)
    # average: a window sum (depthwise convolution with ones) divided by how many cells each window counts
    channels = ctx.shape(x)[1]
    ones = ctx.constant(np.ones((channels, 1, *kernel), np.float32), f"{node_name}.ones")
    total = ctx.emit("depthwise_conv2d", f"{node_name}.sum", [x, ones],
                     {"stride": stride, "padding": full, "dilation": dilation})
    axis_counts = []
    for i, n in enumerate(in_hw):  # separable: a 2-D window counts the product of its axes' counts
        starts = np.arange(counts[i]) * stride[i] - pads[2 * i]
        cells = starts[:, None] + np.arange(kernel[i])[None, :] * dilation[i]
        low, high = (-pads[2 * i], n + pads[2 * i + 1]) if include else (0, n)
        axis_counts.append(((cells >= low) & (cells < high)).sum(axis=1).astype(np.float64))
    count = np.outer(*axis_counts).reshape(1, 1, *counts)
    return ctx.emit("div", node_name, [total, ctx.constant(np.maximum(count, 1), f"{node_name}.count")], {},
                    out_name)


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
    targets = [window.window_count(n, b, e, span, s, ceil_mode)
               for n, b, e, span, s in zip(in_hw, begins, ends, spans, stride)]
    for ceil in (False, True):
        found = []
        for n, b, span, s, limit, target in zip(in_hw, begins, spans, stride, limits, targets):
            # the window count grows with the end pad: the smallest end pad reaching the target, if it hits it
            low, high = 0, limit
            while low < high:
                mid = (low + high) // 2
                if window.window_count(n, b, mid, span, s, ceil) < target:
                    low = mid + 1
                else:
                    high = mid
            found.append(low if window.window_count(n, b, low, span, s, ceil) == target else None)
        if None not in found:
            return (begins[0], found[0], begins[1], found[1]), ceil
    return None


def convert_global_pool(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    if len(shape) < 3:
        raise fail(node, f"expected an input with spatial axes (N, C, ...) (got shape {shape})")
    kind = node.op_type
    if kind == "GlobalLpPool":
        p = int_attr(node, a, "p", 2, 1)
        spatial = math.prod(shape[2:])
        y = x if len(shape) == 4 else ctx.emit("reshape", f"{node.name}.2d", [x], {"shape": (-1, shape[1], 1, spatial)})
        hw = ctx.shape(y)[2:]
        attrs = {"kernel_size": hw, "stride": 1, "padding": 0, "dilation": 1, "ceil_mode": False, "p": p}
        if len(shape) == 4:
            return ctx.define(node, "lp_pool2d", [y], attrs)
        pooled = ctx.emit("lp_pool2d", node.name, [y], attrs)
        return ctx.define(node, "reshape", [pooled], {"shape": (-1, shape[1], *[1] * (len(shape) - 2))})
    is_max = kind == "GlobalMaxPool"
    if len(shape) == 4:
        return ctx.define(node, "global_max_pool2d" if is_max else "global_avg_pool2d", [x], {})
    ctx.define(node, "reduce_max" if is_max else "reduce_mean", [x],
               {"axes": tuple(range(2, len(shape))), "keepdims": True})


REDUCE_OPS = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
              "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL1": "reduce_l1", "ReduceL2": "reduce_l2",
              "ReduceSumSquare": "reduce_sum_square", "ReduceLogSum": "reduce_log_sum",
              "ReduceLogSumExp": "reduce_log_sum_exp"}


def convert_reduce(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    since = 13 if node.op_type == "ReduceSum" else 18  # axes: an attribute before, an input from then on
    axes = ints_attr(node, a, "axes") if ctx.opset < since else int_const(ctx, node, 1, "axes")
    keepdims = bool(int_attr(node, a, "keepdims", 1))
    if not axes:
        if ctx.opset >= since and int_attr(node, a, "noop_with_empty_axes", 0):
            return ctx.alias(node, x)
        axes = list(range(rank))
    axes = axes_of(node, axes, rank)
    op = REDUCE_OPS[node.op_type]
    if rank == 4 and sorted(axes) == [2, 3] and op in ("reduce_mean", "reduce_max"):  # the global pools
        pool = "global_max_pool2d" if op == "reduce_max" else "global_avg_pool2d"
        if keepdims:
            return ctx.define(node, pool, [x], {})
        pooled = ctx.emit(pool, node.name, [x], {})
        return ctx.define(node, "flatten", [pooled], {"start_dim": 1, "end_dim": -1})
    ctx.define(node, op, [x], {"axes": axes, "keepdims": keepdims})


CONVERTERS = {"MaxPool": convert_pool, "AveragePool": convert_pool, "LpPool": convert_pool,
              "GlobalAveragePool": convert_global_pool, "GlobalMaxPool": convert_global_pool,
              "GlobalLpPool": convert_global_pool, **{op: convert_reduce for op in REDUCE_OPS}}
