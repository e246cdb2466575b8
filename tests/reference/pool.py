"""Reference 2D pooling (torch.nn.functional semantics; 4-sided padding as in ONNX pads)."""

import numpy as np

from .conv import _pair


def _pool_pads(padding):
    """Return pool padding (int, pair or 4 ints) as (top, bottom, left, right)."""
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return padding


def pool_output_size(size, k, stride, pad_begin, pad_end, dilation=1, ceil_mode=False):
    """Output length of one pooled axis, torch's rule.

    With ceil_mode a last partial window is kept, unless it would start in the end padding (or past the input).
    """
    extent = dilation * (k - 1) + 1
    span = size + pad_begin + pad_end - extent
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling in float64; padded positions never win (they count as -inf).

    Shape:
        x: (N, C, H, W) -> (N, C, H_out, W_out), see pool_output_size.
    """
    x = np.asarray(x, np.float64)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    dh, dw = _pair(dilation)
    top, bottom, left, right = _pool_pads(padding)
    n, c, h, w = x.shape
    oh = pool_output_size(h, kh, sh, top, bottom, dh, ceil_mode)
    ow = pool_output_size(w, kw, sw, left, right, dw, ceil_mode)
    out = np.full((n, c, oh, ow), -np.inf)
    for oy in range(oh):
        for ox in range(ow):
            for i in range(kh):
                for j in range(kw):
                    y = oy * sh - top + i * dh
                    xx = ox * sw - left + j * dw
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, :, oy, ox] = np.maximum(out[:, :, oy, ox], x[:, :, y, xx])
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling in float64.

    The divisor is the window clipped to the padded input when count_include_pad (so a ceil_mode window hanging
    past the padding counts only up to the padding's end), else the number of real input pixels in the window.
    """
    x = np.asarray(x, np.float64)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    top, bottom, left, right = _pool_pads(padding)
    n, c, h, w = x.shape
    oh = pool_output_size(h, kh, sh, top, bottom, 1, ceil_mode)
    ow = pool_output_size(w, kw, sw, left, right, 1, ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for oy in range(oh):
        y0 = oy * sh - top
        y1 = min(y0 + kh, h + bottom)
        for ox in range(ow):
            x0 = ox * sw - left
            x1 = min(x0 + kw, w + right)
            padded_count = (y1 - y0) * (x1 - x0)
            y0c, y1c, x0c, x1c = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
            if y0c >= y1c or x0c >= x1c:
                continue  # window entirely in padding: torch yields 0
            total = x[:, :, y0c:y1c, x0c:x1c].sum(axis=(2, 3))
            count = padded_count if count_include_pad else (y1c - y0c) * (x1c - x0c)
            out[:, :, oy, ox] = total / count
    return out


def _adaptive(x, output_size, reduce):
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    oh, ow = _pair(output_size)
    out = np.zeros((n, c, oh, ow))
    for oy in range(oh):
        # Bin oy covers [floor(oy*H/OH), ceil((oy+1)*H/OH)): bins may overlap when H is not a multiple of OH.
        y0, y1 = (oy * h) // oh, -(-((oy + 1) * h) // oh)
        for ox in range(ow):
            x0, x1 = (ox * w) // ow, -(-((ox + 1) * w) // ow)
            out[:, :, oy, ox] = reduce(x[:, :, y0:y1, x0:x1], axis=(2, 3))
    return out


def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling (torch bins) in float64. output_size: int or (OH, OW)."""
    return _adaptive(x, output_size, np.mean)


def adaptive_max_pool2d(x, output_size):
    """Adaptive max pooling (torch bins) in float64. output_size: int or (OH, OW)."""
    return _adaptive(x, output_size, np.max)


def global_avg_pool2d(x):
    """Mean over H and W, keeping dims: (N, C, H, W) -> (N, C, 1, 1)."""
    return np.asarray(x, np.float64).mean(axis=(2, 3), keepdims=True)


def global_max_pool2d(x):
    """Max over H and W, keeping dims: (N, C, H, W) -> (N, C, 1, 1)."""
    return np.asarray(x, np.float64).max(axis=(2, 3), keepdims=True)
