"""Lowering: a `Graph` -> a `_core.Plan` (fused ops over channels-last tensors in one arena).

Walks the graph once, in order, after folding batch norms into the convolutions before them. Each node becomes at
most one Plan op; what can ride along is fused into the op that produces its input:

- an activation whose input has no other reader joins the producer's epilogue (conv, batch norm, add / mul);
- an add whose other operand is already computed joins the convolution producing this one as its residual (then the
  activation after the add too), so a ResNet block ends in one conv;
- a concatenation along channels is written in place: each input that nothing else pins becomes a slice of the
  output, so its producer stores straight into it (DenseNet's growing concatenations become prefixes of one buffer);
- flatten before a linear layer is a view, the linear weights permuted to the channels-last order.

Tensors are 4-D NCHW values kept as NHWC (H, W, C), or 2-D (N, F) kept as 1 x 1 x F.
"""

from __future__ import annotations

import os

import numpy as np

from .. import _core
from ..graph import Graph, Node
from ..graph.passes import fold_batchnorm

# Epilogue activation codes (csrc/plan/kernels.h, enum Act).
ACT_NONE, ACT_CLAMP, ACT_LEAKY, ACT_SIGMOID, ACT_SILU, ACT_TANH, ACT_HARDSWISH, ACT_HARDSIGMOID = range(8)
INF = float("inf")
ACTIVATIONS = {
    "relu": lambda a: (ACT_CLAMP, 0.0, INF, 0.0),
    "relu6": lambda a: (ACT_CLAMP, 0.0, 6.0, 0.0),
    "leaky_relu": lambda a: (ACT_LEAKY, 0.0, 0.0, a["negative_slope"]),
    "sigmoid": lambda a: (ACT_SIGMOID, 0.0, 0.0, 0.0),
    "silu": lambda a: (ACT_SILU, 0.0, 0.0, 0.0),
    "tanh": lambda a: (ACT_TANH, 0.0, 0.0, 0.0),
    "hardswish": lambda a: (ACT_HARDSWISH, 0.0, 0.0, 0.0),
    "hardsigmoid": lambda a: (ACT_HARDSIGMOID, 0.0, 0.0, 0.0),
}
NO_ACT = (ACT_NONE, 0.0, 0.0, 0.0)
BINARY = {"add": 0, "mul": 1}
ALGO_AUTO, ALGO_IGEMM, ALGO_DEPTHWISE, ALGO_WINOGRAD = range(4)


class Ref:
    """A graph value in the plan: its tensor id and logical (NCHW) shape; `flat` marks a flatten of a 4-D value
    that is still stored as (H, W, C) (its NCHW order exists only once someone needs it)."""

    __slots__ = ("tid", "shape", "flat")

    def __init__(self, tid, shape, flat=None):
        self.tid, self.shape, self.flat = tid, tuple(shape), flat


FUSIONS = frozenset({"batchnorm", "activation", "residual", "concat", "gates", "mbconv"})


