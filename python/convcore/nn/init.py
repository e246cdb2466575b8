"""Parameter initialization with numpy, like torch.nn.init (functions fill float32 arrays in place).

All random draws come from one module-level `numpy.random.Generator`; `manual_seed(seed)` makes every following
layer construction reproducible.

Example:
    >>> from convcore import nn
    >>> nn.init.manual_seed(0)
    >>> a = nn.Conv2d(3, 8, 3).weight.copy()
    >>> nn.init.manual_seed(0)
    >>> bool((nn.Conv2d(3, 8, 3).weight == a).all())
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator, Optional

import numpy as np

from .._types import Array

_rng = np.random.default_rng()
_skip: contextvars.ContextVar[bool] = contextvars.ContextVar("convcore_skip_init", default=False)


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Within this block (in this thread), the random init functions leave their arrays as they are: layers built
    here have uninitialized weights, at almost no cost. For models whose weights are loaded right after, or whose
    state dict is only looked at (its keys and shapes).

    Example:
        >>> with skip_init():
        ...     shapes = {k: v.shape for k, v in convcore.models.vgg16().state_dict().items()}
    """
    token = _skip.set(True)
    try:
        yield
    finally:
        _skip.reset(token)


def manual_seed(seed: Optional[int]) -> None:
    """Reseed the generator used by every init function (and so by every layer's default init)."""
    global _rng
    _rng = np.random.default_rng(seed)


def _fans(array):
    """(fan_in, fan_out) of a weight: (out, in, *kernel) like torch's _calculate_fan_in_and_fan_out."""
    if array.ndim < 2:
        raise ValueError(f"expected a weight with at least 2 dimensions to compute fans (got {array.ndim})")
    receptive = int(np.prod(array.shape[2:])) if array.ndim > 2 else 1
    return array.shape[1] * receptive, array.shape[0] * receptive


def _gain(nonlinearity, a):
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"expected nonlinearity 'relu', 'leaky_relu', 'linear', 'sigmoid' or 'tanh' "
                     f"(got {nonlinearity!r})")


def _std(array, a, mode, nonlinearity):
    fan_in, fan_out = _fans(array)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"expected mode 'fan_in' or 'fan_out' (got {mode!r})")
    fan = fan_in if mode == "fan_in" else fan_out
    return _gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def uniform_(array: Array, a: float = 0.0, b: float = 1.0) -> Array:
    """Fill `array` with draws from U(a, b); returns it."""
    if not _skip.get():
        array[...] = _rng.uniform(a, b, array.shape)
    return array


def normal_(array: Array, mean: float = 0.0, std: float = 1.0) -> Array:
    """Fill `array` with draws from N(mean, std^2); returns it."""
    if not _skip.get():
        array[...] = _rng.normal(mean, std, array.shape)
    return array


def constant_(array: Array, value: float) -> Array:
    """Fill `array` with `value`; returns it."""
    array[...] = value
    return array


def zeros_(array: Array) -> Array:
    """Fill `array` with 0; returns it."""
    return constant_(array, 0.0)


def ones_(array: Array) -> Array:
    """Fill `array` with 1; returns it."""
    return constant_(array, 1.0)


def kaiming_uniform_(array: Array, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Array:
    """He uniform init: U(-bound, bound), bound = gain * sqrt(3 / fan). With a=sqrt(5): torch's conv/linear default."""
    bound = math.sqrt(3.0) * _std(array, a, mode, nonlinearity)
    return uniform_(array, -bound, bound)


def kaiming_normal_(array: Array, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Array:
    """He normal init: N(0, std^2), std = gain / sqrt(fan) (torchvision's ResNet conv init with fan_out, relu)."""
    return normal_(array, 0.0, _std(array, a, mode, nonlinearity))
