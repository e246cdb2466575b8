"""int8 convolutions in the compiled Plan (python/convcore/plan/quantized.py, csrc/kernels/int8*): a convolution
whose input is a fake_quantize (a QDQ pair) and whose weights lie on a per-channel int8 grid runs on the int8
kernels, on every ISA and int8 kernel form the host has (the reference loops, the exact 16-bit vpmaddwd form, AVX-512
VNNI), at 1 and 2 threads, against the QDQ semantics computed in float64 with exact integer sums: equal up to one step
of the output's grid on a few values (the float epilogue's rounding), every padding / stride / dilation / groups form,
odd channel counts, batch 1-3, uint8 and int8 activations with zero points, residual adds and activations."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convcore
import convcore.functional as F
from convcore import _core
from convcore.graph.quantized import int8_weights
from reference import conv as RC

ISAS = convcore.available_isas()
BEST = convcore.show_config(False)["int8_kernels"].get("avx512", "")  # avx512, avx512_vnni or avx512_amx
SLOWER = {"avx512_amx": ["vnni", "madd"], "avx512_vnni": ["madd"]}.get(BEST, [])
KERNELS = [(isa, "auto") for isa in ISAS] + [("avx512", form) for form in SLOWER]
RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


@pytest.fixture(params=KERNELS, ids=[f"{i}-{k}" for i, k in KERNELS])
def kernels(request, monkeypatch):
    """Each ISA's int8 kernels, and on AVX-512 the slower forms this CPU also runs (CONVCORE_INT8=vnni: VNNI on an
    AMX machine; madd: the 16-bit form)."""
    isa, form = request.param
    previous = convcore.get_isa()
    convcore.set_isa(isa)
    if form != "auto":
        monkeypatch.setenv("CONVCORE_INT8", form)
    yield request.param
    convcore.set_isa(previous)


def grid_weight(rng, shape, levels=127):
    """Float weights on a per-output-channel grid: q * scale[k], q within [-levels, levels], each channel reaching
    +-levels (as symmetric quantizers write them)."""
    q = rng.integers(-levels, levels + 1, shape)
    q.reshape(shape[0], -1)[:, 0] = levels * rng.choice([-1, 1], shape[0])
    scale = rng.uniform(1e-3, 5e-2, shape[0]).astype(np.float32)
    return (q * scale.reshape(-1, 1, 1, 1).astype(np.float64)).astype(np.float32), q, scale


def quantized(x, scale, zero, dtype):
    """The integers (q - zero point) of QuantizeLinear, float32 division as ONNX computes it."""
    lo, hi = RANGE[dtype]
    return np.clip(np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zero, lo, hi) - zero


def fake(v, scale, zero, dtype):
    return quantized(v, scale, zero, dtype) * np.float64(np.float32(scale))


def expected(x, q, w_scale, bias, conv, qin, act=None, residual=None, qout=None):
    """QDQ semantics in float64: exact integer sums, then the scales, bias, residual, activation, requantization."""
    acc = RC.conv2d(quantized(x, *qin), q.astype(np.float64), None, **conv)
    y = acc * (np.float64(np.float32(qin[0])) * w_scale.astype(np.float64)).reshape(1, -1, 1, 1)
    y = y + (0 if bias is None else bias.reshape(1, -1, 1, 1))
    y = y + (0 if residual is None else residual)
    if act is not None:
        y = act(y)
    return y if qout is None else fake(y.astype(np.float32), *qout)


def check_int8(got, want, qout):
    """Within one step of the output grid, and off the float64 value (beyond 1e-5) on at most 1% of outputs."""
    diff = np.abs(np.asarray(got, np.float64) - want)
    step = np.float32(qout[0]) if qout else 0.0
    close = diff <= 1e-5 * (np.abs(want).max() + 1e-30) + 1e-5 * np.abs(want)
    assert diff.max() <= step * 1.0001 + 1e-5 * np.abs(want).max(), diff.max()
    assert close.mean() >= 0.99, close.mean()


@st.composite
def qconv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, kg = draw(st.integers(1, 9)), draw(st.integers(8, 24))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, (r - 1) * dilation[0] + 1 - pads[0] - pads[1]), 9))
    w = draw(st.integers(max(1, (s - 1) * dilation[1] + 1 - pads[2] - pads[3]), 9))
    return dict(n=draw(st.integers(1, 3)), c=cg * groups, k=kg * groups, h=h, w=w, r=r, s=s, stride=stride,
                dilation=dilation, padding=pads, groups=groups, dtype=draw(st.sampled_from(["int8", "uint8"])),
                zero=draw(st.integers(-20, 20)), out=draw(st.booleans()), act=draw(st.sampled_from([None, "relu"])),
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def _build(case):
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"]
    zero = abs(case["zero"]) if dtype == "uint8" else case["zero"]
    qin = (float(rng.uniform(0.01, 0.1)), zero, dtype)
    wf, q, w_scale = grid_weight(rng, (case["k"], case["c"] // case["groups"], case["r"], case["s"]))
    bias = rng.standard_normal(case["k"]).astype(np.float32) if case["bias"] else None
    conv = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    qout = (float(rng.uniform(0.02, 0.2)), int(rng.integers(-5, 5)), "int8") if case["out"] else None

    def fn(x):
        y = F.conv2d(F.fake_quantize(x, *qin), wf, bias, **conv)
        y = F.relu(y) if case["act"] else y
        return F.fake_quantize(y, *qout) if qout else y

    x = (rng.standard_normal((case["n"], case["c"], case["h"], case["w"])) * 3).astype(np.float32)
    act = (lambda v: np.maximum(v, 0)) if case["act"] else None
    return fn, x, expected(x, q, w_scale, bias, conv, qin, act, None, qout), qout


@settings(max_examples=25)
@given(case=qconv_cases())
def test_int8_convolution_matches_qdq_semantics(case, kernels, threads):
    fn, x, want, qout = _build(case)
    plan = convcore.compile(fn, x.shape)
    assert plan.eager_nodes == [] and "qconv" in plan.summary()
    check_int8(plan(x), want, qout)


@pytest.mark.parametrize("shape, kernel, padding, stride", [
    ((1, 1, 1, 1), 1, 0, 1),        # a 1x1 input, one channel
    ((2, 5, 3, 3), 5, 2, 1),        # a kernel larger than the input, inside its padding
    ((1, 7, 9, 8), 1, 0, 3),        # stride larger than the kernel
    ((3, 64, 6, 5), 3, 1, 1),       # full 16-byte quads, several tiles
    ((1, 130, 4, 4), 3, 1, 2),      # channel count past a quad and a vector
])
def test_int8_edge_geometries(shape, kernel, padding, stride, kernels, threads):
    case = dict(n=shape[0], c=shape[1], k=33, h=shape[2], w=shape[3], r=kernel, s=kernel, stride=(stride, stride),
                dilation=(1, 1), padding=(padding,) * 4, groups=1, dtype="int8", zero=3, out=True, act="relu",
                bias=True, seed=sum(shape))
    fn, x, want, qout = _build(case)
    plan = convcore.compile(fn, x.shape)
    assert "qconv" in plan.summary()
    check_int8(plan(x), want, qout)


@pytest.mark.parametrize("c, k, kernel, stride, hw, n, dilation", [
    (64, 64, 1, 1, (5, 7), 1, 1),      # pointwise on the float input, 35 pixels: two tiles of 16 and 3 left
    (128, 192, 3, 1, (6, 6), 2, 1),    # 3x3 over padding, two images, three blocks of 64 outputs
    (64, 128, 3, 2, (9, 8), 1, 1),     # strided
    (192, 64, 1, 2, (8, 8), 2, 1),     # strided 1x1 (gathered rows)
    (64, 72, 3, 1, (4, 4), 1, 1),      # 72 outputs: the VNNI tile shape (not AMX's)
    (64, 64, 3, 1, (3, 40), 2, 1),     # rows of 40: tiles at the left edge, inside, across rows; padding rows
    (64, 64, 3, 2, (5, 70), 1, 1),     # strided rows read in place (every other pixel)
    (64, 64, 3, 1, (6, 37), 1, 2),     # dilated
])
def test_int8_amx_shapes(c, k, kernel, stride, hw, n, dilation, kernels, threads):
    """Layers with 64-multiple channel counts (the AMX kernel's, where the CPU has it; the other forms run them too),
    with an activation and the result's grid in the epilogue; edge tiles gathered, inner ones read in place."""
    case = dict(n=n, c=c, k=k, h=hw[0], w=hw[1], r=kernel, s=kernel, stride=(stride, stride),
                dilation=(dilation, dilation), padding=(kernel // 2 * dilation,) * 4, groups=1, dtype="uint8",
                zero=7, out=True, act="relu", bias=True,
                seed=c + k)
    fn, x, want, qout = _build(case)
    plan = convcore.compile(fn, x.shape)
    assert "qconv" in plan.summary(print_out=False)
    check_int8(plan(x), want, qout)


def test_int8_epilogue_residual_activation_and_linear(kernels):
    """A residual add and a non-tile activation (GELU, applied after the store) in the int8 conv's epilogue; a
    fully connected layer on the int8 kernels."""
    rng = np.random.default_rng(4)
    qin = (0.05, 0, "int8")
    wf, q, w_scale = grid_weight(rng, (24, 16, 3, 3))
    wl, ql, sl = grid_weight(rng, (10, 24, 1, 1))
    gelu = lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / np.sqrt(2)))  # noqa: E731

    w2 = (rng.standard_normal((24, 16, 1, 1)) * 0.2).astype(np.float32)

    def fn(x):
        r = F.conv2d(x, w2)  # float weights: the float kernels, computed first (the residual)
        y = F.gelu(F.add(F.conv2d(F.fake_quantize(x, *qin), wf, None, padding=1), r))
        pooled = F.fake_quantize(F.global_avg_pool2d(y), *qin)
        return y, F.linear(F.flatten(pooled), wl.reshape(10, 24))

    x = rng.standard_normal((2, 16, 5, 7)).astype(np.float32)
    plan = convcore.compile(fn, x.shape)
    ops = plan.summary()
    assert plan.eager_nodes == [] and ops.count("qconv") == 2 and "+res+gelu" in ops, ops
    y, z = plan(x)
    r = RC.conv2d(x, w2)
    conv = dict(stride=1, padding=1, dilation=1, groups=1)
    want = expected(x, q, w_scale, None, conv, qin, gelu, r)
    check_int8(y, want, None)
    pooled = quantized(want.mean(axis=(2, 3)).astype(np.float32), *qin)
    want_z = pooled @ ql.reshape(10, 24).T.astype(np.float64) * (np.float32(0.05) * sl.astype(np.float64))
    check_int8(z, want_z, None)


