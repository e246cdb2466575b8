"""Batch first: a rewrite that gives every value computed from the input its batch as the first axis, for a graph
that moves the batch elsewhere and back. torch's nn.MultiheadAttention runs sequence-first ((N, L, E) -> (L, N, E)),
merges the batch with the heads ((L, N * heads, D)) and runs its output projection on (L * N, E) rows; a Plan stores
each image's values together, so at batch > 1 those values could not be split by image and ran outside the Plan.

Where the batch is: each value of shape S keeps the images as one digit of one axis a, S[a] = outer * N * inner
(image n's entries of that axis are [outer index] * N * inner + n * inner + [inner index]). Its batch-first form is
the same values with that digit first: (N, *S[:a], outer, inner, *S[a+1:]) (outer / inner left out when 1), each
image's values in S's order; when the digit already leads (a = 0, outer = 1) the form is S itself, image n holding
rows [n * inner, (n + 1) * inner) (`plan.permute.is_raw`). A reshape keeps each image's values in that order, so it
is a reshape of the forms; a transpose is a transpose of the forms; ops acting on other axes act on the forms'
axes (elementwise ops, linear / matmul rows, softmax, layer norm, reductions, gathers, slices, concatenations,
padding). Where a node would mix images (it acts on the batch's axis) or splits the digit over two axes, the graph
is left as it is.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ..ops import OPS
from .ir import Graph, Node

_UNARY = frozenset(name for name, op in OPS.items() if op.plan is not None and op.plan.epilogue is not None) | {
    "identity"}
_BINARY = frozenset(name for name, op in OPS.items() if op.plan is not None and op.plan.elementwise)
_REDUCTIONS = frozenset(name for name in OPS if name.startswith("reduce_"))


class _Cannot(Exception):
    """A node the rewrite cannot follow: the graph stays as it is."""


class Band(NamedTuple):
    """Where a value's images are: the digit of axis `axis` with `inner` entries after it (see the module doc)."""

    axis: int
    inner: int


FIRST = Band(0, 1)


class _Value:
    """A value's shape and band, and its batch-first form."""

    def __init__(self, shape, band, batch):
        self.shape, self.band, self.batch = tuple(shape), band, batch
        a, inner = band
        if not 0 <= a < len(shape) or shape[a] % (batch * inner):
            raise _Cannot
        self.outer = shape[a] // (batch * inner)

    @property
    def raw(self):
        """The images lead already: the form is the shape itself."""
        return self.band.axis == 0 and self.outer == 1

    def labels(self):
        """The general form's axes: "N", the shape's other axes by index, "o" / "i" for outer / inner."""
        a, s = self.band.axis, self.shape
        return ["N", *range(a), *(["o"] if self.outer > 1 else []), *(["i"] if self.band.inner > 1 else []),
                *range(a + 1, len(s))]

    def general(self):
        size = {"N": self.batch, "o": self.outer, "i": self.band.inner}
        return tuple(size[x] if isinstance(x, str) else self.shape[x] for x in self.labels())

    def form(self):
        return self.shape if self.raw else self.general()

    def axis(self, j):
        """The form's axis for the shape's axis j (negative counts from the end); _Cannot for the batch's axis."""
        j = j + len(self.shape) if j < 0 else j
        if j == self.band.axis or not 0 <= j < len(self.shape):
            raise _Cannot
        return j if self.raw else self.labels().index(j)


