"""Compiled plans op by op: each fused Plan op against the float64 references, on every ISA at 1 and 2 threads.

A small function of functional ops is traced, compiled and run; the result is compared with the same function
computed by the numpy float64 oracles of tests/reference (independent of convcore's kernels). Shapes are random
(hypothesis) and include the edges: 1x1 maps, kernels larger than the input with padding, strides larger than the
kernel, odd channel counts (masked vector tails), every groups value, batch > 1.
"""

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import activation, assert_close, conv, misc, norm, pool

import convcore
import convcore.functional as F

# The float64 oracles under one name: R.conv2d, R.max_pool2d, R.silu, ...
R = SimpleNamespace(**{k: getattr(m, k) for m in (activation, conv, misc, norm, pool) for k in dir(m)
                       if not k.startswith("_")})

ACTS = ["none", "relu", "relu6", "leaky_relu", "sigmoid", "silu", "tanh", "hardswish", "hardsigmoid"]


def _act(name, x, ref):
    if name == "none":
        return x
    mod = R if ref else F
    return getattr(mod, name)(x)


def _run(fn, shape, batch=None, winograd=False, seed=0):
    """(plan output, traced graph's eager output) on a random input; the plan is checked to match eager too."""
    x = np.random.default_rng(seed).standard_normal((batch or shape[0],) + tuple(shape[1:])).astype(np.float32)
    plan = convcore.compile(fn, shape, winograd=winograd)
    return x, plan(x), plan


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 9))
    kg = draw(st.integers(1, 20))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pads[0] - pads[1]), 12))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pads[2] - pads[3]), 12))
    n = draw(st.integers(1, 2))
    act = draw(st.sampled_from(ACTS))
    return n, groups * cg, h, w, groups * kg, kh, kw, (sh, sw), (dh, dw), pads, groups, act


