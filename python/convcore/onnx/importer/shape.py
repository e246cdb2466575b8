"""ONNX data-movement ops: Reshape / Flatten / Squeeze / Unsqueeze (a `flatten` node where they merge dims, else a
`reshape`), Transpose, Concat, Split (one `slice` per output), Slice, Gather (constant indices), Expand, Tile,
Identity, inference Dropout and a Cast of a computed value to float. Shape, Size, ConstantOfShape and Range fold to
constants (see `folding`)."""

import math

import numpy as np
from onnx import TensorProto

from .attributes import axes_of, axis_of, const_input, fail, input_name, int_attr, int_const, ints_attr

MAX_GATHER_INDICES = 1 << 20  # constant indices of a Gather of a computed value (a node attribute: Python ints)


def reshaped(ctx, node, x, target):
    """`x` reshaped to `target` (resolved dims) as ONNX `node`'s output: nothing when the shape stays, a flatten
    when dims merge, else a reshape whose leading -1 keeps a batch-preserving reshape following the batch size."""
    shape = tuple(ctx.shape(x))
    target = tuple(int(d) for d in target)
    if math.prod(target) != math.prod(shape):
        raise fail(node, f"expected a shape {shape} can take (got {target})")
    if target == shape:
        return ctx.alias(node, x)
    for start in list(range(1, len(shape))) + [0]:  # prefer keeping the batch dim
        for end in range(start, len(shape)):
            merged = shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]
            if merged == target:
                return ctx.define(node, "flatten", [x], {"start_dim": start, "end_dim": end})
    spec = target
    if shape and target and target[0] == shape[0] and math.prod(target[1:]) > 0:
        spec = (-1, *target[1:])
    ctx.define(node, "reshape", [x], {"shape": spec})


