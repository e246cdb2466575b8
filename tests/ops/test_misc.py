"""linear, add, mul, concat and flatten against the float64 oracle (and torch) on every ISA x threads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import misc as ref

from .helpers import F, abs_scale, check, check_torch, rand, torch

FEATURES = st.sampled_from([1, 2, 3, 7, 8, 16, 17, 33, 64, 100])


@given(st.sampled_from([(), (1,), (3,), (2, 3), (1, 1, 2)]), FEATURES, FEATURES, st.booleans(),
       st.integers(0, 2**32 - 1))
def test_linear(isa, threads, lead, n_in, n_out, with_bias, seed):
    rng = np.random.default_rng(seed)
    x, weight = rand(rng, *lead, n_in), rand(rng, n_out, n_in)
    bias = rand(rng, n_out) if with_bias else None
    got = F.linear(x, weight, bias)
    assert got.shape == lead + (n_out,)
    scale = abs_scale(ref.linear, x, weight, bias)  # a lone short dot product may cancel to near zero
    check(got, ref.linear(x, weight, bias), scale=scale)
    check_torch(got, "linear", x, weight, bias, scale=scale)


@pytest.mark.parametrize("batch, n_in, n_out", [(1, 1280, 1000), (3, 512, 10), (1, 4096, 17)])
def test_linear_classifier_shapes(isa, threads, batch, n_in, n_out):
    rng = np.random.default_rng(n_in)
    x, weight, bias = rand(rng, batch, n_in), rand(rng, n_out, n_in), rand(rng, n_out)
    check(F.linear(x, weight, bias), ref.linear(x, weight, bias))


def test_linear_non_contiguous_and_read_only(isa):
    rng = np.random.default_rng(1)
    x = rand(rng, 9, 4)[::2].T  # (4, 5) view
    weight = rand(rng, 5, 6).T  # (6, 5) view: the transposed layout torch keeps for some Linear weights
    check(F.linear(x, weight), ref.linear(x, weight))
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    x.flags.writeable = weight.flags.writeable = False
    check(F.linear(x, weight), ref.linear(x, weight))


# (a, b) pairs numpy broadcasting accepts: same shape, squeeze-and-excitation scales, per-channel, scalar-like,
# both sides broadcasting, and lower rank on either side.
BROADCASTS = [
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((2, 17, 5, 7), (2, 17, 1, 1)),
    ((2, 17, 1, 1), (2, 17, 5, 7)),
    ((1, 16, 3, 3), (16, 1, 1)),
    ((3, 4, 5), (1,)),
    ((2, 1, 4, 1), (1, 3, 1, 5)),
    ((7,), (3, 7)),
    ((1, 1, 1, 1), (1, 1, 1, 1)),
    ((33,), (33,)),
]


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shape_a, shape_b", BROADCASTS)
def test_add_mul_broadcast(isa, threads, op, shape_a, shape_b):
    rng = np.random.default_rng(len(shape_a) * 10 + len(shape_b))
    a, b = rand(rng, *shape_a), rand(rng, *shape_b)
    got = getattr(F, op)(a, b)
    assert got.shape == np.broadcast_shapes(shape_a, shape_b)
    check(got, getattr(ref, op)(a, b))
    if torch is not None:
        check_torch(got, getattr(torch, op), a, b)


@pytest.mark.parametrize("op", ["add", "mul"])
def test_add_mul_non_contiguous_and_read_only(isa, op):
    rng = np.random.default_rng(2)
    a = rand(rng, 2, 5, 7, 6).transpose(0, 1, 3, 2)
    b = rand(rng, 2, 10, 1, 1)[:, ::2]
    a.flags.writeable = False
    check(getattr(F, op)(a, b), getattr(ref, op)(a, b))
    check(getattr(F, op)(a, a), getattr(ref, op)(a, a))


@given(st.data(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_concat(isa, threads, data, count, seed):
    rng = np.random.default_rng(seed)
    shape = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 17))
        xs.append(rand(rng, *s))
    got = F.concat(xs, axis=axis)
    check(got, ref.concat(xs, axis), 0)


def test_concat_default_axis_views_and_tuple(isa):
    rng = np.random.default_rng(3)
    a = rand(rng, 2, 6, 3, 4)[:, ::2]  # view (2, 3, 3, 4)
    b = rand(rng, 2, 4, 3, 4)
    b.flags.writeable = False
    check(F.concat([a, b]), ref.concat([a, b], 1), 0)
    check(F.concat((b,)), ref.concat([b], 1), 0)


FLATTEN_CASES = [
    (shape, start, end)
    for shape in [(2, 3, 4, 5), (1, 1280, 1, 1), (3, 7)]
    for start, end in [(1, -1), (0, -1), (0, 0), (1, 2), (-2, -1), (-1, -1)]
    if start % len(shape) <= end % len(shape) < len(shape) and end < len(shape)
]


@pytest.mark.parametrize("shape, start_dim, end_dim", FLATTEN_CASES)
def test_flatten(shape, start_dim, end_dim):
    x = rand(np.random.default_rng(4), *shape)
    got = F.flatten(x, start_dim, end_dim)
    check(got, ref.flatten(x, start_dim, end_dim), 0)
    if torch is not None:
        assert got.shape == tuple(torch.flatten(torch.from_numpy(x), start_dim, end_dim).shape)


def test_flatten_default_and_view_input():
    x = rand(np.random.default_rng(5), 2, 3, 4, 5).transpose(0, 2, 1, 3)
    got = F.flatten(x)
    assert got.shape == (2, 60)
    check(got, ref.flatten(x), 0)
