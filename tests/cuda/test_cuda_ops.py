"""GPU plans op by op: each kernel of csrc/cuda against the float64 references of tests/reference (bounds of
docs/architecture.md: max|err| <= 1e-5 of max|y| in fp32), on odd shapes, every padding form, groups, dilation,
strides, batch > 1, and each convolution kernel (both SIMT tiles, the grouped tile, split-K, tensor cores).

They run on a GPU, or on the CPU emulator of CUDA elsewhere (the `gpu` fixture, tests/cuda/conftest.py); under
compute-sanitizer they are the memcheck / racecheck workload of scripts/gpu_check.sh.
"""

import importlib
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import activation, assert_close, conv, misc, norm, pool

import convcore
import convcore.functional as F

R = SimpleNamespace(**{k: getattr(m, k) for m in (activation, conv, misc, norm, pool) for k in dir(m)
                       if not k.startswith("_")})
ACTS = ["none", "relu", "relu6", "leaky_relu", "sigmoid", "silu", "tanh", "hardswish", "hardsigmoid"]


def _act(name, x, ref):
    if name == "none":
        return x
    return getattr(R if ref else F, name)(x)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _run(fn, shape, batch=None, seed=0, precision="fp32"):
    """(x, GPU plan output, plan) on a random input of `shape` (batch `batch` when given)."""
    x = np.random.default_rng(seed).standard_normal((batch or shape[0],) + tuple(shape[1:])).astype(np.float32)
    plan = convcore.compile(fn, shape, device="cuda", precision=precision)
    return x, plan(x), plan


def _kernels(plan, batch):
    return [row[1] for row in plan.profile(np.zeros((batch,) + plan.input_shape[1:], np.float32), repeats=1)]


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 9))
    kg = draw(st.integers(1, 40))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pads[0] - pads[1]), 12))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pads[2] - pads[3]), 12))
    n = draw(st.integers(1, 2))
    act = draw(st.sampled_from(ACTS))
    return n, groups * cg, h, w, groups * kg, kh, kw, (sh, sw), (dh, dw), pads, groups, act


