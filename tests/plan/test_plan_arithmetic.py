"""Per-channel arithmetic and spelled-out activations before a Plan is built (graph/passes.py `fold_affine`,
plan/spelled.py `fuse_gates`): what exporters write as chains of scalar and per-channel add / sub / mul / div, batch
norms and ``x * relu6(x + 3) / 6`` ends up in the convolutions' weights and epilogues. Each rewrite must keep the
graph's results: the Plan is compared with the eager graph (independent of the rewrites) and with the Plan compiled
without them, on random chains around padded, unpadded, grouped and depthwise convolutions."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import assert_close

import convcore
import convcore.functional as F


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@st.composite
def chains(draw):
    """conv -> [chain] -> conv -> [chain] -> output: each chain 0-4 steps of scalar / per-channel add, sub (either
    side), mul, div by a constant, or a batch norm; the second conv padded or not, grouped, depthwise."""
    steps = st.tuples(st.sampled_from(["add", "sub", "rsub", "mul", "div", "bn"]), st.sampled_from(["scalar",
                                                                                                   "channel"]))
    c, k = draw(st.sampled_from([(4, 6), (6, 6), (8, 4)]))
    groups = draw(st.sampled_from([1, 2, c]))
    return dict(c=c, k=k if groups != c else c, groups=groups, padding=draw(st.sampled_from([0, 1])),
                first=draw(st.lists(steps, max_size=4)), second=draw(st.lists(steps, max_size=3)),
                act=draw(st.sampled_from([None, "relu", "hardswish"])), shared=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


def _apply(h, steps, rng, channels):
    for op, kind in steps:
        shape = (1,) if kind == "scalar" else (1, channels, 1, 1)
        v = (rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)).astype(np.float32)
        if op == "add":
            h = F.add(h, v)
        elif op == "sub":
            h = F.sub(h, v)
        elif op == "rsub":
            h = F.sub(v, h)
        elif op == "mul":
            h = F.mul(v, h)
        elif op == "div":
            h = F.div(h, v)
        else:
            mean, var = rand(rng, channels), rng.uniform(0.5, 2, channels).astype(np.float32)
            h = F.batch_norm(h, mean, var, rand(rng, channels), rand(rng, channels))
    return h


@given(chains())
def test_chains_fold_and_keep_results(c):
    rng = np.random.default_rng(c["seed"])
    w1, b1 = rand(rng, c["c"], 3, 3, 3), rand(rng, c["c"])
    w2 = rand(rng, c["k"], c["c"] // c["groups"], 3, 3) * 0.3

    def fn(x):
        h = _apply(F.conv2d(x, w1, b1, padding=1), c["first"], np.random.default_rng(c["seed"]), c["c"])
        if c["act"]:
            h = getattr(F, c["act"])(h)
        h2 = _apply(h, c["second"], np.random.default_rng(c["seed"] + 1), c["c"])
        y = F.conv2d(h2, w2, padding=c["padding"], groups=c["groups"])
        return (y, h2) if c["shared"] else y  # a chain that is also an output stays computed

    x = rand(rng, 2, 3, 7, 6)
    plan = convcore.compile(fn, x.shape)
    plain = convcore.compile(fn, x.shape, fuse=set(convcore.plan.FUSIONS) - {"affine"})
    want = fn(x)
    for got, ref, other in zip(*(v if isinstance(v, tuple) else (v,) for v in (plan(x), want, plain(x)))):
        scale = max(np.abs(ref).max(), 1.0)
        assert_close(got, ref, 1e-5, scale=scale * 10)  # folding reorders rounding: a few ulps of the terms
        assert_close(got, other, 1e-5, scale=scale * 10)
    kernels = [op[1] for op in plan.ops()]
    if not c["shared"]:
        # the first chain folds into the first conv (it has no other reader); the second into the second conv when
        # it is unpadded, or stays one scale-shift op
        arithmetic = [k for k in kernels if any(k.endswith(s) or f"_{s}+" in k for s in ("add", "sub", "mul", "div"))]
        assert arithmetic == [], kernels
        assert sum("scale_shift" in k for k in kernels) <= (1 if c["second"] and c["padding"] else 0), kernels


def test_paddle_hard_swish_and_affine_blocks_become_epilogues():
    """PP-LCNetV3's block as paddle2onnx writes it: conv, a learnable affine (mul, add), hard-swish spelled
    ``x * relu6(x + 3) / 6``, another learnable affine, a 1x1 conv: two convolutions and nothing between them."""
    rng = np.random.default_rng(3)
    w1, w2 = rand(rng, 16, 3, 3, 3), rand(rng, 8, 16, 1, 1)
    s1, b1, s2, b2 = (np.array([v], np.float32) for v in (1.9, 0.8, 0.6, -0.5))

    def fn(x):
        z = F.add(F.mul(s1, F.conv2d(x, w1, padding=1)), b1)
        hs = F.div(F.mul(z, F.relu6(F.add(z, np.array([3.0], np.float32)))), np.array([6.0], np.float32))
        return F.conv2d(F.add(F.mul(s2, hs), b2), w2)

    x = rand(rng, 2, 3, 9, 9)
    plan = convcore.compile(fn, x.shape)
    ops = plan.ops()
    assert len(ops) == 4 and ops[1][2].endswith("+hardswish"), ops  # input, conv + hard-swish, conv, output
    z = 1.9 * F.conv2d(x, w1, padding=1) + 0.8
    assert_close(plan(x), F.conv2d(0.6 * (z * np.clip(z + 3, 0, 6) / 6) - 0.5, w2), 1e-5)


@pytest.mark.parametrize("spelling", ["sigmoid", "swish"])
def test_spelled_hard_sigmoid(spelling):
    """relu6(x + 3) / 6 is hard-sigmoid; x times it is hard-swish (fuse_gates), each a conv epilogue."""
    rng = np.random.default_rng(4)
    w = rand(rng, 5, 3, 3, 3)

    def fn(x):
        h = F.conv2d(x, w)
        gate = F.div(F.relu6(F.add(np.array([3.0], np.float32), h)), np.array([6.0], np.float32))
        return gate if spelling == "sigmoid" else F.mul(h, gate)

    x = rand(rng, 1, 3, 6, 6)
    plan = convcore.compile(fn, x.shape)
    ops = plan.ops()
    assert len(ops) == 3 and ops[1][2].endswith(f"+hard{spelling}"), ops
    assert_close(plan(x), fn(x), 1e-6)


def test_a_gate_read_twice_is_not_fused():
    """z + 3 read by another node too: the spelling stays as written (results still equal)."""
    rng = np.random.default_rng(5)
    w = rand(rng, 5, 3, 3, 3)

    def fn(x):
        h = F.conv2d(x, w)
        t = F.add(h, np.array([3.0], np.float32))
        return F.div(F.mul(h, F.relu6(t)), np.array([6.0], np.float32)), t

    x = rand(rng, 1, 3, 6, 6)
    plan = convcore.compile(fn, x.shape)
    assert not any("hardswish" in op[2] for op in plan.ops())
    for got, want in zip(plan(x), fn(x)):
        assert_close(got, want, 1e-6)


@pytest.mark.parametrize("op", ["prelu", "mul", "maximum", "div", "greater"])
@pytest.mark.parametrize("channels", [2, 3, 10, 15, 16, 17])
def test_per_channel_constant_on_few_channels(isa, threads, op, channels):
    """A binary op between a map and a per-channel constant (MTCNN's PReLU slopes), around the vector widths: the
    kernels run maps of fewer channels than lanes as whole rows with the constant's pattern repeating; results as
    the eager op's, with an activation fused after."""
    rng = np.random.default_rng(channels)
    w, v = rand(rng, channels, 3, 3, 3), (rand(rng, channels, 1, 1) + 2.5).astype(np.float32)

    def fn(x):
        return F.relu6(getattr(F, op)(F.conv2d(x, w, padding=1), v))

    x = rand(rng, 2, 3, 7, 5)
    plan = convcore.compile(fn, x.shape, fuse=["activation"])
    assert_close(plan(x), fn(x), 1e-6)
    assert plan.eager_nodes == []
