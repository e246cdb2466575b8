"""Conv2d."""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._types import Array, IntPair, Padding
from . import init
from ._utils import check_channels, check_input, pair
from .module import Module

_PADDING_STRINGS = ("valid", "same", "full")


def _padding(padding):
    """Keep a padding string; int -> pair; pair and 4-tuple (top, bottom, left, right) -> tuple. Non-negative ints."""
    if isinstance(padding, str):
        if padding not in _PADDING_STRINGS:
            raise ValueError(f"expected padding 'valid', 'same' or 'full' (got {padding!r})")
        return padding
    if isinstance(padding, int):
        values = (padding, padding)
    else:
        values = tuple(padding) if isinstance(padding, (tuple, list)) else ()
    if len(values) not in (2, 4) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"expected padding as an int, 2 or 4 ints, or a string (got {padding!r})")
    if min(values) < 0:
        raise ValueError(f"expected non-negative padding (got {padding!r})")
    return values


class Conv2d(Module):
    """2D convolution over NCHW input, like `torch.nn.Conv2d` (zero padding).

    Args:
        in_channels: C, channels of the input.
        out_channels: K, channels of the output.
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw). Default 1.
        padding: int, (ph, pw), (top, bottom, left, right), 'valid', 'same' (output = ceil(input / stride), the odd
            extra pixel at the bottom/right) or 'full' (dilation * (k - 1) on every side). Default 0.
        dilation: int or (dh, dw). Default 1.
        groups: input and output channels are split into `groups` independent convolutions. Default 1.
        bias: add a learned bias. Default True.

    Shape:
        input (N, C, H, W) float32 -> output (N, K, H_out, W_out).

    Parameters are initialized like torch: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with
    fan_in = C / groups * kh * kw (see `convcore.nn.init.manual_seed`).

    Example:
        >>> conv = Conv2d(3, 16, 3, stride=2, padding=1)
        >>> conv(np.zeros((1, 3, 32, 32), np.float32)).shape
        (1, 16, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"expected a positive int for {name} (got {value!r})")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"expected in_channels ({in_channels}) and out_channels ({out_channels}) to be "
                             f"divisible by groups (got {groups})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = _padding(padding)
        self.dilation = pair(dilation, "dilation")
        self.groups = groups
        weight = np.empty((out_channels, in_channels // groups, *self.kernel_size), np.float32)
        self.register_parameter("weight", weight)
        self.register_parameter("bias", np.empty(out_channels, np.float32) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weight and bias with torch's default init."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].size
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        check_channels(self, x, self.in_channels)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str):
            s += f", padding={self.padding}"
        elif any(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
