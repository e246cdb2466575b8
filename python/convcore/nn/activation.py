"""Elementwise activations and softmax (any input shape). `inplace=` is accepted for torch compatibility; outputs are
always new arrays."""

from __future__ import annotations

from typing import Optional

from .. import functional as F
from .._types import Array
from .module import Module


class _Activation(Module):
    """An elementwise activation with torch's optional, ignored `inplace` flag."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Activation):
    """max(x, 0). Example: `ReLU()(x)`; shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.relu(x)


class ReLU6(_Activation):
    """min(max(x, 0), 6) (MobileNet). Shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.relu6(x)


class LeakyReLU(_Activation):
    """x if x >= 0 else negative_slope * x.

    Args:
        negative_slope: slope for negative inputs. Default 0.01.
        inplace: ignored.

    Example:
        >>> LeakyReLU(0.1)
        LeakyReLU(negative_slope=0.1)
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, x: Array) -> Array:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class SiLU(_Activation):
    """x * sigmoid(x) (swish; EfficientNet). Shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.silu(x)


class Hardswish(_Activation):
    """x * relu6(x + 3) / 6 (MobileNetV3). Shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.hardswish(x)

    def extra_repr(self) -> str:
        return ""  # torch prints Hardswish() even with inplace=True


class Hardsigmoid(_Activation):
    """relu6(x + 3) / 6 (MobileNetV3 squeeze-and-excitation). Shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.hardsigmoid(x)

    def extra_repr(self) -> str:
        return ""  # as torch


class Sigmoid(Module):
    """1 / (1 + exp(-x)). Shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x). Shape unchanged."""

    def forward(self, x: Array) -> Array:
        return F.tanh(x)


def _softmax_dim(dim, x):
    # torch's legacy rule when dim is None: 0 for 0-, 1- and 3-D input, else 1.
    if dim is not None:
        return dim
    return 0 if x.ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x) / sum(exp(x)) along `dim`.

    Args:
        dim: the axis to normalize; None picks torch's legacy default (1 for 2D and 4D input).

    Example:
        >>> probs = Softmax(dim=1)(logits)   # logits (N, classes)
    """

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Array) -> Array:
        return F.softmax(x, axis=_softmax_dim(self.dim, x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) along `dim` (see `Softmax`)."""

    def forward(self, x: Array) -> Array:
        return F.log_softmax(x, axis=_softmax_dim(self.dim, x))