@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv_matches_reference(isa, threads, case, seed):
    n, c, h, w, k, kh, kw, stride, dilation, pads, groups, act = case
    rng = np.random.default_rng(seed)
    weight, bias = rand(rng, k, c // groups, kh, kw), rand(rng, k)

    def fn(x):
        return _act(act, F.conv2d(x, weight, bias, stride, pads, dilation, groups), False)

    x, y, _ = _run(fn, (n, c, h, w), seed=seed)
    ref = _act(act, R.conv2d(x, weight, bias, stride, pads, dilation, groups), True)
    terms = R.conv2d(np.abs(x), np.abs(weight), np.abs(bias), stride, pads, dilation, groups)  # size of the sums
    assert_close(y, ref, 1e-5, scale=max(np.abs(ref).max(), np.abs(terms).max()))


@pytest.mark.parametrize("k, stride, padding", [(3, 1, 1), (3, 2, 1), (5, 1, 2), (5, 2, 2), (7, 1, 3), (7, 2, 3),
                                                (3, 1, 0), (4, 3, 2), (3, 1, 5)])
@pytest.mark.parametrize("channels", [1, 7, 16, 37])
def test_depthwise_matches_reference(isa, threads, k, stride, padding, channels):
    rng = np.random.default_rng(channels * 31 + k)
    weight, bias = rand(rng, channels, 1, k, k), rand(rng, channels)
    for h, w in [(1, 1), (5, 9), (14, 13)]:
        if h + 2 * padding < k:
            continue  # the kernel does not fit
        x, y, plan = _run(lambda x: F.relu6(F.conv2d(x, weight, bias, stride, padding, groups=channels)),
                          (2, channels, h, w))
        ref = R.relu6(R.conv2d(x, weight, bias, stride, padding, groups=channels))
        assert_close(y, ref, 1e-5)
    assert channels == 1 or any("dwconv" in op[1] for op in plan.ops())  # groups == 1 is a dense conv


@pytest.mark.parametrize("c, k, stride", [(3, 3, 2), (3, 7, 2), (5, 3, 1), (16, 5, 1)])
def test_conv_kernel_rows_as_one_run(isa, threads, c, k, stride):
    """Tiles whose windows lie inside the input read each kernel row's taps x channels as one run (a stem's 3
    channels: 9 or 21 values per pointer); tiles at the borders read tap by tap: both against the float64 oracle."""
    rng = np.random.default_rng(c * 10 + k)
    weight, bias = rand(rng, 24, c, k, k), rand(rng, 24)
    x, y, _ = _run(lambda x: F.relu(F.conv2d(x, weight, bias, stride, k // 2)), (2, c, 23, 29))
    assert_close(y, np.maximum(R.conv2d(x, weight, bias, stride, k // 2), 0), 1e-5)


@st.composite
def depthwise_cases(draw):
    c = draw(st.sampled_from([3, 8, 13, 24]))
    kh, kw = draw(st.sampled_from([(3, 3), (5, 5), (7, 7), (3, 5), (5, 3), (1, 3)]))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    dh, dw = draw(st.sampled_from([(1, 1), (1, 1), (2, 1), (1, 2)]))
    pads = tuple(draw(st.integers(0, 4)) for _ in range(4))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pads[0] - pads[1]), 40))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pads[2] - pads[3]), 72))
    return draw(st.integers(1, 3)), c, h, w, (kh, kw), (sh, sw), (dh, dw), pads, draw(st.sampled_from(ACTS))


@given(case=depthwise_cases(), seed=st.integers(0, 2**16))
def test_depthwise_random_geometry(isa, threads, case, seed):
    """Depthwise convolutions of every window the kernels specialise (and some they do not), asymmetric padding,
    dilation along one axis, maps narrow enough for the zero-padded scratch path and wider (its many row chunks and
    the interior-block path), a residual and an activation: against the float64 oracle."""
    n, c, h, w, (kh, kw), stride, dilation, pads, act = case
    rng = np.random.default_rng(seed)
    weight, bias = rand(rng, c, 1, kh, kw), rand(rng, c)

    def fn(x):
        y = F.conv2d(x, weight, bias, stride, pads, dilation, c)
        return _act(act, F.add(y, F.mul(y, np.float32(0.5))), False)

    x, y, plan = _run(fn, (n, c, h, w), seed=seed)
    ref = _act(act, 1.5 * R.conv2d(x, weight, bias, stride, pads, dilation, c), True)
    assert_close(y, ref, 1e-5, scale=max(1.0, np.abs(ref).max()))
    assert any("dwconv" in op[1] for op in plan.ops())


@pytest.mark.parametrize("k, stride, groups", [(1, 1, 1), (3, 2, 1), (3, 1, 2)])
def test_large_maps_run_in_pixel_chunks(isa, threads, k, stride, groups):
    """Inputs past L2 per thread run in chunks of pixels, each through every block of output channels
    (plan/op_util.h pixel_chunk): chunk edges inside rows and images, a short last chunk, residual and activation;
    against the float64 oracle at batch 2 (three of the layers' maps)."""
    rng = np.random.default_rng(k * 10 + stride + groups)
    weight, bias = rand(rng, 72, 128 // groups, k, k, scale=0.1), rand(rng, 72)

    def fn(x):
        y = F.conv2d(x, weight, bias, stride, k // 2, groups=groups)
        return F.relu(F.add(y, F.mul(y, np.float32(0.5))))

    x, y, _ = _run(fn, (2, 128, 37, 41))
    want = R.conv2d(x, weight, bias, stride, k // 2, groups=groups)
    assert_close(y, np.maximum(want * 1.5, 0), 1e-5)


@pytest.mark.parametrize("k, stride, padding, dilation", [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 1), (5, 2, 2, 2),
                                                          (1, 1, 0, 1), (4, 3, 3, 1)])
@pytest.mark.parametrize("width, groups", [(2, 5), (4, 3), (8, 2), (8, 7)])
def test_narrow_groups_match_reference(isa, threads, k, stride, padding, dilation, width, groups):
    """Grouped convolutions of 2-8 channels in and out per group (RegNet's width 8) run in the depthwise kernel,
    each lane reading its group's inputs through a permute, where whole groups fill part of a vector: against the
    float64 oracle with a fused residual and activation, maps from 1 x 1 to wider than the interior blocks."""
    c = width * groups
    rng = np.random.default_rng(width * 10 + groups + k)
    weight, bias = rand(rng, c, width, k, k), rand(rng, c)
    for h, w in [(1, 1), (7, 7), (14, 13)]:
        if h + 2 * padding < dilation * (k - 1) + 1 or w + 2 * padding < dilation * (k - 1) + 1:
            continue  # the kernel does not fit

        def fn(x):
            y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
            return F.relu(F.add(y, F.mul(y, np.float32(0.5))))  # the add a residual, the relu its epilogue

        x, y, plan = _run(fn, (2, c, h, w))
        ref = R.conv2d(x, weight, bias, stride, padding, dilation, groups)
        assert_close(y, R.relu(ref * 1.5), 1e-5)
    lanes = {"avx512": 16, "avx2": 8, "scalar": 1}[isa]
    narrow = lanes == 1 or (2 * width <= lanes and lanes % width == 0)
    assert any("dwconv" in op[1] for op in plan.ops()) == narrow, plan.ops()


@pytest.mark.parametrize("c, k, h, w, padding", [(3, 5, 7, 9, 1), (32, 32, 14, 14, 1), (17, 40, 13, 6, 0),
                                                 (64, 64, 4, 4, (2, 1, 0, 3)), (8, 24, 1, 1, 1), (16, 16, 2, 31, 1),
                                                 (5, 7, 8, 8, 0), (24, 8, 9, 5, (2, 1, 0, 3))])
def test_winograd_within_bound(isa, threads, c, k, h, w, padding):
    """F(4x4, 3x3) against float64: within 1e-4 of max|y| (the single-layer bound documented in docs/plan.md)."""
    rng = np.random.default_rng(c + k)
    weight, bias = rand(rng, k, c, 3, 3), rand(rng, k)
    x, y, plan = _run(lambda x: F.conv2d(x, weight, bias, padding=padding), (2, c, h, w), winograd=True)
    assert any("winograd" in op[1] for op in plan.ops())
    assert_close(y, R.conv2d(x, weight, bias, padding=padding), 1e-4)


@pytest.mark.parametrize("act", ACTS)
def test_residual_and_activation_fused_into_conv(isa, act):
    rng = np.random.default_rng(1)
    w1, w2 = rand(rng, 24, 24, 3, 3, scale=0.2), rand(rng, 24, 24, 1, 1, scale=0.2)

    def fn(x):
        return _act(act, F.add(F.conv2d(x, w1, padding=1), F.conv2d(x, w2)), False)

    x, y, plan = _run(fn, (3, 24, 9, 11))
    ref = _act(act, R.add(R.conv2d(x, w1, padding=1), R.conv2d(x, w2)), True)
    assert_close(y, ref, 1e-5)
    kinds = [op[1] for op in plan.ops()]
    assert not any("add" in k or "activation" in k for k in kinds), kinds  # both fused into the second conv


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 11))
    w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 11))
    return draw(st.integers(1, 2)), draw(st.integers(1, 35)), h, w, k, s, d, p, draw(st.booleans()), draw(
        st.booleans())


