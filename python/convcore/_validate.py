"""Argument checks shared by the public API: every message names the argument and says what was expected and got.

The C++ kernels re-check the sizes they rely on; these checks exist to give the user a clear Python error first.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

# Kernels index with 64-bit integers, but a single tensor above this many elements is almost certainly a mistake
# (8 GiB of float32) and would exhaust memory before any kernel ran: refuse it up front.
MAX_ELEMENTS = 2**31 - 1


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def integer(v, name: str, minimum: int | None = None) -> int:
    """An int (bools refused) in [minimum, MAX_ELEMENTS]: no size, stride or padding needs more, and the bound keeps
    every product the kernels form far from 64-bit overflow."""
    if not _is_int(v):
        raise TypeError(f"{name}: expected an int (got {type(v).__name__} {v!r})")
    v = operator.index(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum} (got {v})")
    if abs(v) > MAX_ELEMENTS:
        raise ValueError(f"{name}: expected an int of magnitude <= {MAX_ELEMENTS} (got {v})")
    return v


def number(v, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number (got {type(v).__name__} {v!r})")
    return float(v)


def pair(v, name: str, minimum: int | None = None) -> tuple[int, int]:
    """An int (used for both axes) or a sequence of two ints."""
    if _is_int(v):
        v = (v, v)
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise TypeError(f"{name}: expected an int or a pair of ints (got {v!r})")
    return integer(v[0], name, minimum), integer(v[1], name, minimum)


def check_size(shape, name: str) -> None:
    count = 1
    for d in shape:
        count *= int(d)
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"{name}: a tensor of shape {tuple(shape)} has {count} elements; at most {MAX_ELEMENTS} are supported"
        )


def tensor(x, name: str = "x", ndim: int | tuple[int, ...] | None = None, allow_empty: bool = False) -> np.ndarray:
    """A float32 numpy array, C-contiguous (copied only when it is not), with the expected rank."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, np.generic):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name}: expected a numpy.ndarray of float32 (got {type(x).__name__})")
    if x.dtype != np.float32:
        raise TypeError(f"{name}: expected dtype float32 (got {x.dtype}); convert with .astype(numpy.float32)")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}D" for d in allowed)
            raise ValueError(f"{name}: expected {want} input (got {x.ndim}D input with shape {x.shape})")
    if not allow_empty and x.size == 0:
        raise ValueError(f"{name}: expected a non-empty array (got shape {x.shape})")
    check_size(x.shape, name)
    return np.ascontiguousarray(x)


def optional_tensor(x, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if x is None:
        return None
    x = tensor(x, name)
    if x.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (got {x.shape})")
    return x


def output(out, shape: tuple[int, ...], name: str = "out", inputs: tuple = ()) -> np.ndarray:
    """A new float32 array of `shape`, or the caller's `out` after checking it can receive the result."""
    check_size(shape, name)
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 numpy.ndarray (got {getattr(out, 'dtype', type(out).__name__)})")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (got {out.shape})")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name}: expected a writeable C-contiguous array")
    for x in inputs:
        if x is not None and np.may_share_memory(out, x):
            raise ValueError(f"{name}: must not overlap an input array")
    return out


def axis(a, ndim: int, name: str = "axis") -> int:
    a = integer(a, name)
    if not -ndim <= a < ndim:
        raise ValueError(f"{name}: expected a value in [{-ndim}, {ndim - 1}] for a {ndim}D input (got {a})")
    return a % ndim


def padding4(padding, name: str = "padding") -> tuple[int, int, int, int]:
    """int | (pad_h, pad_w) | (top, bottom, left, right) -> (top, bottom, left, right), all >= 0."""
    if _is_int(padding):
        padding = (padding, padding)
    if not isinstance(padding, (tuple, list)) or len(padding) not in (2, 4):
        raise TypeError(f"{name}: expected an int, (pad_h, pad_w) or (top, bottom, left, right) (got {padding!r})")
    vals = [integer(p, name, 0) for p in padding]
    if len(vals) == 2:
        vals = [vals[0], vals[0], vals[1], vals[1]]
    return tuple(vals)  # type: ignore[return-value]


def conv_padding(padding, in_hw, kernel_hw, stride, dilation) -> tuple[int, int, int, int]:
    """Resolves the padding modes of conv2d to explicit (top, bottom, left, right)."""
    if isinstance(padding, str):
        mode = padding.lower()
        k_eff = [d * (k - 1) + 1 for k, d in zip(kernel_hw, dilation)]
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "full":
            return (k_eff[0] - 1, k_eff[0] - 1, k_eff[1] - 1, k_eff[1] - 1)
        if mode == "same":
            pads = []
            for size, k, s in zip(in_hw, k_eff, stride):
                out = -(-size // s)
                total = max((out - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]  # odd total: the extra goes bottom / right (SAME_UPPER)
            return tuple(pads)  # type: ignore[return-value]
        raise ValueError(f"padding: expected 'valid', 'same', 'full', an int, a pair or 4 ints (got {padding!r})")
    return padding4(padding)


def out_size(size: int, k_eff: int, stride: int, pad_lo: int, pad_hi: int, ceil_mode: bool, name: str) -> int:
    """Output length of a sliding window (conv or pool); ceil_mode follows torch (the last window must start inside
    the input or the leading padding)."""
    span = size + pad_lo + pad_hi - k_eff
    n = (span + (stride - 1 if ceil_mode else 0)) // stride + 1  # floor division, as torch's div_rtn
    if ceil_mode and (n - 1) * stride >= size + pad_lo:
        n -= 1
    if n < 1:
        raise ValueError(
            f"{name}: effective kernel size {k_eff} is larger than the padded input size {size + pad_lo + pad_hi}"
        )
    return n
