"""Prove the float64 oracles against torch (float64), so convcore is checked against a checked reference."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import activation, assert_close, conv, misc, norm, pool

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(a):
    return torch.from_numpy(np.asarray(a, np.float64))


def _rand(rng, *shape):
    return rng.standard_normal(shape)


def _at_least(draw, size):
    """Draw a small input length of at least `size` (and at least 1)."""
    lo = max(size, 1)
    return draw(st.integers(lo, lo + 6))


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    # The input must hold at least one dilated kernel after padding.
    h = _at_least(draw, dilation[0] * (kh - 1) + 1 - pads[0] - pads[1])
    w = _at_least(draw, dilation[1] * (kw - 1) + 1 - pads[2] - pads[3])
    n = draw(st.integers(1, 2))
    with_bias, seed = draw(st.booleans()), draw(st.integers(0, 2**31))
    return n, c_in, c_out, h, w, kh, kw, stride, dilation, pads, groups, with_bias, seed


@given(conv_cases())
def test_conv2d_matches_torch(case):
    n, c_in, c_out, h, w, kh, kw, stride, dilation, pads, groups, with_bias, seed = case
    rng = np.random.default_rng(seed)
    x, wt = _rand(rng, n, c_in, h, w), _rand(rng, c_out, c_in // groups, kh, kw)
    b = _rand(rng, c_out) if with_bias else None
    top, bottom, left, right = pads
    # torch pads symmetrically only: apply the 4-sided pad explicitly, then convolve unpadded.
    xp = F.pad(_t(x), (left, right, top, bottom))
    want = F.conv2d(xp, _t(wt), None if b is None else _t(b), stride, 0, dilation, groups).numpy()
    assert_close(conv.conv2d(x, wt, b, stride, pads, dilation, groups), want, 1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("k, dilation", [(1, 1), (2, 1), (3, 1), (4, 2), (3, 3), (5, 2)])
@pytest.mark.parametrize("size", [1, 4, 7])
def test_same_and_full_padding_match_torch(k, dilation, size):
    rng = np.random.default_rng(0)
    x, wt = _rand(rng, 1, 2, size, size + 1), _rand(rng, 3, 2, k, k)
    want = F.conv2d(_t(x), _t(wt), padding="same", dilation=dilation).numpy()
    assert_close(conv.conv2d(x, wt, padding="same", dilation=dilation), want, 1e-12)
    want = F.conv2d(_t(x), _t(wt), padding=dilation * (k - 1), dilation=dilation).numpy()
    assert_close(conv.conv2d(x, wt, padding="full", dilation=dilation), want, 1e-12)
    assert conv.resolve_padding("valid", (size, size), (k, k)) == (0, 0, 0, 0)


@pytest.mark.parametrize("size, k, s, d, want", [
    (7, 3, 2, 1, (1, 1)),   # out 4: (3*2 + 3 - 7) = 2 -> 1 / 1
    (8, 3, 2, 1, (0, 1)),   # out 4: (3*2 + 3 - 8) = 1 -> extra pad goes to the end (SAME_UPPER)
    (5, 1, 3, 1, (0, 0)),   # out 2: 3 + 1 - 5 < 0 -> no pad
    (6, 3, 1, 2, (2, 2)),   # stride 1: dilated extent 5 -> 4
])
def test_same_padding_with_stride(size, k, s, d, want):
    top, bottom, _, _ = conv.resolve_padding("same", (size, size), (k, k), s, d)
    assert (top, bottom) == want
    out = conv.conv2d(np.ones((1, 1, size, size)), np.ones((1, 1, k, k)), stride=s, padding="same", dilation=d)
    assert out.shape[2] == -(-size // s)


@st.composite
def pool_cases(draw, with_dilation):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if with_dilation else (1, 1)
    # torch's rule: symmetric padding at most half the kernel.
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = _at_least(draw, dilation[0] * (kh - 1) + 1 - 2 * ph)
    w = _at_least(draw, dilation[1] * (kw - 1) + 1 - 2 * pw)
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, (kh, kw), stride, dilation, (ph, pw),
            draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**31)))


@given(pool_cases(with_dilation=True))
def test_max_pool2d_matches_torch(case):
    n, c, h, w, k, stride, dilation, pad, ceil_mode, _, seed = case
    x = _rand(np.random.default_rng(seed), n, c, h, w)
    want = F.max_pool2d(_t(x), k, stride, pad, dilation, ceil_mode).numpy()
    assert_close(pool.max_pool2d(x, k, stride, pad, dilation, ceil_mode), want, 0)


@given(pool_cases(with_dilation=False))
def test_avg_pool2d_matches_torch(case):
    n, c, h, w, k, stride, _, pad, ceil_mode, count_include_pad, seed = case
    x = _rand(np.random.default_rng(seed), n, c, h, w)
    want = F.avg_pool2d(_t(x), k, stride, pad, ceil_mode, count_include_pad).numpy()
    assert_close(pool.avg_pool2d(x, k, stride, pad, ceil_mode, count_include_pad), want, 1e-12)


@given(st.integers(1, 5), st.data(), st.integers(1, 3), st.booleans(), st.integers(0, 2**31))
def test_pool_4_sided_padding_matches_explicit_pad(k, data, s, count_include_pad, seed):
    # Each side at most half the kernel (torch's rule), so no window lies entirely in the padding.
    pads = data.draw(st.tuples(*[st.integers(0, k // 2)] * 4))
    top, bottom, left, right = pads
    x = _rand(np.random.default_rng(seed), 1, 2, 6, 5)
    xt = _t(x)
    want = F.max_pool2d(F.pad(xt, (left, right, top, bottom), value=-np.inf), k, s).numpy()
    assert_close(pool.max_pool2d(x, k, s, pads), want, 0)
    # Sum pooling of the zero-padded input divided by the window size (or by the real-pixel count).
    sums = F.avg_pool2d(F.pad(xt, (left, right, top, bottom)), k, s) * k * k
    counts = F.avg_pool2d(F.pad(torch.ones_like(xt), (left, right, top, bottom)), k, s) * k * k
    want = (sums / (k * k if count_include_pad else counts)).numpy()
    assert_close(pool.avg_pool2d(x, k, s, pads, count_include_pad=count_include_pad), want, 1e-12)


def test_pool_ceil_mode_drops_window_starting_in_padding():
    # H=4, k=2, s=2, pad=1, ceil: floor((4+2-2+1)/2)+1 = 3 windows start at -1, 1, 3: all start inside -> 3.
    assert pool.pool_output_size(4, 2, 2, 1, 1, ceil_mode=True) == 3
    # H=5, k=2, s=2, pad=1, ceil: 4 candidate windows, the last starts at 5 (in the padding) -> dropped.
    assert pool.pool_output_size(5, 2, 2, 1, 1, ceil_mode=True) == 3
    assert F.max_pool2d(torch.zeros(1, 1, 5, 5), 2, 2, 1, ceil_mode=True).shape[-1] == 3


@pytest.mark.parametrize("h, w, out", [(5, 7, (2, 3)), (7, 7, 1), (4, 6, (4, 6)), (3, 2, (5, 4)), (9, 1, (4, 1))])
def test_adaptive_and_global_pool_match_torch(h, w, out):
    x = _rand(np.random.default_rng(1), 2, 3, h, w)
    assert_close(pool.adaptive_avg_pool2d(x, out), F.adaptive_avg_pool2d(_t(x), out).numpy(), 1e-12)
    assert_close(pool.adaptive_max_pool2d(x, out), F.adaptive_max_pool2d(_t(x), out).numpy(), 0)
    assert_close(pool.global_avg_pool2d(x), F.adaptive_avg_pool2d(_t(x), 1).numpy(), 1e-12)
    assert_close(pool.global_max_pool2d(x), F.adaptive_max_pool2d(_t(x), 1).numpy(), 0)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4), (1, 5, 7)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(shape, affine):
    rng = np.random.default_rng(2)
    c = shape[1]
    x, mean, var = _rand(rng, *shape), _rand(rng, c), rng.uniform(0.1, 2.0, c)
    wt, b = (_rand(rng, c), _rand(rng, c)) if affine else (None, None)
    want = F.batch_norm(_t(x), _t(mean), _t(var), None if wt is None else _t(wt), None if b is None else _t(b),
                        training=False, eps=1e-3).numpy()
    assert_close(norm.batch_norm(x, mean, var, wt, b, eps=1e-3), want, 1e-12)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(2, 6, 3, 4), (1, 3, 5, 5), (2, 7, 1, 1)])
def test_local_response_norm_matches_torch(size, shape):
    x = _rand(np.random.default_rng(3), *shape) * 3
    want = F.local_response_norm(_t(x), size, alpha=0.3, beta=0.75, k=2.0).numpy()
    assert_close(norm.local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0), want, 1e-12)


ELEMENTWISE = [
    ("relu", F.relu), ("relu6", F.relu6), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("silu", F.silu),
    ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid),
]


@pytest.mark.parametrize("name, torch_fn", ELEMENTWISE)
def test_activations_match_torch(name, torch_fn):
    # Cover the kinks (-3, 0, 3, 6) and the saturated tails.
    x = np.concatenate([np.linspace(-12, 12, 480), [-3, 0, 3, 6, -800, 800]]).reshape(3, -1)
    assert_close(getattr(activation, name)(x), torch_fn(_t(x)).numpy(), 1e-12)


def test_leaky_relu_matches_torch():
    x = np.linspace(-5, 5, 101)
    for slope in (0.01, 0.2, 1.5):
        assert_close(activation.leaky_relu(x, slope), F.leaky_relu(_t(x), slope).numpy(), 1e-12)


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_softmax_and_log_softmax_match_torch(axis):
    x = _rand(np.random.default_rng(4), 2, 3, 4) * 50  # large logits: the max shift must keep it finite
    assert_close(activation.softmax(x, axis), F.softmax(_t(x), dim=axis).numpy(), 1e-12)
    assert_close(activation.log_softmax(x, axis), F.log_softmax(_t(x), dim=axis).numpy(), 1e-12)


def test_misc_match_torch():
    rng = np.random.default_rng(5)
    x, wt, b = _rand(rng, 2, 3, 7), _rand(rng, 5, 7), _rand(rng, 5)
    assert_close(misc.linear(x, wt, b), F.linear(_t(x), _t(wt), _t(b)).numpy(), 1e-12)
    assert_close(misc.linear(x[0, 0], wt), F.linear(_t(x[0, 0]), _t(wt)).numpy(), 1e-12)
    a, s = _rand(rng, 2, 3, 4, 5), _rand(rng, 2, 3, 1, 1)
    assert_close(misc.add(a, s), (_t(a) + _t(s)).numpy(), 0)
    assert_close(misc.mul(a, s), (_t(a) * _t(s)).numpy(), 0)
    parts = [_rand(rng, 2, c, 4, 5) for c in (1, 3, 2)]
    assert_close(misc.concat(parts, 1), torch.cat([_t(p) for p in parts], 1).numpy(), 0)
    for start, end in [(1, -1), (0, -1), (2, 3), (1, 2), (-2, -1), (3, 3)]:
        assert misc.flatten(a, start, end).shape == torch.flatten(_t(a), start, end).shape
        assert_close(misc.flatten(a, start, end), torch.flatten(_t(a), start, end).numpy(), 0)