@given(case=pool_cases())
def test_pools_match_reference(isa, threads, case):
    n, c, h, w, k, s, d, p, ceil_mode, include = case
    x, y, _ = _run(lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode), (n, c, h, w))
    assert_close(y, R.max_pool2d(x, k, s, p, d, ceil_mode), 1e-6)
    x, y, _ = _run(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, include), (n, c, h, w))
    assert_close(y, R.avg_pool2d(x, k, s, p, ceil_mode, include), 1e-5)


@pytest.mark.parametrize("out", [1, 2, (3, 5), 7, (1, 4)])
def test_adaptive_and_global_pools(isa, threads, out):
    for fn, ref in [(F.adaptive_avg_pool2d, R.adaptive_avg_pool2d), (F.adaptive_max_pool2d, R.adaptive_max_pool2d)]:
        x, y, _ = _run(lambda x: fn(x, out), (2, 19, 7, 10))
        assert_close(y, ref(x, out), 1e-5)
    x, y, _ = _run(F.global_avg_pool2d, (2, 33, 17, 3))
    assert_close(y, R.global_avg_pool2d(x), 1e-5)
    x, y, _ = _run(F.global_max_pool2d, (2, 33, 1, 1))
    assert_close(y, R.global_max_pool2d(x), 0)
    for fn, ref in [(F.global_avg_pool2d, R.global_avg_pool2d), (F.global_max_pool2d, R.global_max_pool2d)]:
        x, y, _ = _run(fn, (1, 37, 5, 6))  # one image: the threads split its channels
        assert_close(y, ref(x), 1e-5)


def test_max_pool_propagates_nan(isa):
    x = np.random.default_rng(0).standard_normal((1, 20, 6, 6)).astype(np.float32)
    x[0, 3, 2, 2] = np.nan
    plan = convcore.compile(lambda v: F.max_pool2d(v, 2), x.shape)
    y = plan(x)
    assert np.isnan(y[0, 3, 1, 1]) and np.isnan(y).sum() == 1


@pytest.mark.parametrize("other", [(2, 17, 5, 6), (1, 17, 1, 1), (2, 17, 1, 1), (1, 1, 1, 1), (1, 17, 5, 6),
                                   (2, 1, 5, 6), (1, 1, 5, 1)])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_broadcasting_binary_ops(isa, threads, other, op):
    rng = np.random.default_rng(2)
    b = rand(rng, *other)
    const = b[:1] if other[0] == 1 else None  # batch-1 operands may be graph constants

    def fn(x):
        return getattr(F, op)(F.relu(x), const if const is not None else F.relu(x))

    x, y, _ = _run(fn, (2, 17, 5, 6))
    r = R.relu(x)
    assert_close(y, getattr(R, op)(r, const if const is not None else r), 1e-6)


