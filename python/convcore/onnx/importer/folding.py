"""Constant folding: nodes whose inputs are all constants are computed at import time with numpy (exporters leave
shape and pad arithmetic in the graph: Shape, Gather, Cast, ConstantOfShape, Range, Concat, Slice, ...). Shape and
Size of computed values fold too: every shape is static once the graph's input shapes are known.

Folders see the inputs as numpy arrays (None for an omitted optional input) and return one array or, for nodes with
several outputs (Split), a list. Results are bounded by `MAX_FOLDED_ELEMENTS`, checked before they are allocated.
"""

import math

import numpy as np
from onnx import TensorProto, helper

# Constants computed at import time: at most 2**27 elements each (512 MiB of float32: VGG's largest weight fits; the
# ONNX "light" models build every weight with ConstantOfShape) and 2**28 in all, so that a few bytes of hostile
# shape arithmetic cannot ask for more (ConstantOfShape, Expand, Tile, Range are bounded before they allocate).
MAX_FOLDED_ELEMENTS = 1 << 27
MAX_FOLDED_TOTAL = 1 << 28


class FoldError(ValueError):
    pass


# Integer lists read from constants (shapes, axes, repeats, pads, slice bounds, split sizes: one entry per axis or
# output) are made Python lists; a larger constant (a 2^27-element ConstantOfShape) would take gigabytes as one.
MAX_INT_LIST = 1 << 16


def _ints(array, what):
    if array is None:
        return None
    if array.dtype.kind not in "iu":
        raise FoldError(f"expected integer {what} (got {array.dtype})")
    if array.size > MAX_INT_LIST:
        raise FoldError(f"expected at most {MAX_INT_LIST} {what} (got {array.size})")
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _bounded(shape, what):
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_FOLDED_ELEMENTS:
        raise FoldError(f"expected a {what} of at most {MAX_FOLDED_ELEMENTS} elements (got shape {list(shape)})")
    return shape


def _axes_of(a, inputs, index, opset, since):
    if opset < since:
        return a.get("axes")
    return _ints(inputs[index], "axes") if len(inputs) > index else None


def _fold_constant_of_shape(node, a, inputs, opset):
    shape = _bounded(_ints(inputs[0], "shape"), "constant")
    value = a.get("value", np.zeros(1, np.float32))
    if value.size != 1:
        raise FoldError(f"expected a one-element value (got shape {list(value.shape)})")
    return np.broadcast_to(value.reshape(()), shape)  # no memory until a param needs the array


def _fold_reshape(node, a, inputs, opset):
    data, spec = inputs[0], _ints(inputs[1], "shape")
    allowzero = a.get("allowzero", 0)
    target = [data.shape[i] if d == 0 and not allowzero and i < data.ndim else d for i, d in enumerate(spec)]
    return data.reshape(target)


def _fold_slice(node, a, inputs, opset):
    data = inputs[0]
    if opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = _ints(inputs[1], "starts"), _ints(inputs[2], "ends")
        axes = _ints(inputs[3], "axes") if len(inputs) > 3 else None
        steps = _ints(inputs[4], "steps") if len(inputs) > 4 else None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise FoldError("expected non-zero steps")
        index[axis] = slice(start, end, step)
    return data[tuple(index)]


def _fold_squeeze(node, a, inputs, opset):
    axes = _axes_of(a, inputs, 1, opset, 13)
    if node.op_type == "Squeeze":
        return np.squeeze(inputs[0], axis=None if axes is None else tuple(axes))
    return np.expand_dims(inputs[0], tuple(axes))


def _broadcast(inputs):
    """The broadcast shape of the inputs, bounded before anything of that size is computed."""
    return _bounded(np.broadcast_shapes(*(np.shape(i) for i in inputs)), "result")


