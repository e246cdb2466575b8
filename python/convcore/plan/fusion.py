"""Fusions across ops that the lowering (`plan.lower.Lowering`) tries before an op's own Plan rule: inverted-residual
blocks as one striped op, a squeeze-excitation gate folded into the next 1x1 convolution's weights, and
concatenations written in place."""

from __future__ import annotations

import os

from .. import _core
from ..ops import OPS

__all__ = ["NO_ACT", "epilogue_of", "try_mbconv", "try_gated_conv", "lower_concat"]

NO_ACT = _core.Epilogue()


def epilogue_of(node):
    """The epilogue applying `node` (an elementwise activation with a Plan epilogue), or None."""
    rule = OPS[node.op].plan if node.op in OPS else None
    if rule is None or rule.epilogue is None:
        return None
    act, alpha, beta = rule.epilogue(node.attrs)
    return _core.Epilogue(act=_core.Act.__members__[act], alpha=alpha, beta=beta)


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


def _pointwise(low, node):
    """Whether node is a 1x1, stride-1, unpadded, ungrouped convolution with constant weights."""
    if node is None or node.op != "conv2d" or node.inputs[1] not in low.g.params:
        return False
    a, bias = node.attrs, low.arg(node, 2)
    return (low.shape(node.inputs[1])[2:] == (1, 1) and tuple(a["stride"]) == (1, 1) and a["groups"] == 1
            and tuple(a["padding"]) == (0, 0, 0, 0) and (not bias or bias in low.g.params))


def _depthwise(low, node):
    """Whether node is a depthwise convolution (one filter per channel) with constant weights."""
    if node is None or node.op not in ("conv2d", "depthwise_conv2d") or node.inputs[1] not in low.g.params:
        return False
    c, w, bias = low.shape(node.inputs[0])[1], low.shape(node.inputs[1]), low.arg(node, 2)
    groups = node.attrs.get("groups", c)
    return groups == c == w[0] and w[1] == 1 and c > 1 and (not bias or bias in low.g.params)


def _act_after(low, value):
    """(epilogue, its node or None, value after it) when an activation can be fused after value."""
    reader = low.sole_reader(value) if "activation" in low.fusions else None
    epilogue = epilogue_of(reader) if reader is not None else None
    if epilogue is None:
        return NO_ACT, None, value
    return epilogue, reader, reader.outputs[0]


def try_mbconv(low, node):
    """Lower [expand 1x1 ->] depthwise -> project 1x1 starting at node as one fused op; False if it does not match
    or would not help."""
    if "mbconv" not in low.fusions:
        return False
    expand = node if _pointwise(low, node) else None
    if expand is not None:
        e_act, e_act_node, e_out = _act_after(low, node.outputs[0])
        dw = low.sole_reader(e_out)
        if not _depthwise(low, dw) or dw.inputs[0] != e_out:
            return False
    elif _depthwise(low, node):
        e_act, e_act_node, dw = NO_ACT, None, node
    else:
        return False
    d_act, d_act_node, d_out = _act_after(low, dw.outputs[0])
    project = low.sole_reader(d_out)
    if not _pointwise(low, project) or project.inputs[0] != d_out:
        project = None  # the depthwise output is needed elsewhere (a squeeze-excitation gate): stop there
        if expand is None or "mbconv_no_project" not in low.capabilities:
            return False
    x = low.ref(node.inputs[0])
    if x.flat is not None or len(x.shape) != 4:
        return False
    n, c, h, w = x.shape
    e = low.shape(dw.inputs[0])[1]
    if 4 * n * h * w * e < MBCONV_MIN_BYTES:
        return False  # small maps: the three ops' tensors stay in cache anyway
    weights = 4 * e * (c * (expand is not None) + (low.shape(project.inputs[1])[0] if project else 0))
    if weights > MBCONV_MAX_WEIGHT_BYTES:
        return False  # each stripe rereads the 1x1 weights: many of them outweigh the traffic fusing saves
    for fused in (e_act_node, dw, d_act_node, project):
        if fused is not None:
            low.skip(fused)
    if project is not None:
        residual, p_act, out_value = low.conv_epilogue(project.outputs[0])
        wp, bp = low.param(project.inputs[1]), low.param(low.arg(project, 2))
    else:
        residual, p_act, out_value, wp, bp = -1, NO_ACT, d_out, None, None
    da = dw.attrs
    spec = _core.ConvSpec(stride=da["stride"], dilation=da["dilation"], padding=da["padding"], groups=e)
    we = low.param(expand.inputs[1]) if expand is not None else None
    be = low.param(low.arg(expand, 2)) if expand is not None else None
    tid = low.builder.mbconv(node.name, x.tid, we=we, be=be, ee=e_act, wd=low.param(dw.inputs[1]),
                             bd=low.param(low.arg(dw, 2)), dw_spec=spec, ed=d_act, wp=wp, bp=bp, ep=p_act,
                             residual=residual)
    low.define(out_value, tid)
    return True


def try_gated_conv(low, node):
    """mul(x, gate) with a per-image, per-channel gate (N, C, 1, 1) read only by a 1x1 convolution with fewer
    output channels than pixels: the gate scales that convolution's weights per image instead of every pixel of x
    (EfficientNet's squeeze-excitation before the block's projection)."""
    if "gates" not in low.fusions or "conv_gate" not in low.capabilities:
        return False
    conv = low.sole_reader(node.outputs[0])
    if not _pointwise(low, conv) or conv.inputs[0] != node.outputs[0]:
        return False
    out_shape = low.shape(node.outputs[0])
    for x, gate in (node.inputs[:2], node.inputs[1::-1]):
        xr, gr = low.env.get(x), low.env.get(gate)
        if xr is None or gr is None or xr.flat is not None or gr.flat is not None:
            continue
        if xr.shape == out_shape and gr.shape == (out_shape[0], out_shape[1], 1, 1) and \
                low.shape(conv.inputs[1])[0] < out_shape[2] * out_shape[3]:
            low.skip(conv)
            residual, epilogue, out_value = low.conv_epilogue(conv.outputs[0])
            tid = low.builder.conv(conv.name, xr.tid, low.param(conv.inputs[1]), low.param(low.arg(conv, 2)),
                                   spec=_core.ConvSpec(), epilogue=epilogue, residual=residual,
                                   algo=_core.ConvAlgo.igemm, scale=gr.tid)
            low.define(out_value, tid)
            return True
    return False