def test_squeeze_excitation_block(isa, threads):
    rng = np.random.default_rng(3)
    w1, b1, w2, b2 = rand(rng, 4, 24, 1, 1), rand(rng, 4), rand(rng, 24, 4, 1, 1), rand(rng, 24)

    def fn(x):
        s = F.sigmoid(F.conv2d(F.silu(F.conv2d(F.global_avg_pool2d(x), w1, b1)), w2, b2))
        return F.mul(x, s)

    x, y, _ = _run(fn, (2, 24, 7, 9))
    s = R.sigmoid(R.conv2d(R.silu(R.conv2d(R.global_avg_pool2d(x), w1, b1)), w2, b2))
    assert_close(y, R.mul(x, s), 1e-5)


def test_concat_written_in_place(isa, threads):
    rng = np.random.default_rng(4)
    ws = [rand(rng, k, 8, 3, 3) for k in (5, 16, 3)]

    def fn(x):
        a, b, c = (F.conv2d(x, w, padding=1) for w in ws)
        first = F.concat([a, b], axis=1)      # a DenseNet-like chain: the first concat becomes a prefix slice
        return F.relu(F.concat([a, b, c], axis=1)), F.max_pool2d(first, 2)

    x, (y1, y2), plan = _run(fn, (2, 8, 6, 8))
    a, b, c = (R.conv2d(x, w, padding=1) for w in ws)
    assert_close(y1, R.relu(np.concatenate([a, b, c], 1)), 1e-5)
    assert_close(y2, R.max_pool2d(np.concatenate([a, b], 1), 2), 1e-5)
    assert not any(op[1] == "copy_channels" for op in plan.ops())


def test_concat_of_a_graph_input_and_a_shared_value(isa):
    rng = np.random.default_rng(5)
    w = rand(rng, 6, 4, 1, 1)

    def fn(x):
        y = F.conv2d(x, w)
        return F.concat([x, y, y], axis=1), F.relu(y)

    x, (c, r), plan = _run(fn, (1, 4, 3, 3))
    y = R.conv2d(x, w)
    assert_close(c, np.concatenate([x, y, y], 1), 1e-6)
    assert_close(r, R.relu(y), 1e-6)


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5)])
def test_flatten_then_linear_uses_nchw_order(isa, threads, h, w):
    rng = np.random.default_rng(6)
    wc, wl, bl = rand(rng, 7, 3, 1, 1), rand(rng, 10, 7 * h * w), rand(rng, 10)

    def fn(x):
        f = F.flatten(F.conv2d(x, wc))
        return F.linear(f, wl, bl), F.softmax(f), F.log_softmax(F.linear(f, wl, bl))

    x, (y, s, ls), _ = _run(fn, (3, 3, h, w))
    f = R.flatten(R.conv2d(x, wc))
    assert_close(y, R.linear(f, wl, bl), 1e-5)
    assert_close(s, R.softmax(f), 1e-5)
    assert_close(ls, R.log_softmax(R.linear(f, wl, bl)), 1e-5)


@pytest.mark.parametrize("channels", [1, 7, 16, 17, 33, 6625])
def test_softmax_over_channels_every_isa(isa, threads, channels):
    """The Plan's softmax kernels (vector exp on AVX2 / AVX-512, float64 on the reference) over channel counts around
    the vector widths and a recognizer's 6625 classes: logits far apart (one dominates, others underflow), and a NaN
    pixel stays NaN without touching the others."""
    rng = np.random.default_rng(channels)
    w = rand(rng, channels, 3, 1, 1) * 8

    def fn(x):
        y = F.conv2d(x, w)
        return F.softmax(y), F.log_softmax(y)

    x = rand(rng, 2, 3, 3, 4) * 4
    x[1, :, 2, 3] = np.nan
    plan = convcore.compile(fn, x.shape)
    (s, ls), y = plan(x), R.conv2d(x, w)
    bad = np.isnan(x).any(axis=1, keepdims=True)
    assert np.isnan(s[np.broadcast_to(bad, s.shape)]).all() and np.isnan(ls[np.broadcast_to(bad, ls.shape)]).all()
    ok = ~np.broadcast_to(bad, s.shape)
    assert_close(s[ok], R.softmax(np.where(bad, 0, y))[ok], 1e-5)
    assert_close(ls[ok], R.log_softmax(np.where(bad, 0, y))[ok], 1e-5, scale=np.abs(R.log_softmax(y[:1])).max())


