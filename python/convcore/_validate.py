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


def is_int(v) -> bool:
    # `type(v) is int` first: the ABC check costs more than many ops' whole validation.
    return type(v) is int or isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def integer(v, name: str, minimum: int | None = None) -> int:
    """An int (bools refused) in [minimum, MAX_ELEMENTS]: no size, stride or padding needs more, and the bound keeps
    every product the kernels form far from 64-bit overflow."""
    if type(v) is not int:
        if not is_int(v):
            raise TypeError(f"{name}: expected an int (got {type(v).__name__} {v!r})")
        v = operator.index(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum} (got {v})")
    if abs(v) > MAX_ELEMENTS:
        raise ValueError(f"{name}: expected an int of magnitude <= {MAX_ELEMENTS} (got {v})")
    return v


def number(v, name: str) -> float:
    if type(v) is float:
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number (got {type(v).__name__} {v!r})")
    return float(v)


def pair(v, name: str, minimum: int | None = None) -> tuple[int, int]:
    """An int (used for both axes) or a sequence of two ints."""
    if is_int(v):
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


def rank(shape, name: str, ndim: int | tuple[int, ...]) -> None:
    """Raise unless `shape` has one of the ranks `ndim`."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in allowed:
        want = " or ".join(f"{d}D" for d in allowed)
        raise ValueError(f"{name}: expected {want} input (got {len(shape)}D input with shape {tuple(shape)})")


def shape_is(shape, name: str, expected: tuple[int, ...]) -> None:
    """Raise unless `shape` (None: an absent optional tensor, accepted) equals `expected`."""
    if shape is not None and tuple(shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)} (got {tuple(shape)})")


def tensor(x, name: str = "x", allow_empty: bool = False) -> np.ndarray:
    """A float32 numpy array, C-contiguous (copied only when it is not), within the size limit."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, np.generic):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name}: expected a numpy.ndarray of float32 (got {type(x).__name__})")
    if x.dtype != np.float32:
        raise TypeError(f"{name}: expected dtype float32 (got {x.dtype}); convert with .astype(numpy.float32)")
    if not allow_empty and x.size == 0:
        raise ValueError(f"{name}: expected a non-empty array (got shape {x.shape})")
    check_size(x.shape, name)
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)  # (ascontiguousarray would make 0-D arrays 1-D)


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
            raise ValueError(f"{name}: expected an array apart from the inputs (got one sharing memory with an input)")
    return out


def broadcasts_to(shape, target) -> bool:
    """Whether numpy broadcasting takes `shape` to exactly `target`."""
    try:
        return tuple(np.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except ValueError:
        return False


def axis(a, ndim: int, name: str = "axis") -> int:
    a = integer(a, name)
    if not -ndim <= a < ndim:
        raise ValueError(f"{name}: expected a value in [{-ndim}, {ndim - 1}] for a {ndim}D input (got {a})")
    return a % ndim