def _concat_sequences(low, node):
    """A concatenation of (N, C, L) sequences (or their channels-last (N, L, C) form): along the channels, each part
    copied into its channel range; along L, into its range of pixels (a constant part too: a class token)."""
    out_shape = low.shape(node.outputs[0])
    nhwc = any(low.env[v].nhwc for v in node.inputs if v in low.env)
    refs = [low.materialize(low.ref(v, 3, nhwc), node.name) for v in node.inputs]
    channel_axis = 2 if nhwc else 1
    length, channels = out_shape[3 - channel_axis], out_shape[channel_axis]
    y = low.builder.tensor(length, 1, channels)
    offset = 0
    for value, ref in zip(node.inputs, refs):
        if node.attrs["axis"] == channel_axis:
            low.builder.copy_into(f"{node.name}.{value}", ref.tid, y, offset)
        else:
            low.builder.copy_pixels_into(f"{node.name}.{value}", ref.tid, y, offset)
        offset += ref.shape[node.attrs["axis"]]
    low.define(node.outputs[0], y, out_shape, nhwc=nhwc)


def lower_concat(low, node):
    """A concatenation along channels, its inputs written in place where they can be (slices of the output)."""
    out_shape = low.shape(node.outputs[0])
    if len(out_shape) == 3:
        _concat_sequences(low, node)
        return
    refs = [low.materialize(low.ref(v), node.name) for v in node.inputs]
    h, w = (out_shape[2], out_shape[3]) if len(out_shape) == 4 else (1, 1)
    y = low.builder.tensor(h, w, out_shape[1])
    offset, i = 0, 0
    while i < len(node.inputs):
        value, ref = node.inputs[i], refs[i]
        channels = ref.shape[1]
        # A previous concatenation whose members start here: it becomes the prefix slice (DenseNet).
        in_place = "concat" in low.fusions
        prefix = _prefix_concat(low, node.inputs, i) if in_place else None
        if prefix is not None:
            tid, count = prefix
            low.builder.alias(tid, y, offset)
            offset += sum(refs[j].shape[1] for j in range(i, i + count))
            i += count
            continue
        # All the parts of a split, in order: the split value itself lives there (YOLOv8's C2f, CSP blocks).
        whole = _split_whole(low, node, i) if in_place else None
        if whole is not None:
            parent, count = whole
            low.builder.alias(low.env[parent].tid, y, offset)
            offset += low.env[parent].shape[1]
            i += count
            continue
        if (in_place and value not in low.g.params and value not in low.g.inputs and value not in low.outputs
                and low.builder.aliasable(ref.tid) and node.inputs.count(value) == 1
                and not _in_other_concat(low, value, node)):
            low.builder.alias(ref.tid, y, offset)
        else:
            low.builder.copy_into(f"{node.name}.{value}", ref.tid, y, offset)
        offset += channels
        i += 1
    low.members[y] = list(node.inputs)
    low.define(node.outputs[0], y, out_shape)


def _split_whole(low, node, i):
    """(value, part count) when node.inputs[i:] start with channel slices of one value covering it in order (the
    Plan's slice views, `Lowering.slices`) and that value may live in the concatenation's buffer; else None."""
    first = low.slices.get(node.inputs[i])
    if first is None:
        return None
    parent, channels = first[0], low.env[first[0]].shape[1]
    end, j = 0, i
    while j < len(node.inputs) and end < channels:
        part = low.slices.get(node.inputs[j])
        if part is None or part[0] != parent or part[1] != end or node.inputs.count(node.inputs[j]) != 1:
            return None
        end += part[2]
        j += 1
    if (end != channels or parent in low.g.inputs or parent in low.outputs or not low.builder.aliasable(
            low.env[parent].tid) or _in_other_concat(low, parent, node)):
        return None
    return parent, j - i


def _prefix_concat(low, inputs, i):
    """(tensor, member count) of an earlier, still unaliased concat whose members are inputs[i : i + count]."""
    for tid, members in low.members.items():
        count = len(members)
        if count > 1 and list(inputs[i:i + count]) == members and low.builder.aliasable(tid):
            return tid, count
    return None


def _in_other_concat(low, value, node):
    """Whether `value` is read by another concat that does not contain this one's members as a prefix chain (it can
    live in only one buffer)."""
    for reader in low.readers.get(value, []):
        if reader is node or reader.op != "concat":
            continue
        # a later concat that extends this one (DenseNet) reuses this buffer as its prefix: no conflict
        if list(reader.inputs[:len(node.inputs)]) == list(node.inputs):
            continue
        if list(node.inputs[:len(reader.inputs)]) == list(reader.inputs):
            continue
        return True
    return False


class GraphIndex:
    """Who reads and who produces each value of a graph: computed once per graph, shared by its segments."""

    def __init__(self, graph):
        self.readers = {}
        for node in graph.nodes:
            for name in node.inputs:
                if name:
                    self.readers.setdefault(name, []).append(node)
        self.producer = {out: node for node in graph.nodes for out in node.outputs}
