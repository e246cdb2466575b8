"""Pooling layers. kernel_size / stride / padding are kept as given (int or tuple), as torch does."""

from __future__ import annotations

from typing import Optional

from .. import functional as F
from .._types import Array, IntPair, Pads, SizePair
from ._utils import check_input
from .module import Module


class MaxPool2d(Module):
    """Max over sliding windows of NCHW input, like `torch.nn.MaxPool2d` (padding counts as -inf).

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw). Default: kernel_size.
        padding: int, (ph, pw) or (top, bottom, left, right). Default 0.
        dilation: int or (dh, dw). Default 1.
        return_indices: must be False (not supported).
        ceil_mode: round the output size up instead of down. Default False.

    Shape:
        input (N, C, H, W) -> (N, C, H_out, W_out), H_out = floor((H + pads - dilation * (kh - 1) - 1) / sh) + 1.

    Example:
        >>> MaxPool2d(3, stride=2, padding=1)(np.zeros((1, 64, 112, 112), np.float32)).shape
        (1, 64, 56, 56)
    """

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: Pads = 0,
                 dilation: IntPair = 1, return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        if return_indices:
            raise NotImplementedError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average over sliding windows of NCHW input, like `torch.nn.AvgPool2d`.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw). Default: kernel_size.
        padding: int, (ph, pw) or (top, bottom, left, right). Default 0.
        ceil_mode: round the output size up instead of down. Default False.
        count_include_pad: count padded zeros in the divisor. Default True.
        divisor_override: must be None (not supported).

    Shape:
        input (N, C, H, W) -> (N, C, H_out, W_out), as MaxPool2d with dilation 1.

    Example:
        >>> AvgPool2d(2)(np.zeros((1, 8, 8, 8), np.float32)).shape
        (1, 8, 4, 4)
    """

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: Pads = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: None = None) -> None:
        super().__init__()
        if divisor_override is not None:
            raise NotImplementedError("AvgPool2d: divisor_override is not supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _output_size(output_size, x):
    """Resolve an int or (oh, ow) pair whose None entries mean 'same as the input'."""
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"expected output_size as an int or a pair (got {output_size!r})")
    return tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(size))


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, like `torch.nn.AdaptiveAvgPool2d` (window i spans
    [floor(i * H / oh), ceil((i + 1) * H / oh))).

    Args:
        output_size: int or (oh, ow); None in the pair keeps that input size.

    Shape:
        input (N, C, H, W) -> (N, C, oh, ow).

    Example:
        >>> AdaptiveAvgPool2d((1, 1))(np.zeros((2, 512, 7, 7), np.float32)).shape
        (2, 512, 1, 1)
    """

    def __init__(self, output_size: SizePair) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        return F.adaptive_avg_pool2d(x, _output_size(self.output_size, x))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    """Max pooling to a fixed output size, like `torch.nn.AdaptiveMaxPool2d` (windows as AdaptiveAvgPool2d).

    Args:
        output_size: int or (oh, ow); None in the pair keeps that input size.
        return_indices: must be False (not supported).
    """

    def __init__(self, output_size: SizePair, return_indices: bool = False) -> None:
        if return_indices:
            raise NotImplementedError("AdaptiveMaxPool2d: return_indices=True is not supported")
        super().__init__(output_size)

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        return F.adaptive_max_pool2d(x, _output_size(self.output_size, x))
