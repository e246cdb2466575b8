"""bf16 convolutions in the compiled Plan (`compile(..., precision="bf16")`, csrc/kernels/bf16*): every kernel form the
host has (the reference loops everywhere; AMX-BF16 and AVX512-BF16 where the CPU has them) against the convolution of
the bf16-rounded input and weights summed in float64 - equal up to fp32 rounding of the sums, far tighter than the
bf16 rounding itself, so a kernel that skipped or misplaced the rounding fails - over padding / stride / dilation /
groups / odd channel counts / batch > 1, with residual adds and activations; a whole network against fp32; and the
clear error on a CPU (or ISA) without bf16 kernels."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convcore
import convcore.functional as F
from reference import conv as RC

BF16 = convcore.show_config(False)["bf16_kernels"]
FORMS = [("scalar", "auto")]
if BF16.get("avx512"):
    FORMS.append(("avx512", "auto"))
    if BF16["avx512"] == "amx_bf16":
        FORMS.append(("avx512", "avx512bf16"))


@pytest.fixture(params=FORMS, ids=[f"{i}-{k}" for i, k in FORMS])
def kernels(request, monkeypatch):
    """The reference kernels, and on a CPU with bf16 instructions its fastest form (and AVX512-BF16 on an AMX CPU:
    CONVCORE_BF16=avx512bf16)."""
    isa, form = request.param
    previous = convcore.get_isa()
    convcore.set_isa(isa)
    if form != "auto":
        monkeypatch.setenv("CONVCORE_BF16", form)
    yield request.param
    convcore.set_isa(previous)


def bf16(a):
    """float32 values rounded to the nearest bfloat16 (ties to even), as float64."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


def expected(x, w, bias, conv, residual=None, act=None):
    """The convolution of the bf16-rounded x and w in float64, then the bias, residual and activation; and the sum of
    the products' magnitudes (what the fp32 sums' rounding scales with)."""
    y = RC.conv2d(bf16(x), bf16(w), None, **conv)
    mag = RC.conv2d(np.abs(bf16(x)), np.abs(bf16(w)), None, **conv)
    y = y + (0 if bias is None else bias.astype(np.float64).reshape(1, -1, 1, 1))
    y = y + (0 if residual is None else residual)
    return (act(y) if act else y), mag


def check(got, want, mag):
    tol = 2e-6 * mag + 1e-6 * np.abs(want).max()
    diff = np.abs(np.asarray(got, np.float64) - want)
    assert (diff <= tol).all(), float((diff / (tol + 1e-30)).max())


