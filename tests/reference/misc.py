"""Reference linear, broadcasting add / mul, concat and flatten in float64."""

import numpy as np


def linear(x, weight, bias=None):
    """x @ weight.T + bias. x: (..., in), weight: (out, in), bias: (out,) -> (..., out)."""
    y = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


def add(a, b):
    return np.asarray(a, np.float64) + np.asarray(b, np.float64)


def mul(a, b):
    return np.asarray(a, np.float64) * np.asarray(b, np.float64)


def concat(xs, axis=1):
    return np.concatenate([np.asarray(x, np.float64) for x in xs], axis=axis)


def flatten(x, start_dim=1, end_dim=-1):
    """Merge dims start_dim..end_dim (inclusive, negative counts from the end) into one."""
    x = np.asarray(x, np.float64)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    merged = int(np.prod(x.shape[start:end + 1]))
    return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])
