"""Reference elementwise activations and softmax in float64 (torch definitions), and `CASES`: every activation as
the tests drive it."""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import general as G


def _f64(x):
    return np.asarray(x, np.float64)


def relu(x):
    return np.maximum(_f64(x), 0.0)


def relu6(x):
    return np.clip(_f64(x), 0.0, 6.0)


def leaky_relu(x, negative_slope=0.01):
    x = _f64(x)
    return np.where(x >= 0, x, x * negative_slope)


def sigmoid(x):
    x = _f64(x)
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(x):
    return np.tanh(_f64(x))


def silu(x):
    return _f64(x) * sigmoid(x)


def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return np.clip(_f64(x) + 3.0, 0.0, 6.0) / 6.0


def hardswish(x):
    """x * relu6(x + 3) / 6."""
    return _f64(x) * hardsigmoid(x)


def fake_quantize(x, scale, zero_point, lo=-128, hi=127):
    """dequantize(quantize(x)) as ONNX defines it, the division in float32 as the ops compute it."""
    q = np.clip(np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zero_point, lo, hi)
    return _f64(((q - zero_point) * np.float32(scale)).astype(np.float32))


def log_softmax(x, axis=1):
    x = _f64(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis=1):
    return np.exp(log_softmax(x, axis))


# --- every activation, as each test drives it ------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """An elementwise activation as the tests drive it everywhere it runs - eagerly on every ISA (tests/ops), its
    backward rule (tests/gradients), inside compiled CPU Plans and gradient Plans (tests/plan, tests/gradients) and GPU
    Plans (tests/cuda), its attribute forms (tests/test_registry.py): op `op` called with `attrs`; its float64
    `oracle`; ``torch(t, x)`` the same with torch (None: torch has no such function); `forms`, the normalised form of
    each attribute ("float" or "str"); `positive`: defined on positive inputs only; `limit`: inputs kept within
    [-limit, limit] (where float32 overflows beyond); `straight_through`: a step function whose gradient is torch's
    straight-through estimate (checked against torch, not finite differences), `quantum` its step. Adding an
    activation adds one row here."""

    op: str
    oracle: Callable
    torch: Optional[Callable] = None
    attrs: dict = field(default_factory=dict)
    forms: dict = field(default_factory=dict)
    positive: bool = False
    limit: float = float("inf")
    straight_through: bool = False  # its gradient is torch's straight-through estimate, not the oracle's derivative
    quantum: float = 0.0  # a step function's step (straight_through)

    def assert_close(self, got, want):
        """Compiled results against eager ones: within 1e-4 of max|want|; a step function may land one step away
        where the float rounding of the op before it differs (on a few values)."""
        diff = np.abs(np.asarray(got, np.float64) - want)
        bound = 1e-4 * np.abs(want).max() + 1e-4 * np.abs(want)
        if self.quantum:
            assert diff.max() <= self.quantum * 1.001 and (diff > bound).mean() <= 1e-3, diff.max()
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

    def domain(self, x):
        """x moved into the function's domain."""
        x = np.clip(x, -self.limit, self.limit).astype(np.float32)
        return np.abs(x) + np.float32(0.25) if self.positive else x

    def inputs(self, rng, *shape, scale=4.0):
        """Random inputs over the function's domain (scaled so every piece of the piecewise ones is hit)."""
        return self.domain(rng.standard_normal(shape) * scale)

    def in_epilogues(self, F, seed=3):
        """``(fn, x)``: the activation after a convolution, a depthwise convolution, a residual add and a multiply
        (`F`: convcore.functional), as compiled Plans run it (fused into the epilogue of the op before it)."""
        rng = np.random.default_rng(seed)
        sign = np.abs if self.positive else (lambda a: a)  # positive weights keep log / sqrt / 1/x in their domain
        w = [sign(rng.standard_normal((16, 8, 3, 3)) * 0.1).astype(np.float32) for _ in range(5)]
        wd = sign(rng.standard_normal((8, 1, 3, 3)) * 0.3).astype(np.float32)
        act = getattr(F, self.op)

        def fn(x):
            a = act(F.conv2d(x, w[0], None, 1, 1), **self.attrs)
            b = act(F.conv2d(x, wd, None, 1, 1, 1, 8), **self.attrs)
            d = act(F.add(F.conv2d(x, w[1], None, 1, 1), F.conv2d(x, w[2], None, 1, 1)), **self.attrs)
            e = act(F.mul(F.concat([F.conv2d(x, w[3], None, 1, 1), F.conv2d(x, w[4], None, 1, 1)]),
                          np.float32(0.5)), **self.attrs)
            return F.concat([a, b, d, e])

        return fn, self.domain(rng.standard_normal((2, 8, 12, 12)))


