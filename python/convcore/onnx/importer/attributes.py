"""Reading an ONNX node's attributes and constant inputs as Python values, with the checks converters share."""

from onnx import helper

from .._reader import tensor_to_array


def node_attrs(node, ctx):
    """Node attributes as Python values (tensors converted with the size checks)."""
    out = {}
    for a in node.attribute:
        if a.type == helper.AttributeProto.TENSOR:
            out[a.name] = tensor_to_array(a.t, ctx.folder, f"node '{node.name}' attribute '{a.name}'")
        elif a.type in (helper.AttributeProto.GRAPH, helper.AttributeProto.GRAPHS):
            raise ValueError(f"node '{node.name}': expected no subgraph attributes (got '{a.name}')")
        else:
            value = helper.get_attribute_value(a)
            out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def int_const(ctx, node, index, what):
    """An optional integer-list input (pads, axes, shape) that must be constant; None when absent."""
    if len(node.input) <= index or not node.input[index]:
        return None
    value = ctx.const(node.input[index])
    if value is None:
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected a constant {what} (got a computed value)")
    if value.dtype.kind not in "iu":
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected integer {what} (got {value.dtype})")
    return [int(v) for v in value.reshape(-1)]


def float_const(ctx, node, index, what):
    """An optional float scalar input that must be constant; None when absent."""
    if len(node.input) <= index or not node.input[index]:
        return None
    value = ctx.const(node.input[index])
    if value is None or value.size != 1 or value.dtype.kind != "f":
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected a constant float scalar {what}")
    return float(value.reshape(-1)[0])


def pair_attr(node, a, key, default):
    """A 2-D window attribute (kernel_shape, strides, dilations) as a pair of positive ints."""
    value = list(a.get(key, default))
    if len(value) != 2 or any(v < 1 for v in value):
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected 2 positive {key} (got {value})")
    return tuple(int(v) for v in value)


def need_4d(ctx, node, value, kind):
    """Raise unless graph value `value` is 4-D (convcore's 2-D windows run on NCHW input)."""
    rank = len(ctx.shape(value))
    if rank != 4:
        raise ValueError(f"node '{node.name}' ({node.op_type}): expected 2-D {kind} on a 4D NCHW input (got a "
                         f"{rank}D input)")
