"""Constant folding: nodes whose inputs are all constants are computed at import time with numpy (exporters leave
shape and pad arithmetic in the graph, e.g. torch's F.pad: ConstantOfShape, Concat, Slice, Transpose, Reshape, Cast).
"""

import math

import numpy as np
from onnx import helper

MAX_FOLDED_ELEMENTS = 1 << 24  # a constant computed at import time may not be larger (ConstantOfShape)


def _axes_of(node, a, inputs, index, opset, since):
    if opset < since:
        return a.get("axes")
    return [int(v) for v in inputs[index].reshape(-1)] if len(inputs) > index and inputs[index] is not None else None


def _fold_constant_of_shape(node, a, inputs, opset):
    shape = [int(d) for d in inputs[0].reshape(-1)]
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_FOLDED_ELEMENTS:
        raise ValueError(f"node '{node.name}' (ConstantOfShape): expected a non-negative shape of at most "
                         f"{MAX_FOLDED_ELEMENTS} elements (got {shape})")
    value = a.get("value", np.zeros(1, np.float32))
    return np.full(shape, value.reshape(-1)[0], value.dtype)


def _fold_reshape(node, a, inputs, opset):
    data, spec = inputs[0], [int(d) for d in inputs[1].reshape(-1)]
    target = [data.shape[i] if d == 0 and not a.get("allowzero", 0) else d for i, d in enumerate(spec)]
    return data.reshape(target)


def _fold_slice(node, a, inputs, opset):
    data = inputs[0]
    if opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = (list(inputs[i].reshape(-1)) for i in (1, 2))
        axes = list(inputs[3].reshape(-1)) if len(inputs) > 3 and inputs[3] is not None else None
        steps = list(inputs[4].reshape(-1)) if len(inputs) > 4 and inputs[4] is not None else None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _fold_squeeze(node, a, inputs, opset):
    axes = _axes_of(node, a, inputs, 1, opset, 13)
    if node.op_type == "Squeeze":
        return np.squeeze(inputs[0], axis=None if axes is None else tuple(axes))
    return np.expand_dims(inputs[0], tuple(axes))


def _fold_div(node, a, inputs, opset):
    x, y = inputs
    if x.dtype.kind in "iu":
        return np.trunc(x / y).astype(x.dtype)  # ONNX integer division truncates
    return x / y


def _fold_constant(node, a, inputs, opset):
    for key, value in a.items():
        if key == "value":
            return value
        if key in ("value_float", "value_floats"):
            return np.asarray(value, np.float32)
        if key in ("value_int", "value_ints"):
            return np.asarray(value, np.int64)
        raise ValueError(f"node '{node.name}' (Constant): expected a value, value_float(s) or value_int(s) "
                         f"attribute (got '{key}')")
    raise ValueError(f"node '{node.name}' (Constant): expected a value attribute (got none)")


FOLDERS = {
    "Constant": _fold_constant,
    "Identity": lambda node, a, inputs, opset: inputs[0],
    "Cast": lambda node, a, inputs, opset: inputs[0].astype(helper.tensor_dtype_to_np_dtype(a["to"])),
    "ConstantOfShape": _fold_constant_of_shape,
    "Concat": lambda node, a, inputs, opset: np.concatenate([i for i in inputs if i is not None], axis=a["axis"]),
    "Reshape": _fold_reshape,
    "Slice": _fold_slice,
    "Transpose": lambda node, a, inputs, opset: np.transpose(inputs[0], a.get("perm")),
    "Squeeze": _fold_squeeze,
    "Unsqueeze": _fold_squeeze,
    "Gather": lambda node, a, inputs, opset: np.take(inputs[0], inputs[1], axis=a.get("axis", 0)),
    "Shape": lambda node, a, inputs, opset: np.asarray(inputs[0].shape, np.int64),
    "Add": lambda node, a, inputs, opset: inputs[0] + inputs[1],
    "Sub": lambda node, a, inputs, opset: inputs[0] - inputs[1],
    "Mul": lambda node, a, inputs, opset: inputs[0] * inputs[1],
    "Div": _fold_div,
}

def is_constant(node, consts):
    """Whether `node` can be computed now: a foldable op whose inputs are all constants."""
    return node.op_type in FOLDERS and node.domain in ("", "ai.onnx") and all(not i or i in consts
                                                                                for i in node.input)


def fold(ctx, node, a):
    """Compute `node` on its constant inputs; its output becomes a constant."""
    inputs = [ctx.consts[i] if i else None for i in node.input]
    try:
        value = np.asarray(FOLDERS[node.op_type](node, a, inputs, ctx.opset))
    except ValueError:
        raise
    except Exception as exc:  # numpy's IndexError / TypeError / AxisError on a malformed constant expression
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected constant inputs it can be computed on "
                         f"({type(exc).__name__}: {exc})") from None
    if value.size > MAX_FOLDED_ELEMENTS:
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected a constant result of at most "
                         f"{MAX_FOLDED_ELEMENTS} elements (got {value.size})")
    ctx.consts[node.output[0]] = value
