"""Reference normalizations: inference batch norm and local response norm (torch semantics)."""

import numpy as np


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1) in float64. x: (N, C, ...)."""
    x = np.asarray(x, np.float64)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(running_mean, np.float64).reshape(shape)
    var = np.asarray(running_var, np.float64).reshape(shape)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(shape)
    return y


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Cross-channel LRN: x / (k + alpha/size * sum of x^2 over the channel window)^beta.

    The window for channel c is [c - size//2, c + (size-1)//2], clipped to the channels (torch's zero padding).
    x: (N, C, ...).
    """
    x = np.asarray(x, np.float64)
    c = x.shape[1]
    sq = x * x
    div = np.zeros_like(x)
    for ch in range(c):
        lo, hi = max(ch - size // 2, 0), min(ch + (size - 1) // 2, c - 1)
        div[:, ch] = sq[:, lo:hi + 1].sum(axis=1)
    return x / (k + alpha / size * div) ** beta
