"""The ONNX elementwise ops (extreme values of the activations, clip, prelu, broadcasting binary ops, where) against
float64 references (and torch where it has the op) on every ISA x threads; every activation's table-driven tests are
in test_activation.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import general as ref

from .helpers import TF, F, check, check_torch, rand, torch

SHAPES = st.sampled_from([(7,), (2, 3), (2, 3, 4, 5), (1, 17, 9, 9), (0, 3), (), (3, 70000)])


def test_extreme_values_and_nan():
    x = np.array([-1e30, -100, -1e-30, 0, 1e-30, 100, 1e30, np.nan], np.float32)
    for name in ("elu", "selu", "celu", "softplus", "softsign", "gelu", "mish", "erf", "exp", "neg", "abs"):
        got = getattr(F, name)(x)
        assert np.isnan(got[-1]), name
        with np.errstate(all="ignore"):
            finite = ref.UNARY[name](x[:-1])
            np.testing.assert_allclose(got[:-1], finite.astype(np.float32), rtol=2e-6, atol=1e-37, err_msg=name)


@given(SHAPES, st.one_of(st.none(), st.floats(-2, 2)), st.one_of(st.none(), st.floats(-2, 2)),
       st.integers(0, 2**32 - 1))
def test_clip(isa, threads, shape, low, high, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape, scale=3)
    got = F.clip(x, low, high)
    check(got, ref.clip(x, np.float32(low) if low is not None else None,
                        np.float32(high) if high is not None else None))


def test_clip_min_above_max_gives_max_and_keeps_nan():
    x = np.array([-5, 0, 5, np.nan], np.float32)
    np.testing.assert_array_equal(F.clip(x, 2, 1), [1, 1, 1, np.nan])


BROADCASTS = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 17, 5, 7), (2, 17, 1, 1)), ((3, 4, 5), (5,)), ((5,), (3, 4, 5)),
              ((2, 1, 4, 1), (1, 3, 1, 5)), ((3,), ()), ((), ()), ((0, 4), (4,)), ((4, 70000), (1, 70000))]


@pytest.mark.parametrize("name", sorted(ref.BINARY))
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_binary(isa, threads, name, shapes):
    rng = np.random.default_rng(len(shapes[0]) * 7 + len(shapes[1]))
    a, b = rand(rng, *shapes[0], scale=2), rand(rng, *shapes[1], scale=2)
    if name == "pow":
        a = np.abs(a) + np.float32(0.1)
    if name == "div":
        b = np.where(np.abs(b) < 0.1, np.float32(0.7), b).astype(np.float32)
    got = getattr(F, name)(a, b)
    assert got.shape == np.broadcast_shapes(a.shape, b.shape)
    check(got, ref.BINARY[name](np.float64(a) if a.ndim == 0 else a.astype(np.float64), b.astype(np.float64)))


def test_binary_nan_and_division_by_zero():
    a = np.array([1, -1, 0, np.nan, 2], np.float32)
    b = np.array([0, 0, 0, 1, np.nan], np.float32)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(F.div(a, b), a / b)
    assert np.isnan(F.maximum(a, b)[3:]).all() and np.isnan(F.minimum(a, b)[3:]).all()


@pytest.mark.parametrize("x_shape, slope_shape", [((2, 3, 4, 5), (3, 1, 1)), ((3, 4, 5), (5,)), ((2, 3), (1,)),
                                                  ((2, 3, 4, 5), (2, 3, 4, 5))])
def test_prelu(isa, threads, x_shape, slope_shape):
    rng = np.random.default_rng(5)
    x, slope = rand(rng, *x_shape), rand(rng, *slope_shape)
    got = F.prelu(x, slope)
    check(got, ref.prelu(x, slope))
    if torch is not None and slope_shape == (3, 1, 1):
        check_torch(got, lambda t, s: TF.prelu(t, s.reshape(-1)), x, slope)


def test_prelu_refuses_a_slope_that_widens_x():
    with pytest.raises(ValueError, match="slope"):
        F.prelu(np.ones((2, 3), np.float32), np.ones((4, 2, 3), np.float32))


@pytest.mark.parametrize("name, fn", [("less", np.less), ("less_equal", np.less_equal), ("greater", np.greater),
                                      ("greater_equal", np.greater_equal), ("equal", np.equal)])
@pytest.mark.parametrize("shapes", BROADCASTS[:7], ids=str)
def test_comparisons_give_float_masks(isa, threads, name, fn, shapes):
    rng = np.random.default_rng(8)
    a, b = rng.integers(-2, 3, shapes[0]).astype(np.float32), rng.integers(-2, 3, shapes[1]).astype(np.float32)
    got = getattr(F, name)(a, b)
    check(got, fn(a, b).astype(np.float64), bound=0)
    assert F.less(np.float32([np.nan]), np.float32([1]))[0] == 0
    assert F.equal(np.float32([np.nan]), np.float32([np.nan]))[0] == 0


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()), ((5,), (2, 5), (5,)),
                                    ((0, 2), (2,), (1, 2))], ids=str)
def test_where(isa, threads, shapes):
    rng = np.random.default_rng(9)
    c = (rng.random(shapes[0]) > 0.5).astype(np.float32)
    a, b = rand(rng, *shapes[1]), rand(rng, *shapes[2])
    check(F.where(c, a, b), np.where(c != 0, a, b).astype(np.float64), bound=0)
    inf = np.float32([np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(F.where(np.float32([1, 0, 1]), inf, np.zeros(3, np.float32)), [np.inf, 0, np.nan])
