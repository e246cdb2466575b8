"""Bad input raises TypeError / ValueError naming the argument: never a crash, a hang or a garbage result."""

import re

import numpy as np
import pytest

from .helpers import F, rand

RNG = np.random.default_rng(0)
X = rand(RNG, 2, 4, 6, 6)
W = rand(RNG, 8, 4, 3, 3)
XL, WL = rand(RNG, 3, 6), rand(RNG, 8, 6)  # linear: 6 in-features, 8 out


def huge(*shape):
    """A float32 array of any size that uses no memory (every element aliases one zero)."""
    return np.broadcast_to(np.zeros((), np.float32), shape)


def name(arg):
    """Regex matching the argument's name as a whole word (so 'x' does not match 'expected')."""
    return rf"\b{arg}\b"


# ---- dtype and rank -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_, np.float16])
def test_wrong_dtype_is_type_error(dtype):
    x, w = X.astype(dtype), W.astype(dtype)
    with pytest.raises(TypeError, match=name("x")):
        F.conv2d(x, W)
    with pytest.raises(TypeError, match=name("weight")):
        F.conv2d(X, w)
    with pytest.raises(TypeError, match=name("bias")):
        F.conv2d(X, W, np.zeros(8, dtype))
    with pytest.raises(TypeError, match=name("x")):
        F.max_pool2d(x, 2)
    with pytest.raises(TypeError, match=name("x")):
        F.avg_pool2d(x, 2)
    with pytest.raises(TypeError, match=name("x")):
        F.global_avg_pool2d(x)
    with pytest.raises(TypeError, match=name("x")):
        F.relu(x)
    with pytest.raises(TypeError, match=name("x")):
        F.softmax(x)
    with pytest.raises(TypeError, match=name("x")):
        F.linear(XL.astype(dtype), WL)
    with pytest.raises(TypeError, match=name("weight")):
        F.linear(XL, WL.astype(dtype))
    with pytest.raises(TypeError, match=name("x")):
        F.batch_norm(x, np.zeros(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(TypeError, match=name("running_var")):
        F.batch_norm(X, np.zeros(4, np.float32), np.ones(4, dtype))


def test_out_of_wrong_dtype_shape_or_layout():
    want = (2, 8, 4, 4)
    for out, error in [(np.empty(want, np.float64), TypeError), (np.empty((2, 8, 4, 5), np.float32), ValueError),
                       (np.empty((2, 8, 4, 8), np.float32)[..., ::2], ValueError)]:
        with pytest.raises(error, match=name("out")):
            F.conv2d(X, W, out=out)
    ro = np.empty(want, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=name("out")):
        F.conv2d(X, W, out=ro)
    x = rand(RNG, 1, 4, 5, 5)
    with pytest.raises(ValueError, match=name("out")):
        F.conv2d(x, rand(RNG, 4, 4, 1, 1), out=x)  # writing over the input it still reads


@pytest.mark.parametrize("op", [
    lambda x: F.conv2d(x, W),
    lambda x: F.depthwise_conv2d(x, rand(RNG, 4, 1, 3, 3)),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.adaptive_avg_pool2d(x, 1),
    lambda x: F.adaptive_max_pool2d(x, 1),
    lambda x: F.global_avg_pool2d(x),
    lambda x: F.global_max_pool2d(x),
], ids=["conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
        "global_avg_pool2d", "global_max_pool2d"])
def test_wrong_rank(op):
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input"):
        op(X[0])
    with pytest.raises(ValueError, match=r"expected 4D input \(got 5D input"):
        op(X[None])
    with pytest.raises(ValueError, match=r"expected 4D input \(got 0D input"):
        op(np.ones((), np.float32))


def test_conv_weight_rank():
    with pytest.raises(ValueError, match=name("weight")):
        F.conv2d(X, W[0])


# ---- conv arguments -------------------------------------------------------------------------------------------

def test_channel_mismatch():
    with pytest.raises(ValueError, match=name("weight")):
        F.conv2d(X, rand(RNG, 8, 3, 3, 3))
    with pytest.raises(ValueError, match=name("weight")):
        F.conv2d(X, rand(RNG, 8, 4, 3, 3), groups=2)  # needs 2 input channels per group
    with pytest.raises(ValueError, match=name("weight")):
        F.depthwise_conv2d(X, rand(RNG, 4, 2, 3, 3))
    with pytest.raises(ValueError, match=name("weight")):
        F.depthwise_conv2d(X, rand(RNG, 6, 1, 3, 3))  # 6 output channels are not a multiple of 4
    with pytest.raises(ValueError, match=name("pointwise_weight")):
        F.separable_conv2d(X, rand(RNG, 4, 1, 3, 3), rand(RNG, 5, 3, 1, 1))


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match=name("groups")):
        F.conv2d(rand(RNG, 1, 6, 5, 5), rand(RNG, 8, 2, 3, 3), groups=4)  # 6 input channels, 4 groups
    with pytest.raises(ValueError, match=name("groups")):
        F.conv2d(rand(RNG, 1, 6, 5, 5), rand(RNG, 8, 2, 3, 3), groups=3)  # 8 output channels, 3 groups
    for groups in (0, -1):
        with pytest.raises(ValueError, match=name("groups")):
            F.conv2d(X, W, groups=groups)


@pytest.mark.parametrize("arg", ["stride", "dilation"])
@pytest.mark.parametrize("value", [0, -1, (1, 0), (-2, 1)])
def test_stride_and_dilation_must_be_positive(arg, value):
    with pytest.raises(ValueError, match=name(arg)):
        F.conv2d(X, W, **{arg: value})
    with pytest.raises(ValueError, match=name(arg)):
        F.depthwise_conv2d(X, rand(RNG, 4, 1, 3, 3), **{arg: value})
    with pytest.raises(ValueError, match=name(arg)):
        F.max_pool2d(X, 2, **{arg: value})


@pytest.mark.parametrize("padding", [-1, (0, -1), (0, 0, 0, -1), (-1, 0, 0, 0)])
def test_negative_padding(padding):
    with pytest.raises(ValueError, match=name("padding")):
        F.conv2d(X, W, padding=padding)
    with pytest.raises(ValueError, match=name("padding")):
        F.avg_pool2d(X, 3, padding=padding)


@pytest.mark.parametrize("padding", ["foo", "", "same_lower", (1, 1, 1), (1, 2, 3, 4, 5)])
def test_bad_padding_spec(padding):
    with pytest.raises((ValueError, TypeError), match=name("padding")):
        F.conv2d(X, W, padding=padding)


def test_kernel_larger_than_padded_input():
    x = rand(RNG, 1, 4, 3, 3)
    with pytest.raises(ValueError, match=r"\b(x|weight|padding|kernel)\b"):
        F.conv2d(x, rand(RNG, 2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\b(x|weight|padding|kernel)\b"):
        F.conv2d(x, rand(RNG, 2, 4, 3, 3), dilation=2)  # dilated extent 5 > 3
    with pytest.raises(ValueError, match=r"\b(x|weight|padding|kernel)\b"):
        F.conv2d(x, rand(RNG, 2, 4, 6, 1), padding=1)  # 6 > 3 + 2
    with pytest.raises(ValueError, match=r"\b(x|kernel_size|padding)\b"):
        F.max_pool2d(x, 4)
    with pytest.raises(ValueError, match=r"\b(x|kernel_size|padding)\b"):
        F.avg_pool2d(x, 5, padding=0)


def test_bias_shape():
    for bias in (np.zeros(7, np.float32), np.zeros((8, 1), np.float32), np.zeros((), np.float32)):
        with pytest.raises(ValueError, match=name("bias")):
            F.conv2d(X, W, bias)
        with pytest.raises(ValueError, match=name("bias")):
            F.linear(XL, WL, bias)


def test_empty_batch():
    """N == 0: either a clean ValueError naming x or a correctly shaped empty result, never a crash."""
    x = np.zeros((0, 4, 6, 6), np.float32)
    for op, want in [(lambda: F.conv2d(x, W), (0, 8, 4, 4)), (lambda: F.max_pool2d(x, 2), (0, 4, 3, 3)),
                     (lambda: F.relu(x), (0, 4, 6, 6))]:
        try:
            got = op()
        except ValueError as e:
            assert re.search(name("x"), str(e)), str(e)
        else:
            assert got.shape == want and got.dtype == np.float32


def test_empty_channels_or_map():
    with pytest.raises(ValueError, match=name("x")):
        F.conv2d(np.zeros((1, 4, 0, 6), np.float32), W)
    with pytest.raises(ValueError, match=r"\b(x|weight)\b"):
        F.conv2d(np.zeros((1, 0, 6, 6), np.float32), np.zeros((8, 0, 3, 3), np.float32))


# ---- sizes past int32 -----------------------------------------------------------------------------------------

BIG = 2**31 - 1


def test_huge_input_is_value_error():
    x = huge(1, 1, 46341, 46341)  # 2_147_488_281 elements > 2**31 - 1, no memory used
    assert x.size > BIG
    with pytest.raises(ValueError, match=name("x")):
        F.conv2d(x, np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=name("x")):
        F.max_pool2d(x, 2)
    with pytest.raises(ValueError, match=name("x")):
        F.avg_pool2d(x, 2)
    with pytest.raises(ValueError, match=name("x")):
        F.global_avg_pool2d(x)
    with pytest.raises(ValueError, match=name("x")):
        F.relu(x)
    with pytest.raises(ValueError, match=name("x")):
        F.softmax(x)
    with pytest.raises(ValueError, match=name("x")):
        F.linear(huge(65536, 32769), np.ones((1, 32769), np.float32))


def test_huge_weight_or_output_is_value_error():
    with pytest.raises(ValueError, match=name("weight")):
        F.conv2d(np.zeros((1, 65536, 1, 1), np.float32), huge(32769, 65536, 1, 1))
    # Small input and weight, but the output (1, 65536, 182, 182) would pass 2**31 - 1 elements.
    with pytest.raises(ValueError, match=r"\b(output|out|weight|x)\b"):
        F.conv2d(np.zeros((1, 1, 182, 182), np.float32), huge(65536, 1, 1, 1))


# ---- other ops ------------------------------------------------------------------------------------------------

def test_linear_in_features_mismatch():
    with pytest.raises(ValueError, match=r"\b(weight|x|in_features)\b"):
        F.linear(rand(RNG, 3, 7), rand(RNG, 5, 6))
    with pytest.raises(ValueError, match=name("weight")):
        F.linear(rand(RNG, 3, 7), rand(RNG, 5, 7, 1))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [4, -5, 100])
def test_softmax_axis_out_of_range(op, axis):
    with pytest.raises(ValueError, match=name("axis")):
        getattr(F, op)(X, axis=axis)


def test_concat_mismatched_shapes():
    a, b = rand(RNG, 1, 2, 3, 3), rand(RNG, 1, 2, 4, 3)
    with pytest.raises(ValueError, match=name("xs")):
        F.concat([a, b], axis=1)
    with pytest.raises(ValueError, match=name("xs")):
        F.concat([a, a[0]], axis=1)  # ranks differ
    with pytest.raises((TypeError, ValueError), match=name("xs")):
        F.concat([], axis=1)
    with pytest.raises(TypeError, match=name("xs")):
        F.concat([a, a.astype(np.float64)], axis=1)
    with pytest.raises(ValueError, match=name("axis")):
        F.concat([a, a], axis=4)


def test_add_mul_not_broadcastable():
    for op in (F.add, F.mul):
        with pytest.raises(ValueError, match=r"\b(a|b)\b"):
            op(rand(RNG, 2, 3, 4), rand(RNG, 2, 4, 4))
        with pytest.raises(TypeError, match=r"\b(a|b)\b"):
            op(rand(RNG, 2, 3), np.ones((2, 3), np.float64))


@pytest.mark.parametrize("kernel_size", [0, -1, (2, 0), (0, 2)])
def test_pool_kernel_size_must_be_positive(kernel_size):
    with pytest.raises(ValueError, match=name("kernel_size")):
        F.max_pool2d(X, kernel_size)
    with pytest.raises(ValueError, match=name("kernel_size")):
        F.avg_pool2d(X, kernel_size)


@pytest.mark.parametrize("kernel_size, padding", [(3, 2), (2, 2), (1, 1), ((3, 5), (1, 3)), (4, (0, 0, 0, 3))])
def test_pool_padding_at_most_half_the_kernel(kernel_size, padding):
    with pytest.raises(ValueError, match=name("padding")):
        F.max_pool2d(X, kernel_size, 1, padding)
    with pytest.raises(ValueError, match=name("padding")):
        F.avg_pool2d(X, kernel_size, 1, padding)  # torch applies the same rule to average pooling


def test_adaptive_output_size_must_be_positive():
    for size in (0, -1, (2, 0)):
        with pytest.raises(ValueError, match=name("output_size")):
            F.adaptive_avg_pool2d(X, size)
        with pytest.raises(ValueError, match=name("output_size")):
            F.adaptive_max_pool2d(X, size)


def test_batch_norm_parameter_shapes():
    mean, var = np.zeros(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match=name("running_mean")):
        F.batch_norm(X, np.zeros(3, np.float32), var)
    with pytest.raises(ValueError, match=name("running_var")):
        F.batch_norm(X, mean, np.ones(5, np.float32))
    with pytest.raises(ValueError, match=name("weight")):
        F.batch_norm(X, mean, var, weight=np.ones(2, np.float32))
    with pytest.raises(ValueError, match=name("bias")):
        F.batch_norm(X, mean, var, bias=np.ones((4, 1), np.float32))


def test_local_response_norm_size_and_rank():
    for size in (0, -2):
        with pytest.raises(ValueError, match=name("size")):
            F.local_response_norm(X, size)
    with pytest.raises(ValueError, match=name("x")):
        F.local_response_norm(X[0, 0], 3)  # (N, C, ...) needs at least 3 dims, as in torch


# ---- the general tensor and ONNX elementwise ops ---------------------------------------------------------------

NEW_OPS = {
    "elu": {}, "selu": {}, "celu": {}, "softplus": {}, "softsign": {}, "gelu": {}, "mish": {}, "exp": {}, "log": {},
    "sqrt": {}, "neg": {}, "abs": {}, "reciprocal": {}, "erf": {}, "clip": dict(min=0), "reshape": dict(shape=(-1,)),
    "identity": {}, "transpose": {}, "slice": dict(starts=[0], ends=[1]), "pad": dict(pads=(0, 0) * 4),
    "gather": dict(indices=[0]), "expand": dict(shape=(1,)), "tile": dict(repeats=(1, 1, 1, 1)),
    "reduce_sum": {}, "reduce_log_sum_exp": {}, "resize": dict(scales=(1, 1, 2, 2)), "instance_norm": {},
    "layer_norm": {}, "lp_pool2d": dict(kernel_size=2),
}


@pytest.mark.parametrize("op", sorted(NEW_OPS))
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float16])
def test_new_ops_refuse_other_dtypes(op, dtype):
    with pytest.raises(TypeError, match=name("x")):
        getattr(F, op)(X.astype(dtype), **NEW_OPS[op])