def test_weights_off_any_grid_and_depthwise_stay_float():
    """Float weights (no int8 grid) and depthwise convolutions run the float kernels on the grid's values."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    wd, _, _ = grid_weight(rng, (8, 1, 3, 3))

    def fn(x):
        y = F.conv2d(F.fake_quantize(x, 0.05), w, padding=1)
        return F.conv2d(F.fake_quantize(y, 0.1), wd, padding=1, groups=8)

    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    plan = convcore.compile(fn, x.shape)
    assert "qconv" not in plan.summary() and plan.eager_nodes == []
    np.testing.assert_allclose(plan(x), fn(x), rtol=1e-4, atol=1e-4 * np.abs(fn(x)).max())


def test_int8_weights_finds_each_channels_grid():
    rng = np.random.default_rng(6)
    for levels in (127, 128, 63):
        wf, q, scale = grid_weight(rng, (5, 3, 2, 2), min(levels, 127))
        if levels == 128:  # a channel reaching -128
            q = q.copy()
            q.reshape(5, -1)[:, 0] = -128
            wf = (q * scale.reshape(-1, 1, 1, 1).astype(np.float64)).astype(np.float32)
        got = int8_weights(wf)
        assert got is not None
        np.testing.assert_array_equal(got[0], q)
        np.testing.assert_allclose(got[1], scale, rtol=1e-6)
    q = rng.integers(-127, 128, (6, 4, 3, 3))  # one scale for the tensor (per-tensor files): channels stay below it
    q[0, 0, 0, 0] = 127
    q[1:] //= 4
    w = (q * 0.01).astype(np.float32)
    got = int8_weights(w)  # (any grid holding the values will do: a channel of small values may take a finer one)
    assert got is not None
    np.testing.assert_allclose(got[0] * got[1].reshape(-1, 1, 1, 1).astype(np.float64), w, rtol=1e-6, atol=1e-9)
    zero = np.zeros((2, 3, 1, 1), np.float32)
    assert int8_weights(zero) is not None and not int8_weights(zero)[0].any()
    assert int8_weights(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)) is None


def test_qconv_builder_refuses_bad_parameters():
    plan = _core.Plan(convcore.get_isa())
    x = plan.add_input(4, 3, 3)
    q = np.ones((2, 4, 1, 1), np.int8)
    spec = _core.ConvSpec(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), groups=1)
    for bad in (dict(in_scale=0.0), dict(in_scale=np.nan), dict(in_zero=300), dict(out_grid=(-1.0, 0.0, 0.0))):
        args = dict(spec=spec, in_scale=0.1, in_zero=0, in_uint8=False) | bad
        with pytest.raises(ValueError, match="qconv"):
            plan.qconv("c", x, q, np.ones(2, np.float32), None, **args)
    with pytest.raises(ValueError, match="weight scales"):
        plan.qconv("c", x, q, np.array([1.0, -1.0], np.float32), None, spec=spec, in_scale=0.1, in_zero=0,
                   in_uint8=False)
    with pytest.raises(ValueError, match="weight_scale"):
        plan.qconv("c", x, q, np.ones(3, np.float32), None, spec=spec, in_scale=0.1, in_zero=0, in_uint8=False)


def test_int8_qdq_residual_block(kernels, threads):
    """A QDQ file's residual block: conv -> its grid -> add (the other branch on its grid) -> ReLU -> the result's
    grid, all in the int8 conv's epilogue (no add or fake_quantize op of its own)."""
    rng = np.random.default_rng(8)
    # (scales with no common multiple nearby: a sum of two grids rarely lands on a tie of the third)
    qin, qsum, qskip, qout = (0.0413, 3, "int8"), (0.0517, -2, "int8"), (0.0311, 0, "int8"), (0.0613, -128, "int8")
    wf, q, w_scale = grid_weight(rng, (16, 16, 3, 3))
    conv = dict(stride=1, padding=1, dilation=1, groups=1)

    def fn(x):
        skip = F.fake_quantize(F.relu(x), *qskip)
        y = F.fake_quantize(F.conv2d(F.fake_quantize(x, *qin), wf, None, **conv), *qsum)
        return F.fake_quantize(F.relu(F.add(y, skip)), *qout)

    x = (rng.standard_normal((2, 16, 6, 5)) * 2).astype(np.float32)
    plan = convcore.compile(fn, x.shape)
    ops = plan.summary()
    assert "+requant +res+relu +requant" in ops and " add" not in ops, ops
    skip = fake(np.maximum(x, 0), *qskip)
    y = fake(expected(x, q, w_scale, None, conv, qin).astype(np.float32), *qsum)
    want = fake(np.maximum(y + skip, 0).astype(np.float32), *qout)
    check_int8(plan(x), want, qout)


