"""The ops' shape rules (their declarations' `rule`, which graphs, the tracer and the importer read): against torch's
output shapes, the functional API's padding formulas, and convcore's eager ops."""

import inspect
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convcore.functional as F
from convcore.ops import OPS, window


def infer_shape(op, shapes, attrs):
    return OPS[op].infer(shapes, attrs)[1]


def conv_pads(padding, in_hw, kernel_hw, stride=1, dilation=1):
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    return window.conv_padding(padding, in_hw, kernel_hw, pair(stride), pair(dilation))

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def test_tensor_args_match_functional_signatures():
    # The IR maps node inputs back to these argument names, so they must be the functional API's.
    for op, declared in OPS.items():
        params = list(inspect.signature(getattr(F, op)).parameters)
        assert params[:len(declared.inputs)] == list(declared.inputs), (op, params)


@needs_torch
@given(c=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12), k=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dil=st.tuples(st.integers(1, 2), st.integers(1, 2)), groups=st.sampled_from([1, 2]))
def test_conv2d_shape_matches_torch(c, h, w, k, kw, stride, pad, dil, groups):
    shapes = [(2, c * groups, h, w), (3 * groups, c, k, kw), None]
    attrs = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    try:
        ref = TF.conv2d(torch.zeros(shapes[0]), torch.zeros(shapes[1]), None, stride, pad, dil, groups).shape
    except RuntimeError:  # kernel larger than the padded input
        with pytest.raises(ValueError):
            infer_shape("conv2d", shapes, attrs)
        return
    assert infer_shape("conv2d", shapes, attrs) == tuple(ref)


@given(size=st.integers(1, 20), k=st.integers(1, 5), stride=st.integers(1, 3), dil=st.integers(1, 3))
def test_same_and_full_padding(size, k, stride, dil):
    # The functional API's definitions: 'same' -> ceil(in / stride) with the extra pixel at the end, 'full' ->
    # dil * (k - 1) on each side.
    top, bottom, left, right = conv_pads("same", (size, size), (k, k), stride, dil)
    assert (top, bottom) == (left, right) and bottom - top in (0, 1)
    assert infer_shape("conv2d", [(1, 1, size, size), (1, 1, k, k), None],
                       dict(stride=stride, padding="same", dilation=dil))[2] == math.ceil(size / stride)
    assert top + bottom == max((math.ceil(size / stride) - 1) * stride + dil * (k - 1) + 1 - size, 0)
    assert conv_pads("full", (size, size), (k, k), stride, dil) == (dil * (k - 1),) * 4
    assert conv_pads("valid", (size, size), (k, k)) == (0, 0, 0, 0)
    assert conv_pads((1, 2), (size, size), (k, k)) == (1, 1, 2, 2)


def test_asymmetric_padding():
    shape = infer_shape("conv2d", [(1, 3, 10, 10), (4, 3, 3, 3), (4,)], dict(padding=(1, 0, 2, 3), stride=1))
    assert shape == (1, 4, 9, 13)
    assert infer_shape("max_pool2d", [(1, 3, 10, 10)], dict(kernel_size=(3, 7), stride=1, padding=(1, 0, 2, 3))) == \
        (1, 3, 9, 9)
    # The rule refuses what F.max_pool2d refuses: padding above half the kernel (one declaration serves both).
    with pytest.raises(ValueError, match="padding"):
        infer_shape("max_pool2d", [(1, 3, 10, 10)], dict(kernel_size=3, stride=1, padding=(1, 0, 2, 3)))


@needs_torch
@given(h=st.integers(1, 14), w=st.integers(1, 14), k=st.integers(1, 4), stride=st.integers(1, 3),
       pad=st.integers(0, 2), dil=st.integers(1, 2), ceil_mode=st.booleans(), avg=st.booleans())
def test_pool_shapes_match_torch(h, w, k, stride, pad, dil, ceil_mode, avg):
    if pad > k // 2:  # torch's own limit on pool padding
        return
    x = torch.zeros(1, 2, h, w)
    attrs = dict(kernel_size=k, stride=stride, padding=pad, ceil_mode=ceil_mode)
    op = "avg_pool2d" if avg else "max_pool2d"
    if not avg:
        attrs["dilation"] = dil
    try:
        ref = (TF.avg_pool2d(x, k, stride, pad, ceil_mode) if avg else
               TF.max_pool2d(x, k, stride, pad, dil, ceil_mode)).shape
    except RuntimeError:  # output would be empty
        with pytest.raises(ValueError):
            infer_shape(op, [(1, 2, h, w)], attrs)
        return
    assert infer_shape(op, [(1, 2, h, w)], attrs) == tuple(ref)


