"""Lowering: a `Graph` -> C++ Plan builders (fused ops over channels-last tensors in one arena).

Each op says how it runs in a Plan where it is declared (`convcore.ops`: ``plan=PlanRule(...)``); this module walks
the graph once, in order, calling those rules, and holds what they share - the methods of `Lowering` - and the
fusions across ops:

- an activation whose input has no other reader joins the producer's epilogue (conv, batch norm, add / mul);
- an add whose other operand is already computed joins the convolution producing this one as its residual (then the
  activation after the add too), so a ResNet block ends in one conv;
- a concatenation along channels is written in place: each input that nothing else pins becomes a slice of the
  output, so its producer stores straight into it (DenseNet's growing concatenations become prefixes of one buffer);
- flatten before a linear layer is a view, the linear weights permuted to the channels-last order;
- an inverted-residual block (1x1 expand, depthwise, 1x1 project) becomes one striped op where the builder has it.

Tensors are 4-D NCHW values kept as NHWC (H, W, C), or 2-D (N, F) kept as 1 x 1 x F. Builders say what they can do
beyond the common set in `capabilities` (the CPU's gated 1x1 convolution, masks, the mbconv without projection).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..graph.batch_first import batch_first
from ..graph.passes import (commute_views, fold_affine, fold_attention, fold_batchnorm, fold_channel_shuffle,
                            fold_fake_quant, fold_layer_norm)
from ..ops import OPS
from ..ops.shape import pad_map, slice_map
from .gathers import Ref, gathered, is_pending, lower_assembly, lower_move, row_major
from .fusion import NO_ACT, GraphIndex, epilogue_of, lower_concat, try_gated_conv, try_mbconv
from .layout import TO_CHANNELS_LAST, channels_last_values, supported, supported_in_place
from .quantized import read_by_int8_only, try_qconv
from .reduction import keep_reduced_dims, lower_reduce, lower_where
from .permute import MOVES, graph_batch, is_assembly, is_move, is_raw, stored_dims
from .spelled import fuse_gates

FUSIONS = frozenset({"batchnorm", "affine", "activation", "residual", "concat", "gates", "mbconv", "shuffle",
                     "layernorm", "attention", "quant", "int8"})


def use_winograd(winograd, weight_shape, x_shape, stride, dilation, groups):
    """Winograd F(4x4, 3x3) on 3x3 stride-1 layers where it is faster ("auto"): enough channels for its GEMMs and
    enough 4x4 tiles (at the compiled batch) to amortize its 4x larger transformed filters. Measured in ResNet-50 at
    batch 1: 2x faster on 56x56 and 28x28 maps; slower on 14x14 and 7x7, whose transformed filters (9.4 and 37.7 MB)
    stream from memory on every call; at batch 8 the 14x14 and 7x7 layers win too. 24 output channels win too
    (a DB text detector's 96 -> 24 FPN convolutions: 0.64-0.85x of the direct time on 40x40 to 160x160 maps,
    Sapphire Rapids), 16 do not (0.95-1.05x). True: every eligible layer."""
    if winograd is False or tuple(weight_shape[2:]) != (3, 3) or tuple(stride) != (1, 1) or \
            tuple(dilation) != (1, 1) or groups != 1 or len(x_shape) != 4:
        return False
    if winograd is True:
        return True
    n, c, h, w = x_shape
    return c >= 32 and weight_shape[0] >= 24 and n * -(-h // 4) * -(-w // 4) >= 32


class Lowering:
    """Builds one C++ Plan for a segment of the graph: `nodes` (in order), reading the graph values `inputs` and
    making `outputs` available to the rest of the graph.

    The methods below (without a leading underscore) are what the ops' `PlanRule`s and the gradient Plan call.

    Args:
        graph: the (rewritten) Graph.
        nodes, inputs, outputs: the segment.
        backend: a CPU isa name, or a callable returning a new builder (`_core.Plan` or the GPU's `_cuda.Plan`: the
            same methods, one binder).
        winograd: "auto", True or False (see `use_winograd`).
        fusions: the rewrites to apply, a subset of FUSIONS.
        index: the graph's `GraphIndex` (computed here when not given).
        channels_last: the values stored as they are laid out (`channels_last_values`): NHWC inputs and outputs.
    """

    def __init__(self, graph, nodes, inputs, outputs, backend, winograd, fusions=FUSIONS, index=None,
                 channels_last=frozenset()):
        self.g = graph
        self.batch = graph_batch(graph)
        self.channels_last = channels_last
        self.nodes, self.inputs, self.seg_outputs = nodes, list(inputs), list(outputs)
        self.builder = backend() if callable(backend) else _core.Plan(backend)
        self.capabilities = frozenset(self.builder.capabilities)
        self.winograd = winograd
        self.fusions = frozenset(fusions)
        self.env = {}
        index = index or GraphIndex(graph)
        self.readers, self.producer = index.readers, index.producer
        self.in_segment = {id(n) for n in nodes}
        # Values something outside the segment reads are outputs too: nothing may fuse them away.
        self.outputs = set(outputs)
        for node in nodes:
            for out in node.outputs:
                if any(id(r) not in self.in_segment for r in self.readers.get(out, ())):
                    self.outputs.add(out)
        self.skipped = set()   # ids of nodes fused into an earlier op
        self.members = {}      # concat tensor id -> its member values (for prefix reuse)
        self.slices = {}       # value -> (value it is a channel view of, c0, channels)
        self.constants = {}

    # ------------------------------------------------------------------------------------------------ values
    def shape(self, value):
        return tuple(self.g.shapes[value])

    def sole_reader(self, value):
        """The one node reading `value`, if exactly one does, in this segment, and the value is not needed outside."""
        readers = self.readers.get(value, [])
        if len(readers) != 1 or value in self.outputs or id(readers[0]) not in self.in_segment:
            return None
        return readers[0]

    def skip(self, node):
        """Mark `node` as computed by an op already added (a fusion)."""
        self.skipped.add(id(node))

    def ref(self, value, rank=None, nhwc=False):
        if value in self.env:
            return self.env[value]
        if value in self.g.params:
            return self.constant(value, rank, nhwc)
        raise ValueError(f"compile: value '{value}' is not computed before it is used")

    def constant(self, value, rank, nhwc=False):
        """A graph parameter used as an operand of a rank-`rank` op (a broadcast scale, say): a plan constant stored
        as the op's other operands are (`nhwc`: their logical order is the stored one), its shape first aligned to
        the right as numpy broadcasting does."""
        key = (value, rank, nhwc)
        if key not in self.constants:
            array = np.asarray(self.g.params[value], np.float32)
            shape = (1,) * (rank - array.ndim) + array.shape
            array = array.reshape(shape)
            if rank == 4:
                stored = array[0] if nhwc else array[0].transpose(1, 2, 0)
            elif rank == 3:  # a sequence: L pixels (an L x 1 map) of C channels
                stored = (array[0] if nhwc else array[0].T)[:, None, :]
            else:
                stored = array.reshape(1, 1, -1)
            tid = self.builder.constant(np.ascontiguousarray(stored, np.float32))
            self.constants[key] = Ref(tid, shape, nhwc=nhwc)
        return self.constants[key]

    def materialize(self, ref, node_name):
        """A flattened 4-D value in NCHW order (only when something other than linear reads it)."""
        if ref.flat is None:
            return ref
        c, h, w = ref.flat
        if h * w == 1:
            return Ref(self.builder.reshape(ref.tid, 1, 1, c), ref.shape)
        return Ref(self.builder.flatten_nchw(node_name + ".flatten", ref.tid), ref.shape)

    def define(self, value, tid, shape=None, flat=None, nhwc=False):
        self.env[value] = Ref(tid, self.shape(value) if shape is None else shape, flat, nhwc)

    def param(self, name):
        return np.ascontiguousarray(self.g.params[name], np.float32) if name else None

    @staticmethod
    def arg(node, i):
        """The node's i-th input name, "" when absent."""
        return node.inputs[i] if i < len(node.inputs) else ""

    # --------------------------------------------------------------------------------------------- the walk
    def lower(self):
        g = self.g
        for name in self.inputs:
            shape = g.shapes[name]
            if name in self.channels_last:  # (N, H, W, C) or (N, L, C) as it is, or a whole value (permute.is_raw)
                h, w, c = stored_dims(shape, True, self.batch)
                self.define(name, self.builder.add_input(c, h, w, nhwc=True), nhwc=True)
                continue
            h, w = shape[2:] if len(shape) == 4 else (shape[2], 1) if len(shape) == 3 else (1, 1)
            self.define(name, self.builder.add_input(shape[1], h, w))
        for node in self.nodes:
            self.lower_node(node)
        refs = [self.materialize(self.env[name], name) for name in self.seg_outputs]  # ops first, then outputs
        tids = [ref.tid for ref in refs]  # (pending gathers emitted)
        for tid, ref in zip(tids, refs):
            self.builder.add_output(tid, len(ref.shape) in (3, 4) and not ref.nhwc)
        return self.builder

    def lower_node(self, node):
        """Add `node` through its op's Plan rule (nothing when an earlier op fused it)."""
        if id(node) not in self.skipped:
            OPS[node.op].plan.lower(self, node)

    # -------------------------------------------------------------------------------------------- epilogues
    def epilogue_after(self, value):
        """(the epilogue of an activation fused after `value`, the value that names the result)."""
        reader = self.sole_reader(value) if "activation" in self.fusions else None
        epilogue = epilogue_of(reader) if reader is not None else None
        if epilogue is None:
            return NO_ACT, value
        self.skip(reader)
        return epilogue, reader.outputs[0]

    def conv_epilogue(self, out_value, nhwc=False):
        """(residual tensor or -1, epilogue, value naming the result) for a convolution producing `out_value` (stored
        in the order `nhwc` says): an add whose other operand is already computed, in that order, becomes its
        residual, then an activation its epilogue."""
        residual = -1
        reader = self.sole_reader(out_value)
        if reader is not None and reader.op == "add" and "residual" in self.fusions:
            other = reader.inputs[1] if reader.inputs[0] == out_value else reader.inputs[0]
            ref = self.env.get(other)
            if (other != out_value and ref is not None and ref.flat is None and ref.nhwc == nhwc
                    and ref.shape == self.shape(out_value)):
                residual = ref.tid
                self.skip(reader)
                out_value = reader.outputs[0]
        epilogue, out_value = self.epilogue_after(out_value)
        return residual, epilogue, out_value

    # ------------------------------------------------------------------------------------------ op families
    def conv(self, node, weight, bias, stride, dilation, padding, groups, x=None):
        """A convolution with its residual and activation fused, Winograd where `use_winograd` says."""
        x = x if x is not None else self.ref(node.inputs[0])
        if try_qconv(self, node, weight, bias, stride, dilation, padding, groups, x):
            return
        residual, epilogue, out_value = self.conv_epilogue(node.outputs[0], x.nhwc)
        winograd = use_winograd(self.winograd, weight.shape, x.shape, stride, dilation, groups)
        spec = _core.ConvSpec(stride=stride, dilation=dilation, padding=padding, groups=groups)
        tid = self.builder.conv(node.name, x.tid, weight, bias, spec=spec, epilogue=epilogue, residual=residual,
                                algo=_core.ConvAlgo.winograd if winograd else _core.ConvAlgo.automatic)
        self.define(out_value, tid, nhwc=x.nhwc)

    def convolution(self, node):
        """conv2d / depthwise_conv2d (an inverted-residual block starting here when one does)."""
        source = self.producer.get(node.inputs[0])
        if (source is None or source.op != "fake_quantize") and try_mbconv(self, node):
            return
        a = node.attrs
        groups = a.get("groups", self.shape(node.inputs[0])[1])  # depthwise_conv2d: one group per channel
        self.conv(node, self.param(node.inputs[1]), self.param(self.arg(node, 2)), a["stride"], a["dilation"],
                  a["padding"], groups)

    def separable(self, node):
        a = node.attrs
        x, dw, pw, dw_b, pw_b = (list(node.inputs) + [""] * 5)[:5]
        channels = self.shape(x)[1]
        spec = _core.ConvSpec(stride=a["stride"], dilation=a["dilation"], padding=a["padding"], groups=channels)
        mid = self.builder.conv(node.name + ".depthwise", self.ref(x).tid, self.param(dw), self.param(dw_b), spec=spec)
        n, _, h, w = self.shape(node.outputs[0])
        mid_ref = Ref(mid, (n, self.shape(dw)[0], h, w))
        self.conv(node, self.param(pw), self.param(pw_b), (1, 1), (1, 1), (0, 0, 0, 0), 1, x=mid_ref)

    def linear(self, node):
        x = self.ref(node.inputs[0])
        weight, bias = self.param(node.inputs[1]), self.param(self.arg(node, 2))
        if x.flat is not None:  # weight columns from NCHW-flatten order (c, h, w) to the stored (h, w, c) order
            c, h, w = x.flat
            weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
            weight = np.ascontiguousarray(weight.reshape(weight.shape[0], -1))
            x = Ref(self.builder.reshape(x.tid, 1, 1, c * h * w), x.shape)
        k, f = weight.shape
        self.conv(node, weight.reshape(k, f, 1, 1), bias, (1, 1), (1, 1), (0, 0, 0, 0), 1, x=x)

    def pool(self, node, is_max):
        a = node.attrs
        out_shape = self.shape(node.outputs[0])
        spec = _core.PoolSpec(is_max=is_max, kernel=a["kernel_size"], stride=a["stride"],
                              dilation=a["dilation"] if is_max else (1, 1), padding=a["padding"],
                              output=out_shape[2:], count_include_pad=a.get("count_include_pad", False))
        self.define(node.outputs[0], self.builder.pool(node.name, self.ref(node.inputs[0]).tid, spec))

    def adaptive_pool(self, node, is_max):
        x = self.ref(node.inputs[0])
        in_hw, out_hw = tuple(x.shape[2:]), self.shape(node.outputs[0])[2:]
        if in_hw == out_hw:  # identity (e.g. VGG's 7x7 pool on a 7x7 map)
            self.env[node.outputs[0]] = x
        elif out_hw == (1, 1):
            self.define(node.outputs[0], self.builder.global_pool(node.name, x.tid, is_max))
        elif in_hw[0] % out_hw[0] == 0 and in_hw[1] % out_hw[1] == 0:
            k = (in_hw[0] // out_hw[0], in_hw[1] // out_hw[1])
            spec = _core.PoolSpec(is_max=is_max, kernel=k, stride=k, output=out_hw, count_include_pad=True)
            self.define(node.outputs[0], self.builder.pool(node.name, x.tid, spec))
        else:
            self.define(node.outputs[0], self.builder.adaptive_pool(node.name, x.tid, is_max, out_hw))

    def conv_transpose(self, node):
        """conv_transpose2d: the input gradient of the convolution it transposes (plan/transposed.py), then its bias
        and a fused activation as one per-channel op."""
        from .transposed import transposed_conv

        a = node.attrs
        x, out_value = self.ref(node.inputs[0]), node.outputs[0]
        c, h, w = self.shape(out_value)[1:]
        tid = transposed_conv(self.builder, node.name, x.tid, self.param(node.inputs[1]), (c, h, w),
                              tuple(a["stride"]), tuple(a["padding"]), tuple(a["dilation"]), a["groups"],
                              winograd=self.winograd)
        bias = self.param(self.arg(node, 2))
        epilogue, out_value = self.epilogue_after(out_value)
        if bias is not None or epilogue.act != _core.Act.none:
            tid = self.builder.affine(node.name + ".bias", tid, None, bias, epilogue)
        self.define(out_value, tid)

    def batch_norm(self, node):
        x, mean, var, weight, bias = (list(node.inputs) + [""] * 5)[:5]
        mean64, var64 = (np.asarray(self.g.params[n], np.float64) for n in (mean, var))
        gamma = np.asarray(self.g.params[weight], np.float64) if weight else np.ones_like(mean64)
        beta = np.asarray(self.g.params[bias], np.float64) if bias else np.zeros_like(mean64)
        scale = gamma / np.sqrt(var64 + node.attrs["eps"])
        shift = beta - mean64 * scale
        epilogue, out_value = self.epilogue_after(node.outputs[0])
        tid = self.builder.affine(node.name, self.materialize(self.ref(x), node.name).tid, scale.astype(np.float32),
                                  shift.astype(np.float32), epilogue)
        self.define(out_value, tid)

    def activation(self, node):
        if node.op == "fake_quantize" and read_by_int8_only(self, node):  # the qconvs quantize x themselves
            self.env[node.outputs[0]] = self.ref(node.inputs[0])
            return
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        self.define(node.outputs[0], self.builder.affine(node.name, x.tid, None, None, epilogue_of(node)), x.shape,
                    nhwc=x.nhwc)

    def reshape(self, node):
        """A reshape that keeps the stored order (the op's PlanRule): a view, or a view of a copy where x is a slice
        of another tensor; other reshapes a gather (`move`)."""
        if self.moves(node):
            return self.move(node)
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        out_shape = self.shape(node.outputs[0])
        if x.nhwc:  # channels-last (N, L, C) <-> (N, H, W, C): the same pixels
            h, w = (out_shape[1], out_shape[2]) if len(out_shape) == 4 else (out_shape[1], 1)
            try:
                tid = self.builder.reshape(x.tid, h, w, out_shape[-1])
            except ValueError:  # a slice of another tensor: copied first
                tid = self.builder.reshape(self.builder.affine(node.name + ".copy", x.tid, None, None, NO_ACT), h, w,
                                           out_shape[-1])
            self.define(node.outputs[0], tid, nhwc=True)
            return
        h, w, c = (out_shape[2], out_shape[3], out_shape[1]) if len(out_shape) == 4 else (1, 1, out_shape[1])
        if self.builder.dims(x.tid) == (h, w, c):
            self.define(node.outputs[0], x.tid)
            return
        try:
            tid = self.builder.reshape(x.tid, h, w, c)
        except ValueError:
            tid = self.builder.reshape(self.builder.affine(node.name + ".copy", x.tid, None, None, NO_ACT), h, w, c)
        self.define(node.outputs[0], tid)

    def transpose(self, node):
        """NCHW <-> NHWC of a 4-D value, (N, C, L) <-> (N, L, C) of a sequence: the same tensor, seen in the other
        order (`channels_last_values`); other transposes a gather (`move`)."""
        if self.moves(node):
            return self.move(node)
        x = self.ref(node.inputs[0])
        perm = tuple(node.attrs["perm"])
        self.define(node.outputs[0], x.tid, nhwc=perm == TO_CHANNELS_LAST if len(perm) == 4 else not x.nhwc)

    def operands(self, node, values):
        """The Refs of an elementwise op's operands `values` and whether they are channels-last: constants laid out
        to match, an operand stored in the other order (layout.supported_in_place) relaid by one gather."""
        nhwc = any(self.env[v].nhwc for v in values if v in self.env)
        rank = len(self.shape(node.outputs[0]))
        refs = [self.materialize(self.ref(v, rank, nhwc), node.name) for v in values]
        if nhwc:
            refs = [r if r.nhwc or v in self.g.params or math.prod(r.shape[1:]) == 1 else
                    Ref(self.row_major(r, f"{node.name}.{v}"), r.shape, nhwc=True) for v, r in zip(values, refs)]
        return refs, nhwc

    def binary(self, node, op):
        nhwc = any(self.env[v].nhwc for v in node.inputs[:2] if v in self.env)  # channels-last operands
        if op == "mul" and not nhwc and try_gated_conv(self, node):
            return
        (a, b), nhwc = self.operands(node, node.inputs[:2])
        epilogue, out_value = self.epilogue_after(node.outputs[0])
        tid = self.builder.binary(node.name, a.tid, b.tid, _core.BinaryOp.__members__[op], epilogue)
        self.define(out_value, tid, nhwc=nhwc)

    def concat(self, node):
        if self.moves(node):
            return self.assemble(node)
        lower_concat(self, node)

    def pad(self, node):
        """Padding (any axis, any mode): rows and columns of a map as one pixel copy, others as a gather."""
        if self.moves(node):
            return self.assemble(node)
        pad_map(self, node)

    def slice(self, node):
        """A slice: a channel view or a pixel copy (`ops.shape.slice_map`), else a gather."""
        if self.moves(node):
            return self.assemble(node)
        slice_map(self, node)

    def flatten(self, node):
        if self.moves(node):
            return self.move(node)
        x = self.ref(node.inputs[0])
        out_shape = self.shape(node.outputs[0])
        if x.nhwc:  # (N, H, W, C) flattened is the storage order: one pixel of H * W * C channels
            try:
                tid = self.builder.reshape(x.tid, 1, 1, out_shape[1])
            except ValueError:  # a slice of another tensor: copied first
                copy = self.builder.affine(node.name + ".copy", x.tid, None, None, NO_ACT)
                tid = self.builder.reshape(copy, 1, 1, out_shape[1])
            self.define(node.outputs[0], tid)
        elif x.flat is None and len(x.shape) == 4 and len(out_shape) == 3:  # (N, C, H * W): the same pixels
            _, c, h, w = x.shape
            try:
                tid = self.builder.reshape(x.tid, h * w, 1, c)
            except ValueError:  # a slice of another tensor: copied first
                tid = self.builder.reshape(self.builder.affine(node.name + ".copy", x.tid, None, None, NO_ACT),
                                           h * w, 1, c)
            self.define(node.outputs[0], tid)
        elif x.flat is None and len(x.shape) == 4 and len(out_shape) == 2:
            _, c, h, w = x.shape
            if h * w == 1:  # (N, C, 1, 1) and (N, C) are one pixel of C channels: the same tensor (a slice too)
                self.define(node.outputs[0], x.tid)
            else:
                self.define(node.outputs[0], x.tid, flat=(c, h, w))
        elif x.shape == out_shape:
            self.env[node.outputs[0]] = x
        else:
            raise ValueError(f"compile: node '{node.name}': flatten {x.shape} -> {out_shape} is not supported")

    def moves(self, node):
        """Whether this reshape / transpose / flatten moves values (else a view or a change of layout flag), or this
        concatenation, padding, slice or gather is one gather (`assemble`); either, too, where it reads a pending
        gather's values (`gathers.PendingRef`): the tables compose."""
        if not supported_in_place(node, self.g, self.capabilities, self.channels_last):
            return True
        x = self.env.get(node.inputs[0]) if node.inputs else None
        return is_pending(x) and (is_move(node, self.g) if node.op in MOVES else is_assembly(node, self.g))

    def dense(self, x, name):
        """The tensor of Ref x as one pixel of all its channels (per image): a view, of a copy where x is a slice."""
        h, w, c = self.builder.dims(x.tid)
        try:
            return self.builder.reshape(x.tid, 1, 1, h * w * c)
        except ValueError:
            return self.builder.reshape(self.builder.affine(name + ".copy", x.tid, None, None, NO_ACT), 1, 1,
                                        h * w * c)

    def gathered(self, name, flat, table, dims):
        return gathered(self, name, flat, table, dims)

    def move(self, node):
        lower_move(self, node)

    def assemble(self, node):
        lower_assembly(self, node)

    def row_major(self, x, name):
        return row_major(self, x, name)

    def lstm(self, node):
        """An LSTM over the sequence of a batch-1 plan (its (L, 1, I) input in row-major order; the output too): the
        inputs' part of every step's gates as one 1x1 convolution (W x + both biases), then the recurrence."""
        a = node.attrs
        x = self.row_major(self.ref(node.inputs[0]), node.name)
        w, r, b, h0, c0, p = (self.param(self.arg(node, i)) for i in range(1, 7))
        directions, gates, inputs = w.shape
        bias = None if b is None else np.ascontiguousarray((b[:, :gates] + b[:, gates:]).reshape(-1))
        spec = _core.ConvSpec(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), groups=1)
        projected = self.builder.conv(node.name + ".input", x, w.reshape(directions * gates, inputs, 1, 1), bias,
                                      spec=spec, epilogue=NO_ACT, residual=-1, algo=_core.ConvAlgo.automatic)
        tid = self.builder.lstm(node.name, projected, r, *(None if v is None else v.reshape(-1) for v in (p, h0, c0)),
                                reverse=a["direction"] == "reverse", output={"y": 0, "h": 1, "c": 2}[a["output"]])
        self.define(node.outputs[0], tid, nhwc=True)

    def softmax(self, node, log):
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        self.define(node.outputs[0], self.builder.softmax(node.name, x.tid, log), x.shape, nhwc=x.nhwc)

    def channel_slice(self, x, c0, count, name):
        """Channels [c0, c0 + count) of Ref x: a view (builder.channel_slice), no op."""
        return Ref(self.builder.channel_slice(name, x.tid, c0, count), (x.shape[0], count, *x.shape[2:]))

    def pick_pixels(self, value, x, rows, cols, fill, name):
        """Defines `value` as the map whose pixel (i, j) is x's (rows[i], cols[j]), or `fill` where either is -1:
        crops, strided slices and padding as one copy (the resample op with one tap of weight 1)."""
        def table(index):
            index = np.asarray(index, np.int64).reshape(-1, 1)
            return np.ascontiguousarray(index), np.ones(index.shape, np.float32)

        (index_h, weight_h), (index_w, weight_w) = table(rows), table(cols)
        self.define(value, self.builder.resample(name, x.tid, index_h=index_h, weight_h=weight_h, index_w=index_w,
                                                 weight_w=weight_w, fill=float(fill)))

    def gather_channels(self, node):
        """Channels picked by constant indices (a channel shuffle, a BGR -> RGB swap): a view when they are one
        ascending run, else one copy."""
        if self.moves(node):
            return self.assemble(node)
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        index = np.asarray(node.attrs["indices"], np.int64)
        if np.array_equal(index, np.arange(index[0], index[0] + len(index))):
            self.env[node.outputs[0]] = self.channel_slice(x, int(index[0]), len(index), node.name)
            return
        self.define(node.outputs[0], self.builder.gather_channels(node.name, x.tid, index))

    def attention(self, node):
        """Self-attention of a channels-last sequence (its q, k, v in its channels): one op, the result (N, L, C)."""
        x = self.ref(node.inputs[0])
        a, bias = node.attrs, self.param(self.arg(node, 1))
        y = self.builder.attention(node.name, x.tid, a["heads"], a["scale"], self.shape(node.inputs[0])[1], bias)
        self.define(node.outputs[0], y, nhwc=True)

    def reduce(self, node):
        lower_reduce(self, node)

    def where(self, node):
        lower_where(self, node)

    def layer_norm(self, node):
        """A layer norm over the channels of each pixel: of a channels-last map, or of a (N, C) row."""
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        channels = x.shape[-1] if x.nhwc else x.shape[1]
        weight, bias = (self.param(self.arg(node, i)) for i in (1, 2))
        weight, bias = (None if p is None else np.ascontiguousarray(np.broadcast_to(p, (channels,)).ravel())
                        for p in (weight, bias))
        epilogue, out_value = self.epilogue_after(node.outputs[0])
        tid = self.builder.layer_norm(node.name, x.tid, weight, bias, node.attrs["eps"], epilogue)
        self.define(out_value, tid, x.shape, nhwc=x.nhwc)

    def lrn(self, node):
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        a = node.attrs
        self.define(node.outputs[0], self.builder.lrn(node.name, x.tid, a["size"], a["alpha"], a["beta"], a["k"]),
                    x.shape)