def _band_after_reshape(v: _Value, shape) -> Band:
    """The band of v reshaped to `shape`: the axis holding the images' digit whole (else _Cannot)."""
    a, inner = v.band
    stride = inner * math.prod(v.shape[a + 1:])  # of the images' digit in the flat order
    for b in range(len(shape)):
        step = math.prod(shape[b + 1:])
        if stride % step == 0 and (step * shape[b]) % (stride * v.batch) == 0:
            return Band(b, stride // step)
    raise _Cannot


class _Rewriter:
    def __init__(self, graph, batch):
        self.graph, self.batch = graph, batch
        self.values: dict[str, _Value] = {v: _Value(graph.shapes[v], FIRST, batch) for v in graph.inputs}
        self.name = {v: v for v in graph.inputs}  # value -> the name of its form
        self.params = dict(graph.params)
        self.nodes: list[Node] = []
        self._shapes: dict[str, tuple] = {}  # the forms' shapes, by name
        self.moved = False  # some value does not lead with its images

    def value(self, name, band):
        return _Value(self.graph.shapes[name], band, self.batch)

    @staticmethod
    def target(out, w):
        """The name of value `out`'s form: its own where the batch leads it, else a new one."""
        return out if w.band == FIRST and w.outer == 1 else f"{out}.batch_first"

    def reshaped(self, node, x, shape, suffix):
        """Form `x` reshaped to `shape` (a node only when it differs from x's shape)."""
        if tuple(self.shape_of(x)) == tuple(shape):
            return x
        target = f"{node.outputs[0]}.batch_first{suffix}"
        self.nodes.append(Node("reshape", node.name + suffix, [x], [target], {"shape": tuple(shape)}))
        self._shapes[target] = tuple(shape)
        return target

    def shape_of(self, x):
        return self._shapes.get(x) or self.graph.shapes[x]

    def define(self, out, form_name, out_value):
        self.values[out] = out_value
        self.name[out] = form_name
        self._shapes[form_name] = out_value.form()
        self.moved |= not out_value.raw

    def run(self):
        for node in self.graph.nodes:
            computed = [v for v in node.inputs if v and v not in self.graph.params]
            known = [v for v in computed if v in self.values]
            if not known:  # from parameters, or from values the rewrite does not follow
                self.nodes.append(replace(node, inputs=[self.name.get(v, v) for v in node.inputs]))
                continue
            if len(known) != len(computed):
                raise _Cannot
            self.rewrite(node, [self.values[v] for v in computed])
        outputs = []
        for out in self.graph.outputs:
            if out not in self.values:
                outputs.append(out)
                continue
            v = self.values[out]
            if v.band != FIRST:
                raise _Cannot
            if self.name[out] != out:  # the output is another value's form: name it
                self.nodes.append(Node("reshape", f"{out}.batch_first", [self.name[out]], [out],
                                       {"shape": v.shape}))
            outputs.append(out)
        return outputs

    def keep(self, node):
        """The node as it is (inputs renamed to their forms); its outputs lead with the batch where their first axis
        has the batch's length, else the rewrite does not follow them."""
        self.nodes.append(replace(node, inputs=[self.name.get(v, v) for v in node.inputs]))
        for out in node.outputs:
            shape = self.graph.shapes.get(out)
            if shape and shape[0] == self.batch:
                self.define(out, out, self.value(out, FIRST))

    def rewrite(self, node, ins):
        op, out = node.op, node.outputs[0]
        if len(node.outputs) != 1 or out not in self.graph.shapes:
            raise _Cannot
        out_shape = tuple(self.graph.shapes[out])
        if op in ("reshape", "flatten"):
            v = ins[0]
            w = self.value(out, _band_after_reshape(v, out_shape))
            x = self.reshaped(node, self.name[node.inputs[0]], w.form(), "")
            if x != self.name[node.inputs[0]] and self.target(out, w) == out:  # the graph's value itself
                self.nodes[-1].outputs[0] = out
                x = out
            self.define(out, x, w)
            return
        if op == "transpose":
            self.transpose(node, ins[0], tuple(node.attrs["perm"]))
            return
        if all(v.band == FIRST and v.outer == 1 for v in ins):
            self.keep(node)
            return
        if op not in _FOLLOWED:
            raise _Cannot
        _FOLLOWED[op](self, node, ins, out_shape)

    def transpose(self, node, v, perm):
        a = v.band.axis
        w = self.value(node.outputs[0], Band(perm.index(a), v.band.inner))
        labels = v.labels()
        expanded = {j: [j] for j in range(len(v.shape))}
        expanded[a] = [x for x in ("o", "i") if x in labels]
        w_labels = ["N", *(x for k in perm for x in expanded[k])]
        fperm = tuple(labels.index(x) for x in w_labels)
        x = self.reshaped(node, self.name[node.inputs[0]], v.general(), ".split")
        if fperm != tuple(range(len(fperm))):
            shape = tuple(self.shape_of(x)[p] for p in fperm)
            target = f"{node.outputs[0]}.batch_first.t"
            self.nodes.append(Node("transpose", node.name, [x], [target], {"perm": fperm}))
            self._shapes[target] = shape
            x = target
        x = self.reshaped(node, x, w.form(), ".merge")
        self.define(node.outputs[0], x, w)

    def same(self, node, ins, attrs, band):
        """The node on its inputs' forms with `attrs`, its output of `band`."""
        out = node.outputs[0]
        w = self.value(out, band)
        target = self.target(out, w)
        inputs = [self.name.get(v, v) for v in node.inputs]
        self.nodes.append(replace(node, inputs=inputs, outputs=[target], attrs=attrs))
        self.define(out, target, w)

    def param_like(self, name, w: _Value):
        """Constant `name` broadcast against values like `w`, as a constant broadcasting against w's form."""
        p = np.asarray(self.params[name])
        r = len(w.shape)
        if p.ndim > r:
            raise _Cannot
        aligned = (1,) * (r - p.ndim) + p.shape
        if aligned[w.band.axis] != 1:
            raise _Cannot
        shape = aligned if w.raw else tuple(1 if isinstance(x, str) else aligned[x] for x in w.labels())
        if shape == p.shape:
            return name
        new = f"{name}.batch_first{shape}"
        self.params[new] = p.reshape(shape)
        return new


def _unary(rw, node, ins, out_shape):
    rw.same(node, ins, dict(node.attrs), ins[0].band)


def _binary(rw, node, ins, out_shape):
    lead = max(ins, key=lambda v: len(v.shape))
    w = rw.value(node.outputs[0], lead.band)
    for v in ins:
        if len(v.shape) != len(out_shape) or v.band != w.band or v.shape[w.band.axis] != out_shape[w.band.axis]:
            raise _Cannot
    inputs = [rw.param_like(v, w) if v in rw.graph.params else rw.name[v] for v in node.inputs]
    target = rw.target(node.outputs[0], w)
    rw.nodes.append(replace(node, inputs=inputs, outputs=[target]))
    rw.define(node.outputs[0], target, w)


def _rows(rw, node, ins, out_shape):
    """linear / matmul: rows (and leading axes) are independent; the batch on neither contracted axis."""
    v = ins[0]
    if node.op == "matmul":
        b = node.inputs[1]
        if node.inputs[0] in rw.graph.params:
            raise _Cannot
        if b in rw.graph.params:
            if np.ndim(rw.graph.params[b]) != 2 or v.band.axis >= len(v.shape) - 1:
                raise _Cannot
        elif len(ins) != 2 or ins[1].band != v.band or len(ins[1].shape) != len(v.shape) or \
                v.band.axis >= len(v.shape) - 2 or ins[1].shape[v.band.axis] != v.shape[v.band.axis]:
            raise _Cannot
    elif v.band.axis >= len(v.shape) - 1:
        raise _Cannot
    rw.same(node, ins, dict(node.attrs), v.band)


def _on_axis(rw, node, ins, out_shape):
    """softmax / log-softmax / layer norm: along axes other than the batch's."""
    v = ins[0]
    axis = node.attrs["axis"] % len(v.shape)
    if node.op == "layer_norm" and v.band.axis >= axis:
        raise _Cannot
    rw.same(node, ins, {**node.attrs, "axis": v.axis(axis)}, v.band)


def _reduce(rw, node, ins, out_shape):
    v, a = ins[0], node.attrs
    if a["axes"] is None:
        raise _Cannot
    axes = sorted(x % len(v.shape) for x in a["axes"])
    mapped = tuple(v.axis(x) for x in axes)
    band = v.band if a["keepdims"] else Band(v.band.axis - sum(x < v.band.axis for x in axes), v.band.inner)
    rw.same(node, ins, {**a, "axes": mapped}, band)


def _gather(rw, node, ins, out_shape):
    v, a = ins[0], node.attrs
    axis = a["axis"] % len(v.shape)
    extra = len(a["indices_shape"] or ()) - 1 if axis < v.band.axis else 0
    rw.same(node, ins, {**a, "axis": v.axis(axis)}, Band(v.band.axis + extra, v.band.inner))


def _slice(rw, node, ins, out_shape):
    v, a = ins[0], node.attrs
    axes = tuple(range(len(a["starts"]))) if a["axes"] is None else tuple(a["axes"])
    rw.same(node, ins, {**a, "axes": tuple(v.axis(x) for x in axes)}, v.band)


def _concat(rw, node, ins, out_shape):
    v = ins[0]
    if any(x in rw.graph.params for x in node.inputs) or any(u.band != v.band for u in ins) or \
            any(u.shape[v.band.axis] != v.shape[v.band.axis] for u in ins):
        raise _Cannot
    rw.same(node, ins, {**node.attrs, "axis": v.axis(node.attrs["axis"])}, v.band)


def _pad(rw, node, ins, out_shape):
    v, a = ins[0], node.attrs
    pads = list(a["pads"])
    r = len(v.shape)
    if pads[2 * v.band.axis] or pads[2 * v.band.axis + 1]:
        raise _Cannot
    form_rank = len(v.form())
    new = [0] * (2 * form_rank)
    for j in range(r):
        if j != v.band.axis:
            k = v.axis(j)
            new[2 * k], new[2 * k + 1] = pads[2 * j], pads[2 * j + 1]
    rw.same(node, ins, {**a, "pads": tuple(new)}, v.band)


_FOLLOWED = {**{op: _unary for op in _UNARY}, **{op: _binary for op in _BINARY},
             **{op: _reduce for op in _REDUCTIONS}, "linear": _rows, "matmul": _rows, "softmax": _on_axis,
             "log_softmax": _on_axis, "layer_norm": _on_axis, "gather": _gather, "slice": _slice, "concat": _concat,
             "pad": _pad}


def batch_first(graph: Graph) -> Graph:
    """`graph` with every value computed from its input holding the batch in its first axis (see the module doc), or
    `graph` itself where no value moves it or a node cannot follow."""
    if len(graph.inputs) != 1 or not graph.shapes.get(graph.inputs[0]):
        return graph
    batch = graph.shapes[graph.inputs[0]][0]
    if batch <= 1:
        return graph
    rewriter = _Rewriter(graph, batch)
    try:
        outputs = rewriter.run()
    except _Cannot:
        return graph
    if not rewriter.moved:
        return graph
    used = {v for node in rewriter.nodes for v in node.inputs if v}
    params = {k: p for k, p in rewriter.params.items() if k in used}
    result = Graph(rewriter.nodes, graph.inputs, outputs, params, name=graph.name,
                   values={v: graph.values[v] for v in graph.inputs})
    try:
        result.infer_shapes()
    except ValueError:
        return graph
    if any(tuple(result.shapes[v]) != tuple(graph.shapes[v]) for v in outputs):
        return graph
    return result

