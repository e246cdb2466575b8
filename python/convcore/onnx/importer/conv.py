"""ONNX Conv -> conv2d (a zero Pad before it folds into its padding)."""

from .attributes import need_4d, pair_attr
from .padding import take_pad, window_pads


def convert_conv(ctx, node, a):
    weight = ctx.const(node.input[1])
    if weight is None:
        raise ValueError(f"node '{node.name}' (Conv): expected the weight as an initializer or Constant")
    if weight.ndim != 4:
        raise ValueError(f"node '{node.name}' (Conv): expected a 2-D convolution (got a {weight.ndim - 2}-D kernel)")
    folded = take_pad(ctx, node.input[0], 0.0)
    x = folded[0] if folded else ctx.tensor(node.input[0], node)
    need_4d(ctx, node, x, "convolution")
    kernel = weight.shape[2:]
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(kernel):
        raise ValueError(f"node '{node.name}' (Conv): expected kernel_shape {list(kernel)} of the weight "
                         f"{weight.shape} (got {a['kernel_shape']})")
    stride, dilation = pair_attr(node, a, "strides", (1, 1)), pair_attr(node, a, "dilations", (1, 1))
    pads = window_pads(ctx, node, a, x, folded, kernel, stride, dilation)
    bias = ctx.tensor(node.input[2], node) if len(node.input) > 2 and node.input[2] else ""
    inputs = [x, ctx.tensor(node.input[1], node)] + ([bias] if bias else [])
    ctx.define(node, "conv2d", inputs, {"stride": stride, "padding": pads, "dilation": dilation,
                                        "groups": int(a.get("group", 1))})


CONVERTERS = {"Conv": convert_conv}
