"""Linear, Flatten, Dropout, Identity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .._types import Array
from . import init
from .module import Module


class Linear(Module):
    """y = x @ weight.T + bias, like `torch.nn.Linear`.

    Args:
        in_features: size of the last input dimension.
        out_features: size of the last output dimension.
        bias: add a learned bias. Default True.

    Shape:
        input (..., in_features) -> output (..., out_features).

    weight (out_features, in_features) and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features)), like torch.

    Example:
        >>> Linear(512, 10)(np.zeros((4, 512), np.float32)).shape
        (4, 10)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"expected a positive int for {name} (got {value!r})")
        self.in_features = in_features
        self.out_features = out_features
        self.register_parameter("weight", np.empty((out_features, in_features), np.float32))
        self.register_parameter("bias", np.empty(out_features, np.float32) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weight and bias with torch's default init."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Array) -> Array:
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Linear: expected input with at least 1 dimension (got {x!r})")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input with last dimension {self.in_features} (got {x.shape[-1]})")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge dimensions start_dim..end_dim into one, like `torch.nn.Flatten`.

    Args:
        start_dim: first dimension to merge. Default 1 (keep the batch).
        end_dim: last dimension to merge. Default -1.

    Example:
        >>> Flatten()(np.zeros((2, 512, 1, 1), np.float32)).shape
        (2, 512)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Array) -> Array:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Identity: convcore is an inference library, so dropout never drops (in eval or in train mode).

    Args:
        p: the drop probability torch would use in training, in [0, 1]; kept for the repr and checkpoints' configs.
        inplace: ignored.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"expected a dropout probability between 0 and 1 (got {p})")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Array) -> Array:
        return x

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (like torch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Array) -> Array:
        return x
