"""ONNX Conv -> conv2d (a zero Pad before it folds into its padding), ConvTranspose -> conv_transpose2d. 1-D
convolutions run as 2-D ones over a height of 1 (a reshape on each side); a 3-D convolution as one 2-D convolution
over its depth taps stacked on the channels (the depth positions in the batch); weights may be constants or
computed."""

from ...ops import window
from .attributes import fail, input_name, int_attr, ints_attr
from .padding import auto_pad_of, explicit_pads, take_pad


def lift_1d(ctx, node, value, what="x"):
    """(N, C, L) -> (N, C, 1, L): a 1-D window op runs as a 2-D one."""
    n, c, length = ctx.shape(value)
    return ctx.emit("reshape", f"{node.name}.{what}_2d", [value], {"shape": (-1, c, 1, length)})


def drop_1d(ctx, node, value):
    """(N, C, 1, L) -> (N, C, L), as ONNX `node`'s output."""
    n, c, _, length = ctx.shape(value)
    ctx.values[node.output[0]] = ctx.emit("reshape", f"{node.name}.1d", [value], {"shape": (-1, c, length)},
                                          node.output[0])


def spatial_rank(ctx, node, x_name, w_shape, kind, ranks=(1, 2, 3)):
    """The number of spatial axes of a window op (one of `ranks`), checked against the input's rank."""
    rank = len(w_shape) - 2
    x_shape = ctx.static_shape(x_name)
    if rank not in ranks:
        raise fail(node, f"expected a {'-D, '.join(map(str, ranks))}-D {kind} (got a {rank}-D kernel: weight of shape "
                         f"{w_shape})")
    if x_shape is None or len(x_shape) != rank + 2:
        raise fail(node, f"expected a {rank + 2}D input for a {rank}-D {kind} (got shape {x_shape})")
    return rank


def window_attrs(node, a, rank, kernel):
    """strides, dilations (lists of `rank` positive ints) after checking kernel_shape against the weight."""
    if "kernel_shape" in a and list(ints_attr(node, a, "kernel_shape")) != list(kernel):
        raise fail(node, f"expected kernel_shape {list(kernel)} of the weight (got {a['kernel_shape']})")
    strides = ints_attr(node, a, "strides", [1] * rank, rank, 1)
    dilations = ints_attr(node, a, "dilations", [1] * rank, rank, 1)
    return strides, dilations


def _weight(ctx, node, name, rank):
    """The weight's graph value, lifted to 2-D for a 1-D op (a reshaped constant, or a reshape node)."""
    array = ctx.const(name)
    if rank == 2:
        return ctx.tensor(name, node)
    if array is not None:
        if array.dtype.kind != "f":
            raise fail(node, f"expected a float weight (got {array.dtype})")
        return ctx.constant(array.reshape(*array.shape[:2], 1, array.shape[2]), f"{name}.2d")
    o, i, k = ctx.static_shape(name)
    return ctx.emit("reshape", f"{node.name}.weight_2d", [ctx.tensor(name, node)], {"shape": (o, i, 1, k)})


def convert_conv(ctx, node, a):
    x_name, w_name = node.input[0], input_name(node, 1)
    if w_name is None:
        raise fail(node, "expected a weight input (got none)")
    w_shape = ctx.static_shape(w_name)
    rank = spatial_rank(ctx, node, x_name, w_shape, "convolution")
    kernel = tuple(w_shape[2:])
    strides, dilations = window_attrs(node, a, rank, kernel)
    group = int_attr(node, a, "group", 1, 1)
    bias = ctx.tensor(node.input[2], node) if input_name(node, 2) else ""
    if rank == 3:
        return _conv3d(ctx, node, a, ctx.tensor(x_name, node), w_name, kernel, strides, dilations, group, bias)
    weight = _weight(ctx, node, w_name, rank)
    if rank == 1:
        x = ctx.tensor(x_name, node)
        (b, e), = explicit_pads(node, a, ctx.shape(x)[2:], kernel, strides, dilations)
        attrs = {"stride": (1, strides[0]), "padding": (0, 0, b, e), "dilation": (1, dilations[0]), "groups": group}
        y = ctx.emit("conv2d", node.name, [lift_1d(ctx, node, x), weight] + ([bias] if bias else []), attrs)
        return drop_1d(ctx, node, y)
    folded = take_pad(ctx, x_name, 0.0)
    x = folded[0] if folded else ctx.tensor(x_name, node)
    in_hw = ctx.shape(x)[2:]
    if folded:
        in_hw = (in_hw[0] + folded[1][0] + folded[1][1], in_hw[1] + folded[1][2] + folded[1][3])
    (t, b), (l, r) = explicit_pads(node, a, in_hw, kernel, strides, dilations)
    pads = (t, b, l, r) if not folded else tuple(p + q for p, q in zip((t, b, l, r), folded[1]))
    ctx.define(node, "conv2d", [x, weight] + ([bias] if bias else []),
               {"stride": tuple(strides), "padding": pads, "dilation": tuple(dilations), "groups": group})