class Segment:
    """A run of consecutive graph nodes compiled into one C++ Plan: it reads `inputs`, gives `outputs`; `whole`: the
    inputs stored in blocks of rows (`permute.is_raw`), taken as `batch` images; `split`: batch -> whether it runs
    image by image (`Plan._run_segment`)."""

    def __init__(self, plan, inputs, outputs, whole=frozenset(), batch=1):
        self.plan, self.inputs, self.outputs, self.whole, self.batch = plan, inputs, outputs, whole, batch
        self.split = {}

    def arrays(self, env):
        """The input arrays from `env` as the C++ Plan takes them."""
        return [np.ascontiguousarray(env[v]).reshape(self.batch, -1) if v in self.whole else
                np.ascontiguousarray(env[v]) for v in self.inputs]


def rewrite(graph, fusions=FUSIONS):
    """The graph rewrites before lowering: gated and spelled-out activations, channel shuffles as gathers,
    spelled-out layer norms and attention blocks, per-channel arithmetic and batch-norm folding (each when
    enabled), after giving every value the batch as its first axis where the graph moves it (`batch_first`)."""
    graph = batch_first(graph)
    if "quant" in fusions:
        graph = fold_fake_quant(graph)
    if "gates" in fusions:
        graph = fuse_gates(graph)
    graph = keep_reduced_dims(graph)
    if "shuffle" in fusions:
        graph = fold_channel_shuffle(graph)
    if "layernorm" in fusions:
        graph = fold_layer_norm(graph)
    if "attention" in fusions:
        graph = commute_views(fold_attention(graph))
    if "affine" in fusions:
        graph = fold_affine(graph)
    if "batchnorm" in fusions:
        graph = fold_batchnorm(graph)
    return graph