def _l2_bytes(default=2 << 20):
    """This CPU's per-core L2 size (Linux sysfs), or `default`."""
    try:
        for index in sorted(os.listdir("/sys/devices/system/cpu/cpu0/cache")):
            folder = os.path.join("/sys/devices/system/cpu/cpu0/cache", index)
            with open(os.path.join(folder, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(folder, "size")) as f:
                size = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return default


# An inverted-residual block is fused when its expanded tensor would not stay in L2 between its ops: above half the
# L2 (measured on Sapphire Rapids' 2 MB L2: 200 KB to 1 MB thresholds, 1 MB fastest on MnasNet, EfficientNet-B0 /
# Lite0 and MobileNetV2 at batch 1 and 8; below it the fused op's halo rows cost more than the traffic it saves).
MBCONV_MIN_BYTES = _l2_bytes() // 2
# ... and when its 1x1 weights fit there beside the stripes' scratch (every stripe rereads them): MnasNet's 7x7 stage
# (1.8 MB of weights per block) ran 4% faster at batch 8 unfused.
MBCONV_MAX_WEIGHT_BYTES = _l2_bytes() // 2


class Lowering:
    """Builds one C++ Plan for a segment of the graph: `nodes` (in order), reading the graph values `inputs` and
    making `outputs` available to the rest of the graph."""

    def __init__(self, graph, nodes, inputs, outputs, backend, winograd, fusions=FUSIONS):
        self.g = graph
        self.nodes, self.inputs, self.seg_outputs = nodes, list(inputs), list(outputs)
        # backend: a CPU isa name, or a callable returning a new builder (_core.Plan or the GPU's _cuda.Plan: the
        # same methods with the same semantics).
        self.plan = backend() if callable(backend) else _core.Plan(backend)
        # Two ops only the CPU builder has: a 1x1 convolution whose weights a gate scales per image, and the fused
        # inverted-residual block stopping before its projection.
        self.cpu_ops = isinstance(self.plan, _core.Plan)
        self.winograd = winograd
        self.fusions = frozenset(fusions)
        self.env = {}
        self.readers = {}
        for node in graph.nodes:
            for name in node.inputs:
                if name:
                    self.readers.setdefault(name, []).append(node)
        in_segment = {id(n) for n in nodes}
        # Values something outside the segment reads are outputs too: nothing may fuse them away.
        self.outputs = set(outputs) | {v for v, rs in self.readers.items() if any(id(r) not in in_segment for r in rs)}
        self.in_segment = in_segment
        self.producer = {out: node for node in graph.nodes for out in node.outputs}
        self.skip = set()        # ids of nodes fused into an earlier op
        self.members = {}        # concat tensor id -> its member values (for prefix reuse)
        self.constants = {}

    # ------------------------------------------------------------------------------------------------ helpers
    def sole_reader(self, value):
        """The one node reading `value`, if exactly one does, in this segment, and the value is not needed outside."""
        readers = self.readers.get(value, [])
        if len(readers) != 1 or value in self.outputs or id(readers[0]) not in self.in_segment:
            return None
        return readers[0]

    def fused_activation(self, value):
        """(act tuple, output value) when the sole reader of `value` is an activation we can fuse; else None."""
        reader = self.sole_reader(value)
        if reader is not None and reader.op in ACTIVATIONS:
            return ACTIVATIONS[reader.op](reader.attrs), reader
        return None

    def ref(self, value, rank=None):
        if value in self.env:
            return self.env[value]
        if value in self.g.params:
            return self.constant(value, rank)
        raise ValueError(f"compile: value '{value}' is not computed before it is used")

    def constant(self, value, rank):
        """A graph parameter used as an operand of a rank-`rank` op (a broadcast scale, say): a plan constant, NHWC,
        its shape first aligned to the right as numpy broadcasting does."""
        key = (value, rank)
        if key not in self.constants:
            array = np.asarray(self.g.params[value], np.float32)
            shape = (1,) * (rank - array.ndim) + array.shape
            array = array.reshape(shape)
            nhwc = array[0].transpose(1, 2, 0) if rank == 4 else array.reshape(1, 1, -1)
            tid = self.plan.constant(np.ascontiguousarray(nhwc, np.float32))
            self.constants[key] = Ref(tid, shape)
        return self.constants[key]

    def materialize(self, ref, node_name):
        """A flattened 4-D value in NCHW order (only when something other than linear reads it)."""
        if ref.flat is None:
            return ref
        c, h, w = ref.flat
        if h * w == 1:
            return Ref(self.plan.reshape(ref.tid, 1, 1, c), ref.shape)
        return Ref(self.plan.flatten_nchw(node_name + ".flatten", ref.tid), ref.shape)

    def define(self, value, tid, shape, flat=None):
        self.env[value] = Ref(tid, shape, flat)

    def param(self, name):
        return np.ascontiguousarray(self.g.params[name], np.float32) if name else None

    # --------------------------------------------------------------------------------------------------- ops
    def lower(self):
        g = self.g
        for name in self.inputs:
            shape = g.shapes[name]
            tid = self.plan.add_input(*shape[1:]) if len(shape) == 4 else self.plan.add_input(shape[1], 1, 1)
            self.define(name, tid, shape)
        for node in self.nodes:
            if id(node) not in self.skip:
                getattr(self, "op_" + node.op)(node)
        for name in self.seg_outputs:
            ref = self.materialize(self.env[name], name)
            self.plan.add_output(ref.tid, len(ref.shape) == 4)
        return self.plan

    def _epilogue_after(self, value):
        """The activation fused after `value` (and the value that names the result)."""
        fused = self.fused_activation(value) if "activation" in self.fusions else None
        if fused is None:
            return NO_ACT, value
        act, reader = fused
        self.skip.add(id(reader))
        return act, reader.outputs[0]

    def _conv_epilogue(self, out_value):
        """(residual tensor or -1, activation, value naming the result) for a convolution producing `out_value`: an
        add whose other operand is already computed becomes its residual, then an activation its epilogue."""
        residual = -1
        reader = self.sole_reader(out_value)
        if reader is not None and reader.op == "add" and "residual" in self.fusions:
            other = reader.inputs[1] if reader.inputs[0] == out_value else reader.inputs[0]
            ref = self.env.get(other)
            if other != out_value and ref is not None and ref.flat is None and \
                    tuple(ref.shape) == tuple(self.g.shapes[out_value]):
                residual = ref.tid
                self.skip.add(id(reader))
                out_value = reader.outputs[0]
        act, out_value = self._epilogue_after(out_value)
        return residual, act, out_value

    def _conv(self, node, weight, bias, stride, dilation, pads, groups, x_ref=None):
        x = x_ref if x_ref is not None else self.ref(node.inputs[0])
        residual, act, out_value = self._conv_epilogue(node.outputs[0])
        algo = ALGO_WINOGRAD if self.use_winograd(x, weight, stride, dilation, groups) else ALGO_AUTO
        tid = self.plan.conv(node.name, x.tid, weight, bias, stride, dilation, pads, groups, *act, residual, algo)
        self.define(out_value, tid, self.g.shapes[out_value])

    def use_winograd(self, x, weight, stride, dilation, groups):
        """Winograd F(4x4, 3x3) on 3x3 stride-1 layers where it is faster: enough channels for its GEMMs and enough
        4x4 tiles (at the compiled batch) to amortize its 4x larger transformed filters. Measured in ResNet-50 at
        batch 1: 2x faster on 56x56 and 28x28 maps; slower on 14x14 and 7x7, whose transformed filters (9.4 and
        37.7 MB) stream from memory on every call; at batch 8 the 14x14 and 7x7 layers win too."""
        if self.winograd is False or tuple(weight.shape[2:]) != (3, 3) or tuple(stride) != (1, 1) or \
                tuple(dilation) != (1, 1) or groups != 1 or len(x.shape) != 4:
            return False
        if self.winograd is True:
            return True
        n, c, h, w = x.shape
        tiles = n * -(-h // 4) * -(-w // 4)
        return c >= 32 and weight.shape[0] >= 32 and tiles >= 32

    # ------------------------------------------------------------------------------------ inverted residuals
    def _pointwise(self, node):
        """Whether node is a 1x1, stride-1, unpadded, ungrouped convolution with constant weights."""
        if node is None or node.op != "conv2d" or node.inputs[1] not in self.g.params:
            return False
        a = node.attrs
        bias = (list(node.inputs) + [""])[2]
        return (self.g.shapes[node.inputs[1]][2:] == (1, 1) and tuple(a["stride"]) == (1, 1) and a["groups"] == 1
                and tuple(a["padding"]) == (0, 0, 0, 0) and (not bias or bias in self.g.params))

    def _depthwise(self, node):
        """Whether node is a depthwise convolution (one filter per channel) with constant weights."""
        if node is None or node.op not in ("conv2d", "depthwise_conv2d") or node.inputs[1] not in self.g.params:
            return False
        c = self.g.shapes[node.inputs[0]][1]
        w = self.g.shapes[node.inputs[1]]
        bias = (list(node.inputs) + [""])[2]
        groups = node.attrs.get("groups", c)
        return groups == c == w[0] and w[1] == 1 and c > 1 and (not bias or bias in self.g.params)

    def _act_after(self, value):
        """(activation, its node or None, value after it) when an activation can be fused after value."""
        fused = self.fused_activation(value) if "activation" in self.fusions else None
        if fused is None:
            return NO_ACT, None, value
        return fused[0], fused[1], fused[1].outputs[0]

    def try_mbconv(self, node):
        """Lower [expand 1x1 ->] depthwise -> project 1x1 starting at node as one fused op; False if it does not
        match or would not help."""
        if "mbconv" not in self.fusions:
            return False
        expand = node if self._pointwise(node) else None
        if expand is not None:
            e_act, e_act_node, e_out = self._act_after(node.outputs[0])
            dw = self.sole_reader(e_out)
            if not self._depthwise(dw) or dw.inputs[0] != e_out:
                return False
        elif self._depthwise(node):
            e_act, e_act_node, dw = NO_ACT, None, node
        else:
            return False
        d_act, d_act_node, d_out = self._act_after(dw.outputs[0])
        project = self.sole_reader(d_out)
        if not self._pointwise(project) or project.inputs[0] != d_out:
            project = None  # the depthwise output is needed elsewhere (a squeeze-excitation gate): stop there
            if expand is None or not self.cpu_ops:
                return False
        x = self.ref(node.inputs[0])
        if x.flat is not None or len(x.shape) != 4:
            return False
        n, c, h, w = x.shape
        e = self.g.shapes[dw.inputs[0]][1]
        if 4 * n * h * w * e < MBCONV_MIN_BYTES:
            return False  # small maps: the three ops' tensors stay in cache anyway
        weights = 4 * e * (c * (expand is not None) + (self.g.shapes[project.inputs[1]][0] if project else 0))
        if weights > MBCONV_MAX_WEIGHT_BYTES:
            return False  # each stripe rereads the 1x1 weights: many of them outweigh the traffic fusing saves
        for fused in (e_act_node, dw, d_act_node, project):
            if fused is not None:
                self.skip.add(id(fused))
        if project is not None:
            residual, p_act, out_value = self._conv_epilogue(project.outputs[0])
            wp, bp = self.param(project.inputs[1]), self.param((list(project.inputs) + [""])[2])
        else:
            residual, p_act, out_value, wp, bp = -1, NO_ACT, d_out, None, None
        da = dw.attrs
        we = self.param(expand.inputs[1]) if expand is not None else None
        be = self.param((list(expand.inputs) + [""])[2]) if expand is not None else None
        tid = self.plan.mbconv(node.name, x.tid, we, be, e_act, self.param(dw.inputs[1]),
                               self.param((list(dw.inputs) + [""])[2]), da["stride"], da["dilation"], da["padding"],
                               d_act, wp, bp, p_act, residual)
        self.define(out_value, tid, self.g.shapes[out_value])
        return True

    def op_conv2d(self, node):
        a = node.attrs
        weight, bias = self.param(node.inputs[1]), self.param((list(node.inputs) + [""])[2])
        if weight is None or node.inputs[1] not in self.g.params:
            raise ValueError(f"compile: node '{node.name}': the weight must be a constant")
        if self.try_mbconv(node):
            return
        self._conv(node, weight, bias, a["stride"], a["dilation"], a["padding"], a["groups"])

    def op_depthwise_conv2d(self, node):
        if self.try_mbconv(node):
            return
        a = node.attrs
        weight, bias = self.param(node.inputs[1]), self.param((list(node.inputs) + [""])[2])
        channels = self.g.shapes[node.inputs[0]][1]
        self._conv(node, weight, bias, a["stride"], a["dilation"], a["padding"], channels)

    def op_separable_conv2d(self, node):
        a = node.attrs
        x, dw, pw, dw_b, pw_b = (list(node.inputs) + [""] * 5)[:5]
        channels = self.g.shapes[x][1]
        stride, dilation, pads = a["stride"], a["dilation"], a["padding"]
        mid = self.plan.conv(node.name + ".depthwise", self.ref(x).tid, self.param(dw), self.param(dw_b), stride,
                             dilation, pads, channels, *NO_ACT, -1, ALGO_AUTO)
        n, _, h, w = self.g.shapes[node.outputs[0]]
        mid_ref = Ref(mid, (n, self.g.shapes[dw][0], h, w))
        self._conv(node, self.param(pw), self.param(pw_b), (1, 1), (1, 1), (0, 0, 0, 0), 1, x_ref=mid_ref)

    def _pool(self, node, is_max):
        a = node.attrs
        x = self.ref(node.inputs[0])
        kernel, stride, pads = a["kernel_size"], a["stride"], a["padding"]
        dilation = a["dilation"] if is_max else (1, 1)
        out_shape = self.g.shapes[node.outputs[0]]
        tid = self.plan.pool(node.name, x.tid, is_max, kernel, stride, dilation, pads, tuple(out_shape[2:]),
                             a.get("count_include_pad", False))  # max pools have no such attribute
        self.define(node.outputs[0], tid, out_shape)

    def _define(self, node, tid):
        self.define(node.outputs[0], tid, self.g.shapes[node.outputs[0]])

    def op_max_pool2d(self, node):
        self._pool(node, True)

    def op_avg_pool2d(self, node):
        self._pool(node, False)

    def _adaptive(self, node, is_max):
        x = self.ref(node.inputs[0])
        in_hw, out_hw = tuple(x.shape[2:]), tuple(self.g.shapes[node.outputs[0]][2:])
        if in_hw == out_hw:  # identity (e.g. VGG's 7x7 pool on a 7x7 map)
            self.env[node.outputs[0]] = x
        elif out_hw == (1, 1):
            self._define(node, self.plan.global_pool(node.name, x.tid, is_max))
        elif in_hw[0] % out_hw[0] == 0 and in_hw[1] % out_hw[1] == 0:
            k = (in_hw[0] // out_hw[0], in_hw[1] // out_hw[1])
            self._define(node, self.plan.pool(node.name, x.tid, is_max, k, k, (1, 1), (0, 0, 0, 0), out_hw,
                                                       True))
        else:
            self._define(node, self.plan.adaptive_pool(node.name, x.tid, is_max, *out_hw))

    def op_adaptive_avg_pool2d(self, node):
        self._adaptive(node, False)

    def op_adaptive_max_pool2d(self, node):
        self._adaptive(node, True)

    def op_global_avg_pool2d(self, node):
        self._define(node, self.plan.global_pool(node.name, self.ref(node.inputs[0]).tid, False))

    def op_global_max_pool2d(self, node):
        self._define(node, self.plan.global_pool(node.name, self.ref(node.inputs[0]).tid, True))

    def op_batch_norm(self, node):
        x, mean, var, weight, bias = (list(node.inputs) + [""] * 5)[:5]
        if len(self.g.shapes[x]) not in (2, 4):
            raise ValueError(f"compile: node '{node.name}': batch_norm on a {len(self.g.shapes[x])}-D value")
        for name in (mean, var, weight, bias):
            if name and name not in self.g.params:
                raise ValueError(f"compile: node '{node.name}': batch norm statistics must be constants")
        mean64, var64 = (np.asarray(self.g.params[n], np.float64) for n in (mean, var))
        gamma = np.asarray(self.g.params[weight], np.float64) if weight else np.ones_like(mean64)
        beta = np.asarray(self.g.params[bias], np.float64) if bias else np.zeros_like(mean64)
        scale = gamma / np.sqrt(var64 + node.attrs["eps"])
        shift = beta - mean64 * scale
        act, out_value = self._epilogue_after(node.outputs[0])
        tid = self.plan.affine(node.name, self.materialize(self.ref(x), node.name).tid, scale.astype(np.float32),
                               shift.astype(np.float32), *act)
        self.define(out_value, tid, self.g.shapes[out_value])

    def _activation(self, node):
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        act = ACTIVATIONS[node.op](node.attrs)
        self.define(node.outputs[0], self.plan.affine(node.name, x.tid, None, None, *act), x.shape)

    op_relu = op_relu6 = op_leaky_relu = op_sigmoid = op_silu = op_tanh = op_hardswish = op_hardsigmoid = _activation

    def try_gated_conv(self, node):
        """mul(x, gate) with a per-image, per-channel gate (N, C, 1, 1) read only by a 1x1 convolution with fewer
        output channels than pixels: the gate scales that convolution's weights per image instead of every pixel
        of x (EfficientNet's squeeze-excitation before the block's projection)."""
        if node.op != "mul" or "gates" not in self.fusions or not self.cpu_ops:
            return False
        conv = self.sole_reader(node.outputs[0])
        if not self._pointwise(conv) or conv.inputs[0] != node.outputs[0]:
            return False
        out_shape = self.g.shapes[node.outputs[0]]
        for x, gate in (node.inputs[:2], node.inputs[1::-1]):
            xr, gr = self.env.get(x), self.env.get(gate)
            if xr is None or gr is None or xr.flat is not None or gr.flat is not None:
                continue
            if tuple(xr.shape) == tuple(out_shape) and tuple(gr.shape) == (out_shape[0], out_shape[1], 1, 1) and \
                    self.g.shapes[conv.inputs[1]][0] < out_shape[2] * out_shape[3]:
                self.skip.add(id(conv))
                residual, act, out_value = self._conv_epilogue(conv.outputs[0])
                bias = self.param((list(conv.inputs) + [""])[2])
                tid = self.plan.conv(conv.name, xr.tid, self.param(conv.inputs[1]), bias, (1, 1), (1, 1),
                                     (0, 0, 0, 0), 1, *act, residual, ALGO_IGEMM, gr.tid)
                self.define(out_value, tid, self.g.shapes[out_value])
                return True
        return False

    def _binary(self, node):
        if self.try_gated_conv(node):
            return
        out_shape = self.g.shapes[node.outputs[0]]
        a, b = (self.materialize(self.ref(v, len(out_shape)), node.name) for v in node.inputs[:2])
        for ref in (a, b):
            if len(ref.shape) not in (2, 4) or len(ref.shape) != len(out_shape):
                raise ValueError(f"compile: node '{node.name}': {node.op} of shapes {a.shape} and {b.shape} is not "
                                 f"supported (expected 2-D or 4-D operands of one rank)")
            if ref.shape[0] not in (1, out_shape[0]):
                raise ValueError(f"compile: node '{node.name}': unexpected batch broadcast")
        act, out_value = self._epilogue_after(node.outputs[0])
        tid = self.plan.binary(node.name, a.tid, b.tid, BINARY[node.op], *act)
        self.define(out_value, tid, self.g.shapes[out_value])

    op_add = op_mul = _binary

    def op_concat(self, node):
        out_shape = self.g.shapes[node.outputs[0]]
        axis = node.attrs["axis"]
        if axis != 1 or len(out_shape) not in (2, 4):
            raise ValueError(f"compile: node '{node.name}': concat along axis {axis} of a {len(out_shape)}-D value "
                             f"is not supported (channels only)")
        refs = [self.materialize(self.ref(v), node.name) for v in node.inputs]
        h, w = (out_shape[2], out_shape[3]) if len(out_shape) == 4 else (1, 1)
        y = self.plan.tensor(h, w, out_shape[1])
        offset, i = 0, 0
        while i < len(node.inputs):
            value, ref = node.inputs[i], refs[i]
            channels = ref.shape[1]
            # A previous concatenation whose members start here: it becomes the prefix slice (DenseNet).
            in_place = "concat" in self.fusions
            prefix = self._prefix_concat(node.inputs, i) if in_place else None
            if prefix is not None:
                tid, count = prefix
                self.plan.alias(tid, y, offset)
                offset += sum(refs[j].shape[1] for j in range(i, i + count))
                i += count
                continue
            if (in_place and value not in self.g.params and value not in self.g.inputs and value not in self.outputs
                    and self.plan.aliasable(ref.tid) and node.inputs.count(value) == 1
                    and not self._in_other_concat(value, node)):
                self.plan.alias(ref.tid, y, offset)
            else:
                self.plan.copy_into(f"{node.name}.{value}", ref.tid, y, offset)
            offset += channels
            i += 1
        self.members[y] = list(node.inputs)
        self.define(node.outputs[0], y, out_shape)

    def _prefix_concat(self, inputs, i):
        """(tensor, member count) of an earlier, still unaliased concat whose members are inputs[i : i + count]."""
        for tid, members in self.members.items():
            count = len(members)
            if count > 1 and list(inputs[i:i + count]) == members and self.plan.aliasable(tid):
                return tid, count
        return None

    def _in_other_concat(self, value, node):
        """Whether `value` is read by another concat that does not contain this one's members as a prefix chain
        (it can live in only one buffer)."""
        for reader in self.readers.get(value, []):
            if reader is node or reader.op != "concat":
                continue
            # a later concat that extends this one (DenseNet) reuses this buffer as its prefix: no conflict
            if list(reader.inputs[:len(node.inputs)]) == list(node.inputs):
                continue
            if list(node.inputs[:len(reader.inputs)]) == list(reader.inputs):
                continue
            return True
        return False

    def op_flatten(self, node):
        x = self.ref(node.inputs[0])
        out_shape = self.g.shapes[node.outputs[0]]
        if x.flat is None and len(x.shape) == 4 and len(out_shape) == 2:
            _, c, h, w = x.shape
            if h * w == 1:
                self.define(node.outputs[0], self.plan.reshape(x.tid, 1, 1, c), out_shape)
            else:
                self.define(node.outputs[0], x.tid, out_shape, flat=(c, h, w))
        elif tuple(x.shape) == tuple(out_shape):
            self.env[node.outputs[0]] = x
        else:
            raise ValueError(f"compile: node '{node.name}': flatten {x.shape} -> {out_shape} is not supported")

    def op_linear(self, node):
        x = self.ref(node.inputs[0])
        weight, bias = self.param(node.inputs[1]), self.param((list(node.inputs) + [""])[2])
        if len(x.shape) != 2:
            raise ValueError(f"compile: node '{node.name}': linear on a {len(x.shape)}-D input is not supported")
        if x.flat is not None:  # weight columns from NCHW-flatten order (c, h, w) to the stored (h, w, c) order
            c, h, w = x.flat
            weight = np.ascontiguousarray(weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1))
            x = Ref(self.plan.reshape(x.tid, 1, 1, c * h * w), x.shape)
        k, f = weight.shape
        self._conv(node, weight.reshape(k, f, 1, 1), bias, (1, 1), (1, 1), (0, 0, 0, 0), 1, x_ref=x)

    def _softmax(self, node):
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        axis = node.attrs["axis"]
        if axis != 1:
            raise ValueError(f"compile: node '{node.name}': {node.op} along axis {axis} is not supported (channels)")
        self.define(node.outputs[0], self.plan.softmax(node.name, x.tid, node.op == "log_softmax"), x.shape)

    op_softmax = op_log_softmax = _softmax

    def op_local_response_norm(self, node):
        x = self.materialize(self.ref(node.inputs[0]), node.name)
        a = node.attrs
        tid = self.plan.lrn(node.name, x.tid, a["size"], a["alpha"], a["beta"], a["k"])
        self.define(node.outputs[0], tid, x.shape)


def fuse_gates(graph):
    """x * sigmoid(x) -> silu(x) and x * hardsigmoid(x) -> hardswish(x), where the gate has no other reader (ONNX
    files spell SiLU as Sigmoid + Mul, and hard-swish as HardSigmoid + Mul before opset 14)."""
    readers = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.nodes for out in node.outputs}
    fused = {"sigmoid": "silu", "hardsigmoid": "hardswish"}
    dropped, replaced = set(), {}
    for node in graph.nodes:
        if node.op != "mul":
            continue
        a, b = node.inputs[:2]
        for x, gate in ((a, b), (b, a)):
            g = producer.get(gate)
            if (g is not None and g.op in fused and g.inputs[0] == x and len(readers.get(gate, ())) == 1
                    and gate not in graph.outputs):
                replaced[id(node)] = Node(fused[g.op], node.name, [x], list(node.outputs), {})
                dropped.add(id(g))
                break
    if not replaced:
        return graph
    nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in dropped]
    return Graph(nodes, graph.inputs, graph.outputs, graph.params, graph.shapes, graph.name)


