"""Property-based fuzzing of convcore.functional against torch: extreme integers (up to 2^31 - 1), degenerate shapes
(1x1 maps, kernels larger than the input, 0-d arrays) and NaN / Inf / huge / subnormal values.

The contract: a call either matches torch (NaN where torch has NaN, the same infinities, finite values within float32
rounding), or raises ValueError / TypeError naming the argument when the arguments are invalid (or past a bound in
docs/limits.md). Never a crash, a hang, a huge allocation or another exception.

In the suite: a short derandomized run (CONVCORE_FUZZ_EXAMPLES examples per test, 25 by default). The long run
(fuzz/run.py) sets CONVCORE_FUZZ_EXAMPLES to thousands and random seeds.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convcore.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

BIG = 2**31 - 1
EXAMPLES = int(os.environ.get("CONVCORE_FUZZ_EXAMPLES", "25"))
LONG_RUN = "CONVCORE_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG_RUN, database=None,
                suppress_health_check=list(HealthCheck))
MAX_OUT = 4096  # compared cases keep outputs small: the work is in the arguments, not in the size
MAX_ELEMENTS = 2**31 - 1  # convcore's largest tensor (docs/limits.md): larger outputs are ValueErrors


# ---- strategies ------------------------------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1e-45, 88.7, -88.7, 100.0, -100.0, 6.0,
           3.0, -3.0]
HUGE = [3.4e38, -3.4e38]  # not in sums of products: float32 accumulation overflows where float64 does not


@st.composite
def arrays(draw, shape, special=True, huge=False):
    """float32 arrays of `shape`: mostly normal values, sometimes sprinkled with NaN / Inf / extremes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(np.float32) * np.float32(draw(st.sampled_from([1.0, 10.0, 1e3])))
    if special and x.size and draw(st.booleans()):
        values = SPECIAL + HUGE if huge else SPECIAL
        picks = draw(st.lists(st.tuples(st.integers(0, x.size - 1), st.sampled_from(values)), max_size=8))
        flat = x.reshape(-1)
        for i, v in picks:
            flat[i] = v
    return np.asarray(x, np.float32)  # (a 0-d result of numpy arithmetic is a scalar: keep it an array)


def extreme_ints(low=1):
    """Small values mostly, and the edges: 2^31 - 1 and other huge ones."""
    return st.one_of(st.integers(low, 4), st.sampled_from([BIG, BIG - 1, 2**30, 10**8, 3 * 10**8, 2**20]),
                     st.integers(low, BIG))


