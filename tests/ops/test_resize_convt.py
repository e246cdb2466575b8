"""resize, conv_transpose2d, lp_pool2d and instance_norm against float64 references (and torch) on every ISA x
threads."""

import numpy as np
import pytest

from reference import general as ref

from .helpers import TF, F, abs_scale, check, check_torch, rand, torch

COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric",
          "tf_half_pixel_for_nn"]


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("size", [(1, 2, 7, 9), (1, 2, 3, 2), (1, 2, 1, 5)], ids=str)
def test_resize_against_the_elementwise_reference(isa, threads, mode, coords, size):
    x = rand(np.random.default_rng(1), 1, 2, 4, 5)
    scales = tuple(o / i for o, i in zip(size, x.shape))
    got = F.resize(x, size, mode=mode, coordinate_transformation_mode=coords)
    check(got, ref.resize(x, size, scales, mode, coords), scale=np.abs(x).max())


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_resize_nearest_modes_and_given_scales(isa, nearest_mode):
    x = rand(np.random.default_rng(2), 1, 1, 5, 6)
    scales = (1.0, 1.0, 1.7, 0.6)
    size = tuple(int(np.floor(n * s)) for n, s in zip(x.shape, scales))
    got = F.resize(x, scales=scales, mode="nearest", nearest_mode=nearest_mode,
                   coordinate_transformation_mode="asymmetric")
    check(got, ref.resize(x, size, scales, "nearest", "asymmetric", nearest_mode), bound=0)


def test_resize_tf_crop_and_resize_and_exclude_outside(isa):
    x = rand(np.random.default_rng(3), 1, 1, 6, 6)
    roi = (0, 0, 0.2, -0.3, 1, 1, 0.9, 1.4)
    size = (1, 1, 5, 7)
    scales = tuple(o / i for o, i in zip(size, x.shape))
    got = F.resize(x, size, mode="linear", coordinate_transformation_mode="tf_crop_and_resize", roi=roi,
                   extrapolation_value=9.0)
    check(got, ref.resize(x, size, scales, "linear", "tf_crop_and_resize", extrapolation_value=9.0, roi=roi))
    assert (got == 9.0).any()
    got = F.resize(x, size, mode="cubic", exclude_outside=True, cubic_coeff_a=-0.5)
    check(got, ref.resize(x, size, scales, "cubic", "half_pixel", cubic_coeff_a=-0.5, exclude_outside=True))


@pytest.mark.skipif(torch is None, reason="torch")
@pytest.mark.parametrize("mode, align", [("nearest", None), ("bilinear", False), ("bilinear", True),
                                         ("bicubic", False), ("bicubic", True)])
def test_resize_matches_torch_interpolate(isa, mode, align):
    x = rand(np.random.default_rng(4), 2, 3, 5, 7)
    size = (9, 4)
    coords = "asymmetric" if mode == "nearest" else ("align_corners" if align else "half_pixel")
    kwargs = dict(mode={"nearest": "nearest", "bilinear": "linear", "bicubic": "cubic"}[mode],
                  coordinate_transformation_mode=coords)
    if mode == "nearest":  # torch's legacy nearest: floor(i * in / out)
        kwargs.update(nearest_mode="floor", scales=(1.0, 1.0, 9 / 5, 4 / 7))
    got = F.resize(x, (None, None, *size), **kwargs)
    check_torch(got, lambda t: TF.interpolate(t, size=size, mode=mode, align_corners=align), x,
                scale=np.abs(x).max())


def test_resize_keeps_unresized_axes_as_none():
    from convcore import ops

    attrs, shape = ops.get("resize").infer([(1, 3, 4, 5)], {"size": (1, 3, 8, 5), "mode": "linear"})
    assert attrs["size"] == (None, None, 8, None) and shape == (1, 3, 8, 5)
    _, shape = ops.get("resize").infer([(2, 3, 4, 5)], attrs)  # another batch: followed
    assert shape == (2, 3, 8, 5)
    with pytest.raises(ValueError, match="antialias"):
        ops.get("resize").infer([(1, 3, 4, 5)], {"scales": (1, 1, 2, 2), "antialias": True})


CONVT = [dict(stride=1), dict(stride=2, padding=1), dict(stride=(2, 3), padding=(1, 0, 2, 1), output_padding=(1, 2)),
         dict(stride=2, dilation=2, groups=2), dict(stride=3, padding=(-1, 2, 0, -2)), dict(groups=4, stride=2)]