POOLS = {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "global_avg_pool2d",
         "global_max_pool2d", "local_response_norm"}


def supported(node, graph):
    """Whether compiled plans have an op for `node`; the others run eagerly between plan segments."""
    rank = lambda v: len(graph.shapes[v])  # noqa: E731
    params = graph.params
    computed = [v for v in node.inputs if v and v not in params]
    if not computed or any(rank(v) not in (2, 4) for v in computed):
        return False
    op, a, x = node.op, node.attrs, node.inputs[0]
    out_rank = len(graph.shapes[node.outputs[0]])
    consts = all(v in params for v in node.inputs[1:] if v)
    if op in ("conv2d", "depthwise_conv2d", "separable_conv2d"):
        return rank(x) == 4 and x not in params and consts
    if op in POOLS:
        return rank(x) == 4 and x not in params
    if op == "batch_norm":
        return x not in params and consts
    if op in ACTIVATIONS:
        return x not in params
    if op in BINARY:
        for v in node.inputs[:2]:
            if v in params:
                array = params[v]
                if array.ndim > out_rank or (array.ndim == out_rank and array.shape[0] != 1):
                    return False
            elif rank(v) != out_rank or graph.shapes[v][0] != graph.shapes[node.outputs[0]][0]:
                return False
        return out_rank in (2, 4)
    if op == "concat":
        return a["axis"] == 1 and len(computed) == len(node.inputs)
    if op == "flatten":
        return (rank(x) == 4 and out_rank == 2) or graph.shapes[x] == graph.shapes[node.outputs[0]]
    if op == "linear":
        return rank(x) == 2 and x not in params and consts
    if op in ("softmax", "log_softmax"):
        return a["axis"] == 1
    return False