def lower(graph, backend, winograd="auto", fusions=FUSIONS):
    """The steps running `graph` (already rewritten): Segments of consecutive supported nodes, each one C++ Plan
    built with the kernels of `backend` (an isa name, or a callable returning a new builder: `_core.Plan(isa)`, or
    the GPU's `_cuda.Plan`), and, between them, the nodes plans do not cover, run eagerly (`Node`s).

    `fusions`: the rewrites to apply, a subset of FUSIONS (all by default; tests switch each off)."""
    for name in graph.outputs:
        if name in graph.params or name in graph.inputs:
            raise ValueError(f"compile: graph output '{name}' is not computed by any node")
    probe = backend() if callable(backend) else _core.Plan(backend)
    capabilities = frozenset(probe.capabilities)
    channels_last = channels_last_values(graph)
    outside = {v for node in graph.nodes if not supported(node, graph, capabilities, channels_last)
               for v in node.outputs} | set(graph.inputs)
    views = set()  # sequences and maps viewed from a value computed outside: taken as they are, beside it
    for node in graph.nodes:
        if node.op in ("flatten", "reshape") and node.inputs[0] in outside and \
                len(graph.shapes[node.outputs[0]]) in (3, 4):
            outside.add(node.outputs[0])
            views.add(id(node))
    channels_last = channels_last_values(graph, frozenset(outside))
    runs, current = [], []
    for node in graph.nodes:
        if supported(node, graph, capabilities, channels_last) and not (
                id(node) in views and node.outputs[0] in channels_last):
            current.append(node)
        else:
            if current:
                runs.append(current)
            runs.append(node)
            current = []
    if current:
        runs.append(current)
    readers = {}
    for i, run in enumerate(runs):
        for node in run if isinstance(run, list) else [run]:
            for v in node.inputs:
                readers.setdefault(v, set()).add(i)
    index = GraphIndex(graph)
    steps = []
    for i, run in enumerate(runs):
        if not isinstance(run, list):
            steps.append(run)
            continue
        made = {out for node in run for out in node.outputs}
        inputs = list(dict.fromkeys(v for node in run for v in node.inputs
                                    if v and v not in made and v not in graph.params))
        outputs = [v for node in run for v in node.outputs
                   if v in graph.outputs or any(j != i for j in readers.get(v, ()))]
        plan = Lowering(graph, run, inputs, outputs, backend, winograd, fusions, index, channels_last).lower()
        steps.append(Segment(plan, inputs, outputs,
                             frozenset(v for v in inputs if v in channels_last and is_raw(graph, v)),
                             graph_batch(graph)))
    return steps
