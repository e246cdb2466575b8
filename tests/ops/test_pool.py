"""Pooling ops against the float64 oracle (and torch) on every ISA x threads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import pool as ref

from .helpers import F, check, check_torch, rand

CHANNELS = st.sampled_from([1, 2, 3, 8, 16, 17])


@st.composite
def pool_cases(draw, with_dilation):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.tuples(st.integers(1, 3), st.integers(1, 3))) if with_dilation else (1, 1)
    # torch's rule: each pad at most half the kernel on its axis.
    ph, pw = st.integers(0, kh // 2), st.integers(0, kw // 2)
    form = draw(st.sampled_from(["int", "pair", "4"]))
    if form == "int":
        padding = draw(st.integers(0, min(kh, kw) // 2))
        pads = (padding,) * 4
    elif form == "pair":
        padding = (draw(ph), draw(pw))
        pads = (padding[0], padding[0], padding[1], padding[1])
    else:
        padding = pads = (draw(ph), draw(ph), draw(pw), draw(pw))
    lo_h = max(dilation[0] * (kh - 1) + 1 - pads[0] - pads[1], 1)
    lo_w = max(dilation[1] * (kw - 1) + 1 - pads[2] - pads[3], 1)
    return dict(n=draw(st.integers(1, 3)), c=draw(CHANNELS), h=draw(st.integers(lo_h, lo_h + 6)),
                w=draw(st.integers(lo_w, lo_w + 6)), kernel_size=(kh, kw) if kh != kw or draw(st.booleans()) else kh,
                stride=stride, padding=padding, symmetric=form != "4", dilation=dilation,
                ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def _input(case):
    return rand(np.random.default_rng(case["seed"]), case["n"], case["c"], case["h"], case["w"])


@given(pool_cases(with_dilation=True))
def test_max_pool2d(isa, threads, case):
    x = _input(case)
    args = dict(kernel_size=case["kernel_size"], stride=case["stride"], padding=case["padding"],
                dilation=case["dilation"], ceil_mode=case["ceil_mode"])
    got = F.max_pool2d(x, **args)
    check(got, ref.max_pool2d(x, **args))
    if case["symmetric"]:
        check_torch(got, "max_pool2d", x, **args)


@given(pool_cases(with_dilation=False))
def test_avg_pool2d(isa, threads, case):
    x = _input(case)
    args = dict(kernel_size=case["kernel_size"], stride=case["stride"], padding=case["padding"],
                ceil_mode=case["ceil_mode"], count_include_pad=case["count_include_pad"])
    got = F.avg_pool2d(x, **args)
    check(got, ref.avg_pool2d(x, **args))
    if case["symmetric"]:
        check_torch(got, "avg_pool2d", x, **args)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_ceil_mode_partial_windows(isa, threads, count_include_pad):
    rng = np.random.default_rng(1)
    # H=6, k=3, s=2, pad=1: the 4th window starts at 5 and hangs past the padding (divisor 2 or 1, not 3).
    x = rand(rng, 2, 3, 6, 6)
    got = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=count_include_pad)
    assert got.shape == (2, 3, 4, 4)
    check(got, ref.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=count_include_pad))
    # H=5, k=2, s=2, pad=1: a 4th window would start in the end padding, so ceil_mode drops it.
    x = rand(rng, 1, 2, 5, 5)
    got = F.max_pool2d(x, 2, 2, 1, ceil_mode=True)
    assert got.shape == (1, 2, 3, 3)
    check(got, ref.max_pool2d(x, 2, 2, 1, ceil_mode=True))
    got = F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=count_include_pad)
    check(got, ref.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=count_include_pad))


def test_max_pool2d_padding_never_wins(isa):
    # All inputs negative: a zero from the padding must never be the max.
    x = -1 - np.abs(rand(np.random.default_rng(2), 1, 17, 5, 4))
    got = F.max_pool2d(x, 3, 1, 1)
    assert (got < 0).all()
    check(got, ref.max_pool2d(x, 3, 1, 1))


def test_max_pool2d_dilated_window_only_in_padding(isa):
    # H=W=2, k=2, dilation=3, pad=1: the one window's taps sit at -1 and 2, both in the padding -> -inf, as torch.
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    got = F.max_pool2d(x, 2, 1, 1, dilation=3)
    assert got.shape == (1, 1, 1, 1) and got[0, 0, 0, 0] == -np.inf
    check(got, ref.max_pool2d(x, 2, 1, 1, dilation=3))
    check_torch(got, "max_pool2d", x, kernel_size=2, stride=1, padding=1, dilation=3)


def test_pool_1x1_input(isa):
    x = rand(np.random.default_rng(3), 2, 5, 1, 1)
    check(F.max_pool2d(x, 1), ref.max_pool2d(x, 1))
    check(F.max_pool2d(x, 3, 1, 1), ref.max_pool2d(x, 3, 1, 1))
    check(F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), ref.avg_pool2d(x, 3, 2, 1, ceil_mode=True))
    check(F.avg_pool2d(x, 2, 1, 1, count_include_pad=False), ref.avg_pool2d(x, 2, 1, 1, count_include_pad=False))
    check(F.adaptive_avg_pool2d(x, 3), ref.adaptive_avg_pool2d(x, 3))
    check(F.global_max_pool2d(x), ref.global_max_pool2d(x))


SIZES = st.one_of(st.integers(1, 9), st.tuples(st.integers(1, 9), st.integers(1, 9)))


@given(st.integers(1, 3), CHANNELS, st.integers(1, 13), st.integers(1, 13), SIZES, st.integers(0, 2**32 - 1))
def test_adaptive_pool2d(isa, threads, n, c, h, w, output_size, seed):
    x = rand(np.random.default_rng(seed), n, c, h, w)
    got = F.adaptive_avg_pool2d(x, output_size)
    check(got, ref.adaptive_avg_pool2d(x, output_size))
    check_torch(got, "adaptive_avg_pool2d", x, output_size=output_size)
    got = F.adaptive_max_pool2d(x, output_size)
    check(got, ref.adaptive_max_pool2d(x, output_size))
    check_torch(got, "adaptive_max_pool2d", x, output_size=output_size)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 17, 7, 7), (3, 64, 5, 3), (1, 1280, 7, 7), (2, 3, 1, 13)])
def test_global_pool2d(isa, threads, shape):
    x = rand(np.random.default_rng(4), *shape, scale=3)
    got = F.global_avg_pool2d(x)
    assert got.shape == shape[:2] + (1, 1)
    check(got, ref.global_avg_pool2d(x))
    check(F.global_max_pool2d(x), ref.global_max_pool2d(x))


def test_pool_non_contiguous_and_read_only(isa, threads):
    rng = np.random.default_rng(5)
    x = rand(rng, 2, 9, 8, 6).transpose(0, 1, 3, 2)[:, ::2]  # (2, 5, 6, 8), strided in every axis but N
    assert not x.flags.c_contiguous
    check(F.max_pool2d(x, 3, 2, 1), ref.max_pool2d(x, 3, 2, 1))
    check(F.avg_pool2d(x, 2), ref.avg_pool2d(x, 2))
    check(F.adaptive_avg_pool2d(x, (2, 3)), ref.adaptive_avg_pool2d(x, (2, 3)))
    check(F.global_avg_pool2d(x), ref.global_avg_pool2d(x))
    y = np.ascontiguousarray(x)
    y.flags.writeable = False
    check(F.max_pool2d(y, 2, ceil_mode=True), ref.max_pool2d(y, 2, ceil_mode=True))
    check(F.adaptive_max_pool2d(y, 4), ref.adaptive_max_pool2d(y, 4))
    check(F.global_max_pool2d(y), ref.global_max_pool2d(y))
