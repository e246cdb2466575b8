"""Checks of a model's structure before conversion: text fields, opset, op coverage, node order (with cycles,
dangling and duplicate values refused) and input shapes."""

import collections

import onnx
from onnx import TensorProto

from .folding import SHAPE_ONLY, is_constant

MIN_OPSET = 6  # opset 6's legacy broadcasting (Add's `broadcast` / `axis`) is read too
MAX_OPSET = onnx.defs.onnx_opset_version()  # the newest opset the installed onnx package defines


def opset_of(proto):
    """The model's ai.onnx opset, within the range convcore imports."""
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ValueError("the model imports no ai.onnx opset")
    version = int(versions[0])
    if version > MAX_OPSET:
        raise ValueError(f"the model's ai.onnx opset {version} is newer than the installed onnx package knows (its "
                         f"newest is {MAX_OPSET}): upgrade onnx to read it")
    if version < MIN_OPSET:
        raise ValueError(f"expected an ai.onnx opset between {MIN_OPSET} and {MAX_OPSET} (got {version})")
    return version


def _text(value, what):
    if not isinstance(value, str):
        shown = bytes(value).decode("utf-8", "replace")
        raise ValueError(f"{what}: {shown!r} is not valid UTF-8 text")
    return value


def check_text(g):
    """ValueError naming the node for any name, op type or domain that is not UTF-8 text (protobuf hands those
    over as bytes)."""
    for i, node in enumerate(g.node):
        name = node.name if isinstance(node.name, str) else None
        where = f"node '{name}'" if name else f"node #{i}"
        _text(node.name, f"node #{i}: its name")
        _text(node.op_type, f"{where}: its op type")
        _text(node.domain, f"{where}: its domain")
        for v in list(node.input) + list(node.output):
            _text(v, f"{where}: a value name")
        for a in node.attribute:
            _text(a.name, f"{where}: an attribute name")
    for kind, items in (("input", g.input), ("output", g.output), ("initializer", g.initializer)):
        for item in items:
            _text(item.name, f"graph {kind}")


def check_ops(order, consts, converters):
    """One ValueError listing every op type that has no converter and is not computable from constants."""
    unsupported, consts = {}, set(consts)
    for node in order:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        if is_constant(node, consts) or node.op_type in SHAPE_ONLY and node.domain in ("", "ai.onnx"):
            consts.update(o for o in node.output if o)
        elif key not in converters:
            unsupported.setdefault(key, []).append(node.name or (node.output[0] if node.output else "?"))
    if unsupported:
        listed = "; ".join(f"{op} ({', '.join(names)})" for op, names in sorted(unsupported.items()))
        raise ValueError(f"unsupported ONNX content: {len(unsupported)} op type(s) convcore cannot import: {listed}")


def sorted_nodes(g, defined):
    """The nodes in dependency order; ValueError for duplicate definitions, dangling inputs and cycles."""
    # One list of the node messages, kept alive: the dicts below key on id(), and protobuf hands out a new wrapper
    # object on each iteration of g.node once the previous one is gone (a node nothing else refers to).
    nodes = list(g.node)
    producer = {}
    for node in nodes:
        for out in node.output:
            if out and (out in producer or out in defined):
                raise ValueError(f"node '{node.name}': value '{out}' is defined more than once")
            if out:
                producer[out] = node
    dangling = sorted({f"'{i}' (node '{n.name}')" for n in nodes for i in n.input
                       if i and i not in producer and i not in defined})
    if dangling:
        raise ValueError(f"the graph reads undefined value(s): {', '.join(dangling)}")
    # Kahn's algorithm, keeping the file order among ready nodes.
    waiting = {id(n): sum(1 for i in set(n.input) if i in producer) for n in nodes}
    readers = {}
    for n in nodes:
        for i in set(n.input):
            if i in producer:
                readers.setdefault(i, []).append(n)
    ready = collections.deque(n for n in nodes if waiting[id(n)] == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for out in node.output:
            for reader in readers.get(out, ()):
                waiting[id(reader)] -= 1
                if waiting[id(reader)] == 0:
                    ready.append(reader)
    if len(order) != len(nodes):
        stuck = [n.name or (n.output[0] if n.output else '?') for n in nodes if waiting[id(n)] > 0]
        raise ValueError(f"the graph has a cycle through node(s) {', '.join(map(repr, stuck[:10]))}")
    return order


class ShapeNeeded(ValueError):
    """A model input's non-batch dims are dynamic and no input_shape was given (`convcore.compile` then compiles at
    the first call, when the input's shape is known)."""


def input_shape_of(value, override):
    """The shape of graph input `value` (a dynamic batch becomes 1), or `override` when given."""
    t = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if t is None or t.elem_type != TensorProto.FLOAT:
        kind = TensorProto.DataType.Name(t.elem_type) if t is not None and t.elem_type in \
            TensorProto.DataType.values() else "not a tensor"
        raise ValueError(f"input '{value.name}': expected a float32 tensor (got {kind})")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] if t.HasField("shape") else None
    if override is not None:
        if dims is not None and len(dims) != len(override):
            raise ValueError(f"input_shape: expected {len(dims)} dims for input '{value.name}' (got {override})")
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in override):
            raise ValueError(f"input_shape: expected non-negative ints for input '{value.name}' (got {override})")
        return tuple(int(d) for d in override)
    if dims is None or any(d is None or d < 0 for d in dims[1:]):
        raise ShapeNeeded(f"input '{value.name}': expected a static shape except the batch (got {dims}); pass "
                          f"input_shape=")
    return (1 if dims and (dims[0] is None or dims[0] < 1) else dims[0], *dims[1:]) if dims else ()
