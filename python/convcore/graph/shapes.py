"""Shape inference by op name. The rules themselves are part of each op's declaration (`convcore.ops`); this module
keeps the graph-level names for them."""

from .. import _validate as V
from ..ops import OPS, window

# op -> its tensor arguments in Node.inputs order (a view of the declarations' `inputs`).
TENSOR_ARGS = {name: op.inputs for name, op in OPS.items()}


def infer_shape(op, shapes, attrs):
    """Output shape of `op` for input shapes (Node.inputs order, None for absent inputs) and attributes.

    Example:
        >>> infer_shape("conv2d", [(1, 3, 224, 224), (64, 3, 7, 7), (64,)], {"stride": 2, "padding": 3})
        (1, 64, 112, 112)
    """
    if op not in OPS:
        raise NotImplementedError(f"no shape rule for op '{op}'")
    return OPS[op].infer(shapes, attrs)[1]


def conv_pads(padding, in_hw, kernel_hw, stride=1, dilation=1):
    """Explicit (top, bottom, left, right) pads of a convolution: `convcore.ops.window.conv_padding` with int or
    pair strides and dilations."""
    return window.conv_padding(padding, in_hw, kernel_hw, V.pair(stride, "stride"), V.pair(dilation, "dilation"))