def _check_conv(n, c, h, w, k, kh, kw, stride, dilation, pads, groups, act, seed, bound=1e-5, precision="fp32",
                residual=False):
    rng = np.random.default_rng(seed)
    weight, bias = rand(rng, k, c // groups, kh, kw), rand(rng, k)

    def fn(x):
        y = F.conv2d(x, weight, bias, stride, pads, dilation, groups)
        return _act(act, F.add(y, F.relu(y)) if residual else y, False)

    x, y, plan = _run(fn, (n, c, h, w), seed=seed, precision=precision)
    ref = R.conv2d(x, weight, bias, stride, pads, dilation, groups)
    ref = _act(act, R.add(ref, R.relu(ref)) if residual else ref, True)
    terms = R.conv2d(np.abs(x), np.abs(weight), np.abs(bias), stride, pads, dilation, groups)  # size of the sums
    assert_close(y, ref, bound, scale=max(np.abs(ref).max(), np.abs(terms).max()))
    return plan


@settings(max_examples=30)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv_matches_reference(gpu, case, seed):
    _check_conv(*case, seed)


# Shapes that pick each convolution kernel: the 128 x 64 SIMT tile (>= 512 output pixels), the 64 x 64 tile, the
# grouped 64 x 16 tile (<= 16 channels per group), split-K (few output tiles, a long reduction), the 1x1 path.
KERNEL_CASES = {
    "simt_128x64": (2, 5, 23, 17, 70, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "simt_128x64_1x1": (1, 37, 29, 23, 65, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "simt_64x64": (1, 7, 9, 11, 33, 3, 3, (2, 2), (1, 1), (1, 0, 2, 1), 1),
    "simt_64x16_grouped": (2, 12, 9, 7, 48, 3, 3, (1, 1), (2, 2), (2, 2, 2, 2), 4),
    "split_k": (1, 200, 3, 3, 24, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "split_k_1x1_fc": (3, 600, 1, 1, 35, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "split_k_grouped": (1, 96, 2, 2, 96, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 2),
}


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_each_conv_kernel(gpu, name, residual):
    n, c, h, w, k, kh, kw, stride, dilation, pads, groups = KERNEL_CASES[name]
    plan = _check_conv(n, c, h, w, k, kh, kw, stride, dilation, pads, groups, "relu6", 1, residual=residual)
    kernels = " ".join(_kernels(plan, n))
    if gpu == "emulator":  # the emulated device has 4 multiprocessors: split-K shows on these small shapes
        expect = {"simt_128x64": "128x64", "simt_128x64_1x1": "128x64", "simt_64x64": "64x64",
                  "simt_64x16_grouped": "64x16", "split_k": "split-k", "split_k_1x1_fc": "split-k",
                  "split_k_grouped": "split-k"}[name]
        assert expect in kernels, kernels


# Measured single-layer errors against float64 (max|err| / max|y|, C = 64..200 reductions): TF32 ~1e-3, bf16 ~5e-3;
# the bounds leave room for longer reductions. docs/cuda.md lists whole-model figures.
PRECISION_BOUNDS = {"tf32": 4e-3, "bf16": 2.5e-2}


@pytest.mark.parametrize("precision", sorted(PRECISION_BOUNDS))
@pytest.mark.parametrize("case", [(2, 16, 9, 7, 24, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
                                  (1, 64, 6, 5, 40, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
                                  (1, 32, 5, 5, 64, 3, 3, (2, 1), (1, 2), (0, 2, 1, 1), 2)])
def test_tensor_core_precisions_within_bound(gpu, precision, case):
    plan = _check_conv(*case, "none", 3, bound=PRECISION_BOUNDS[precision], precision=precision)
    assert precision in " ".join(_kernels(plan, case[0]))


@pytest.mark.parametrize("k, stride, padding, dilation", [(3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 1), (5, 2, 2, 1),
                                                          (7, 2, 3, 1), (3, 1, 0, 1), (4, 3, 2, 1), (3, 1, 5, 1),
                                                          (3, 1, 2, 2)])
@pytest.mark.parametrize("channels", [7, 16, 37])
def test_depthwise_matches_reference(gpu, k, stride, padding, dilation, channels):
    rng = np.random.default_rng(channels * 31 + k)
    weight, bias = rand(rng, channels, 1, k, k), rand(rng, channels)
    for h, w in [(1, 1), (5, 9), (14, 13)]:
        if h + 2 * padding < dilation * (k - 1) + 1 or w + 2 * padding < dilation * (k - 1) + 1:
            continue
        fn = lambda x: F.relu6(F.conv2d(x, weight, bias, stride, padding, dilation, channels))  # noqa: E731
        x, y, plan = _run(fn, (2, channels, h, w))
        ref = R.relu6(R.conv2d(x, weight, bias, stride, padding, dilation, channels))
        assert_close(y, ref, 1e-5)
        assert any("dwconv" in op[1] for op in plan.ops())


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


@settings(max_examples=25)
@given(case=pool_cases())
def test_pools_match_reference(gpu, case):
    n, c, h, w, k, s, d, p, ceil_mode, include = case
    x, y, _ = _run(lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode), (n, c, h, w))
    assert_close(y, R.max_pool2d(x, k, s, p, d, ceil_mode), 1e-6)
    x, y, _ = _run(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, include), (n, c, h, w))
    assert_close(y, R.avg_pool2d(x, k, s, p, ceil_mode, include), 1e-5)


@pytest.mark.parametrize("out", [1, 2, (3, 5), 7, (1, 4)])
def test_adaptive_and_global_pools(gpu, out):
    for fn, ref in [(F.adaptive_avg_pool2d, R.adaptive_avg_pool2d), (F.adaptive_max_pool2d, R.adaptive_max_pool2d)]:
        x, y, _ = _run(lambda x: fn(x, out), (2, 19, 7, 10))
        assert_close(y, ref(x, out), 1e-5)
    for shape in [(2, 33, 17, 3), (3, 70, 40, 41), (1, 5, 1, 1)]:
        x, y, _ = _run(F.global_avg_pool2d, shape)
        assert_close(y, R.global_avg_pool2d(x), 1e-5)
        x, y, _ = _run(F.global_max_pool2d, shape)
        assert_close(y, R.global_max_pool2d(x), 0)


def test_nan_propagates(gpu):
    x = np.random.default_rng(0).standard_normal((1, 20, 6, 6)).astype(np.float32)
    x[0, 3, 2, 2] = np.nan
    plan = convcore.compile(lambda v: (F.max_pool2d(v, 2), F.relu(v), F.global_max_pool2d(v)), x.shape, device="cuda")
    pooled, relu, gmax = plan(x)
    assert np.isnan(pooled[0, 3, 1, 1]) and np.isnan(pooled).sum() == 1
    assert np.isnan(relu[0, 3, 2, 2]) and np.isnan(relu).sum() == 1
    assert np.isnan(gmax[0, 3]) and np.isnan(gmax).sum() == 1


@pytest.mark.parametrize("other", [(2, 17, 5, 6), (1, 17, 1, 1), (2, 17, 1, 1), (1, 1, 1, 1), (1, 17, 5, 6),
                                   (2, 1, 5, 6), (1, 1, 5, 1)])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_broadcasting_binary_ops(gpu, other, op):
    b = rand(np.random.default_rng(2), *other)
    const = b[:1] if other[0] == 1 else None

    def fn(x):
        return F.tanh(getattr(F, op)(F.relu(x), const if const is not None else F.relu(x)))

    x, y, _ = _run(fn, (2, 17, 5, 6))
    r = R.relu(x)
    assert_close(y, R.tanh(getattr(R, op)(r, const if const is not None else r)), 1e-6)


@pytest.mark.parametrize("act", ACTS[1:])
def test_activations_and_batch_norm(gpu, act):
    rng = np.random.default_rng(7)
    mean, var, g, b = rand(rng, 12), np.abs(rand(rng, 12)) + 0.5, rand(rng, 12), rand(rng, 12)
    w = rand(rng, 12, 12, 3, 3)

    def fn(x):  # a batch norm before a padded conv stays a scale-shift op; the activation joins it
        h = F.conv2d(_act(act, F.batch_norm(x, mean, var, g, b), False), w, padding=1)
        return h, _act(act, x, False)

    x, (y, a), plan = _run(fn, (2, 12, 5, 7))
    assert_close(y, R.conv2d(_act(act, R.batch_norm(x, mean, var, g, b), True), w, padding=1), 1e-5)
    assert_close(a, _act(act, x, True), 1e-6)
    assert any("scale_shift" in op[1] for op in plan.ops())


def test_squeeze_excitation_and_lrn(gpu):
    rng = np.random.default_rng(3)
    w1, b1, w2, b2 = rand(rng, 4, 24, 1, 1), rand(rng, 4), rand(rng, 24, 4, 1, 1), rand(rng, 24)

    def fn(x):
        s = F.sigmoid(F.conv2d(F.silu(F.conv2d(F.global_avg_pool2d(x), w1, b1)), w2, b2))
        return F.local_response_norm(F.mul(x, s), 5, 1e-3, 0.75, 2.0)

    x, y, _ = _run(fn, (2, 24, 7, 9))
    s = R.sigmoid(R.conv2d(R.silu(R.conv2d(R.global_avg_pool2d(x), w1, b1)), w2, b2))
    assert_close(y, R.local_response_norm(R.mul(x, s), 5, 1e-3, 0.75, 2.0), 1e-5)


def test_concat_in_place_and_copied(gpu):
    rng = np.random.default_rng(4)
    ws = [rand(rng, k, 8, 3, 3) for k in (5, 16, 3)]
    w1 = rand(rng, 6, 8, 1, 1)

    def fn(x):
        a, b, c = (F.conv2d(x, w, padding=1) for w in ws)
        first = F.concat([a, b], axis=1)
        y = F.conv2d(x, w1)
        return F.relu(F.concat([a, b, c], axis=1)), F.max_pool2d(first, 2), F.concat([x, y, y], axis=1)

    x, (y1, y2, y3), plan = _run(fn, (2, 8, 6, 8))
    a, b, c = (R.conv2d(x, w, padding=1) for w in ws)
    assert_close(y1, R.relu(np.concatenate([a, b, c], 1)), 1e-5)
    assert_close(y2, R.max_pool2d(np.concatenate([a, b], 1), 2), 1e-5)
    y = R.conv2d(x, w1)
    assert_close(y3, np.concatenate([x, y, y], 1), 1e-5)
    assert any(op[1] == "cuda_copy_channels" for op in plan.ops())


@pytest.mark.parametrize("mode, coordinate, resize", [
    ("nearest", "asymmetric", dict(scales=(1, 1, 2, 2))),
    ("linear", "half_pixel", dict(scales=(1, 1, 2, 0.5))),
    ("linear", "align_corners", dict(size=(None, None, 7, None))),
    ("cubic", "pytorch_half_pixel", dict(scales=(1, 1, 0.5, 0.75), antialias=True)),
    ("linear", "tf_crop_and_resize", dict(size=(None, None, 6, 9), roi=(0, 0, -0.2, 0.1, 1, 1, 1.2, 0.9),
                                          extrapolation_value=-2.0)),
])
def test_resize_inside_the_gpu_plan(gpu, mode, coordinate, resize):
    """resize as one GPU op (both axes' tables on the device), on a map read from a concatenation and written into
    one; equal to the CPU Plan."""
    rng = np.random.default_rng(6)
    w1, w2 = rand(rng, 5, 3, 1, 1), rand(rng, 4, 3, 1, 1)

    def fn(x):
        a = F.conv2d(x, w1)
        both = F.concat([a, F.conv2d(x, w2)], axis=1)
        r = F.resize(a, mode=mode, coordinate_transformation_mode=coordinate, **resize)
        return F.concat([r, F.resize(both, mode=mode, coordinate_transformation_mode=coordinate, **resize)], axis=1)

    x, y, plan = _run(fn, (2, 3, 5, 6))
    assert plan.eager_nodes == [] and any(op[1] in ("cuda_resample", "cuda_copy_pixels") for op in plan.ops())
    assert_close(y, convcore.compile(fn, x.shape)(x), 1e-5)


def test_channel_slices_inside_the_gpu_plan(gpu):
    """A split's parts are views into the map on the GPU too (the shared core's views), concatenated back without a
    copy; a part convolved and a part read as an output."""
    rng = np.random.default_rng(7)
    w0, w1 = rand(rng, 10, 3, 3, 3), rand(rng, 4, 3, 1, 1)

    def fn(x):
        y = F.relu(F.conv2d(x, w0, padding=1))
        a, b, c = F.slice(y, [0], [4], [1]), F.slice(y, [4], [7], [1]), F.slice(y, [7], [10], [1])
        return F.concat([a, b, c, F.conv2d(b, w1)], axis=1), c

    x, ys, plan = _run(fn, (2, 3, 5, 6))
    assert plan.eager_nodes == [] and not any(op[1] == "cuda_copy_channels" for op in plan.ops())
    for got, want in zip(ys, convcore.compile(fn, x.shape)(x)):
        assert_close(got, want, 1e-5)


def test_nhwc_inputs_and_outputs_inside_the_gpu_plan(gpu):
    """A Keras-style graph (NHWC in, NHWC softmax out, a dense head on the NHWC flatten): the GPU Plan copies the
    input as it is and writes the outputs as stored, like the CPU Plan."""
    rng = np.random.default_rng(8)
    w1, w2, w3 = rand(rng, 8, 3, 3, 3), rand(rng, 2, 8, 1, 1), rand(rng, 5, 8 * 3 * 4)

    def fn(x):
        h = F.relu(F.conv2d(F.transpose(x, (0, 3, 1, 2)), w1))
        probs = F.softmax(F.transpose(F.conv2d(h, w2), (0, 2, 3, 1)), axis=3)
        return probs, F.linear(F.flatten(F.transpose(h, (0, 2, 3, 1))), w3)

    x, ys, plan = _run(fn, (2, 5, 6, 3))
    assert plan.eager_nodes == [] and plan.ops()[0][1] == "cuda_copy_in"
    for got, want in zip(ys, convcore.compile(fn, x.shape)(x)):
        assert_close(got, want, 1e-5)


def test_channels_last_block_and_channel_shuffle_inside_the_gpu_plan(gpu):
    """ConvNeXt's channels-last half (layer norm over the last axis, linear layers as 1x1 convolutions, GELU) and a
    ShuffleNet channel shuffle (one channel gather): one GPU segment, as on the CPU."""
    rng = np.random.default_rng(9)
    c = 12
    w1, b1, w2, lw, lb = rand(rng, 3 * c, c), rand(rng, 3 * c), rand(rng, c, 3 * c), rand(rng, c), rand(rng, c)
    wc = rand(rng, c, 3, 3, 3)

    def fn(x):
        y = F.conv2d(x, wc, padding=1)
        t = F.layer_norm(F.transpose(y, (0, 2, 3, 1)), lw, lb)
        t = F.transpose(F.linear(F.gelu(F.linear(t, w1, b1)), w2), (0, 3, 1, 2))
        _, _, h, w = y.shape
        return F.reshape(F.transpose(F.reshape(F.add(y, t), (-1, 2, c // 2, h, w)), (0, 2, 1, 3, 4)), (-1, c, h, w))

    x, y, plan = _run(fn, (2, 3, 5, 6))
    kinds = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and "cuda_layer_norm" in kinds and "cuda_gather_channels" in kinds, kinds
    assert_close(y, fn(x), 1e-5)


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5)])
def test_flatten_linear_softmax(gpu, h, w):
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
    x, s, _ = _run(lambda v: F.softmax(v, axis=1), (2, 300, 2, 3))  # more channels than the block has threads
    assert_close(s, R.softmax(x), 1e-5)


def test_inverted_residual_block(gpu, monkeypatch):
    """An MBConv block the lowering fuses (at any size here): on the GPU, its three convolutions."""
    monkeypatch.setattr(importlib.import_module("convcore.plan.fusion"), "MBCONV_MIN_BYTES", 0)
    rng = np.random.default_rng(10)
    we, wd = rand(rng, 96, 16, 1, 1, scale=0.3), rand(rng, 96, 1, 3, 3, scale=0.3)
    wp = rand(rng, 16, 96, 1, 1, scale=0.3)

    def fn(x):
        h = F.relu6(F.conv2d(x, we))
        h = F.relu6(F.conv2d(h, wd, stride=1, padding=1, groups=96))
        return F.add(F.conv2d(h, wp), x)

    x, y, plan = _run(fn, (1, 16, 28, 28))
    h = R.relu6(R.conv2d(R.relu6(R.conv2d(x, we)), wd, padding=1, groups=96))
    assert_close(y, R.add(R.conv2d(h, wp), x), 1e-5)
    assert any(op[0].endswith(".project") for op in plan.ops())  # the lowering asked for mbconv


def test_any_batch_size(gpu):
    w = rand(np.random.default_rng(9), 8, 3, 3, 3)
    plan = convcore.compile(lambda x: F.relu(F.conv2d(x, w, padding=1)), (1, 3, 10, 10), device="cuda")
    for n in (3, 1, 5, 3):
        x = np.random.default_rng(n).standard_normal((n, 3, 10, 10)).astype(np.float32)
        out = np.empty((n, 8, 10, 10), np.float32)
        assert plan.run(x, out=out) is out
        assert_close(out, R.relu(R.conv2d(x, w, padding=1)), 1e-5)


EMULATOR_ORDER_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
import cuda_build, convcore, convcore.cuda
from convcore import models
convcore.cuda._set_module(cuda_build.load(sys.argv[1]))
assert convcore.cuda.config()["emulator_thread_order"] == sys.argv[4]
x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
outs = []
rng = np.random.default_rng(1)
for name in ("resnet18", "mobilenet_v2", "densenet121"):
    model = models.get_model(name).eval()
    for value in model.state_dict().values():  # the same weights in both processes
        value[...] = rng.standard_normal(value.shape) * 0.1 + (1.0 if value.ndim == 1 else 0.0)
    outs.append(convcore.compile(model, x.shape, device="cuda")(x))
np.save(sys.argv[3], np.concatenate([o.ravel() for o in outs]))
"""


def test_emulated_results_do_not_depend_on_thread_order(gpu, _cuda_module, tmp_path):
    """Race check on the emulator: every block's threads run in order, then in reverse order between barriers; a
    kernel whose threads race (read what another writes without a barrier between) gives different results."""
    if gpu != "emulator":
        pytest.skip("a GPU runs the race check under compute-sanitizer --tool racecheck (scripts/gpu_check.sh)")
    path = _cuda_module[1].__file__
    results = []
    for order in ("forward", "reverse"):
        out = tmp_path / f"{order}.npy"
        env = dict(os.environ, CONVCORE_CUDA_EMULATE_ORDER=order)
        done = subprocess.run([sys.executable, "-c", EMULATOR_ORDER_SCRIPT, path, os.path.dirname(__file__),
                               str(out), order], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(np.load(out))
    assert np.array_equal(results[0], results[1], equal_nan=True)