@pytest.mark.parametrize("op", ["sub", "div", "pow", "maximum", "minimum", "matmul"])
def test_new_binary_ops_name_the_operand(op):
    with pytest.raises(TypeError, match=name("b")):
        getattr(F, op)(XL, XL.astype(np.float64))
    with pytest.raises(TypeError, match=name("a")):
        getattr(F, op)([1.0], XL)


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.conv_transpose2d(X, W), ValueError, "weight"),
    (lambda: F.conv_transpose2d(X, W[:4].transpose(1, 0, 2, 3).copy(), stride=0), ValueError, "stride"),
    (lambda: F.transpose(X, (0, 1, 1, 2)), ValueError, "perm"),
    (lambda: F.slice(X, [0], [1], steps=[0]), ValueError, "steps"),
    (lambda: F.slice(X, [0, 0], [1]), ValueError, "equal lengths"),
    (lambda: F.tile(X, (1, 2)), ValueError, "repeats"),
    (lambda: F.expand(X, (3, 4, 6, 6)), ValueError, "broadcastable"),
    (lambda: F.resize(X), ValueError, "size, scales"),
    (lambda: F.resize(X, scales=(1, 1, 0, 1)), ValueError, "scales"),
    (lambda: F.resize(X, (2, 4, 6, 6), mode="area"), ValueError, "mode"),
    (lambda: F.gelu(X, approximate="erf"), ValueError, "approximate"),
    (lambda: F.celu(X, alpha=0), ValueError, "alpha"),
    (lambda: F.clip(X, float("nan")), ValueError, "min"),
    (lambda: F.reshape(X, (2**31, -1)), ValueError, "shape"),
    (lambda: F.tile(X, (2**20, 2**20, 1, 1)), ValueError, "repeats"),
    (lambda: F.pad(X, (0, 0, 0, 0, 2**30, 2**30, 0, 0)), ValueError, "pads"),
])
def test_new_op_attribute_refusals(call, error, match):
    with pytest.raises(error, match=match):
        call()