def convert_reshape(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    spec = int_const(ctx, node, 1, "shape") if ctx.opset >= 5 else ints_attr(node, a, "shape")
    if spec is None:
        raise fail(node, "expected a shape")
    allowzero = ctx.opset >= 14 and int_attr(node, a, "allowzero", 0)
    if any(d < -1 for d in spec) or spec.count(-1) > 1:
        raise fail(node, f"expected a shape with at most one -1 and no other negative value (got {spec})")
    if not allowzero and any(d == 0 and i >= len(shape) for i, d in enumerate(spec)):
        raise fail(node, f"expected 0 (copy a dim) only within the input's {len(shape)} dims (got {spec})")
    if allowzero and 0 in spec and -1 in spec:
        raise fail(node, f"expected no -1 with a literal 0 dim (allowzero) (got {spec})")
    target = [shape[i] if d == 0 and not allowzero else d for i, d in enumerate(spec)]
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        if known == 0 or math.prod(shape) % known:
            raise fail(node, f"expected a shape {tuple(shape)} can take (got {spec})")
        target[target.index(-1)] = math.prod(shape) // known
    reshaped(ctx, node, x, target)


def convert_squeeze(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = list(ctx.shape(x))
    axes = ints_attr(node, a, "axes") if ctx.opset < 13 else int_const(ctx, node, 1, "axes")
    if node.op_type == "Squeeze":
        drop = set(axes_of(node, axes, len(shape))) if axes else {i for i, d in enumerate(shape) if d == 1}
        if any(shape[i] != 1 for i in drop):
            raise fail(node, f"expected axes of size 1 (got axes {axes} of {tuple(shape)})")
        target = [d for i, d in enumerate(shape) if i not in drop]
    else:
        if not axes:
            raise fail(node, "expected axes")
        rank = len(shape) + len(axes)
        target = list(shape)
        for axis in sorted(axes_of(node, axes, rank)):
            target.insert(axis, 1)
    reshaped(ctx, node, x, target)


def convert_flatten(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    axis = axis_of(node, int_attr(node, a, "axis", 1), len(shape), allow_end=True)
    reshaped(ctx, node, x, (math.prod(shape[:axis]), math.prod(shape[axis:])))


def convert_transpose(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    rank = len(ctx.shape(x))
    perm = ints_attr(node, a, "perm", list(reversed(range(rank))))
    if sorted(perm) != list(range(rank)):
        raise fail(node, f"expected perm to be a permutation of the {rank} axes (got {perm})")
    if perm == list(range(rank)):
        return ctx.alias(node, x)
    ctx.define(node, "transpose", [x], {"perm": perm})


def convert_concat(ctx, node, a):
    names = [n for n in node.input if n]
    if not names:
        raise fail(node, "expected at least one input")
    shapes = [ctx.static_shape(n) for n in names]
    if "axis" not in a:
        raise fail(node, "expected an axis attribute")
    axis = axis_of(node, int_attr(node, a, "axis", 0), len(shapes[0]))
    kept = [n for n, s in zip(names, shapes) if s[axis] > 0] or names[:1]  # zero-length parts add nothing
    inputs = [ctx.tensor(n, node) for n in kept]
    if len(inputs) == 1:
        return ctx.alias(node, inputs[0])
    ctx.define(node, "concat", inputs, {"axis": axis})


def convert_split(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    axis = axis_of(node, int_attr(node, a, "axis", 0), len(shape))
    n = shape[axis]
    outputs = list(node.output)
    if ctx.opset < 13:
        split = ints_attr(node, a, "split")
    else:
        split = int_const(ctx, node, 1, "split")
    if split is None:
        parts = int_attr(node, a, "num_outputs", len(outputs), 1) if ctx.opset >= 18 else len(outputs)
        if parts != len(outputs):
            raise fail(node, f"expected {parts} outputs for num_outputs={parts} (got {len(outputs)})")
        size = -(-n // parts)
        if ctx.opset < 18 and n % parts:
            raise fail(node, f"expected the axis ({n}) to divide into {parts} equal parts")
        split = [max(min(size, n - i * size), 0) for i in range(parts)]
    if len(split) != len(outputs) or any(s < 0 for s in split) or sum(split) != n:
        raise fail(node, f"expected {len(outputs)} non-negative split sizes summing to {n} (got {split})")
    start = 0
    for i, (size, out) in enumerate(zip(split, outputs)):
        if out:
            value = ctx.emit("slice", f"{node.name}.{i}" if i else node.name, [x],
                             {"starts": [start], "ends": [start + size], "axes": [axis]}, out)
            ctx.values[out] = value
        start += size


def convert_slice(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    if ctx.opset < 10:
        starts, ends, axes = (ints_attr(node, a, k) for k in ("starts", "ends", "axes"))
        steps = None
    else:
        starts, ends = int_const(ctx, node, 1, "starts"), int_const(ctx, node, 2, "ends")
        axes, steps = int_const(ctx, node, 3, "axes"), int_const(ctx, node, 4, "steps")
    if starts is None or ends is None:
        raise fail(node, "expected starts and ends")
    axes = list(range(len(starts))) if axes is None else axes_of(node, axes, len(shape))
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise fail(node, f"expected starts, ends, axes and steps of one length (got {starts}, {ends}, {axes}, "
                         f"{steps})")
    if 0 in steps:
        raise fail(node, f"expected non-zero steps (got {steps})")
    keep = [i for i, (s, e, ax, st) in enumerate(zip(starts, ends, axes, steps))
            if range(*slice(s, e, st).indices(shape[ax])) != range(shape[ax])]  # slices that change an axis
    if not keep:
        return ctx.alias(node, x)
    ctx.define(node, "slice", [x], {"starts": [starts[i] for i in keep], "ends": [ends[i] for i in keep],
                                    "axes": [axes[i] for i in keep], "steps": [steps[i] for i in keep]})


def convert_gather(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    indices = const_input(ctx, node, 1, "indices")
    if indices is None:
        raise fail(node, "expected indices")
    if indices.dtype.kind not in "iu":
        raise fail(node, f"expected integer indices (got {indices.dtype})")
    if indices.size > MAX_GATHER_INDICES:  # the node keeps them as a tuple of Python ints
        raise fail(node, f"expected at most {MAX_GATHER_INDICES} constant indices (got {indices.size})")
    shape = ctx.shape(x)
    if not shape:
        raise fail(node, "expected at least a 1D input")
    axis = axis_of(node, int_attr(node, a, "axis", 0), len(shape))
    n = shape[axis]
    if indices.size and (indices.min() < -n or indices.max() >= n):
        raise fail(node, f"expected indices in [{-n}, {n - 1}] for axis {axis} of size {n} (got values in "
                         f"[{indices.min()}, {indices.max()}])")
    ctx.define(node, "gather", [x], {"indices": tuple(int(i) for i in indices.reshape(-1)),
                                     "indices_shape": tuple(indices.shape), "axis": axis})


def convert_expand(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    shape = int_const(ctx, node, 1, "shape")
    if shape is None:
        raise fail(node, "expected a shape")
    if any(d < 0 for d in shape):
        raise fail(node, f"expected a non-negative shape (got {shape})")
    try:
        out = tuple(np.broadcast_shapes(ctx.shape(x), tuple(shape)))
    except ValueError:
        raise fail(node, f"expected a shape broadcastable with {ctx.shape(x)} (got {shape})") from None
    if out == tuple(ctx.shape(x)):
        return ctx.alias(node, x)
    ctx.define(node, "expand", [x], {"shape": shape})


def convert_tile(ctx, node, a):
    x = ctx.tensor(node.input[0], node)
    repeats = int_const(ctx, node, 1, "repeats")
    if repeats is None or len(repeats) != len(ctx.shape(x)) or any(r < 0 for r in repeats):
        raise fail(node, f"expected one non-negative repeat count per axis of {ctx.shape(x)} (got {repeats})")
    if all(r == 1 for r in repeats):
        return ctx.alias(node, x)
    ctx.define(node, "tile", [x], {"repeats": repeats})


def convert_depth_space(ctx, node, a):
    """DepthToSpace (DCR or CRD order) and SpaceToDepth: a reshape to 6-D, a transpose, a reshape back."""
    x = ctx.tensor(node.input[0], node)
    shape = ctx.shape(x)
    bs = int_attr(node, a, "blocksize", None, 1)
    if len(shape) != 4:
        raise fail(node, f"expected a 4D input (got shape {shape})")
    n, c, h, w = shape
    mode = a.get("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise fail(node, f"expected mode 'DCR' or 'CRD' (got {mode!r})")
    if node.op_type == "DepthToSpace":
        if c % (bs * bs):
            raise fail(node, f"expected channels divisible by blocksize^2 = {bs * bs} (got {c})")
        if mode == "DCR":
            split, perm = (-1, bs, bs, c // (bs * bs), h, w), (0, 3, 4, 1, 5, 2)
        else:
            split, perm = (-1, c // (bs * bs), bs, bs, h, w), (0, 1, 4, 2, 5, 3)
        target = (-1, c // (bs * bs), h * bs, w * bs)
    else:
        if h % bs or w % bs:
            raise fail(node, f"expected H and W divisible by blocksize {bs} (got {h}x{w})")
        split = (-1, c, h // bs, bs, w // bs, bs)
        perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)  # channel (block, c) or (c, block)
        target = (-1, c * bs * bs, h // bs, w // bs)
    blocks = ctx.emit("reshape", f"{node.name}.blocks", [x], {"shape": split})
    moved = ctx.emit("transpose", f"{node.name}.move", [blocks], {"perm": perm})
    ctx.define(node, "reshape", [moved], {"shape": target})


def convert_identity(ctx, node, a):
    if node.op_type == "Dropout":
        if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1]):
            raise fail(node, "expected the mask output unused (got it read: a bool tensor)")
        if ctx.opset < 7 and not int_attr(node, a, "is_test", 0) or ctx.opset >= 12 and _training(ctx, node):
            raise fail(node, "expected inference mode (got training_mode true with a non-zero ratio)")
    source = node.input[0]
    if source in ctx.consts:
        ctx.consts[node.output[0]] = ctx.consts[source]
    elif source in ctx.pending_pads and ctx.uses.get(source) == 1:
        ctx.pending_pads[node.output[0]] = ctx.pending_pads.pop(source)
    else:
        ctx.values[node.output[0]] = ctx.tensor(source, node)


def _training(ctx, node):
    """Dropout 12+: training with a non-zero ratio (random; ratio 0 is the identity in both modes)."""
    training = const_input(ctx, node, 2, "training_mode")
    if training is None or training.size != 1 or not bool(training.reshape(-1)[0]):
        return False
    ratio = const_input(ctx, node, 1, "ratio")
    return ratio is None or float(ratio.reshape(-1)[0]) != 0.0


def convert_cast(ctx, node, a):
    """A Cast / CastLike of a computed value: float32 to float32 or a bool mask to float32 is the identity, a float32
    value to bool a mask (x != 0); anything else is refused."""
    if node.op_type == "Cast":
        to = int_attr(node, a, "to", None)
    else:
        like = input_name(node, 1)
        if like is None:
            raise fail(node, "expected a target_type input")
        constant = ctx.const(like)  # a computed `like` is float32, as every computed value
        to = TensorProto.FLOAT if constant is None or constant.dtype == np.float32 else \
            {np.dtype(np.float64): TensorProto.DOUBLE,
             np.dtype(np.float16): TensorProto.FLOAT16}.get(constant.dtype, -1)
    x = ctx.tensor(node.input[0], node)
    if to == TensorProto.BOOL and x in ctx.masks:
        return ctx.alias(node, x)
    if to == TensorProto.BOOL:  # x != 0, as 1 - (x == 0)
        zero = ctx.emit("equal", f"{node.name}.zero", [x, ctx.constant(np.float32(0), f"{node.name}.zero")], {})
        ctx.define(node, "sub", [ctx.constant(np.float32(1), f"{node.name}.one"), zero], {})
        return ctx.masks.add(ctx.values[node.output[0]])
    if to != TensorProto.FLOAT:
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
        raise fail(node, f"expected a cast of a computed value to FLOAT or BOOL (got {name}: convcore computes float32 "
                         f"only)")
    ctx.alias(node, x)


CONVERTERS = {"Flatten": convert_flatten, "Reshape": convert_reshape, "Squeeze": convert_squeeze,
              "Unsqueeze": convert_squeeze, "Transpose": convert_transpose, "Concat": convert_concat,
              "Split": convert_split, "Slice": convert_slice, "Gather": convert_gather, "Expand": convert_expand,
              "Tile": convert_tile, "DepthToSpace": convert_depth_space, "SpaceToDepth": convert_depth_space,
              "Identity": convert_identity, "Dropout": convert_identity, "Cast": convert_cast,
              "CastLike": convert_cast}