CASES = {
    "relu": Case("relu", relu, lambda t, x: t.relu(x)),
    "relu6": Case("relu6", relu6, lambda t, x: t.nn.functional.relu6(x)),
    "leaky_relu": Case("leaky_relu", lambda x: leaky_relu(x, 0.2), lambda t, x: t.nn.functional.leaky_relu(x, 0.2),
                       {"negative_slope": 0.2}, {"negative_slope": "float"}),
    "sigmoid": Case("sigmoid", sigmoid, lambda t, x: t.sigmoid(x)),
    "tanh": Case("tanh", tanh, lambda t, x: t.tanh(x)),
    "silu": Case("silu", silu, lambda t, x: t.nn.functional.silu(x)),
    "hardswish": Case("hardswish", hardswish, lambda t, x: t.nn.functional.hardswish(x)),
    "hardsigmoid": Case("hardsigmoid", hardsigmoid, lambda t, x: t.nn.functional.hardsigmoid(x)),
    "elu": Case("elu", lambda x: G.elu(x, 0.7), lambda t, x: t.nn.functional.elu(x, 0.7), {"alpha": 0.7},
                {"alpha": "float"}),
    "selu": Case("selu", G.selu, lambda t, x: t.selu(x), {}, {"alpha": "float", "gamma": "float"}),
    "celu": Case("celu", lambda x: G.celu(x, 1.3), lambda t, x: t.nn.functional.celu(x, 1.3), {"alpha": 1.3},
                 {"alpha": "float"}),
    "softplus": Case("softplus", G.softplus, lambda t, x: t.nn.functional.softplus(x)),
    "softsign": Case("softsign", G.softsign, lambda t, x: t.nn.functional.softsign(x)),
    "gelu": Case("gelu", G.gelu, lambda t, x: t.nn.functional.gelu(x), {}, {"approximate": "str"}),
    "gelu_tanh": Case("gelu", lambda x: G.gelu(x, "tanh"), lambda t, x: t.nn.functional.gelu(x, approximate="tanh"),
                      {"approximate": "tanh"}, {"approximate": "str"}),
    "mish": Case("mish", G.mish, lambda t, x: t.nn.functional.mish(x)),
    "erf": Case("erf", G.erf, lambda t, x: t.erf(x)),
    "exp": Case("exp", lambda x: np.exp(_f64(x)), lambda t, x: t.exp(x), limit=80.0),
    "log": Case("log", lambda x: np.log(_f64(x)), lambda t, x: t.log(x), positive=True),
    "sqrt": Case("sqrt", lambda x: np.sqrt(_f64(x)), lambda t, x: t.sqrt(x), positive=True),
    "neg": Case("neg", lambda x: -_f64(x), lambda t, x: t.neg(x)),
    "abs": Case("abs", lambda x: np.abs(_f64(x)), lambda t, x: t.abs(x)),
    "reciprocal": Case("reciprocal", lambda x: 1.0 / _f64(x), lambda t, x: t.reciprocal(x), positive=True),
    "clip": Case("clip", lambda x: G.clip(x, -1.0, 2.0), lambda t, x: t.clamp(x, -1.0, 2.0),
                 {"min": -1.0, "max": 2.0}, {"min": "float", "max": "float"}),
    "shrink": Case("shrink", lambda x: np.where(x < -0.5, _f64(x) + 0.5, np.where(x > 0.5, _f64(x) - 0.5, 0.0)),
                   lambda t, x: t.nn.functional.softshrink(x, 0.5), {"lambd": 0.5, "bias": 0.5},
                   {"lambd": "float", "bias": "float"}),
    # (a power-of-2 scale: x / scale and torch's x * (1 / scale) round alike)
    "fake_quant": Case("fake_quantize", lambda x: fake_quantize(x, 0.0625, -3),
                       lambda t, x: t.fake_quantize_per_tensor_affine(x, 0.0625, -3, -128, 127),
                       {"scale": 0.0625, "zero_point": -3, "dtype": "int8"},
                       {"scale": "float", "zero_point": "int", "dtype": "str"}, straight_through=True, quantum=0.0625),
}
