"""Reference 2D convolution (torch.nn.functional.conv2d semantics, ONNX auto_pad for 'same')."""

import numpy as np


def _pair(v):
    """Return an int-or-pair argument as a (h, w) tuple of ints."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


def resolve_padding(padding, in_hw, kernel_hw, stride=1, dilation=1):
    """Resolve a padding spec to explicit (top, bottom, left, right) pads.

    Args:
        padding: int, (ph, pw), (top, bottom, left, right), or 'valid' | 'same' | 'full'.
            'same' gives output = ceil(in / stride) with the total pad max((out-1)*stride + dil*(k-1)+1 - in, 0)
            split top = total // 2, the odd one going bottom / right (ONNX SAME_UPPER).
            'full' pads dil*(k-1) on every side.
        in_hw: input (H, W).
        kernel_hw: kernel (kh, kw).
        stride, dilation: int or pair.
    """
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        pads = []
        for size, k, s, d in zip(in_hw, kernel_hw, (sh, sw), (dh, dw)):
            extent = d * (k - 1) + 1
            if padding == "full":
                pads += [extent - 1, extent - 1]
            elif padding == "same":
                out = -(-size // s)
                total = max((out - 1) * s + extent - size, 0)
                pads += [total // 2, total - total // 2]
            else:
                raise ValueError(f"unknown padding {padding!r}")
        return tuple(pads)
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return p, p, p, p
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"padding must be an int, a pair or 4 ints (got {padding!r})")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Grouped, strided, dilated 2D cross-correlation in float64.

    Args:
        x: input (N, C_in, H, W).
        weight: (C_out, C_in // groups, kh, kw).
        bias: optional (C_out,).
        stride, dilation: int or pair.
        padding: see resolve_padding.
        groups: number of channel groups (C_in and C_out both divisible by it).

    Shape:
        out: (N, C_out, H_out, W_out), H_out = (H + top + bottom - dh*(kh-1) - 1) // sh + 1.
    """
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    assert c_in == c_per_group * groups and c_out % groups == 0
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    top, bottom, left, right = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    assert oh > 0 and ow > 0, "kernel larger than the padded input"

    out = np.zeros((n, c_out, oh, ow))
    k_per_group = c_out // groups
    for g in range(groups):
        xg = xp[:, g * c_per_group:(g + 1) * c_per_group]
        wg = weight[g * k_per_group:(g + 1) * k_per_group]
        for i in range(kh):
            for j in range(kw):
                # The input pixels that kernel tap (i, j) sees for every output pixel.
                patch = xg[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]
                out[:, g * k_per_group:(g + 1) * k_per_group] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, i, j])
    if bias is not None:
        out += np.asarray(bias, np.float64).reshape(1, -1, 1, 1)
    return out
