"""Reference elementwise activations and softmax in float64 (torch definitions)."""

import numpy as np


def _f64(x):
    return np.asarray(x, np.float64)


def relu(x):
    return np.maximum(_f64(x), 0.0)


def relu6(x):
    return np.clip(_f64(x), 0.0, 6.0)


def leaky_relu(x, negative_slope=0.01):
    x = _f64(x)
    return np.where(x >= 0, x, x * negative_slope)


def sigmoid(x):
    x = _f64(x)
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(x):
    return np.tanh(_f64(x))


def silu(x):
    return _f64(x) * sigmoid(x)


def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return np.clip(_f64(x) + 3.0, 0.0, 6.0) / 6.0


def hardswish(x):
    """x * relu6(x + 3) / 6."""
    return _f64(x) * hardsigmoid(x)


def log_softmax(x, axis=1):
    x = _f64(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis=1):
    return np.exp(log_softmax(x, axis))