def test_batch_norm_not_folded_and_lrn(isa, threads):
    rng = np.random.default_rng(7)
    mean, var, g, b = rand(rng, 12), np.abs(rand(rng, 12)) + 0.5, rand(rng, 12), rand(rng, 12)
    w = rand(rng, 12, 12, 3, 3)

    def fn(x):  # a pre-activation block: BN before a padded conv must not be folded into it
        h = F.conv2d(F.relu(F.batch_norm(x, mean, var, g, b)), w, padding=1)
        return F.local_response_norm(h, 5, 1e-3, 0.75, 2.0)

    x, y, _ = _run(fn, (2, 12, 5, 7))
    h = R.conv2d(R.relu(R.batch_norm(x, mean, var, g, b)), w, padding=1)
    assert_close(y, R.local_response_norm(h, 5, 1e-3, 0.75, 2.0), 1e-5)


@pytest.mark.parametrize("gate, fused", [("sigmoid", "silu"), ("hardsigmoid", "hardswish")])
def test_gated_activation_fused(gate, fused):
    rng = np.random.default_rng(8)
    w = rand(rng, 16, 3, 3, 3)

    def fn(x):
        h = F.conv2d(x, w)
        return F.mul(h, getattr(F, gate)(h))

    x, y, plan = _run(fn, (2, 3, 8, 8))
    assert_close(y, getattr(R, fused)(R.conv2d(x, w)), 1e-5)
    assert len(plan.ops()) == 3  # input reorder, conv with the fused activation, output


def test_any_batch_and_out(isa):
    w = rand(np.random.default_rng(9), 8, 3, 3, 3)
    plan = convcore.compile(lambda x: F.relu(F.conv2d(x, w, padding=1)), (1, 3, 10, 10))
    for n in (3, 1, 5, 3):
        x = np.random.default_rng(n).standard_normal((n, 3, 10, 10)).astype(np.float32)
        out = np.empty((n, 8, 10, 10), np.float32)
        assert plan.run(x, out=out) is out
        assert_close(out, R.relu(R.conv2d(x, w, padding=1)), 1e-5)