@pytest.mark.parametrize("c", [8, 64])
def test_int8_chain_passes_bytes_between_convolutions(c, kernels, threads):
    """conv -> ReLU -> grid -> 3x3 conv -> grid -> 1x1 conv: a result read only by int8 convolutions is stored as
    their input bytes (no float tensor, no quantize pass between them); the chain equals the eager QDQ graph up to a
    step of a grid on a few values."""
    rng = np.random.default_rng(c)
    w1, _, _ = grid_weight(rng, (c, c, 1, 1))
    w2, _, _ = grid_weight(rng, (c, c, 3, 3))
    w3, _, _ = grid_weight(rng, (16, c, 1, 1))
    grids = [(0.05, 0, "int8"), (0.0413, -128, "int8"), (0.0531, 3, "uint8"), (0.07, -1, "int8")]

    def fn(x):
        y = F.relu(F.conv2d(F.fake_quantize(x, *grids[0]), w1))
        y = F.conv2d(F.fake_quantize(y, *grids[1]), w2, padding=1)
        return F.fake_quantize(F.conv2d(F.fake_quantize(y, *grids[2]), w3), *grids[3])

    x = (rng.standard_normal((2, c, 7, 9)) * 2).astype(np.float32)
    plan = convcore.compile(fn, x.shape)
    ops = plan.summary(print_out=False)
    assert ops.count("(bytes)") == 4 and "quantize_u8" not in ops, ops  # two stores, two byte inputs
    got, want = plan(x), fn(x)
    diff = np.abs(got - want)
    assert diff.max() <= 2 * 0.07 * 1.0001 and (diff <= 1e-5 * np.abs(want).max()).mean() >= 0.95, diff.max()
