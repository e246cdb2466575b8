"""Activations spelled out in elementary ops, as exporters write them, recognised before a Plan is built
(`fuse_gates`, the "gates" fusion): ``x * sigmoid(x)`` (SiLU), ``x * hardsigmoid(x)``, paddle2onnx's and tf2onnx's
``relu6(x + 3) / 6`` and ``x * relu6(x + 3) / 6`` (hard-sigmoid, hard-swish), the torch exporter's
``0.5 x (1 + erf(x / sqrt 2))`` (GELU)."""

from __future__ import annotations

import math

import numpy as np

from ..graph import Graph, Node
from .fusion import GraphIndex


def _is_scalar(graph, value, number):
    return value in graph.params and np.size(graph.params[value]) == 1 and float(
        np.asarray(graph.params[value]).reshape(-1)[0]) == number


def _spelled_hard_gate(graph, index, node):
    """(z, the nodes to drop) when `node` is the last of ``relu6(z + 3) / 6`` (hard-sigmoid, spelled out as
    paddle2onnx and tf2onnx write it; z + 3 and the clip read by nothing else), else None."""
    if node.op != "div" or not _is_scalar(graph, node.inputs[1], 6.0):
        return None
    clip = index.producer.get(node.inputs[0])
    add = index.producer.get(clip.inputs[0]) if clip is not None and clip.op == "relu6" else None
    if add is None or add.op != "add":
        return None
    a, b = add.inputs[:2]
    z = a if _is_scalar(graph, b, 3.0) else b if _is_scalar(graph, a, 3.0) else None
    inner = (add.outputs[0], clip.outputs[0])
    if z is None or any(len(index.readers.get(v, ())) != 1 or v in graph.outputs for v in inner):
        return None
    return z, [add, clip]


def _near(graph, value, number):
    return value in graph.params and np.size(graph.params[value]) == 1 and bool(
        np.isclose(float(np.asarray(graph.params[value]).reshape(-1)[0]), number, rtol=1e-6, atol=0.0))


def _once(graph, index, value):
    """The node computing `value` when nothing else reads it and it is no graph output, else None."""
    node = index.producer.get(value)
    if node is None or len(index.readers.get(value, ())) != 1 or value in graph.outputs:
        return None
    return node


def _erf_gate(graph, index, value):
    """(x, its nodes) when `value` is ``1 + erf(x / sqrt 2)`` (or ``erf(x * (1 / sqrt 2)) + 1``), each step read
    once, else None: the gate of GELU as the torch exporter (before opset 20) and tf2onnx spell it."""
    add = _once(graph, index, value)
    if add is None or add.op != "add":
        return None
    a, b = add.inputs[:2]
    e = _once(graph, index, a if _near(graph, b, 1.0) else b if _near(graph, a, 1.0) else "")
    scaled = _once(graph, index, e.inputs[0]) if e is not None and e.op == "erf" else None
    if scaled is None or len(scaled.inputs) < 2:
        return None
    x, c = scaled.inputs[:2]
    if scaled.op == "div" and _near(graph, c, math.sqrt(2.0)) or scaled.op == "mul" and _near(graph, c, math.sqrt(0.5)):
        return x, [scaled, e, add]
    return None


def _spelled_gelu(graph, index, node):
    """(x, the nodes to drop) when `node` ends ``0.5 x (1 + erf(x / sqrt 2))`` in any order of its two multiplies,
    else None."""
    if node.op != "mul":
        return None
    for u, v in (node.inputs[:2], node.inputs[1::-1]):
        if _near(graph, v, 0.5):  # (x * gate) * 0.5
            inner = _once(graph, index, u)
            if inner is None or inner.op != "mul":
                continue
            for x, g in (inner.inputs[:2], inner.inputs[1::-1]):
                gate = _erf_gate(graph, index, g)
                if gate is not None and gate[0] == x:
                    return x, [inner, *gate[1]]
        half = _once(graph, index, v)  # (x * 0.5) * gate and x * (gate * 0.5)
        if half is None or half.op != "mul" or not any(_near(graph, h, 0.5) for h in half.inputs[:2]):
            continue
        other = half.inputs[1] if _near(graph, half.inputs[0], 0.5) else half.inputs[0]
        for x, g in ((other, u), (u, other)):
            gate = _erf_gate(graph, index, g)
            if gate is not None and gate[0] == x:
                return x, [half, *gate[1]]
    return None