@pytest.mark.parametrize("se", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_inverted_residual_block_fused(isa, threads, se, stride, monkeypatch):
    """[expand 1x1 -> depthwise -> (squeeze-excitation) -> project 1x1 (+ residual)]: one mbconv op without SE; with
    SE the expand and depthwise fuse, and the gate scales the projection's weights per image."""
    monkeypatch.setattr(importlib.import_module("convcore.plan.fusion"), "MBCONV_MIN_BYTES", 0)  # fuse at any size
    rng = np.random.default_rng(10)
    we, be = rand(rng, 96, 16, 1, 1, scale=0.3), rand(rng, 96)
    wd, bd = rand(rng, 96, 1, 3, 3, scale=0.3), rand(rng, 96)
    w1, w2 = rand(rng, 8, 96, 1, 1, scale=0.3), rand(rng, 96, 8, 1, 1, scale=0.3)
    wp, bp = rand(rng, 16, 96, 1, 1, scale=0.3), rand(rng, 16)

    def block(x, mod):
        h = mod.silu(mod.conv2d(x, we, be))
        d = mod.silu(mod.conv2d(h, wd, bd, stride, 1, groups=96))
        if se:
            d = mod.mul(d, mod.sigmoid(mod.conv2d(mod.silu(mod.conv2d(mod.global_avg_pool2d(d), w1)), w2)))
        y = mod.conv2d(d, wp, bp)
        return mod.add(y, x) if stride == 1 else y

    x, y, plan = _run(lambda v: block(v, F), (2, 16, 33, 31))
    assert_close(y, block(x, R), 1e-5)
    kinds = " ".join(op[1] + " " + op[2] for op in plan.ops())
    assert "mbconv" in kinds
    assert ("*gate" in kinds) == se and "_mul" not in kinds


# --- every activation, declared once ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(activation.CASES))
def test_every_activation_runs_inside_the_plan(case, isa, threads):
    """Each activation of reference.activation.CASES as the epilogue of a convolution (dense, Winograd), a depthwise
    convolution, a convolution with a residual add, and a multiply: one Plan (no node runs outside it) equal to the
    eager ops. Nothing but the op's declaration and its kernel says how."""
    c = activation.CASES[case]
    fn, x = c.in_epilogues(F)
    want = fn(x)
    for winograd in (False, True):
        plan = convcore.compile(fn, x.shape, winograd=winograd)
        assert plan.eager_nodes == []
        fused = [op for op in plan.ops() if ("+" + _kernel_act(c.op, c.attrs)) in op[1] + " " + op[2]]
        assert len({op[0] for op in fused}) == 4, plan.ops()  # each activation in the epilogue of the op before it
        c.assert_close(plan(x), want)


def _kernel_act(op, attrs):
    """The kernels' activation computing `op` with `attrs` (its declaration's epilogue)."""
    declared = convcore.ops.OPS[op]
    return declared.plan.epilogue(declared.infer([(1, 1)], attrs)[0])[0]


# --- transposed convolutions ---------------------------------------------------------------------------------------

@st.composite
def conv_transpose_cases(draw):
    """Any kernel, stride (also above the kernel), dilation, padding, output padding below the stride, groups, 1 to
    40 channels each side (col2im below 16 output channels, phases above), odd sizes, batch 1-3."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 13)), groups * draw(st.integers(1, 13))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    out_pad = tuple(draw(st.integers(0, st_ - 1)) for st_ in stride)
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    oh = (h - 1) * stride[0] - pads[0] - pads[1] + dilation[0] * (r - 1) + out_pad[0] + 1
    ow = (w - 1) * stride[1] - pads[2] - pads[3] + dilation[1] * (s - 1) + out_pad[1] + 1
    if oh < 1 or ow < 1:
        pads = (0, 0, 0, 0)
    return dict(n=draw(st.integers(1, 3)), cin=cin, cout=cout, r=r, s=s, stride=stride, dilation=dilation,
                padding=pads, output_padding=out_pad, groups=groups, h=h, w=w, act=draw(st.sampled_from(
                    [None, "relu", "silu"])), bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(conv_transpose_cases())
def test_conv_transpose_runs_inside_the_plan(c):
    """conv_transpose2d as the input gradient of the convolution it transposes (phases + interleave, or col2im with
    few output channels), its bias and activation one per-channel op: no node outside the Plan, equal to the eager
    op (tested against torch in tests/ops), at the compiled batch and another."""
    rng = np.random.default_rng(c["seed"])
    w = rand(rng, c["cin"], c["cout"] // c["groups"], c["r"], c["s"], scale=1 / np.sqrt(c["cin"] * c["r"] * c["s"]))
    b = rand(rng, c["cout"]) if c["bias"] else None

    def fn(x):
        y = F.conv_transpose2d(x, w, b, c["stride"], c["padding"], c["output_padding"], c["dilation"], c["groups"])
        return getattr(F, c["act"])(y) if c["act"] else y

    x, y, plan = _run(fn, (c["n"], c["cin"], c["h"], c["w"]), seed=c["seed"])
    assert plan.eager_nodes == []
    assert_close(y, fn(x), 1e-5)
    other = np.random.default_rng(1).standard_normal((c["n"] % 3 + 1, c["cin"], c["h"], c["w"])).astype(np.float32)
    assert_close(plan(other), fn(other), 1e-5)


# --- resize -----------------------------------------------------------------------------------------------------------

@st.composite
def resize_cases(draw):
    """Every mode and coordinate mode, up and down scales (antialiased too), sizes given instead of scales, one axis
    left as it is, a crop region that extrapolates; 1 to 70 channels (vector tails, the 4-vector path), 1x1 maps."""
    mode = draw(st.sampled_from(["nearest", "linear", "cubic"]))
    coordinate = draw(st.sampled_from(["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kw = dict(mode=mode, coordinate_transformation_mode=coordinate,
              nearest_mode=draw(st.sampled_from(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])),
              antialias=mode != "nearest" and draw(st.booleans()), exclude_outside=draw(st.booleans()),
              extrapolation_value=draw(st.sampled_from([0.0, -2.5])))
    if draw(st.booleans()):
        scales = [draw(st.sampled_from([1.0, 0.5, 0.75, 1.5, 2.0, 3.0])) for _ in range(2)]
        kw["scales"] = (1.0, 1.0, *scales)
        out = [int(np.floor(n * s)) for n, s in zip((h, w), scales)]
        if min(out) < 1:
            kw["scales"] = (1.0, 1.0, 2.0, 2.0)
    else:
        kw["size"] = (None, None, draw(st.integers(1, 13)), draw(st.sampled_from([None, 1, 4, 11])))
    if coordinate == "tf_crop_and_resize":
        kw["roi"] = (0.0, 0.0, draw(st.sampled_from([-0.2, 0.0, 0.3])), 0.1, 1.0, 1.0,
                     draw(st.sampled_from([0.8, 1.0, 1.2])), 1.1)
    return dict(n=draw(st.integers(1, 2)), c=draw(st.sampled_from([1, 3, 8, 17, 70])), h=h, w=w, kw=kw,
                seed=draw(st.integers(0, 2**16)))


@given(resize_cases())
def test_resize_runs_inside_the_plan(isa, threads, c):
    """resize as one Plan op (both axes' interpolation tables), equal to the eager op (tested against onnxruntime and
    torch in tests/ops), at the compiled batch and another; on a map written into a concatenation (pixel stride above
    its channels) and read from one."""
    rng = np.random.default_rng(c["seed"])
    w1, w2 = rand(rng, c["c"], 3, 1, 1), rand(rng, 5, 3, 1, 1)

    def fn(x):
        a, b = F.conv2d(x, w1), F.conv2d(x, w2)
        both = F.concat([a, b], axis=1)           # a lives in both's channels: a strided input
        r = F.resize(a, **c["kw"])
        return F.concat([r, F.resize(both, **c["kw"])], axis=1)  # r written into a concatenation

    x, y, plan = _run(fn, (c["n"], 3, c["h"], c["w"]), seed=c["seed"])
    assert plan.eager_nodes == []
    assert_close(y, fn(x), 1e-5)
    other = np.random.default_rng(1).standard_normal((c["n"] % 2 + 1, 3, c["h"], c["w"])).astype(np.float32)
    assert_close(plan(other), fn(other), 1e-5)


def test_nearest_resize_repeats_infinities(isa):
    """Nearest neighbours copy their source: an infinite input stays infinite next to finite ones (a second tap of
    weight 0 would make it NaN), in the Plan and eagerly."""
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    x[0, 1, 2, 3], x[1, 2, 0, 0] = np.inf, -np.inf

    def fn(v):
        return F.resize(F.relu(v), scales=(1, 1, 2, 3), mode="nearest", coordinate_transformation_mode="asymmetric",
                        nearest_mode="floor")

    expected = np.repeat(np.repeat(np.maximum(x, 0), 2, axis=2), 3, axis=3)
    plan = convcore.compile(fn, x.shape)
    assert plan.eager_nodes == []
    np.testing.assert_array_equal(plan(x), expected)
    np.testing.assert_array_equal(fn(x), expected)


# --- channel slices ---------------------------------------------------------------------------------------------------

@st.composite
def split_cases(draw):
    """A map split along channels into 1-4 parts (a Split imports as such slices), the parts convolved or not and
    concatenated in order or shuffled, one part also a graph output; slices of the input and of an (N, F) value."""
    k = draw(st.integers(2, 24))
    cuts = sorted(draw(st.sets(st.integers(1, k - 1), max_size=3)))
    bounds = [0, *cuts, k]
    parts = list(zip(bounds[:-1], bounds[1:]))
    return dict(k=k, parts=parts, convolve=[draw(st.booleans()) for _ in parts],
                order=draw(st.permutations(range(len(parts) + 1))), shuffle=draw(st.booleans()),
                n=draw(st.integers(1, 2)), h=draw(st.integers(1, 6)), w=draw(st.integers(1, 6)),
                seed=draw(st.integers(0, 2**16)))


@given(split_cases())
def test_channel_slices_are_views(isa, threads, c):
    """A channel slice is a view into its map (no op); the parts of a split concatenated back in order put the split
    map itself in the concatenation's buffer (no copy); equal to the eager ops."""
    rng = np.random.default_rng(c["seed"])
    w0 = rand(rng, c["k"], 3, 3, 3)
    ws = [rand(rng, 5, hi - lo, 1, 1) for lo, hi in c["parts"]]

    def fn(x):
        y = F.relu(F.conv2d(x, w0, padding=1))
        parts = [F.slice(y, [lo], [hi], [1]) for lo, hi in c["parts"]]
        extra = [F.conv2d(p, w) for p, w, on in zip(parts, ws, c["convolve"]) if on]
        members = parts + extra
        if c["shuffle"]:
            members = [members[i] for i in c["order"] if i < len(members)]
        head = F.slice(F.flatten(F.global_avg_pool2d(y)), [1], [c["k"]], [1])
        return F.concat(members, axis=1), parts[-1], F.slice(x, [1], [3], [1]), head

    x, ys, plan = _run(fn, (c["n"], 3, c["h"], c["w"]), seed=c["seed"])
    assert plan.eager_nodes == []
    terms = R.conv2d(np.abs(x), np.abs(w0), padding=1).max()  # the convolutions' terms: their rounding's scale
    terms *= max([1.0] + [np.abs(w).sum(axis=(1, 2, 3)).max() for w in ws])
    for got, want in zip(ys, fn(x)):
        assert_close(got, want, 1e-5, scale=max(terms, np.abs(want).max()))
    if not c["shuffle"] and not any(c["convolve"]) and len(c["parts"]) > 1:  # the parts in order: the map itself
        assert not any(op[1] == "copy_channels" for op in plan.ops())


@st.composite
def crop_cases(draw):
    """Slices of rows and columns (any start, end and step, negative too: reversed) with or without a channel range,
    and pads of rows and columns in every mode (negative: crops)."""
    h, w, c = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 20))
    ends = st.one_of(st.integers(-10, 10), st.just(2**31 - 1))
    spatial = [(draw(st.integers(-10, 10)), draw(ends), draw(st.sampled_from([1, 2, 3, -1, -2]))) for _ in range(2)]
    for n, (start, end, step) in zip((h, w), spatial):
        if not range(*np.s_[start:end:step].indices(n)):
            return crop_cases_fallback(h, w, c)
    c0 = draw(st.integers(0, c - 1))
    pads = tuple(draw(st.integers(-1, 3)) for _ in range(4))
    kept = (h + min(pads[0], 0) + min(pads[1], 0), w + min(pads[2], 0) + min(pads[3], 0))
    if min(h + pads[0] + pads[1], w + pads[2] + pads[3], *kept) < 1:
        pads = (1, 0, 0, 2)
    return dict(h=h, w=w, c=c, spatial=spatial, channels=(c0, draw(st.integers(c0 + 1, c))), pads=pads,
                mode=draw(st.sampled_from(["constant", "reflect", "edge", "wrap"])), value=draw(st.sampled_from(
                    [0.0, -1.5])), n=draw(st.integers(1, 2)), seed=draw(st.integers(0, 2**16)))