def test_other_rules():
    assert infer_shape("max_pool2d", [(1, 2, 8, 8)], dict(kernel_size=2, stride=None)) == (1, 2, 4, 4)
    assert infer_shape("adaptive_avg_pool2d", [(2, 5, 7, 9)], dict(output_size=(3, None))) == (2, 5, 3, 9)
    assert infer_shape("global_max_pool2d", [(2, 5, 7, 9)], {}) == (2, 5, 1, 1)
    assert infer_shape("linear", [(4, 3, 16), (10, 16), None], {}) == (4, 3, 10)
    assert infer_shape("linear", [(4, 16), (10, 16)], {}) == (4, 10)  # trailing optional inputs may be omitted
    assert infer_shape("add", [(2, 8, 4, 4), (2, 8, 1, 1)], {}) == (2, 8, 4, 4)
    assert infer_shape("mul", [(2, 8, 4, 4), ()], {}) == (2, 8, 4, 4)
    assert infer_shape("concat", [(1, 2, 4, 4), (1, 5, 4, 4)], dict(axis=1)) == (1, 7, 4, 4)
    assert infer_shape("concat", [(1, 2, 4, 4), (1, 2, 4, 3)], dict(axis=-1)) == (1, 2, 4, 7)
    assert infer_shape("flatten", [(2, 3, 4, 5)], dict(start_dim=1, end_dim=-1)) == (2, 60)
    assert infer_shape("flatten", [(2, 3, 4, 5)], dict(start_dim=0, end_dim=1)) == (6, 4, 5)
    assert infer_shape("depthwise_conv2d", [(1, 4, 9, 9), (8, 1, 3, 3), None], dict(stride=2, padding=1)) == \
        (1, 8, 5, 5)
    assert infer_shape("separable_conv2d", [(1, 4, 9, 9), (4, 1, 3, 3), (6, 4, 1, 1), None, None],
                       dict(padding="same")) == (1, 6, 9, 9)
    assert infer_shape("batch_norm", [(1, 4, 3, 3), (4,), (4,), None, None], {}) == (1, 4, 3, 3)


@pytest.mark.parametrize("op, shapes, attrs, match", [
    ("conv2d", [(1, 3, 8, 8), (4, 2, 3, 3), None], dict(groups=1), "channels"),
    ("conv2d", [(1, 3, 8), (4, 3, 3, 3), None], {}, "4D input"),
    ("linear", [(2, 7), (3, 8), None], {}, "last dimension 8"),
    ("concat", [(1, 2, 4, 4), (1, 2, 5, 4)], dict(axis=1), "equal except"),
    ("add", [(2, 3), (4,)], {}, "broadcastable"),
    ("batch_norm", [(1, 4, 3, 3), (5,), (4,), None, None], {}, "running_mean"),
    ("softmax", [(2, 3)], dict(axis=2), "axis"),
    ("flatten", [(2, 3, 4)], dict(start_dim=2, end_dim=1), "start_dim"),
])
def test_rule_errors(op, shapes, attrs, match):
    with pytest.raises(ValueError, match=match):
        infer_shape(op, shapes, attrs)


def test_unknown_op():
    from convcore.ops import get

    with pytest.raises(ValueError, match="expected a declared op .got 'no_such_op'.; declared: conv2d"):
        get("no_such_op")


EAGER_CASES = [
    ("conv2d", [(2, 4, 9, 7), (6, 2, 3, 2), (6,)], dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=1, groups=2)),
    ("conv2d", [(1, 3, 10, 9), (5, 3, 3, 3), None], dict(stride=2, padding="same", dilation=2, groups=1)),
    ("conv2d", [(1, 3, 5, 5), (2, 3, 3, 3), None], dict(stride=1, padding="full", dilation=1, groups=1)),
    ("depthwise_conv2d", [(1, 4, 9, 9), (8, 1, 3, 3), None], dict(stride=2, padding=1, dilation=1)),
    ("separable_conv2d", [(1, 4, 9, 9), (4, 1, 5, 5), (6, 4, 1, 1), None, None], dict(stride=2, padding="same")),
    ("max_pool2d", [(1, 3, 10, 11)], dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", [(1, 3, 10, 11)], dict(kernel_size=(2, 3), stride=(2, 2), padding=(1, 0, 1, 1))),
    ("adaptive_avg_pool2d", [(1, 3, 10, 11)], dict(output_size=(3, 4))),
    ("adaptive_max_pool2d", [(1, 3, 10, 11)], dict(output_size=2)),
    ("global_avg_pool2d", [(2, 3, 5, 4)], {}),
    ("batch_norm", [(2, 3, 5, 4), (3,), (3,), (3,), (3,)], {}),
    ("hardswish", [(2, 3, 5, 4)], {}),
    ("softmax", [(2, 10)], dict(axis=1)),
    ("local_response_norm", [(1, 6, 4, 4)], dict(size=3)),
    ("linear", [(3, 16), (10, 16), (10,)], {}),
    ("add", [(2, 8, 4, 4), (2, 8, 1, 1)], {}),
    ("mul", [(2, 8, 4, 4), (8, 1, 1)], {}),
    ("concat", [(1, 2, 4, 4), (1, 5, 4, 4)], dict(axis=1)),
    ("flatten", [(2, 3, 4, 5)], dict(start_dim=1, end_dim=2)),
]


@pytest.mark.parametrize("op, shapes, attrs", EAGER_CASES, ids=[c[0] for c in EAGER_CASES])
def test_rules_match_eager_ops(op, shapes, attrs):
    rng = np.random.default_rng(0)
    arrays = [None if s is None else (rng.random(s) + 0.5).astype(np.float32) for s in shapes]
    if op == "concat":
        out = F.concat(arrays, **attrs)
    else:
        out = getattr(F, op)(**dict(zip(OPS[op].inputs, arrays)), **attrs)
    assert infer_shape(op, shapes, attrs) == out.shape