def out_size(size, k, stride, dil, lo, hi, ceil=False):
    """torch's output length (floor division, as its div_rtn)."""
    n = (size + lo + hi - dil * (k - 1) - 1 + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (n - 1) * stride >= size + lo:  # torch: the last window must start inside the input or left pad
        n -= 1
    return n


def assert_matches(got, want, rtol=1e-4, scale=None):
    """got == want (a float64 oracle, rounded to float32 first) up to rtol * max|want| (or * `scale`), with NaN and
    infinities in the same places."""
    want = want.detach().float().numpy() if hasattr(want, "detach") else np.asarray(want, np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    if finite.any():
        scale = max(float(np.max(np.abs(want[finite]))), scale or 0.0, 1e-30)
        err = float(np.max(np.abs(got[finite].astype(np.float64) - want[finite])))
        assert err <= rtol * scale + 1e-30 or err <= 1e-6, (err, scale)


def t(x):
    return torch.from_numpy(np.array(x, np.float32))  # (np.ascontiguousarray would make a 0-d array 1-d)


# ---- convolutions ----------------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw, depthwise=False):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    groups = c if depthwise else draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    k = groups * draw(st.integers(1, 3))
    stride = (draw(extreme_ints()), draw(extreme_ints()))
    dilation = (draw(st.one_of(st.integers(1, 3), extreme_ints())), draw(st.one_of(st.integers(1, 3), extreme_ints())))
    # symmetric padding (torch's form), small or huge
    padding = (draw(st.one_of(st.integers(0, 3), extreme_ints(0))), draw(st.one_of(st.integers(0, 3), extreme_ints(0))))
    return n, c, h, w, k, kh, kw, groups, stride, dilation, padding


@FUZZ
@given(case=conv_cases(), data=st.data(), bias=st.booleans())
def test_conv2d_matches_torch(case, data, bias):
    n, c, h, w, k, kh, kw, groups, stride, dilation, padding = case
    oh = out_size(h, kh, stride[0], dilation[0], padding[0], padding[0])
    ow = out_size(w, kw, stride[1], dilation[1], padding[1], padding[1])
    x = data.draw(arrays((n, c, h, w)))
    weight = data.draw(arrays((k, c // groups, kh, kw), special=False))
    b = data.draw(arrays((k,), special=False)) if bias else None
    if oh < 1 or ow < 1 or n * k * oh * ow > MAX_ELEMENTS:
        with pytest.raises(ValueError):
            F.conv2d(x, weight, b, stride, padding, dilation, groups)
        return
    assume(n * k * oh * ow <= MAX_OUT)
    got = F.conv2d(x, weight, b, stride, padding, dilation, groups)
    want = TF.conv2d(t(x).double(), t(weight).double(), None if b is None else t(b).double(), stride, padding,
                     dilation, groups)
    assert_matches(got, want)


@FUZZ
@given(case=conv_cases(depthwise=True), data=st.data())
def test_depthwise_conv2d_matches_torch(case, data):
    n, c, h, w, k, kh, kw, _, stride, dilation, padding = case
    oh = out_size(h, kh, stride[0], dilation[0], padding[0], padding[0])
    ow = out_size(w, kw, stride[1], dilation[1], padding[1], padding[1])
    assume(oh >= 1 and ow >= 1 and n * k * oh * ow <= MAX_OUT)
    x = data.draw(arrays((n, c, h, w)))
    weight = data.draw(arrays((k, 1, kh, kw), special=False))
    got = F.depthwise_conv2d(x, weight, None, stride, padding, dilation)
    assert_matches(got, TF.conv2d(t(x).double(), t(weight).double(), None, stride, padding, dilation, c))


@FUZZ
@given(h=st.integers(1, 6), w=st.integers(1, 6), pads=st.tuples(*[st.one_of(st.integers(0, 4), extreme_ints(0))] * 4),
       stride=st.tuples(extreme_ints(), extreme_ints()), data=st.data())
def test_conv2d_four_sided_padding(h, w, pads, stride, data):
    """(top, bottom, left, right) padding, checked against torch on an explicitly padded input (small pads) or
    against the rule that every window lying entirely in the padding gives the bias."""
    x = data.draw(arrays((1, 2, h, w)))
    weight = data.draw(arrays((3, 2, 2, 2), special=False))
    top, bottom, left, right = pads
    oh, ow = out_size(h, 2, stride[0], 1, top, bottom), out_size(w, 2, stride[1], 1, left, right)
    if oh < 1 or ow < 1 or 3 * oh * ow > MAX_ELEMENTS:
        with pytest.raises(ValueError):
            F.conv2d(x, weight, None, stride, pads)
        return
    assume(3 * oh * ow <= MAX_OUT)
    got = F.conv2d(x, weight, None, stride, pads)
    if max(pads) <= 64:
        want = TF.conv2d(TF.pad(t(x).double(), (left, right, top, bottom)), t(weight).double(), None, stride)
        assert_matches(got, want)
    else:  # outputs whose window misses the input rows or columns are 0 (no bias)
        rows = [i for i in range(oh) if i * stride[0] - top + 1 < 0 or i * stride[0] - top >= h]
        cols = [j for j in range(ow) if j * stride[1] - left + 1 < 0 or j * stride[1] - left >= w]
        assert np.all(got[:, :, rows, :] == 0) and np.all(got[:, :, :, cols] == 0)


# ---- pooling ---------------------------------------------------------------------------------------------------

@FUZZ
@given(h=st.integers(1, 9), w=st.integers(1, 9), kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       stride=st.tuples(extreme_ints(), extreme_ints()), ceil_mode=st.booleans(), dilation=st.integers(1, 3),
       data=st.data())
def test_max_pool2d_matches_torch(h, w, kernel, stride, ceil_mode, dilation, data):
    padding = (data.draw(st.integers(0, kernel[0] // 2)), data.draw(st.integers(0, kernel[1] // 2)))
    x = data.draw(arrays((1, 2, h, w)))
    oh = out_size(h, kernel[0], stride[0], dilation, padding[0], padding[0], ceil_mode)
    ow = out_size(w, kernel[1], stride[1], dilation, padding[1], padding[1], ceil_mode)
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError):
            F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
        return
    got = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    assert_matches(got, TF.max_pool2d(t(x), kernel, stride, padding, dilation, ceil_mode))


@FUZZ
@given(h=st.integers(1, 9), w=st.integers(1, 9), kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       stride=st.tuples(extreme_ints(), extreme_ints()), ceil_mode=st.booleans(), include=st.booleans(),
       data=st.data())
def test_avg_pool2d_matches_torch(h, w, kernel, stride, ceil_mode, include, data):
    padding = (data.draw(st.integers(0, kernel[0] // 2)), data.draw(st.integers(0, kernel[1] // 2)))
    x = data.draw(arrays((1, 2, h, w)))
    oh = out_size(h, kernel[0], stride[0], 1, padding[0], padding[0], ceil_mode)
    ow = out_size(w, kernel[1], stride[1], 1, padding[1], padding[1], ceil_mode)
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError):
            F.avg_pool2d(x, kernel, stride, padding, ceil_mode, include)
        return
    got = F.avg_pool2d(x, kernel, stride, padding, ceil_mode, include)
    assert_matches(got, TF.avg_pool2d(t(x).double(), kernel, stride, padding, ceil_mode, include))


@FUZZ
@given(h=st.integers(1, 9), w=st.integers(1, 9), out=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       is_max=st.booleans(), data=st.data())
def test_adaptive_pools_match_torch(h, w, out, is_max, data):
    x = data.draw(arrays((2, 3, h, w)))
    if is_max:
        assert_matches(F.adaptive_max_pool2d(x, out), TF.adaptive_max_pool2d(t(x), out))
    else:
        assert_matches(F.adaptive_avg_pool2d(x, out), TF.adaptive_avg_pool2d(t(x).double(), out))


@FUZZ
@given(size=st.one_of(st.integers(-3, 0), st.sampled_from([BIG, BIG + 1, 2**63, 10**30])),
       which=st.sampled_from(["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "conv_stride", "conv_dilation",
                              "conv_padding", "conv_groups", "softmax_axis", "flatten", "leaky_relu"]))
def test_out_of_range_integers_are_value_errors(size, which):
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 2, 1, 1), np.float32)
    call = {"max_pool2d": lambda: F.max_pool2d(x, size), "avg_pool2d": lambda: F.avg_pool2d(x, 2, size),
            "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x, size),
            "conv_stride": lambda: F.conv2d(x, w, stride=size), "conv_dilation": lambda: F.conv2d(x, w, dilation=size),
            "conv_padding": lambda: F.conv2d(x, w, padding=size), "conv_groups": lambda: F.conv2d(x, w, groups=size),
            "softmax_axis": lambda: F.softmax(x, size), "flatten": lambda: F.flatten(x, size),
            "leaky_relu": lambda: F.leaky_relu(x, size)}[which]
    if which in ("softmax_axis", "flatten") and -4 <= size < 4:
        return  # a valid axis of a 4-D input
    valid = which == "leaky_relu" or (which in ("conv_padding", "conv_stride", "conv_dilation", "avg_pool2d")
                                      and 1 - (which == "conv_padding") <= size <= BIG)
    if valid:  # in range (a huge stride, dilation or padding is fine): no crash, and a ValueError at most
        try:
            call()
        except ValueError:
            pass
        return
    with pytest.raises((ValueError, TypeError)):
        call()


# ---- elementwise, softmax, linear, batch norm ------------------------------------------------------------------

SHAPES = st.sampled_from([(), (1,), (5,), (2, 3), (1, 1, 1, 1), (2, 3, 1, 4), (1, 7, 2, 2)])

ACTIVATIONS = {
    "relu": (F.relu, torch.relu), "relu6": (F.relu6, TF.relu6), "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh), "silu": (F.silu, TF.silu), "hardswish": (F.hardswish, TF.hardswish),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
}


@FUZZ
@given(shape=SHAPES, name=st.sampled_from(sorted(ACTIVATIONS)), data=st.data())
def test_activations_match_torch(shape, name, data):
    ours, theirs = ACTIVATIONS[name]
    x = data.draw(arrays(shape, huge=True))
    # torch in float32: the formulas overflow alike (hardswish(3.4e38) = x * 6 / 6 = inf in both)
    assert_matches(ours(x), theirs(t(x)), rtol=2e-6 if name in ("relu", "relu6") else 1e-5)


@FUZZ
@given(shape=SHAPES, log=st.booleans(), data=st.data())
def test_softmax_matches_torch(shape, log, data):
    x = data.draw(arrays(shape, huge=True))
    axis = data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    ours, theirs = (F.log_softmax, torch.log_softmax) if log else (F.softmax, torch.softmax)
    assert_matches(ours(x, axis), theirs(t(x).double(), axis).float())


BROADCAST = st.sampled_from([((), ()), ((3,), ()), ((), (2, 3)), ((2, 3), (3,)), ((2, 1, 4), (3, 1)),
                             ((1, 3, 1, 1), (2, 3, 4, 5)), ((4, 1), (1, 5))])


@FUZZ
@given(shapes=BROADCAST, op=st.sampled_from(["add", "mul"]), data=st.data())
def test_add_mul_broadcast_match_torch(shapes, op, data):
    a, b = data.draw(arrays(shapes[0], huge=True)), data.draw(arrays(shapes[1], huge=True))
    got = getattr(F, op)(a, b)
    want = (t(a) + t(b)) if op == "add" else (t(a) * t(b))
    assert_matches(got, want, rtol=0)


@FUZZ
@given(m=st.integers(1, 4), k=st.integers(1, 9), n=st.integers(1, 7), bias=st.booleans(), data=st.data())
def test_linear_matches_torch(m, k, n, bias, data):
    x, w = data.draw(arrays((m, k))), data.draw(arrays((n, k), special=False))
    b = data.draw(arrays((n,), special=False)) if bias else None
    assert_matches(F.linear(x, w, b), TF.linear(t(x).double(), t(w).double(), None if b is None else t(b).double()))


@FUZZ
@given(shape=st.sampled_from([(1, 3), (2, 3, 4), (1, 3, 2, 2), (2, 3, 1, 5)]),
       eps=st.sampled_from([1e-5, 0.0, 1e-30, 1e30]), data=st.data())
def test_batch_norm_matches_torch(shape, eps, data):
    x = data.draw(arrays(shape))
    mean, weight, bias = (data.draw(arrays((3,), special=False)) for _ in range(3))
    var = np.abs(data.draw(arrays((3,), special=False))) + np.float32(data.draw(st.sampled_from([0.0, 1e-3, 1.0])))
    got = F.batch_norm(x, mean, var, weight, bias, eps)
    want = TF.batch_norm(t(x).double(), t(mean).double(), t(var).double(), t(weight).double(), t(bias).double(),
                         False, 0.0, eps)
    # Inference batch norm is x * scale + shift: rounding follows x * scale, which x close to the mean cancels.
    scale = np.abs(weight.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)
    finite_x = np.abs(np.where(np.isfinite(x), x, 0)).max()
    assert_matches(got, want, scale=float(finite_x * scale.max() + np.abs(mean).max() * scale.max()))
