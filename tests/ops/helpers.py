"""Helpers shared by the op tests: random inputs, output checks, optional torch."""

import numpy as np

from reference import assert_close

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # torch is optional: the float64 oracles are the primary check
    torch = TF = None

import convcore.functional as F  # noqa: F401  (shared by the op test modules)


def rand(rng, *shape, scale=1.0):
    """Standard normal float32 array of the given shape."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check(got, ref, bound=1e-5, scale=None):
    """Assert got is a float32 C-contiguous array within bound of the float64 reference (see assert_close)."""
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == np.float32, got.dtype
    assert got.flags.c_contiguous
    assert_close(got, ref, bound, scale)


def abs_scale(fn, *arrays, **kwargs):
    """max of fn applied to the absolute values of its array arguments: the size of the terms a sum adds up.

    A wrong or missing term changes a sum of K terms by about 1/K of this, far above 1e-5 for the sizes tested.
    """
    return np.abs(fn(*[None if a is None else np.abs(a) for a in arrays], **kwargs)).max()


def check_torch(got, torch_fn, *arrays, bound=1e-5, scale=None, **kwargs):
    """When torch is importable, also compare got with torch_fn run in float64 on the same arrays.

    torch_fn: a callable, or the name of a torch.nn.functional function (looked up only when torch is there).
    """
    if torch is None:
        return
    if isinstance(torch_fn, str):
        torch_fn = getattr(TF, torch_fn)
    tensors = [None if a is None else torch.from_numpy(np.asarray(a, np.float64)) for a in arrays]
    assert_close(got, torch_fn(*tensors, **kwargs).numpy(), bound, scale)
