"""The general tensor ops (reshape, transpose, slice, pad, gather, expand, tile, identity, matmul) and the
reductions against numpy in float64 on every ISA x threads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import general as ref

from .helpers import F, abs_scale, check, rand


def test_reshape_and_identity_are_views():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y = F.reshape(x, (-1, 12))
    assert y.shape == (2, 12) and np.shares_memory(x, y)
    assert F.identity(x) is x
    assert F.reshape(np.zeros((0, 3), np.float32), (3, 0)).shape == (3, 0)
    with pytest.raises(ValueError, match="can take"):
        F.reshape(x, (5, -1))
    with pytest.raises(ValueError, match="at most one -1"):
        F.reshape(x, (-1, -1))


@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_transpose(isa, threads, rank, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, *rng.integers(1, 6, rank))
    perm = tuple(rng.permutation(rank).tolist())
    check(F.transpose(x, perm), x.astype(np.float64).transpose(perm), bound=0)
    check(F.transpose(x), x.astype(np.float64).T, bound=0)


SLICES = [([1], [3], [0], None), ([-1, 0], [0, 100], [1, 2], [-1, 2]), ([2**40], [-2**40], [2], [-1]),
          ([0, 0, 0], [1, 1, 1], None, None), ([-3], [2**62], [-1], [2]), ([4], [1], [0], [1])]


@pytest.mark.parametrize("starts, ends, axes, steps", SLICES, ids=str)
def test_slice_follows_numpy(isa, threads, starts, ends, axes, steps):
    x = rand(np.random.default_rng(1), 5, 6, 7)
    index = [slice(None)] * 3
    for i, (s, e) in enumerate(zip(starts, ends)):
        axis = i if axes is None else axes[i]
        index[axis] = slice(s, e, 1 if steps is None else steps[i])
    check(F.slice(x, starts, ends, axes, steps), x.astype(np.float64)[tuple(index)], bound=0)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(0, 0, 1, 2, 3, 0), (1, 1, 0, 0, 9, 7), (0, 0, -1, 2, 2, -3), (2, 0, 0, 0, 0, 0)],
                         ids=str)
def test_pad(isa, threads, mode, pads):
    x = rand(np.random.default_rng(2), 2, 4, 5)
    check(F.pad(x, pads, mode, value=1.5), ref.pad(x, pads, mode, 1.5), bound=0)


def test_pad_refusals():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="2 values"):
        F.pad(x, (1, 1))
    with pytest.raises(ValueError, match="crops of at most"):
        F.pad(x, (0, 0, -2, -2))
    with pytest.raises(ValueError, match="mode"):
        F.pad(x, (0, 0, 1, 1), mode="mirror")
    with pytest.raises(ValueError, match="non-empty axis"):
        F.pad(x, (0, 0, -3, 1), mode="reflect")


@pytest.mark.parametrize("indices, axis", [(2, 0), ([0, -1, 2], 1), ([[0, 1], [3, -4]], 2), (np.array([[1]]), -1),
                                           ([], 1)], ids=str)
def test_gather(isa, threads, indices, axis):
    x = rand(np.random.default_rng(3), 3, 4, 5)
    check(F.gather(x, indices, axis), np.take(x.astype(np.float64), np.asarray(indices, np.int64), axis), bound=0)


def test_gather_refusals():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\[-4, 3\]"):
        F.gather(x, [4], axis=1)
    with pytest.raises(TypeError, match="integers"):
        F.gather(x, np.array([0.5]), axis=1)


@pytest.mark.parametrize("x_shape, shape", [((3, 1), (2, 3, 4)), ((1,), (5,)), ((2, 1, 3), (1, 4, 1)),
                                            ((3, 1), (1, 0))], ids=str)
def test_expand(isa, threads, x_shape, shape):
    x = rand(np.random.default_rng(4), *x_shape)
    out = np.broadcast_shapes(x_shape, shape)
    check(F.expand(x, shape), np.broadcast_to(x.astype(np.float64), out), bound=0)


@pytest.mark.parametrize("repeats", [(1, 1, 1), (2, 1, 3), (1, 0, 2), (3, 2, 1)], ids=str)
def test_tile(isa, threads, repeats):
    x = rand(np.random.default_rng(5), 2, 3, 4)
    check(F.tile(x, repeats), np.tile(x.astype(np.float64), repeats), bound=0)


MATMULS = [((3,), (3,)), ((4,), (2, 4, 1)), ((3, 4), (4, 3)), ((2, 3, 4), (2, 4, 3)), ((1, 2, 3, 4), (1, 2, 4, 3)),
           ((1, 2, 4, 3), (3,)), ((3, 1, 3, 4), (1, 2, 4, 2)), ((5, 37), (37, 33)), ((2, 65, 70), (70, 9)),
           ((2, 0, 3), (3, 4)), ((3, 0), (0, 5))]


@pytest.mark.parametrize("a_shape, b_shape", MATMULS, ids=str)
def test_matmul(isa, threads, a_shape, b_shape):
    rng = np.random.default_rng(6)
    a, b = rand(rng, *a_shape), rand(rng, *b_shape)
    got = F.matmul(a, b)
    expected = ref.matmul(a, b)
    assert got.shape == expected.shape
    check(got, expected, scale=abs_scale(ref.matmul, a, b) if expected.size else None)


def test_matmul_refusals():
    with pytest.raises(ValueError, match="last dim"):
        F.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="batch"):
        F.matmul(np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32))


KINDS = ["sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum", "log_sum_exp"]


@pytest.mark.parametrize("kind", KINDS)
@given(st.sampled_from([(2, 3, 4, 5), (7,), (1, 33, 9), (3, 1, 2, 1, 4)]), st.booleans(), st.integers(0, 2**32 - 1))
def test_reductions(isa, threads, kind, shape, keepdims, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape)
    if kind in ("log_sum", "prod"):
        x = (np.abs(x) + np.float32(0.5)).astype(np.float32)
    k = int(rng.integers(0, len(shape) + 1))
    axes = None if k == len(shape) and rng.integers(2) else tuple(int(a) - len(shape) * int(rng.integers(2))
                                                                  for a in rng.choice(len(shape), k, replace=False))
    got = getattr(F, f"reduce_{kind}")(x, axes, keepdims)
    check(got, ref.reduce(kind, x, axes, keepdims))


@pytest.mark.parametrize("kind, value", [("sum", 0.0), ("max", -np.inf), ("min", np.inf), ("l2", 0.0),
                                         ("log_sum_exp", -np.inf), ("prod", 1.0)])
def test_empty_reductions_give_the_identity(kind, value):
    got = getattr(F, f"reduce_{kind}")(np.zeros((2, 0, 4), np.float32), [1], False)
    assert got.shape == (2, 4)
    np.testing.assert_array_equal(got, np.full((2, 4), value, np.float32))


def test_reductions_propagate_nan_and_refuse_bad_axes():
    x = np.array([[1, np.nan], [3, 4]], np.float32)
    assert np.isnan(F.reduce_max(x, [1], False)[0]) and F.reduce_max(x, [1], False)[1] == 4
    with pytest.raises(ValueError, match="distinct"):
        F.reduce_sum(x, [1, -1])
    with pytest.raises(ValueError, match=r"\[-2, 1\]"):
        F.reduce_sum(x, [2])