@pytest.mark.parametrize("kwargs", CONVT, ids=str)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose2d(isa, threads, kwargs, bias):
    rng = np.random.default_rng(5)
    groups = kwargs.get("groups", 1)
    x, w = rand(rng, 2, 4, 5, 6), rand(rng, 4, 6 // groups if groups < 4 else 2, 3, 2)
    b = rand(rng, w.shape[1] * groups) if bias else None
    got = F.conv_transpose2d(x, w, b, **kwargs)
    norm = {**kwargs}
    norm["stride"] = np.broadcast_to(kwargs.get("stride", 1), 2).tolist()
    norm["dilation"] = np.broadcast_to(kwargs.get("dilation", 1), 2).tolist()
    norm["output_padding"] = np.broadcast_to(kwargs.get("output_padding", 0), 2).tolist()
    p = kwargs.get("padding", 0)
    norm["padding"] = (p, p, p, p) if isinstance(p, int) else tuple(p)
    expected = ref.conv_transpose2d(x, w, b, **norm)
    check(got, expected, scale=abs_scale(ref.conv_transpose2d, x, w, b, **norm))
    if torch is not None and min(norm["padding"]) >= 0 and norm["padding"][0::2] == norm["padding"][1::2]:
        check_torch(got, lambda *t: TF.conv_transpose2d(*t, stride=norm["stride"], padding=norm["padding"][0::2],
                                                         output_padding=norm["output_padding"], groups=groups,
                                                         dilation=norm["dilation"]), x, w, b,
                    scale=abs_scale(ref.conv_transpose2d, x, w, b, **norm))


def test_conv_transpose2d_refusals():
    x, w = np.ones((1, 4, 3, 3), np.float32), np.ones((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="weight"):
        F.conv_transpose2d(x, np.ones((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="groups"):
        F.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match="output of at least 1x1"):
        F.conv_transpose2d(x, w, padding=3)


@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode, p", [
    (2, None, 0, 1, False, 2.0), (3, 1, 1, 1, False, 1.0), ((3, 2), (2, 1), (2, 0, 1, 1), (1, 2), True, 3.0),
    (2, 2, 0, 1, True, 2.0)])
def test_lp_pool2d(isa, threads, kernel, stride, padding, dilation, ceil_mode, p):
    x = rand(np.random.default_rng(6), 2, 3, 7, 8)
    got = F.lp_pool2d(x, kernel, stride, padding, dilation, ceil_mode, p)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    pads = (padding,) * 4 if isinstance(padding, int) else padding
    check(got, ref.lp_pool2d(x, pair(kernel), pair(kernel if stride is None else stride), pads, pair(dilation), p,
                             got.shape[2:]))
    if torch is not None and p == 2.0 and padding == 0 and dilation == 1 and not ceil_mode:  # (torch scales ceil
        # windows that overhang by the full kernel area: ONNX's sum over the real cells is what convcore computes)
        check_torch(got, lambda t: TF.lp_pool2d(t, 2.0, kernel, stride, ceil_mode=ceil_mode), np.abs(x))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 7), (2, 2, 3, 1, 2), (3, 5, 1)], ids=str)
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm(isa, threads, shape, affine):
    rng = np.random.default_rng(7)
    x = rand(rng, *shape, scale=3) + np.float32(2)
    w, b = (rand(rng, shape[1]), rand(rng, shape[1])) if affine else (None, None)
    got = F.instance_norm(x, w, b, eps=1e-3)
    check(got, ref.instance_norm(x, w, b, 1e-3))
    if np.prod(shape[2:]) > 1:  # (torch refuses single-element planes; ONNX gives the bias there)
        check_torch(got, lambda *t: TF.instance_norm(*t, eps=1e-3) if len(t) == 1 else
                    TF.instance_norm(t[0], weight=t[1], bias=t[2], eps=1e-3), *([x, w, b] if affine else [x]))


@pytest.mark.parametrize("shape, axis", [((2, 3, 4, 5), -1), ((1, 7), 1), ((3, 17), 0), ((2, 2, 3, 1, 33), 3),
                                         ((4, 1), -1), ((2, 5, 6), 1)], ids=str)
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm(isa, threads, shape, axis, affine):
    rng = np.random.default_rng(11)
    x = rand(rng, *shape, scale=3) + np.float32(50)  # a mean far from 0: the variance must not cancel
    normalized = shape[axis:]
    w, b = (rand(rng, *normalized), rand(rng, normalized[-1])) if affine else (None, None)
    got = F.layer_norm(x, w, b, axis=axis, eps=1e-3)
    check(got, ref.layer_norm(x, w, b, axis, 1e-3))
    # (torch wants the bias in the normalized shape: ONNX and convcore broadcast it)
    bias = None if b is None else np.ascontiguousarray(np.broadcast_to(b, normalized))
    check_torch(got, lambda *t: TF.layer_norm(t[0], normalized, *([t[1], t[2]] if affine else []), eps=1e-3),
                *([x, w, bias] if affine else [x]))


def test_layer_norm_refuses_bad_parameters():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="weight.*broadcasts to the normalized axes"):
        F.layer_norm(x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="axis"):
        F.layer_norm(x, axis=3)
    with pytest.raises(ValueError, match="non-empty"):
        F.layer_norm(np.ones((2, 0), np.float32))


def test_nd_pools_and_norms_are_refused_clearly():
    with pytest.raises(ValueError, match="at least 3D"):
        F.instance_norm(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="p"):
        F.lp_pool2d(np.ones((1, 1, 3, 3), np.float32), 2, p=0)