def fuse_gates(graph):
    """x * sigmoid(x) -> silu(x) and x * hardsigmoid(x) -> hardswish(x), where the gate has no other reader (ONNX
    files spell SiLU as Sigmoid + Mul, and hard-swish as HardSigmoid + Mul before opset 14); hard-sigmoid spelled
    ``relu6(x + 3) / 6`` and hard-swish spelled ``x * relu6(x + 3) / 6`` (paddle2onnx) become the activations, and
    so does GELU spelled ``0.5 x (1 + erf(x / sqrt 2))`` (the torch exporter before opset 20)."""
    index = GraphIndex(graph)
    fused = {"sigmoid": "silu", "hardsigmoid": "hardswish"}
    dropped, replaced = set(), {}
    for node in graph.nodes:
        gelu = _spelled_gelu(graph, index, node)
        if gelu is not None:
            replaced[id(node)] = Node("gelu", node.name, [gelu[0]], list(node.outputs), {"approximate": "none"})
            dropped.update(id(n) for n in gelu[1])
            continue
        gate = _spelled_hard_gate(graph, index, node)
        if gate is not None:
            replaced[id(node)] = Node("hardsigmoid", node.name, [gate[0]], list(node.outputs), {})
            dropped.update(id(n) for n in gate[1])
            continue
        if node.op == "div" and _is_scalar(graph, node.inputs[1], 6.0):  # (x * relu6(x + 3)) / 6
            mul = index.producer.get(node.inputs[0])
            if (mul is not None and mul.op == "mul" and len(index.readers.get(mul.outputs[0], ())) == 1
                    and mul.outputs[0] not in graph.outputs):
                for x, g in ((mul.inputs[0], mul.inputs[1]), (mul.inputs[1], mul.inputs[0])):
                    producer = index.producer.get(g)
                    inner = _spelled_clip_div(graph, index, producer, x)
                    if inner is not None:
                        replaced[id(node)] = Node("hardswish", node.name, [x], list(node.outputs), {})
                        dropped.update(id(n) for n in [mul, *inner])
                        break
            continue
        if node.op != "mul":
            continue
        a, b = node.inputs[:2]
        for x, gate in ((a, b), (b, a)):
            g = index.producer.get(gate)
            if g is None or len(index.readers.get(gate, ())) != 1 or gate in graph.outputs:
                continue
            spelled = _spelled_hard_gate(graph, index, g)  # x * (relu6(x + 3) / 6)
            if spelled is not None and spelled[0] == x:
                replaced[id(node)] = Node("hardswish", node.name, [x], list(node.outputs), {})
                dropped.update(id(n) for n in [g, *spelled[1]])
                break
            if g.op in fused and g.inputs[0] == x:
                replaced[id(node)] = Node(fused[g.op], node.name, [x], list(node.outputs), {})
                dropped.add(id(g))
                break
    if not replaced:
        return graph
    nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in dropped]
    return Graph(nodes, graph.inputs, graph.outputs, graph.params, graph.shapes, graph.name)


def _spelled_clip_div(graph, index, clip, z):
    """[add, clip] when `clip` is relu6(z + 3) with both read once, else None (the hard-swish spelling's gate)."""
    if clip is None or clip.op != "relu6" or len(index.readers.get(clip.outputs[0], ())) != 1:
        return None
    add = index.producer.get(clip.inputs[0])
    if add is None or add.op != "add" or len(index.readers.get(add.outputs[0], ())) != 1:
        return None
    a, b = add.inputs[:2]
    if (a, b) != (z, b) and (a, b) != (a, z):
        return None
    other = b if a == z else a
    return [add, clip] if _is_scalar(graph, other, 3.0) and add.outputs[0] not in graph.outputs else None
