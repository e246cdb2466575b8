"""ONNX Resize (every opset's inputs and attributes) and Upsample -> resize. Upsample and Resize-10 sample
'asymmetric' coordinates (the source of output i is i / scale), rounding down for nearest."""

import math

from .attributes import axes_of, const_input, fail, float_attr, input_name, int_attr, ints_attr, str_attr

COORDINATE_MODES = {11: ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                         "tf_crop_and_resize"),
                    13: ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"),
                    19: ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                         "tf_crop_and_resize")}


def _floats(ctx, node, index, what):
    value = const_input(ctx, node, index, what)
    if value is None or value.size == 0:
        return None
    if value.dtype.kind != "f":
        raise fail(node, f"expected float {what} (got {value.dtype})")
    values = [float(v) for v in value.reshape(-1)]
    if any(math.isnan(v) or math.isinf(v) for v in values):
        raise fail(node, f"expected finite {what} (got {values})")
    return values


def _legacy(ctx, node, a, x, shape):
    """Upsample (7-9) and Resize-10: scales only, asymmetric coordinates."""
    rank = len(shape)
    if node.op_type == "Upsample" and ctx.opset < 9:
        scales = [float(s) for s in a.get("scales", [])]
    else:
        scales = _floats(ctx, node, 1, "scales")
    if not scales or len(scales) != rank or any(not s > 0 for s in scales):
        raise fail(node, f"expected {rank} positive scales (got {scales})")
    mode = str_attr(node, a, "mode", "nearest", ("nearest", "linear", "bilinear"))
    attrs = {"scales": scales, "mode": "linear" if mode == "bilinear" else mode,
             "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    ctx.define(node, "resize", [x], attrs)


def convert_resize(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    rank = len(shape)
    if node.op_type == "Upsample" or ctx.opset < 11:
        return _legacy(ctx, node, a, x, shape)
    version = 19 if ctx.opset >= 19 else 13 if ctx.opset >= 13 else 11
    mode = str_attr(node, a, "mode", "nearest", ("nearest", "linear", "cubic"))
    coordinate = str_attr(node, a, "coordinate_transformation_mode", "half_pixel", COORDINATE_MODES[version])
    nearest = str_attr(node, a, "nearest_mode", "round_prefer_floor",
                       ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"))
    axes = list(range(rank))
    policy = "stretch"
    antialias = False
    if ctx.opset >= 18:
        given = ints_attr(node, a, "axes")
        if given is not None:
            axes = axes_of(node, given, rank)
        policy = str_attr(node, a, "keep_aspect_ratio_policy", "stretch", ("stretch", "not_larger", "not_smaller"))
        antialias = bool(int_attr(node, a, "antialias", 0))
    roi = _floats(ctx, node, 1, "roi")
    scales = _floats(ctx, node, 2, "scales")
    sizes = const_input(ctx, node, 3, "sizes") if input_name(node, 3) else None
    if sizes is not None:
        if sizes.dtype.kind not in "iu":
            raise fail(node, f"expected integer sizes (got {sizes.dtype})")
        sizes = [int(v) for v in sizes.reshape(-1)] or None
    if (scales is None) == (sizes is None):
        raise fail(node, "expected exactly one of scales and sizes")
    n = len(axes)
    given = scales if scales is not None else sizes
    if len(given) != n:
        raise fail(node, f"expected {n} {'scales' if scales is not None else 'sizes'} (got {len(given)})")
    full_scales, full_sizes = [1.0] * rank, list(shape)
    if scales is not None:
        if any(not s > 0 for s in scales):
            raise fail(node, f"expected positive scales (got {scales})")
        for axis, s in zip(axes, scales):
            full_scales[axis], full_sizes[axis] = s, int(math.floor(shape[axis] * s))
    else:
        if any(s < 0 for s in sizes):
            raise fail(node, f"expected non-negative sizes (got {sizes})")
        ratios = [s / shape[axis] if shape[axis] else 1.0 for axis, s in zip(axes, sizes)]
        if policy != "stretch":
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            for axis in axes:
                full_scales[axis], full_sizes[axis] = scale, int(scale * shape[axis] + 0.5)
        else:
            for axis, s, r in zip(axes, sizes, ratios):
                full_scales[axis], full_sizes[axis] = r, s
    full_roi = None
    if coordinate == "tf_crop_and_resize":
        full_roi = [0.0] * rank + [1.0] * rank
        if roi is not None:
            if len(roi) != 2 * n:
                raise fail(node, f"expected {2 * n} roi values (got {len(roi)})")
            for i, axis in enumerate(axes):
                full_roi[axis], full_roi[axis + rank] = roi[i], roi[i + n]
    attrs = {"size": full_sizes, "scales": full_scales, "mode": mode, "coordinate_transformation_mode": coordinate,
             "nearest_mode": nearest, "cubic_coeff_a": float_attr(node, a, "cubic_coeff_a", -0.75),
             "exclude_outside": bool(int_attr(node, a, "exclude_outside", 0)),
             "extrapolation_value": float_attr(node, a, "extrapolation_value", 0.0), "antialias": antialias,
             "roi": full_roi}
    ctx.define(node, "resize", [x], attrs)


CONVERTERS = {"Resize": convert_resize, "Upsample": convert_resize}