@st.composite
def bconv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    cg = draw(st.integers(32 if r * s == 1 else -(-64 // (r * s)), 40))  # a bf16 layer (conv_ops.cpp, bf16_fits)
    kg = draw(st.integers(48, 140))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, (r - 1) * dilation[0] + 1 - pads[0] - pads[1]), 12))
    w = draw(st.integers(max(1, (s - 1) * dilation[1] + 1 - pads[2] - pads[3]), 12))
    return dict(n=draw(st.integers(1, 3)), c=cg * groups, k=kg * groups, h=h, w=w, r=r, s=s, stride=stride,
                dilation=dilation, padding=pads, groups=groups, act=draw(st.booleans()), bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


def run_case(case):
    rng = np.random.default_rng(case["seed"])
    w = rng.standard_normal((case["k"], case["c"] // case["groups"], case["r"], case["s"])).astype(np.float32)
    bias = rng.standard_normal(case["k"]).astype(np.float32) if case["bias"] else None
    conv = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(np.float32)

    def fn(v):
        y = F.conv2d(v, w, bias, **conv)
        return F.relu(y) if case["act"] else y

    plan = convcore.compile(fn, x.shape, precision="bf16")
    assert plan.eager_nodes == [] and len(plan.bf16_ops) == 1
    want, mag = expected(x, w, bias, conv, act=(lambda v: np.maximum(v, 0)) if case["act"] else None)
    check(plan(x), want, mag)


@settings(max_examples=30)
@given(case=bconv_cases())
def test_bf16_convolution_matches_rounded_inputs_in_float64(case, kernels, threads):
    run_case(case)


@pytest.mark.parametrize("shape, k, kernel, padding, stride, groups", [
    ((1, 32, 1, 1), 48, 1, 0, 1, 1),     # a 1x1 input
    ((2, 5, 3, 3), 50, 5, 2, 1, 1),      # a kernel larger than the input, inside its padding (depth 125)
    ((1, 33, 9, 8), 65, 1, 0, 3, 1),     # stride larger than the kernel; 65 outputs: a block and one more
    ((3, 64, 7, 6), 130, 3, 1, 1, 1),    # tiles of 16 pixels and a short one, three blocks
    ((1, 96, 5, 5), 192, 3, 1, 2, 2),    # two groups, each its own blocks and gathered rows
    ((2, 24, 6, 6), 150, 3, 1, 1, 3),    # three groups of 8 channels: depth 72
    ((1, 3, 23, 23), 64, 7, 3, 2, 1),    # a 7x7 stem: 3 channels, window rows read as runs, padding rows
    ((1, 300, 4, 4), 48, 3, 1, 1, 1),    # an im2col depth of 2700: several depth slices
])
def test_bf16_edge_geometries(shape, k, kernel, padding, stride, groups, kernels, threads):
    run_case(dict(n=shape[0], c=shape[1], k=k, h=shape[2], w=shape[3], r=kernel, s=kernel, stride=(stride, stride),
                  dilation=(1, 1), padding=(padding,) * 4, groups=groups, act=True, bias=True, seed=sum(shape)))


def test_bf16_residual_add_and_activation_fused(kernels):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    x = rng.standard_normal((2, 64, 9, 7)).astype(np.float32)

    def fn(v):
        y = F.relu(v)
        return F.relu6(F.conv2d(y, w, bias, padding=1) + y)

    plan = convcore.compile(fn, x.shape, precision="bf16")
    assert plan.bf16_ops and "+res+relu6" in plan.summary(print_out=False)
    y = np.maximum(x, 0)
    want, mag = expected(y, w, bias, dict(padding=1), residual=y.astype(np.float64), act=lambda v: np.clip(v, 0, 6))
    check(plan(x), want, mag)


def test_bf16_results_stored_as_bf16_between_convolutions(kernels, threads):
    """A chain whose inner results only bf16 convolutions read (as input or residual) keeps them as bf16: the
    summary says so, and the result is the chain computed in float64 with each convolution's input rounded to bf16
    (up to a bf16 step: an fp32 sum may round to the neighbouring bf16 value)."""
    rng = np.random.default_rng(3)
    w = [(rng.standard_normal((64, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
         for c, k in ((40, 3), (64, 3), (64, 3), (64, 1))]
    b = [rng.standard_normal(64).astype(np.float32) * 0.1 for _ in w]
    x = rng.standard_normal((2, 40, 11, 9)).astype(np.float32)

    def fn(v):
        a = F.relu(F.conv2d(v, w[0], b[0], padding=1))
        c = F.relu(F.conv2d(a, w[1], b[1], padding=1))
        d = F.relu(F.conv2d(c, w[2], b[2], padding=1) + a)
        return F.conv2d(d, w[3], b[3])

    plan = convcore.compile(fn, x.shape, precision="bf16")
    assert len(plan.bf16_ops) == 4 and plan.summary(print_out=False).count("(bf16 out)") == 3

    def conv(v, i, pad):
        return RC.conv2d(bf16(v), bf16(w[i]), b[i].astype(np.float64), padding=pad)

    a = np.maximum(conv(x, 0, 1), 0)
    c = np.maximum(conv(a, 1, 1), 0)
    d = np.maximum(conv(c, 2, 1) + bf16(a), 0)
    want = conv(d, 3, 0)
    got = plan(x)
    assert np.abs(got - want).max() <= 2 ** -7 * np.abs(want).max()


def test_bf16_network_close_to_fp32():
    """A whole ResNet: its bf16 plan within bf16's rounding of the fp32 plan (inputs and weights rounded to 8
    significant bits at each of its layers), and its top class the same wherever fp32's lead is wider than that."""
    if not BF16.get(convcore.get_isa()):
        pytest.skip("this CPU has no bf16 kernels at the active ISA (the reference form runs in the tests above)")
    from convcore.models import get_model

    model = get_model("resnet18")
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    want = convcore.compile(model, x.shape)(x)
    plan = convcore.compile(model, x.shape, precision="bf16")
    got = plan(x)
    assert len(plan.bf16_ops) >= 20
    err = np.abs(got - want).max() / np.abs(want).max()
    assert 1e-5 < err < 2e-2, err  # rounded (not fp32), and no further off than bf16 explains
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * np.abs(got - want).max()  # (random weights: near-ties happen)
    assert (got.argmax(1) == want.argmax(1))[clear].all()


def test_bf16_needs_bf16_kernels():
    previous = convcore.get_isa()
    try:
        convcore.set_isa("avx2")  # no bf16 instructions at this level, on any CPU
        with pytest.raises(ValueError, match="precision: 'bf16' needs a CPU with AMX-BF16 or AVX512-BF16"):
            convcore.compile(lambda v: F.conv2d(v, np.ones((4, 4, 3, 3), np.float32)), (1, 4, 8, 8),
                             precision="bf16")
    finally:
        convcore.set_isa(previous)
    with pytest.raises(ValueError, match="precision: expected one of"):
        convcore.compile(lambda v: v, (1, 1, 2, 2), precision="fp16")


def test_bf16_survives_pickling_and_other_batches_and_sizes():
    """The precision is part of the plan: a pickled plan, another batch and another input size (compiled again)
    stay bf16."""
    import pickle

    if not BF16.get(convcore.get_isa()):
        pytest.skip("this CPU has no bf16 kernels at the active ISA (the reference form runs in the tests above)")
    from convcore.models import get_model

    model = get_model("resnet18")
    plan = convcore.compile(model, (1, 3, 64, 64), precision="bf16")
    again = pickle.loads(pickle.dumps(plan))
    assert again.precision == "bf16" and again.bf16_ops == plan.bf16_ops
    x = np.random.default_rng(4).standard_normal((3, 3, 96, 80)).astype(np.float32)
    want = convcore.compile(model, x.shape)(x)
    got = plan(x)  # another batch and size: this model compiled again, in bf16
    assert 1e-5 < np.abs(got - want).max() / np.abs(want).max() < 2e-2
    assert plan._shape_variants and all(p.bf16_ops for p in plan._shape_variants.values())
