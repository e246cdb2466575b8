"""Sliding-window arithmetic and padding forms: the one copy that conv / pool ops, their shape rules, the ONNX
exporter and the ONNX importer share.

Padding is always resolved to ``(top, bottom, left, right)``; ONNX writes the same four numbers as
``[top, left, bottom, right]`` (`to_onnx_pads`).
"""

from __future__ import annotations

from .. import _validate as V


def extent(kernel: int, dilation: int) -> int:
    """The span of a dilated kernel: ``dilation * (kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def window_count(size: int, begin: int, end: int, span: int, stride: int, ceil_mode: bool = False,
                 torch_ceil: bool = True) -> int:
    """Number of window positions along one axis (0 when the window does not fit).

    `ceil_mode` rounds up; with `torch_ceil` the last window must also start inside the input or its leading padding
    (torch's rule, which convcore follows), without it the count is ONNX's plain ceil formula.
    """
    room = size + begin + end - span
    n = (room + (stride - 1 if ceil_mode else 0)) // stride + 1  # floor division, as torch's div_rtn
    if ceil_mode and torch_ceil and (n - 1) * stride >= size + begin:
        n -= 1
    return max(n, 0)


def out_size(size: int, span: int, stride: int, begin: int, end: int, ceil_mode: bool, name: str) -> int:
    """`window_count` for an op's output, ValueError (naming the kernel argument `name`) when it is empty."""
    n = window_count(size, begin, end, span, stride, ceil_mode)
    if n < 1:
        raise ValueError(f"{name}: expected an effective kernel size of at most the padded input size "
                         f"{size + begin + end} (got {span})")
    return n


def output_hw(in_hw, kernel_hw, stride, dilation, padding, ceil_mode: bool, name: str) -> tuple[int, int]:
    """(H_out, W_out) of a 2-D window op with resolved `padding` (top, bottom, left, right)."""
    return (out_size(in_hw[0], extent(kernel_hw[0], dilation[0]), stride[0], padding[0], padding[1], ceil_mode, name),
            out_size(in_hw[1], extent(kernel_hw[1], dilation[1]), stride[1], padding[2], padding[3], ceil_mode, name))


def transposed_out_size(size: int, span: int, stride: int, begin: int, end: int, output_padding: int) -> int:
    """Output length of a transposed convolution along one axis: ``(size - 1) * stride + span - begin - end +
    output_padding`` (the "full" output, less the padding, plus the extra end rows)."""
    return (size - 1) * stride + span - begin - end + output_padding


def transposed_padding(size, span, stride, output_padding, target, lower: bool = False) -> tuple[int, int]:
    """(begin, end) pads giving a transposed convolution the output length `target` (ONNX's output_shape / SAME
    padding): the total is split evenly, an odd extra going to the end (SAME_UPPER, ONNX's default) or, with
    `lower`, to the beginning. A negative total (a longer output than the full one) gives negative pads."""
    total = (size - 1) * stride + span + output_padding - target
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def padding4(padding, name: str = "padding", signed: bool = False) -> tuple[int, int, int, int]:
    """int | (pad_h, pad_w) | (top, bottom, left, right) -> (top, bottom, left, right), all >= 0 unless `signed`
    (a transposed convolution's padding, where a negative value lengthens the output)."""
    if V.is_int(padding):
        padding = (padding, padding)
    if not isinstance(padding, (tuple, list)) or len(padding) not in (2, 4):
        raise TypeError(f"{name}: expected an int, (pad_h, pad_w) or (top, bottom, left, right) (got {padding!r})")
    values = [V.integer(p, name, None if signed else 0) for p in padding]
    if len(values) == 2:
        values = [values[0], values[0], values[1], values[1]]
    return tuple(values)  # type: ignore[return-value]


def same_padding(in_hw, kernel_hw, stride, dilation, lower: bool = False) -> tuple[int, int, int, int]:
    """'same' padding: output ceil(input / stride); an odd total puts the extra pixel at the end (ONNX SAME_UPPER)
    or, with `lower`, at the start (SAME_LOWER)."""
    pads = []
    for size, k, s, d in zip(in_hw, kernel_hw, stride, dilation):
        total = max((-(-size // s) - 1) * s + extent(k, d) - size, 0)
        small, large = total // 2, total - total // 2
        pads += [large, small] if lower else [small, large]
    return tuple(pads)


def conv_padding(padding, in_hw, kernel_hw, stride, dilation) -> tuple[int, int, int, int]:
    """A convolution's padding argument (an int, a pair, 4 ints or a mode) -> (top, bottom, left, right).

    'valid' is none, 'same' as `same_padding`, 'full' is ``dilation * (k - 1)`` on every side.
    """
    if not isinstance(padding, str):
        return padding4(padding)
    mode = padding.lower()
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode == "same":
        return same_padding(in_hw, kernel_hw, stride, dilation)
    if mode == "full":
        h, w = (extent(k, d) - 1 for k, d in zip(kernel_hw, dilation))
        return (h, h, w, w)
    raise ValueError(f"padding: expected 'valid', 'same', 'full', an int, a pair or 4 ints (got {padding!r})")


def pool_pad_limits(kernel_hw, dilation, is_max: bool) -> tuple[int, int]:
    """Largest padding per axis a pooling window accepts (torch's rule): half the (dilated, for max) kernel."""
    return tuple((extent(k, d) if is_max else k) // 2 for k, d in zip(kernel_hw, dilation))  # type: ignore


def to_onnx_pads(padding) -> list[int]:
    """(top, bottom, left, right) -> ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = padding
    return [top, left, bottom, right]

