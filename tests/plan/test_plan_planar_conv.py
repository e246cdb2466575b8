"""Dense convolutions with few output channels (at most half a vector: Basic Pitch's constant-Q filters, one-channel
detector heads) run by the Plan's planar form (`conv_planar`: zero-padded planes per channel and column phase, the
NCHW micro-kernel over output rows): against torch, with every stride / dilation / padding form, a fused residual and
activation, batch > 1, one output row split by columns, 1 and 2 threads."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference import assert_close

import convcore
import convcore.functional as F

torch = pytest.importorskip("torch")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def torch_conv(x, w, b, stride, padding, dilation):
    t, bo, le, ri = padding
    xp = torch.nn.functional.pad(torch.from_numpy(x), (le, ri, t, bo))
    return torch.nn.functional.conv2d(xp, torch.from_numpy(w), torch.from_numpy(b), stride, 0, dilation).numpy()


def planar_ops(plan):
    return [op[1] for op in plan.ops() if op[1].endswith("conv_planar")]


@pytest.mark.parametrize("c, k, h, w, r, s, stride, padding, dilation", [
    (8, 8, 12, 70, 3, 39, (1, 1), (1, 1, 19, 19), (1, 1)),   # Basic Pitch's 8-channel layer
    (1, 1, 1, 600, 1, 256, (1, 2), (0, 0, 0, 0), (1, 1)),    # its constant-Q decimation filter: one row
    (32, 1, 9, 40, 7, 3, (1, 1), (3, 3, 1, 1), (1, 1)),      # a one-channel sigmoid head
    (3, 2, 11, 140, 3, 3, (2, 3), (1, 2, 0, 4), (2, 2)),      # strides, dilation, uneven padding
    (12, 4, 6, 50, 1, 2, (1, 1), (0, 0, 0, 0), (1, 1)),      # 1x2
    (2, 3, 3, 40, 5, 5, (1, 1), (3, 3, 3, 3), (1, 1)),       # the kernel larger than the map, padded
])
def test_planar_conv_matches_torch(threads, c, k, h, w, r, s, stride, padding, dilation):
    rng = np.random.default_rng(c * 100 + k)
    wt, b = rand(rng, k, c, r, s) * 0.2, rand(rng, k)

    def fn(x):
        return F.sigmoid(F.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation))

    plan = convcore.compile(fn, (1, c, h, w))
    lanes = {"avx512": 16, "avx2": 8}.get(convcore.get_isa(), 0)
    if 2 * k <= lanes:  # at most half a vector of outputs (8 outputs fill AVX2's 8 lanes: the dense tiles take them)
        assert planar_ops(plan), plan.summary()
    for batch in (1, 3):
        x = rand(rng, batch, c, h, w)
        want = 1 / (1 + np.exp(-torch_conv(x, wt, b, stride, padding, dilation)))
        assert_close(plan(x), want, 1e-5)


def test_planar_conv_with_residual(isa, threads):
    """conv + residual -> relu6: the add joins the planar convolution's epilogue."""
    rng = np.random.default_rng(5)
    w1, b1, w2 = rand(rng, 4, 6, 3, 3) * 0.3, rand(rng, 4), rand(rng, 4, 6, 3, 3) * 0.3

    def fn(x):
        return F.relu6(F.add(F.conv2d(x, w1, b1, padding=1), F.conv2d(x, w2, padding=1)))

    x = rand(rng, 2, 6, 7, 48)
    plan = convcore.compile(fn, x.shape)
    want = np.clip(torch_conv(x, w1, b1, (1, 1), (1, 1, 1, 1), (1, 1)) +
                   torch_conv(x, w2, np.zeros(4, np.float32), (1, 1), (1, 1, 1, 1), (1, 1)), 0, 6)
    assert_close(plan(x), want, 1e-5)
    if isa != "scalar":
        assert any("+res" in op[2] for op in plan.ops() if op[1].endswith("conv_planar")), plan.summary()


@given(c=st.integers(1, 12), k=st.integers(1, 8), h=st.integers(1, 9), w=st.integers(32, 80),
       r=st.integers(1, 5), s=st.integers(1, 9), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dw=st.integers(1, 3), pad=st.integers(0, 3), batch=st.integers(1, 2))
def test_planar_conv_random_shapes(isa, c, k, h, w, r, s, sh, sw, dw, pad, batch):
    rng = np.random.default_rng(c + 7 * k + 13 * s)
    if (h + 2 * pad - r) < 0 or (w + 2 * pad - dw * (s - 1) - 1) < 0:
        return
    wt, b = rand(rng, k, c, r, s), rand(rng, k)
    padding = (pad, pad, pad, pad)

    def fn(x):
        return F.conv2d(x, wt, b, stride=(sh, sw), padding=padding, dilation=(1, dw))

    x = rand(rng, batch, c, h, w)
    assert_close(convcore.compile(fn, x.shape)(x), torch_conv(x, wt, b, (sh, sw), padding, (1, dw)), 1e-5)


def test_pointwise_convs_with_few_outputs_are_not_planar():
    """A 1x1 convolution has one product per copied value: the channels-last tiles read it in place (MTCNN P-Net's
    32 -> 2 and 32 -> 4 heads on 115 x 155 maps: 0.20 ms planar, 0.10 and 0.13 ms as tiles)."""
    rng = np.random.default_rng(7)
    wt, b = rand(rng, 2, 32, 1, 1), rand(rng, 2)
    plan = convcore.compile(lambda x: F.conv2d(x, wt, b), (1, 32, 20, 70))
    x = rand(rng, 1, 32, 20, 70)
    assert_close(plan(x), torch_conv(x, wt, b, (1, 1), (0, 0, 0, 0), (1, 1)), 1e-5)
    assert planar_ops(plan) == []
