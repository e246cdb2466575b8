"""ONNX Flatten / Reshape / Squeeze / Unsqueeze (where they flatten) -> flatten; Identity and inference Dropout."""

import math

from .attributes import int_const


def _as_flatten(ctx, node, x, target):
    """A reshape of `x` to `target` (resolved dims) expressed as flatten(start, end), or ValueError."""
    shape = ctx.shape(x)
    if tuple(target) == tuple(shape):
        ctx.values[node.output[0]] = x
        return
    for start in list(range(1, len(shape))) + [0]:  # prefer keeping the batch dim
        for end in range(start, len(shape)):
            merged = tuple(shape[:start]) + (math.prod(shape[start:end + 1]),) + tuple(shape[end + 1:])
            if merged == tuple(target):
                ctx.define(node, "flatten", [x], {"start_dim": start, "end_dim": end})
                return
    raise ValueError(f"node '{node.name}' ({node.op_type}): expected a flattening reshape (got {tuple(shape)} -> "
                     f"{tuple(target)})")


def convert_reshape(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    spec = int_const(ctx, node, 1, "shape")
    if spec is None:
        raise ValueError(f"node '{node.name}' (Reshape): expected a constant shape")
    target = [shape[i] if d == 0 and not a.get("allowzero", 0) and i < len(shape) else d for i, d in enumerate(spec)]
    if target.count(-1) > 1 or any(d < -1 for d in target):
        raise ValueError(f"node '{node.name}' (Reshape): expected a shape with at most one -1 and no other negative "
                         f"value (got {spec})")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        if known == 0 or math.prod(shape) % known:
            raise ValueError(f"node '{node.name}' (Reshape): expected a shape {shape} can take (got {spec})")
        target[target.index(-1)] = math.prod(shape) // known
    if math.prod(target) != math.prod(shape):
        raise ValueError(f"node '{node.name}' (Reshape): expected a shape {shape} can take (got {spec})")
    _as_flatten(ctx, node, x, target)


def convert_squeeze(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = list(ctx.shape(x))
    axes = a.get("axes") if ctx.opset < 13 else int_const(ctx, node, 1, "axes")
    if node.op_type == "Squeeze":
        drop = {v % len(shape) for v in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        if any(shape[i] != 1 for i in drop):
            raise ValueError(f"node '{node.name}' (Squeeze): expected axes of size 1 (got axes {axes} of "
                             f"{tuple(shape)})")
        target = [d for i, d in enumerate(shape) if i not in drop]
    else:
        rank = len(shape) + len(axes or [])
        target = list(shape)
        for axis in sorted(v % rank for v in axes or []):
            target.insert(axis, 1)
    _as_flatten(ctx, node, x, target)


def convert_flatten(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    axis = int(a.get("axis", 1))
    if (axis % rank if rank else 0) != 1:
        raise ValueError(f"node '{node.name}' (Flatten): expected axis=1 (got axis={axis})")
    ctx.define(node, "flatten", [x], {"start_dim": 1, "end_dim": -1})


def convert_identity(ctx, node, a):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1]):
        raise ValueError(f"node '{node.name}' (Dropout): expected the mask output unused (got it read)")
    training = ctx.const(node.input[2]) if node.op_type == "Dropout" and len(node.input) > 2 else None
    if training is not None and training.size == 1 and bool(training.reshape(-1)[0]):
        raise ValueError(f"node '{node.name}' (Dropout): expected inference mode (got training_mode true)")
    source = node.input[0]
    if source in ctx.consts:
        ctx.consts[node.output[0]] = ctx.consts[source]
    elif source in ctx.pending_pads and ctx.uses.get(source) == 1:
        ctx.pending_pads[node.output[0]] = ctx.pending_pads.pop(source)
    else:
        ctx.values[node.output[0]] = ctx.tensor(source, node)


CONVERTERS = {"Flatten": convert_flatten, "Reshape": convert_reshape, "Squeeze": convert_squeeze,
              "Unsqueeze": convert_squeeze, "Identity": convert_identity, "Dropout": convert_identity}