class Segment:
    """A run of consecutive graph nodes compiled into one C++ Plan: it reads `inputs`, gives `outputs`."""

    def __init__(self, plan, inputs, outputs):
        self.plan, self.inputs, self.outputs = plan, inputs, outputs


def rewrite(graph, fusions=FUSIONS):
    """The graph rewrites before lowering: batch-norm folding and gated activations (each when enabled)."""
    if "batchnorm" in fusions:
        graph = fold_batchnorm(graph)
    if "gates" in fusions:
        graph = fuse_gates(graph)
    return graph


def lower(graph, backend, winograd="auto", fusions=FUSIONS):
    """The steps running `graph` (already rewritten): Segments of consecutive supported nodes, each one C++ Plan
    built with the kernels of `backend` (an isa name, or a callable returning a new builder: `_core.Plan(isa)`, or
    the GPU's `_cuda.Plan`), and, between them, the nodes plans do not cover, run eagerly (`Node`s).

    `fusions`: the rewrites to apply, a subset of FUSIONS (all by default; tests switch each off)."""
    for name in graph.outputs:
        if name in graph.params or name in graph.inputs:
            raise ValueError(f"compile: graph output '{name}' is not computed by any node")
    runs, current = [], []
    for node in graph.nodes:
        if supported(node, graph):
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
    steps = []
    for i, run in enumerate(runs):
        if not isinstance(run, list):
            steps.append(run)
            continue
        made = {out for node in run for out in node.outputs}
        inputs = []
        for node in run:
            for v in node.inputs:
                if v and v not in made and v not in graph.params and v not in inputs:
                    inputs.append(v)
        outputs = [v for node in run for v in node.outputs
                   if v in graph.outputs or any(j != i for j in readers.get(v, ()))]
        plan = Lowering(graph, run, inputs, outputs, backend, winograd, fusions).lower()
        steps.append(Segment(plan, inputs, outputs))
    return steps