def crop_cases_fallback(h, w, c):
    return dict(h=h, w=w, c=c, spatial=[(0, h, 1), (0, w, 1)], channels=(0, c), pads=(0, 1, 1, 0), mode="constant",
                value=0.0, n=1, seed=0)


@given(crop_cases())
def test_crops_strided_slices_and_pads_run_inside_the_plan(isa, threads, c):
    """Slices of rows and columns and pads of any mode copy pixels by index tables in one Plan op (the resample op):
    equal to the eager ops (tested against numpy in tests/ops)."""
    rng = np.random.default_rng(c["seed"])
    w0 = rand(rng, c["c"], 3, 1, 1)
    (hs, he, hstep), (ws, we, wstep) = c["spatial"]

    def fn(x):
        y = F.conv2d(x, w0)
        s = F.slice(y, [c["channels"][0], hs, ws], [c["channels"][1], he, we], [1, 2, 3], [1, hstep, wstep])
        p = F.pad(y, (0, 0, 0, 0) + c["pads"], c["mode"], c["value"])
        return s, p

    x, ys, plan = _run(fn, (c["n"], 3, c["h"], c["w"]), seed=c["seed"])
    assert plan.eager_nodes == []
    for got, want in zip(ys, fn(x)):
        np.testing.assert_array_equal(got, want)  # copies: exact


