"""Property-based differential fuzzing of compiled Plans (issue 22): random small CNNs - dense, strided, dilated,
grouped and depthwise convolutions (Winograd-eligible ones included), every activation, residual adds, gates,
concatenations, pooling, flatten + linear - run by torch, eagerly and as Plans with Winograd on and off, on every
ISA, at the compiled batch and another, on ordinary inputs and on inputs holding NaN, infinities and huge values.

The contract: the Plan gives eager's answer (non-finite exactly where eager has them, finite values within the
documented bounds: 1e-4 of max|y| direct, 1e-3 with Winograd) and eager gives torch's. In the suite: a short
derandomized run; fuzz/run.py runs it with CONVCORE_FUZZ_EXAMPLES examples and random seeds.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convcore
import convcore.functional as F

torch = pytest.importorskip("torch")

EXAMPLES = int(os.environ.get("CONVCORE_FUZZ_EXAMPLES", "15"))
LONG_RUN = "CONVCORE_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG_RUN, database=None,
                suppress_health_check=list(HealthCheck))
ACTS = ["relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "gelu", "leaky_relu", None]


@st.composite
def networks(draw):
    """A random CNN as a list of layer descriptions, its input shape and a seed for its weights."""
    c = draw(st.sampled_from([3, 8, 16, 32]))
    shape = (draw(st.integers(1, 3)), c, draw(st.integers(5, 20)), draw(st.integers(5, 20)))
    layers = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "conv3x3", "dw", "residual", "gate", "concat", "pool"]))
        layers.append((kind, draw(st.sampled_from(ACTS)), draw(st.integers(0, 2**16)),
                       draw(st.sampled_from([1, 1, 2])), draw(st.sampled_from([1, 1, 2])),
                       draw(st.sampled_from([8, 16, 32, 48]))))
    return layers, shape, draw(st.booleans()), draw(st.integers(0, 2**16))


def build(layers, shape, head, mod):
    """fn(x) over convcore.functional or torch (`mod`), and the weights it closes over (shared by both)."""
    params = []

    def weights(seed, *dims, scale):
        w = (np.random.default_rng(seed).standard_normal(dims) * scale).astype(np.float32)
        params.append(w)
        return w

    def act(y, name):
        if name is None:
            return y
        if mod is F:
            return getattr(F, name)(y)
        fn = {"relu6": torch.nn.functional.relu6, "silu": torch.nn.functional.silu,
              "hardswish": torch.nn.functional.hardswish, "gelu": torch.nn.functional.gelu,
              "leaky_relu": torch.nn.functional.leaky_relu}.get(name)
        return fn(y) if fn else getattr(torch, name)(y)

    def conv(y, w, b, stride=1, padding=0, dilation=1, groups=1):
        if mod is F:
            return F.conv2d(y, w, b, stride, padding, dilation, groups)
        return torch.nn.functional.conv2d(y, torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation,
                                          groups)

    def pool(y):
        return F.max_pool2d(y, 3, 2, 1) if mod is F else torch.nn.functional.max_pool2d(y, 3, 2, 1)

    def add(a, b):
        return F.add(a, b) if mod is F else a + b

    def mul(a, b):
        return F.mul(a, b) if mod is F else a * b

    def cat(a, b):
        return F.concat([a, b]) if mod is F else torch.cat([a, b], 1)

    plan = []  # (kind, act, arrays...) fixed once, so both modules use the same weights
    c, h, w_ = shape[1:]
    for kind, name, seed, stride, dilation, k in layers:
        if kind == "pool" and min(h, w_) < 3:
            kind = "conv"
        if kind in ("conv", "conv3x3"):
            r = 3 if kind == "conv3x3" else int(np.random.default_rng(seed).choice([1, 3, 5]))  # odd: "same" padding
            s, d = (1, 1) if kind == "conv3x3" else (stride, dilation)
            pad = d * (r - 1) // 2
            plan.append((kind, name, s, d, pad, 1, weights(seed, k, c, r, r, scale=1 / np.sqrt(c * r * r)),
                         weights(seed + 1, k, scale=0.1)))
            h, w_, c = (h + 2 * pad - d * (r - 1) - 1) // s + 1, (w_ + 2 * pad - d * (r - 1) - 1) // s + 1, k
        elif kind == "dw":
            plan.append((kind, name, stride, 1, 1, c, weights(seed, c, 1, 3, 3, scale=1 / 3),
                         weights(seed + 1, c, scale=0.1)))
            h, w_ = (h - 1) // stride + 1, (w_ - 1) // stride + 1
        elif kind in ("residual", "gate", "concat"):
            plan.append((kind, name, 1, 1, 1, 1, weights(seed, c, c, 3, 3, scale=1 / np.sqrt(9 * c)),
                         weights(seed + 1, c, scale=0.1)))
            c = 2 * c if kind == "concat" else c
        else:
            plan.append((kind, name))
            h, w_ = (h - 1) // 2 + 1, (w_ - 1) // 2 + 1
    lin = weights(7, 5, c * h * w_, scale=1 / np.sqrt(c * h * w_)) if head else None

    def fn(x):
        y = x
        for step in plan:
            kind, name = step[:2]
            if kind == "pool":
                y = act(pool(y), name)
                continue
            _, _, s, d, pad, g, w, b = step
            z = conv(y, w, b, s, pad, d, g)
            if kind == "residual":
                z = add(z, y)
            elif kind == "gate":
                z = mul(z, act(y, "sigmoid"))
            elif kind == "concat":
                z = cat(z, y)
            y = act(z, name)
        if lin is not None:
            flat = F.flatten(y) if mod is F else torch.flatten(y, 1)
            y = F.linear(flat, lin) if mod is F else flat @ torch.from_numpy(lin).T
        return y

    return fn


def _inputs(shape, seed, special):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if special:
        rng = np.random.default_rng(seed + 1)
        for value in (np.nan, np.inf, -np.inf, 1e30):
            x.flat[int(rng.integers(x.size))] = value
    return x


def _assert_like(got, want, bound, what):
    assert got.shape == want.shape, what
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN where the reference has none, or not"
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.array_equal(got[np.isinf(want)],
                                                                            want[np.isinf(want)]), what
    finite = np.isfinite(want)
    if finite.any():
        scale = max(float(np.abs(want[finite]).max()), 1e-6)
        err = float(np.abs(got[finite] - want[finite]).max())
        assert err <= bound * scale, f"{what}: max|err| {err:.3e} > {bound} * {scale:.3e}"


@FUZZ
@given(networks())
def test_random_cnns_plan_eager_and_torch_agree(isa, case):
    layers, shape, head, seed = case
    ours, theirs = build(layers, shape, head, F), build(layers, shape, head, torch)
    x = _inputs(shape, seed, special=False)
    eager = ours(x)
    with torch.no_grad():
        _assert_like(eager, theirs(torch.from_numpy(x)).numpy(), 1e-4, "eager vs torch")
    plans = {w: convcore.compile(ours, shape, winograd=w) for w in (False, True)}
    for special in (False, True):
        for batch in (shape[0], shape[0] % 3 + 1):
            xb = _inputs((batch, *shape[1:]), seed + batch, special)
            with np.errstate(all="ignore"):
                want = ours(xb)
                for winograd, plan in plans.items():
                    _assert_like(plan(xb), want, 1e-3 if winograd else 1e-4,
                                 f"plan (winograd={winograd}, batch {batch}, special={special}) vs eager")