def _fold_div(node, a, inputs, opset):
    x, y = inputs
    _broadcast(inputs)
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        if (y == 0).any():
            raise FoldError("integer division by zero")
        return (np.sign(x) * np.sign(y) * (np.abs(x) // np.abs(y))).astype(x.dtype)  # ONNX truncates toward 0
    with np.errstate(all="ignore"):
        return x / y


def _fold_mod(node, a, inputs, opset):
    x, y = inputs
    _broadcast(inputs)
    if x.dtype.kind in "iu" and (y == 0).any():
        raise FoldError("integer modulo by zero")
    with np.errstate(all="ignore"):
        return np.fmod(x, y) if a.get("fmod", 0) else np.mod(x, y)


def _fold_constant(node, a, inputs, opset):
    for key, value in a.items():
        if key == "value":
            return value
        if key in ("value_float", "value_floats"):
            return np.asarray(value, np.float32)
        if key in ("value_int", "value_ints"):
            return np.asarray(value, np.int64)
        raise FoldError(f"expected a value, value_float(s) or value_int(s) attribute (got '{key}')")
    raise FoldError("expected a value attribute (got none)")


def _fold_cast(node, a, inputs, opset):
    to = a["to"]
    if to not in _CASTABLE:
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else to
        raise FoldError(f"cannot cast to {name}")
    with np.errstate(all="ignore"):
        return inputs[0].astype(helper.tensor_dtype_to_np_dtype(to))


_CASTABLE = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT64, TensorProto.INT32,
             TensorProto.INT16, TensorProto.INT8, TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32,
             TensorProto.UINT64, TensorProto.BOOL)


def _fold_range(node, a, inputs, opset):
    start, limit, delta = (np.asarray(v).reshape(-1)[0] for v in inputs)
    if delta == 0:
        raise FoldError("expected a non-zero delta")
    count = max(int(np.ceil((limit - start) / delta)), 0)
    _bounded([count], "range")
    return (start + np.arange(count) * delta).astype(inputs[0].dtype)


def _fold_expand(node, a, inputs, opset):
    shape = tuple(np.broadcast_shapes(inputs[0].shape, tuple(_ints(inputs[1], "shape"))))
    return np.broadcast_to(inputs[0], _bounded(shape, "result")).copy()


def _fold_tile(node, a, inputs, opset):
    repeats = _ints(inputs[1], "repeats")
    if len(repeats) != inputs[0].ndim:  # numpy would prepend axes for the extra repeats: an unbounded result
        raise FoldError(f"expected one repeat per axis of the {inputs[0].ndim}D input (got {len(repeats)} repeats)")
    if any(r < 0 for r in repeats):
        raise FoldError(f"expected non-negative repeats (got {repeats})")
    _bounded([d * r for d, r in zip(inputs[0].shape, repeats)], "result")
    return np.tile(inputs[0], repeats)


def _fold_shape(node, a, inputs, opset):
    shape = np.asarray(inputs[0].shape, np.int64)
    return shape[a.get("start", 0):a.get("end", None)] if opset >= 15 else shape


def _fold_concat(node, a, inputs, opset):
    arrays = [i for i in inputs if i is not None]
    _bounded([sum(x.size for x in arrays)], "result")
    return np.concatenate(arrays, axis=a["axis"])


def _fold_split(node, a, inputs, opset):
    x = inputs[0]
    axis = a.get("axis", 0)
    n = x.shape[axis]
    split = a.get("split") if opset < 13 else (_ints(inputs[1], "split") if len(inputs) > 1 else None)
    if split is None:
        parts = a.get("num_outputs", len(node.output))
        size = -(-n // parts)
        split = [min(size, n - i * size) for i in range(parts)]
    if sum(split) != n:
        raise FoldError(f"expected split sizes summing to {n} (got {split})")
    return np.split(x, np.cumsum(split)[:-1], axis=axis)


def _fold_gather(node, a, inputs, opset):
    data, indices = inputs
    if indices.dtype.kind not in "iu":
        raise FoldError(f"expected integer indices (got {indices.dtype})")
    axis = a.get("axis", 0)
    if not -data.ndim <= axis < data.ndim:
        raise FoldError(f"expected an axis in [{-data.ndim}, {data.ndim - 1}] (got {axis})")
    axis %= data.ndim
    _bounded([*data.shape[:axis], *indices.shape, *data.shape[axis + 1:]], "result")
    return np.take(data, indices.astype(np.int64), axis=axis)


def _fold_scatter_nd(node, a, inputs, opset):
    """ScatterND of constants (Swin's shifted-window mask, built from the input's shape): a copy of data with the
    slices at `indices` replaced (or combined by `reduction`) by `updates`."""
    data, indices, updates = inputs
    if indices.dtype.kind not in "iu" or indices.ndim < 1:
        raise FoldError(f"expected integer indices of rank >= 1 (got {indices.dtype}, shape {indices.shape})")
    k = indices.shape[-1]
    if k > data.ndim or updates.shape != indices.shape[:-1] + data.shape[k:]:
        raise FoldError(f"expected updates of shape {indices.shape[:-1] + data.shape[k:]} for data {data.shape} "
                        f"and indices {indices.shape} (got {updates.shape})")
    index = indices.reshape(-1, k).astype(np.int64)
    dims = np.asarray(data.shape[:k], np.int64)
    if index.size and ((index < -dims) | (index >= dims)).any():
        raise FoldError(f"expected indices within the data's shape {data.shape[:k]}")
    where = tuple((index % np.maximum(dims, 1)).T)
    parts = updates.reshape(-1, *data.shape[k:])
    out = data.copy()
    reduction = a.get("reduction", "none")
    combine = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
    if reduction not in combine:
        raise FoldError(f"expected reduction none, add, mul, max or min (got {reduction!r})")
    if combine[reduction] is None:
        out[where] = parts
    else:
        combine[reduction].at(out, where, parts)
    return out


def _reduce(fn):
    def fold(node, a, inputs, opset):
        since = 13 if node.op_type == "ReduceSum" else 18
        axes = _axes_of(a, inputs, 1, opset, since)
        if not axes and a.get("noop_with_empty_axes", 0):
            return inputs[0]
        return fn(inputs[0], axis=None if not axes else tuple(axes), keepdims=bool(a.get("keepdims", 1)))

    return fold


def _elementwise(fn):
    def fold(node, a, inputs, opset):
        _broadcast(inputs)
        with np.errstate(all="ignore"):
            return fn(*inputs)

    return fold


def _variadic(fn):
    def fold(node, a, inputs, opset):
        _broadcast(inputs)
        out = inputs[0]
        for x in inputs[1:]:
            out = fn(out, x)
        return out / len(inputs) if node.op_type == "Mean" else out

    return fold


FOLDERS = {
    "Constant": _fold_constant,
    "Identity": lambda node, a, inputs, opset: inputs[0],
    "Cast": _fold_cast,
    "CastLike": lambda node, a, inputs, opset: inputs[0].astype(inputs[1].dtype),
    "ConstantOfShape": _fold_constant_of_shape,
    "Concat": _fold_concat,
    "Reshape": _fold_reshape,
    "Flatten": lambda node, a, inputs, opset: inputs[0].reshape(
        math.prod(inputs[0].shape[:a.get("axis", 1)]), -1) if inputs[0].size else
        inputs[0].reshape(math.prod(inputs[0].shape[:a.get("axis", 1)]), math.prod(inputs[0].shape[a.get("axis", 1):])),
    "Slice": _fold_slice,
    "Transpose": lambda node, a, inputs, opset: np.transpose(inputs[0], a.get("perm")),
    "Squeeze": _fold_squeeze,
    "Unsqueeze": _fold_squeeze,
    "Gather": _fold_gather,
    "Shape": _fold_shape,
    "Size": lambda node, a, inputs, opset: np.asarray(inputs[0].size, np.int64),
    "Range": _fold_range,
    "Expand": _fold_expand,
    "Tile": _fold_tile,
    "Split": _fold_split,
    "ScatterND": _fold_scatter_nd,
    "Add": _elementwise(np.add),
    "Sub": _elementwise(np.subtract),
    "Mul": _elementwise(np.multiply),
    "Div": _fold_div,
    "Mod": _fold_mod,
    "Pow": _elementwise(lambda x, y: np.power(x, y).astype(x.dtype)),
    "Neg": _elementwise(np.negative),
    "Abs": _elementwise(np.abs),
    "Sqrt": _elementwise(np.sqrt),
    "Exp": _elementwise(np.exp),
    "Log": _elementwise(np.log),
    "Reciprocal": _elementwise(np.reciprocal),
    "Floor": _elementwise(np.floor),
    "Ceil": _elementwise(np.ceil),
    "Round": _elementwise(np.round),
    "Sign": _elementwise(np.sign),
    "Relu": _elementwise(lambda x: np.maximum(x, 0).astype(x.dtype)),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Sum": _variadic(np.add),
    "Mean": _variadic(np.add),
    "Equal": _elementwise(np.equal),
    "Less": _elementwise(np.less),
    "LessOrEqual": _elementwise(np.less_equal),
    "Greater": _elementwise(np.greater),
    "GreaterOrEqual": _elementwise(np.greater_equal),
    "Not": _elementwise(np.logical_not),
    "And": _elementwise(np.logical_and),
    "Or": _elementwise(np.logical_or),
    "Xor": _elementwise(np.logical_xor),
    "Where": _elementwise(np.where),
    "ReduceSum": _reduce(np.sum),
    "ReduceProd": _reduce(np.prod),
    "ReduceMax": _reduce(np.max),
    "ReduceMin": _reduce(np.min),
    "ReduceMean": _reduce(np.mean),
}

# Foldable whatever their input: the result depends only on the input's (static) shape.
SHAPE_ONLY = {"Shape", "Size"}


def is_constant(node, consts, known=None):
    """Whether `node` can be computed now: a foldable op whose inputs are all constants (or, for Shape / Size, whose
    input's shape is known: `known` is a predicate on value names)."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in FOLDERS:
        return False
    if node.op_type in SHAPE_ONLY and node.input and node.input[0]:
        return known is None or known(node.input[0]) or node.input[0] in consts
    return all(not i or i in consts for i in node.input)


def fold(ctx, node, a):
    """Compute `node` on its constant inputs; its outputs become constants."""
    if node.op_type in SHAPE_ONLY and node.input[0] not in ctx.consts:
        shape = ctx.static_shape(node.input[0])
        inputs = [np.broadcast_to(np.zeros((), np.float32), shape)]  # the shape without the data
    else:
        inputs = [ctx.consts[i] if i else None for i in node.input]
    while inputs and inputs[-1] is None:
        inputs.pop()
    try:
        value = FOLDERS[node.op_type](node, a, inputs, ctx.opset)
    except FoldError as exc:
        raise ValueError(f"node '{node.name}' ({node.op_type}): {exc}") from None
    except Exception as exc:  # numpy's IndexError / TypeError / AxisError on a malformed constant expression
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected constant inputs it can be computed on "
                         f"({type(exc).__name__}: {exc})") from None
    values = value if isinstance(value, list) else [value]
    outputs = [o for o in node.output if o]
    if len(values) < len(outputs):
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected at most {len(values)} outputs (got "
                         f"{len(node.output)})")
    for name, v in zip(node.output, values):
        v = np.asarray(v)
        ctx.folded_elements += v.size
        if v.size > MAX_FOLDED_ELEMENTS or ctx.folded_elements > MAX_FOLDED_TOTAL:
            raise ValueError(f"node '{node.name}' ({node.op_type}): expected constant results of at most "
                             f"{MAX_FOLDED_ELEMENTS} elements each and {MAX_FOLDED_TOTAL} in all (got {v.size}, "
                             f"{ctx.folded_elements} in all)")
        if name:
            ctx.consts[name] = v
