"""conv2d, depthwise_conv2d and separable_conv2d against the float64 oracle (and torch) on every ISA x threads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import conv as ref

from .helpers import TF, F, abs_scale, check, check_torch, rand

CHANNELS = st.sampled_from([1, 2, 3, 4, 5, 8, 16, 17])  # tails of 8 / 16-wide vectors included


_SMALL = st.integers(0, 3)
# Every padding form: int, pair (ph, pw), 4-tuple (top, bottom, left, right), 'valid', 'same', 'full'.
PADDINGS = st.one_of(_SMALL, st.tuples(_SMALL, _SMALL), st.tuples(_SMALL, _SMALL, _SMALL, _SMALL),
                     st.sampled_from(["valid", "same", "full"]))


def _explicit(padding):
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return padding


def _min_size(extent, pad_begin, pad_end, padding):
    """Smallest input length that fits one dilated window."""
    if padding in ("same", "full"):
        return 1
    if padding == "valid":
        return extent
    return max(extent - pad_begin - pad_end, 1)


@st.composite
def conv_cases(draw, depthwise=False):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(PADDINGS)
    top, bottom, left, right = (0, 0, 0, 0) if isinstance(padding, str) else _explicit(padding)
    lo_h = _min_size(dh * (kh - 1) + 1, top, bottom, padding)
    lo_w = _min_size(dw * (kw - 1) + 1, left, right, padding)
    # Mostly small maps (kernels larger than the input when padded); sometimes 1x1 inputs.
    h = draw(st.integers(lo_h, lo_h + 6))
    w = draw(st.integers(lo_w, lo_w + 6))
    if depthwise:
        groups = c_in = draw(CHANNELS)
        c_out = c_in * draw(st.integers(1, 3))
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3, "depthwise"]))
        per_group = draw(CHANNELS)
        if groups == "depthwise":
            groups = per_group
            c_in, c_out = per_group, per_group * draw(st.integers(1, 2))
        else:
            c_in, c_out = groups * per_group, groups * draw(CHANNELS)
    # Scalars when both sides agree, sometimes: the API accepts int or pair.
    stride = sh if sh == sw and draw(st.booleans()) else (sh, sw)
    dilation = dh if dh == dw and draw(st.booleans()) else (dh, dw)
    return dict(n=draw(st.integers(1, 3)), c_in=c_in, c_out=c_out, h=h, w=w, kh=kh, kw=kw, stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def _make(case):
    rng = np.random.default_rng(case["seed"])
    x = rand(rng, case["n"], case["c_in"], case["h"], case["w"])
    weight = rand(rng, case["c_out"], case["c_in"] // case["groups"], case["kh"], case["kw"])
    bias = rand(rng, case["c_out"]) if case["bias"] else None
    return x, weight, bias


def _torch_conv(x, weight, bias, stride, padding, dilation, groups):
    """torch conv2d with any padding form: pad explicitly (torch pads symmetrically only, no 'same' + stride)."""
    top, bottom, left, right = ref.resolve_padding(padding, x.shape[2:], weight.shape[2:], stride, dilation)
    return TF.conv2d(TF.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation, groups)


@given(conv_cases())
def test_conv2d(isa, threads, case):
    x, weight, bias = _make(case)
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    got = F.conv2d(x, weight, bias, **args)
    # Relative to the size of the summed terms: a map of a few pixels may cancel to near zero.
    scale = abs_scale(ref.conv2d, x, weight, bias, **args)
    check(got, ref.conv2d(x, weight, bias, **args), scale=scale)
    check_torch(got, _torch_conv, x, weight, bias, scale=scale, **args)


@given(conv_cases(depthwise=True))
def test_depthwise_conv2d(isa, threads, case):
    x, weight, bias = _make(case)
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    got = F.depthwise_conv2d(x, weight, bias, **args)
    scale = abs_scale(ref.conv2d, x, weight, bias, groups=case["c_in"], **args)
    check(got, ref.conv2d(x, weight, bias, groups=case["c_in"], **args), scale=scale)
    check_torch(got, _torch_conv, x, weight, bias, groups=case["c_in"], scale=scale, **args)


@given(conv_cases(depthwise=True), CHANNELS, st.booleans())
def test_separable_conv2d(isa, threads, case, c_out, pointwise_bias):
    x, dw_weight, dw_bias = _make(case)
    rng = np.random.default_rng(case["seed"] + 1)
    pw_weight = rand(rng, c_out, case["c_out"], 1, 1)
    pw_bias = rand(rng, c_out) if pointwise_bias else None
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    got = F.separable_conv2d(x, dw_weight, pw_weight, dw_bias, pw_bias, **args)
    mid = ref.conv2d(x, dw_weight, dw_bias, groups=case["c_in"], **args)
    mid_abs = ref.conv2d(np.abs(x), np.abs(dw_weight), None if dw_bias is None else np.abs(dw_bias),
                         groups=case["c_in"], **args)
    check(got, ref.conv2d(mid, pw_weight, pw_bias), scale=abs_scale(ref.conv2d, mid_abs, pw_weight, pw_bias))


# Layer shapes like the zoo's (stem, 3x3, 1x1, depthwise, grouped, dilated, Winograd-sized), so the fast paths run
# too; these keep the plain max|ref| bound, their many outputs never all cancel.
LAYERS = [
    # n, c_in, c_out, h, w, k, stride, padding, dilation, groups
    (1, 3, 24, 17, 15, 7, 2, 3, 1, 1),
    (2, 32, 48, 9, 11, 3, 1, 1, 1, 1),
    (1, 64, 64, 10, 9, 3, 1, 1, 1, 1),
    (1, 24, 40, 8, 7, 3, 2, "same", 1, 1),
    (2, 40, 67, 7, 5, 1, 1, 0, 1, 1),
    (1, 33, 19, 6, 6, 1, 2, 0, 1, 1),
    (1, 40, 40, 9, 10, 3, 2, 1, 1, 40),
    (1, 24, 24, 7, 7, 5, 1, 2, 1, 24),
    (1, 32, 64, 8, 8, 3, 1, 1, 1, 2),
    (3, 36, 36, 5, 5, 3, 1, (1, 0, 2, 1), 1, 3),
    (1, 32, 32, 13, 12, 3, 1, 2, 2, 1),
    (1, 48, 48, 11, 9, 3, 1, "same", 3, 48),
    (2, 16, 32, 29, 30, 3, 1, 1, 1, 1),
    # The fast path picks direct (in-place rows) or im2col panels by output channels per group and row width
    # (csrc/ops/conv2d/conv2d.cpp): each combination below runs one of them with tails, strides, dilation, groups.
    (1, 8, 40, 5, 50, 3, 1, 1, 1, 1),               # direct, 5 row panels, 50 = 48 + 2 columns
    (1, 16, 24, 12, 13, 1, 1, 0, 1, 1),             # direct, 1x1 read in place (whole plane as one row)
    (2, 6, 66, 4, 100, 3, 2, "same", 1, 2),         # direct, column phases for stride 2, 2 groups of 33
    (1, 40, 48, 13, 14, 3, 2, (1, 2, 0, 1), 2, 1),  # im2col panels, stride 2, dilation 2, asymmetric padding
]


@pytest.mark.parametrize("n, c_in, c_out, h, w, k, stride, padding, dilation, groups", LAYERS)
def test_conv2d_layer_shapes(isa, threads, n, c_in, c_out, h, w, k, stride, padding, dilation, groups):
    rng = np.random.default_rng(c_in * 100 + c_out)
    x, weight, bias = rand(rng, n, c_in, h, w), rand(rng, c_out, c_in // groups, k, k), rand(rng, c_out)
    got = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    check(got, ref.conv2d(x, weight, bias, stride, padding, dilation, groups))
    check_torch(got, _torch_conv, x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def test_conv2d_same_output_size_with_stride(isa):
    # ONNX SAME_UPPER: output = ceil(in / stride), the odd pad goes bottom / right.
    x = np.arange(2 * 8 * 7, dtype=np.float32).reshape(1, 2, 8, 7)
    weight = np.ones((1, 2, 3, 3), np.float32)
    got = F.conv2d(x, weight, stride=2, padding="same")
    assert got.shape == (1, 1, 4, 4)
    check(got, ref.conv2d(x, weight, stride=2, padding=(0, 1, 1, 1)))


def test_conv2d_kernel_larger_than_input_with_padding(isa):
    rng = np.random.default_rng(7)
    x, weight = rand(rng, 1, 2, 1, 1), rand(rng, 3, 2, 5, 5)
    got = F.conv2d(x, weight, padding=2)
    assert got.shape == (1, 3, 1, 1)
    check(got, ref.conv2d(x, weight, padding=2))
    check(F.conv2d(x, weight, padding="full"), ref.conv2d(x, weight, padding="full"))


def _views(rng):
    """Non-contiguous views of an (2, 5, 7, 6) input: transposed, strided-sliced, channel-sliced."""
    base = rand(rng, 2, 5, 6, 7)
    yield base.transpose(0, 1, 3, 2)            # (2, 5, 7, 6), last axis strided
    yield rand(rng, 2, 5, 14, 6)[:, :, ::2]      # every other row
    yield rand(rng, 2, 9, 7, 6)[:, 2:7]          # a channel slice
    yield rand(rng, 6, 7, 2, 5).transpose(2, 3, 0, 1)  # channels-last memory


def test_conv2d_non_contiguous_input_and_weight(isa, threads):
    rng = np.random.default_rng(11)
    weight = rand(rng, 3, 3, 4, 5).transpose(2, 3, 0, 1)  # (4, 5, 3, 3) view
    for x in _views(rng):
        assert not x.flags.c_contiguous
        check(F.conv2d(x, weight, padding=1), ref.conv2d(x, weight, padding=1))


def test_conv2d_read_only_inputs(isa):
    rng = np.random.default_rng(12)
    x, weight, bias = rand(rng, 1, 4, 6, 6), rand(rng, 8, 4, 3, 3), rand(rng, 8)
    dw_weight = rand(rng, 4, 1, 3, 3)
    for a in (x, weight, bias, dw_weight):
        a.flags.writeable = False
    check(F.conv2d(x, weight, bias, padding=1), ref.conv2d(x, weight, bias, padding=1))
    check(F.depthwise_conv2d(x, dw_weight, padding=1), ref.conv2d(x, dw_weight, padding=1, groups=4))
    assert not x.flags.writeable  # the caller's flags are left alone


def test_conv2d_out(isa, threads):
    rng = np.random.default_rng(13)
    x, weight, bias = rand(rng, 2, 3, 7, 5), rand(rng, 6, 3, 3, 3), rand(rng, 6)
    out = np.full((2, 6, 4, 3), np.nan, np.float32)
    got = F.conv2d(x, weight, bias, stride=2, padding=1, out=out)
    assert got is out
    check(out, ref.conv2d(x, weight, bias, stride=2, padding=1))


def test_conv2d_threads_agree(isa):
    """The result must not depend on the thread count (each output is one thread's sum, in one order)."""
    import convcore

    rng = np.random.default_rng(14)
    cases = [
        (rand(rng, 2, 16, 15, 13), rand(rng, 32, 16, 3, 3), 1, 1),
        (rand(rng, 1, 37, 9, 11), rand(rng, 45, 37, 1, 1), 1, 1),
        (rand(rng, 3, 24, 10, 10), rand(rng, 24, 1, 3, 3), 2, 24),
    ]
    previous = convcore.get_num_threads()
    try:
        for x, weight, stride, groups in cases:
            results = []
            for n in (1, 2):
                convcore.set_num_threads(n)
                results.append(F.conv2d(x, weight, stride=stride, padding=1, groups=groups))
            scale = np.abs(results[0]).max()
            assert np.abs(results[0] - results[1]).max() <= 1e-6 * scale
    finally:
        convcore.set_num_threads(previous)