def stack_depth_taps(ctx, node, x, taps, start_step, out_depth, stride):
    """(N, C, D, H, W) -> (N * D_out, C * taps, H, W): channel c * taps + t of row (n, d) is input depth
    d * stride + t * step (+ start), the depth taps of a 3-D window side by side on the channels."""
    n, c, depth, h, w = ctx.shape(x)
    start, step = start_step
    parts = []
    for t in range(taps):
        first = start + t * step
        part = ctx.emit("slice", f"{node.name}.tap{t}", [x], {"starts": [first], "ends": [first + (out_depth - 1) *
                                                                                      stride + 1],
                                                               "axes": [2], "steps": [stride]})
        parts.append(ctx.emit("reshape", f"{node.name}.tap{t}_axis", [part], {"shape": (-1, c, 1, out_depth, h, w)}))
    stacked = parts[0] if taps == 1 else ctx.emit("concat", f"{node.name}.taps", parts, {"axis": 2})
    rows = ctx.emit("transpose", f"{node.name}.depth_rows", [stacked], {"perm": (0, 3, 1, 2, 4, 5)})
    return ctx.emit("reshape", f"{node.name}.rows", [rows], {"shape": (-1, c * taps, h, w)})


def unstack_depth(ctx, node, y, out_depth, output=None):
    """(N * D_out, K, H, W) -> (N, K, D_out, H, W)."""
    _, k, h, w = ctx.shape(y)
    planes = ctx.emit("reshape", f"{node.name}.planes", [y], {"shape": (-1, out_depth, k, h, w)})
    return ctx.emit("transpose", f"{node.name}.volume", [planes], {"perm": (0, 2, 1, 3, 4)}, output)


def _conv3d(ctx, node, a, x, w_name, kernel, strides, dilations, group, bias):
    """A 3-D convolution as one 2-D convolution (see `stack_depth_taps`): the same products, summed in another
    order."""
    shape = ctx.shape(x)
    pads = explicit_pads(node, a, shape[2:], kernel, strides, dilations)
    (bd, ed), (bh, eh), (bw, ew) = pads
    if bd or ed:
        x = ctx.emit("pad", f"{node.name}.depth_pad", [x], {"pads": (0, 0, 0, 0, bd, ed, 0, 0, 0, 0)})
    depth = ctx.shape(x)[2]
    out_depth = window.window_count(depth, 0, 0, window.extent(kernel[0], dilations[0]), strides[0])
    if out_depth < 1:
        raise fail(node, f"expected a kernel depth within the padded input depth {depth} (got {kernel[0]})")
    rows = stack_depth_taps(ctx, node, x, kernel[0], (0, dilations[0]), out_depth, strides[0])
    array = ctx.const(w_name)
    k, cg = ctx.static_shape(w_name)[:2]
    if array is not None:
        if array.dtype.kind != "f":
            raise fail(node, f"expected a float weight (got {array.dtype})")
        weight = ctx.constant(array.reshape(k, cg * kernel[0], *kernel[1:]), f"{w_name}.2d")
    else:
        weight = ctx.emit("reshape", f"{node.name}.weight_2d", [ctx.tensor(w_name, node)],
                          {"shape": (k, cg * kernel[0], *kernel[1:])})
    attrs = {"stride": tuple(strides[1:]), "padding": (bh, eh, bw, ew), "dilation": tuple(dilations[1:]),
             "groups": group}
    y = ctx.emit("conv2d", node.name, [rows, weight] + ([bias] if bias else []), attrs)
    ctx.values[node.output[0]] = unstack_depth(ctx, node, y, out_depth, node.output[0])


def convert_conv_transpose(ctx, node, a):
    x_name, w_name = node.input[0], input_name(node, 1)
    if w_name is None:
        raise fail(node, "expected a weight input (got none)")
    w_shape = ctx.static_shape(w_name)
    rank = spatial_rank(ctx, node, x_name, w_shape, "transposed convolution", (1, 2))
    kernel = tuple(w_shape[2:])
    strides, dilations = window_attrs(node, a, rank, kernel)
    group = int_attr(node, a, "group", 1, 1)
    output_padding = ints_attr(node, a, "output_padding", [0] * rank, rank, 0)
    x = ctx.tensor(x_name, node)
    sizes = ctx.shape(x)[2:]
    spans = [window.extent(k, d) for k, d in zip(kernel, dilations)]
    auto = auto_pad_of(node, a)
    output_shape = ints_attr(node, a, "output_shape")
    if output_shape is not None and len(output_shape) not in (rank, rank + 2):
        raise fail(node, f"expected {rank} output_shape values (got {output_shape})")
    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        targets = output_shape[-rank:] if output_shape is not None else [n * s for n, s in zip(sizes, strides)]
        pads = [window.transposed_padding(n, span, s, op, target, lower=auto != "SAME_UPPER")
                for n, span, s, op, target in zip(sizes, spans, strides, output_padding, targets)]
    elif auto == "VALID":
        pads = [(0, 0)] * rank
    else:
        flat = ints_attr(node, a, "pads", [0] * 2 * rank, 2 * rank, 0)
        pads = [(flat[i], flat[i + rank]) for i in range(rank)]
    bias = ctx.tensor(node.input[2], node) if input_name(node, 2) else ""
    weight = _weight(ctx, node, w_name, rank)
    if rank == 1:
        (b, e), = pads
        attrs = {"stride": (1, strides[0]), "padding": (0, 0, b, e), "output_padding": (0, output_padding[0]),
                 "dilation": (1, dilations[0]), "groups": group}
        y = ctx.emit("conv_transpose2d", node.name, [lift_1d(ctx, node, x), weight] + ([bias] if bias else []), attrs)
        return drop_1d(ctx, node, y)
    (t, b), (l, r) = pads
    ctx.define(node, "conv_transpose2d", [x, weight] + ([bias] if bias else []),
               {"stride": tuple(strides), "padding": (t, b, l, r), "output_padding": tuple(output_padding),
                "dilation": tuple(dilations), "groups": group})


CONVERTERS = {"Conv": convert_conv, "ConvTranspose": convert_conv_transpose}
