"""batch_norm and local_response_norm against the float64 oracle (and torch) on every ISA x threads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import norm as ref

from .helpers import TF, F, check, check_torch, rand

SHAPES = st.one_of(
    st.tuples(st.integers(1, 3), st.sampled_from([1, 3, 8, 16, 17, 33]), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 3), st.sampled_from([1, 5, 17, 64])),
    st.tuples(st.integers(1, 2), st.sampled_from([2, 7]), st.integers(1, 11)),
)


@given(SHAPES, st.booleans(), st.sampled_from([1e-5, 1e-3, 0.1]), st.integers(0, 2**32 - 1))
def test_batch_norm(isa, threads, shape, affine, eps, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, mean = rand(rng, *shape, scale=2), rand(rng, c)
    var = rng.uniform(0.05, 3.0, c).astype(np.float32)
    weight, bias = (rand(rng, c), rand(rng, c)) if affine else (None, None)
    got = F.batch_norm(x, mean, var, weight, bias, eps=eps)
    check(got, ref.batch_norm(x, mean, var, weight, bias, eps=eps))
    check_torch(got, lambda *t: TF.batch_norm(*t, training=False, eps=eps), x, mean, var, weight, bias)


def test_batch_norm_weight_only_and_bias_only(isa):
    rng = np.random.default_rng(1)
    x, mean, var, p = rand(rng, 2, 4, 3, 3), rand(rng, 4), np.full(4, 0.5, np.float32), rand(rng, 4)
    check(F.batch_norm(x, mean, var, weight=p), ref.batch_norm(x, mean, var, weight=p))
    check(F.batch_norm(x, mean, var, bias=p), ref.batch_norm(x, mean, var, bias=p))


@given(st.integers(1, 3), st.sampled_from([1, 2, 3, 5, 16, 17]), st.integers(1, 7), st.integers(1, 7),
       st.integers(1, 7), st.sampled_from([(1e-4, 0.75, 1.0), (0.5, 0.5, 2.0), (2e-5, 0.75, 1.0)]),
       st.integers(0, 2**32 - 1))
def test_local_response_norm(isa, threads, n, c, h, w, size, params, seed):
    alpha, beta, k = params
    x = rand(np.random.default_rng(seed), n, c, h, w, scale=4)
    got = F.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)
    check(got, ref.local_response_norm(x, size, alpha=alpha, beta=beta, k=k))
    check_torch(got, "local_response_norm", x, size=size, alpha=alpha, beta=beta, k=k)


@pytest.mark.parametrize("op", ["batch_norm", "local_response_norm"])
def test_norm_non_contiguous_and_read_only(isa, op):
    rng = np.random.default_rng(2)
    x = rand(rng, 2, 7, 5, 6).transpose(0, 1, 3, 2)[:, 1:6]  # (2, 5, 6, 5) view
    c = x.shape[1]
    mean, var = rand(rng, c), np.full(c, 2.0, np.float32)
    for a in (mean, var):
        a.flags.writeable = False
    for arr in (x, np.ascontiguousarray(x)):
        arr = arr.view()
        arr.flags.writeable = False
        if op == "batch_norm":
            check(F.batch_norm(arr, mean, var), ref.batch_norm(arr, mean, var))
        else:
            check(F.local_response_norm(arr, 3), ref.local_response_norm(arr, 3))
