"""Reading an ONNX node's attributes and constant inputs as Python values, with the checks converters share. Every
refusal is a ValueError naming the node (`fail`)."""

import math

import numpy as np
from onnx import helper

from .._reader import tensor_to_array
from .folding import MAX_INT_LIST


def fail(node, message):
    """The ValueError every converter raises: ``node 'name' (OpType): message``."""
    return ValueError(f"node '{node.name}' ({node.op_type}): {message}")


def node_attrs(node, ctx):
    """Node attributes as Python values (tensors converted with the size checks; strings decoded as UTF-8)."""
    out = {}
    for a in node.attribute:
        if not isinstance(a.name, str):
            raise fail(node, "an attribute name is not valid UTF-8")
        if a.type == helper.AttributeProto.TENSOR:
            out[a.name] = tensor_to_array(a.t, ctx.folder, f"node '{node.name}' attribute '{a.name}'")
        elif a.type in (helper.AttributeProto.GRAPH, helper.AttributeProto.GRAPHS):
            raise ValueError(f"node '{node.name}': expected no subgraph attributes (got '{a.name}')")
        else:
            try:
                value = helper.get_attribute_value(a)
            except Exception as exc:  # an undefined attribute type, a malformed tensor list
                raise fail(node, f"attribute '{a.name}' cannot be read ({type(exc).__name__})") from None
            try:
                if isinstance(value, bytes):
                    value = value.decode("utf-8")
                elif isinstance(value, list) and value and isinstance(value[0], bytes):
                    value = [v.decode("utf-8") for v in value]
            except UnicodeDecodeError:
                raise fail(node, f"attribute '{a.name}' is not valid UTF-8 text") from None
            out[a.name] = value
    return out


def input_name(node, index):
    """The name of input `index`, or None when it is absent or empty (an omitted optional input)."""
    return node.input[index] if len(node.input) > index and node.input[index] else None


def const_input(ctx, node, index, what):
    """Optional constant input `index` as a numpy array (None when absent); ValueError when it is computed."""
    name = input_name(node, index)
    if name is None:
        return None
    value = ctx.const(name)
    if value is None:
        raise fail(node, f"expected a constant {what} (got a computed value)")
    return value


def int_const(ctx, node, index, what):
    """An optional integer-list input (pads, axes, shape) that must be constant; None when absent."""
    value = const_input(ctx, node, index, what)
    if value is None:
        return None
    if value.dtype.kind not in "iu":
        raise fail(node, f"expected integer {what} (got {value.dtype})")
    if value.size > MAX_INT_LIST:
        raise fail(node, f"expected at most {MAX_INT_LIST} {what} (got {value.size})")
    return [int(v) for v in value.reshape(-1)]


def float_const(ctx, node, index, what):
    """An optional float scalar input that must be constant; None when absent."""
    value = const_input(ctx, node, index, what)
    if value is None:
        return None
    if value.size != 1 or value.dtype.kind not in "fiu":
        raise fail(node, f"expected a constant scalar {what} (got shape {value.shape}, {value.dtype})")
    return float(value.reshape(-1)[0])


def int_attr(node, a, key, default, minimum=None):
    value = a.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(node, f"expected an integer {key} (got {value!r})")
    if minimum is not None and value < minimum:
        raise fail(node, f"expected {key} >= {minimum} (got {value})")
    return value


def float_attr(node, a, key, default):
    value = a.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise fail(node, f"expected a number for {key} (got {value!r})")
    return float(value)


def str_attr(node, a, key, default, choices):
    value = a.get(key, default)
    if value not in choices:
        raise fail(node, f"expected {key} to be one of {', '.join(map(repr, choices))} (got {value!r})")
    return value


def ints_attr(node, a, key, default=None, length=None, minimum=None):
    value = a.get(key, default)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise fail(node, f"expected a list of integers for {key} (got {value!r})")
    if length is not None and len(value) != length:
        raise fail(node, f"expected {length} values for {key} (got {list(value)})")
    if minimum is not None and any(v < minimum for v in value):
        raise fail(node, f"expected {key} values >= {minimum} (got {list(value)})")
    return [int(v) for v in value]


def axis_of(node, axis, rank, what="axis", allow_end=False):
    """An ONNX axis in [-rank, rank) ([-rank, rank] with `allow_end`, as Flatten's) -> non-negative; out-of-range
    axes are refused naming the valid range (onnxruntime refuses them too; they never wrap)."""
    high = rank if allow_end else rank - 1
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -rank <= axis <= high:
        raise fail(node, f"expected {what} in [{-rank}, {high}] for a {rank}D input (got {axis})")
    return int(axis) + rank if axis < 0 else int(axis)


def axes_of(node, axes, rank, what="axes"):
    resolved = [axis_of(node, a, rank, what) for a in axes]
    if len(set(resolved)) != len(resolved):
        raise fail(node, f"expected distinct {what} (got {list(axes)})")
    return resolved
