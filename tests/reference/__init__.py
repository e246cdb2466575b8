"""Plain float64 numpy reference implementations (test oracles) of convcore's functional ops.

They are written from the torch / ONNX definitions, independently of convcore, and favour clarity over speed.
Every function takes array-likes, computes in float64 and returns float64 arrays.
"""

import numpy as np


def assert_close(got, ref, bound=1e-5, scale=None):
    """Assert max|got - ref| / scale <= bound, after checking the shapes match.

    scale defaults to max(max|ref|, tiny): the fp32 bound for single ops of docs/architecture.md (section 5). Sums
    whose terms cancel (a lone conv output pixel, a short dot product) can end far smaller than their terms while
    keeping the terms' absolute rounding error; tests of such sums pass the size of the terms instead, e.g.
    scale = max of the op applied to |x| and |weight|.
    """
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"shape {got.shape} != reference shape {ref.shape}"
    if ref.size == 0:
        return
    # Infinities (max pooling over padding only) must match exactly; compare the finite part numerically.
    inf = np.isinf(ref)
    assert np.array_equal(got[inf], ref[inf]), "infinite reference values differ"
    assert not np.isnan(got).any(), "NaN in the result"
    got, ref = got[~inf], ref[~inf]
    if ref.size == 0:
        return
    if scale is None:
        scale = np.abs(ref).max()
    scale = max(scale, np.finfo(np.float32).tiny)
    err = np.abs(got - ref).max() / scale
    assert err <= bound, f"relative error {err:.3g} > {bound:.3g} (scale {scale:.3g}, max|ref| {np.abs(ref).max():.3g})"
