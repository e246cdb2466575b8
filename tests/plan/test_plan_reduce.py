"""Reductions and `where` inside a Plan (plan/reduction.py): every reduction over any axes but the batch, kept dims
or not, of maps in either stored order and of sequences, against numpy in float64 and the eager graph; a reduction
to one value per image read through a reshape (tf2onnx's normalisation: ReduceMin -> (N,) -> (N, 1, 1)); `where`
with a mask, a constant and a map (TensorFlow's divide-no-NaN), a zero range included; no node outside the Plan."""

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference import assert_close

import convcore
import convcore.functional as F

NUMPY = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min,
         "reduce_prod": np.prod, "reduce_l1": lambda x, axis, keepdims: np.sum(np.abs(x), axis, keepdims=keepdims),
         "reduce_l2": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis, keepdims=keepdims)),
         "reduce_sum_square": lambda x, axis, keepdims: np.sum(x * x, axis, keepdims=keepdims),
         "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis, keepdims=keepdims)),
         "reduce_log_sum_exp": lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis, keepdims=keepdims))}


def rand(rng, *shape):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)  # positive: log_sum and prod stay finite


AXES = [a for r in range(1, 4) for a in itertools.combinations((1, 2, 3), r)]


@given(op=st.sampled_from(sorted(NUMPY)), axes=st.sampled_from(AXES), keepdims=st.booleans(),
       channels_last=st.booleans(), batch=st.integers(1, 3), c=st.integers(1, 6), h=st.integers(1, 5),
       w=st.integers(1, 5))
def test_reduction_in_plan(isa, op, axes, keepdims, channels_last, batch, c, h, w):
    rng = np.random.default_rng(c * 31 + h * 7 + w)
    reduce = getattr(F, op)

    def fn(x):
        y = F.relu(x)  # a computed value: (N, C, H, W), or (N, H, W, C) as the Plan stores it
        if channels_last:
            y = F.transpose(y, (0, 2, 3, 1))
        return F.relu(reduce(y, axes, keepdims))

    x = rand(rng, batch, c, h, w)
    plan = convcore.compile(fn, x.shape)
    y = np.maximum(x.astype(np.float64), 0)
    if channels_last:
        y = y.transpose(0, 2, 3, 1)
    want = np.maximum(NUMPY[op](y, axis=axes, keepdims=keepdims), 0)
    if want.ndim >= 2:  # a rank-1 result stays eager (nothing reads it through a reshape here)
        assert plan.eager_nodes == [], plan.summary()
    assert_close(plan(x), want, 1e-5)
    assert_close(plan(x), fn(x), 1e-5)


@pytest.mark.parametrize("op", ["reduce_mean", "reduce_max", "reduce_log_sum_exp"])
def test_reduction_of_sequences(isa, op):
    """(N, L, C) sequences: over the channels (each position's own), the positions, both."""
    rng = np.random.default_rng(4)
    reduce = getattr(F, op)
    for axes in ((2,), (1,), (1, 2)):
        def fn(x):
            seq = F.transpose(F.flatten(F.relu(x), 2), (0, 2, 1))  # (N, L, C) channels-last
            return F.relu(reduce(seq, axes, True))

        x = rand(rng, 2, 5, 3, 4)
        plan = convcore.compile(fn, x.shape)
        assert plan.eager_nodes == []
        seq = np.maximum(x.astype(np.float64), 0).reshape(2, 5, 12).transpose(0, 2, 1)
        assert_close(plan(x), np.maximum(NUMPY[op](seq, axis=axes, keepdims=True), 0), 1e-5)


def test_normalisation_with_divide_no_nan(isa, threads):
    """tf2onnx's min-max normalisation: min and max over each image as (N,) reshaped to (N, 1, 1), x - min divided by
    the range, where(range == 0, 0, quotient): the second image constant (range 0: zeros, not NaN)."""
    rng = np.random.default_rng(6)

    def fn(x):
        seq = F.transpose(F.flatten(F.relu(x), 2), (0, 2, 1))  # (N, L, C)
        low = F.reshape(F.reduce_min(seq, (1, 2), False), (-1, 1, 1))
        high = F.reshape(F.reduce_max(seq, (1, 2), False), (-1, 1, 1))
        span = F.sub(high, low)
        quotient = F.div(F.sub(seq, low), span)
        return F.where(F.equal(span, np.zeros(1, np.float32)), np.zeros(1, np.float32), quotient)

    x = rand(rng, 2, 4, 3, 5)
    x[1] = 0.75
    plan = convcore.compile(fn, x.shape)
    assert plan.eager_nodes == [], plan.summary()
    seq = np.maximum(x, 0).reshape(2, 4, 15).transpose(0, 2, 1).astype(np.float64)
    low, high = seq.min((1, 2), keepdims=True), seq.max((1, 2), keepdims=True)
    with np.errstate(invalid="ignore"):
        want = np.where(high - low == 0, 0.0, (seq - low) / (high - low))
    got = plan(x)
    assert np.isfinite(got).all() and np.all(got[1] == 0)
    assert_close(got, want, 1e-5)


def test_where_broadcasts_in_plan(isa):
    """where(mask map, map, constant map) and where(per-image mask, constant, map) on NCHW maps."""
    rng = np.random.default_rng(7)
    table = rng.standard_normal((1, 3, 1, 4)).astype(np.float32)

    def fn(x):
        a = F.relu(x)
        mask = F.greater(a, np.float32(0.5))
        first = F.where(mask, a, table)
        flag = F.greater(F.reduce_max(a, (1, 2, 3), True), np.float32(1.0))
        return F.where(flag, np.float32(-1.0), first)

    x = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    x[0] *= 0.1
    plan = convcore.compile(fn, x.shape)
    assert plan.eager_nodes == [], plan.summary()
    a = np.maximum(x, 0)
    first = np.where(a > 0.5, a, np.broadcast_to(table, a.shape))
    want = np.where(a.max((1, 2, 3), keepdims=True) > 1.0, -1.0, first)
    assert_close(plan(x), want, 1e-6)