def test_channel_steps_run_as_a_gather():
    """A slice stepping through the channels is no view: one gather inside the Plan (plan/permute.py)."""
    w = np.random.default_rng(0).standard_normal((6, 3, 1, 1)).astype(np.float32)

    def fn(x):
        return F.relu(F.slice(F.conv2d(x, w), [0], [6], [1], [2]))

    for shape in ((1, 3, 4, 4), (3, 3, 4, 4)):
        x, y, plan = _run(fn, shape)
        assert plan.eager_nodes == [] and "gather_channels" in plan.summary()
        assert_close(y, fn(x), 1e-6)


def test_empty_values_with_long_axes_build_no_tables():
    """A value with no elements may still have a very long axis (the fuzzer's Pad of a 0-channel map to 8e8
    columns): the index-table ops return at once eagerly, and a Plan leaves empty values to them."""
    x = np.zeros((1, 0, 2, 2), np.float32)
    long = 800_000_000
    assert F.pad(x, (0, 0, 0, 0, 1, 1, long, 1)).shape == (1, 0, 4, long + 3)
    big = np.zeros((1, 0, 3, 4), np.float32)
    assert F.tile(big, (1, 1, 1, long // 4)).shape == (1, 0, 3, long)
    assert F.expand(big[..., :1], (1, 0, 3, long)).shape == (1, 0, 3, long)

    def fn(v):
        empty = F.slice(F.relu(v), [0], [0], [1])  # (1, 0, 2, 2)
        return F.relu(v), F.pad(empty, (0, 0, 0, 0, 1, 1, long, 1))

    plan = convcore.compile(fn, (1, 2, 2, 2))
    y, padded = plan(np.ones((1, 2, 2, 2), np.float32))
    assert padded.shape == (1, 0, 4, long + 3) and y.shape == (1, 2, 2, 2)
    assert sorted(n.split("_")[0] for n in plan.eager_nodes) == ["pad", "slice"]
