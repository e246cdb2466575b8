"""Values a Plan keeps in NHWC order (plan/lower.py `channels_last_values`): the transposes TensorFlow / Keras
graphs start and end with cost nothing (the Plan takes the NHWC input and gives the NHWC output as stored), and
reshapes that keep the stored order are views. Results against the eager graph, on every ISA."""

import numpy as np
import pytest

from reference import assert_close

import convcore
import convcore.functional as F

LAYOUT = ("nchw_to_nhwc", "nhwc_to_nchw")


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check(fn, x, bound=1e-5):
    plan = convcore.compile(fn, x.shape)
    got, want = plan(x), fn(x)
    for g, w in zip(*((v if isinstance(v, tuple) else (v,)) for v in (got, want))):
        assert_close(g, w, bound)
    other = np.concatenate([x, x[:1] * 2])  # another batch, same Plan
    for g, w in zip(*((v if isinstance(v, tuple) else (v,)) for v in (plan(other), fn(other)))):
        assert_close(g, w, bound)
    return plan


def test_keras_graph_runs_without_layout_conversions(isa):
    """NHWC in, conv / PReLU-like blocks, NHWC out through a last-axis softmax and an activation, and a dense head
    on the NHWC flatten: one segment, no conversion op, the input copied as it is."""
    rng = np.random.default_rng(0)
    w1, w2, w3 = rand(rng, 8, 3, 3, 3), rand(rng, 2, 8, 1, 1), rand(rng, 5, 8 * 3 * 4)

    def fn(x):
        h = F.relu(F.conv2d(F.transpose(x, (0, 3, 1, 2)), w1))     # (N, 8, 3, 4)
        probs = F.softmax(F.transpose(F.conv2d(h, w2), (0, 2, 3, 1)), axis=3)
        head = F.linear(F.flatten(F.transpose(h, (0, 2, 3, 1))), w3)  # Keras' Flatten: NHWC order
        return probs, F.sigmoid(F.transpose(h, (0, 2, 3, 1))), head

    plan = _check(fn, rand(rng, 2, 5, 6, 3))
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and len(plan._segments()) == 1
    assert not any(k in LAYOUT for k in kernels) and kernels[0] == "copy_in", kernels


def test_transposed_values_read_by_other_ops_leave_the_plan(isa):
    """An NHWC value read as if it were NCHW (a convolution over its rows as channels, a pool) is no view of
    anything the Plan stores: those readers run eagerly on the NHWC array the segment gives, results unchanged."""
    rng = np.random.default_rng(1)
    w1, w2 = rand(rng, 6, 3, 1, 1), rand(rng, 4, 5, 1, 1)

    def fn(x):
        t = F.transpose(F.conv2d(x, w1), (0, 2, 3, 1))  # (N, 5, 7, 6): "channels" are the rows now
        return F.conv2d(F.relu(t), w2), F.max_pool2d(t, 2), F.transpose(x, (0, 2, 3, 1))

    plan = _check(fn, rand(rng, 2, 3, 5, 7))
    assert sorted(n.split("_")[0] for n in plan.eager_nodes) == ["conv2d", "max"]


@pytest.mark.parametrize("shapes", [((2, 6, 1, 1), (2, 1, 1, 6)), ((2, 6, 1, 1), (2, 6)), ((2, 1, 4, 5), (2, 1, 20, 1)),
                                    ((2, 1, 4, 5), (2, 20, 1, 1))])
def test_reshapes_in_stored_order_are_views(isa, shapes):
    """(N, C, 1, 1) <-> (N, 1, 1, C), one-channel maps and (N, F): the same floats in the same order, no op; a map
    living in a concatenation is copied first."""
    src, dst = shapes
    rng = np.random.default_rng(2)
    w, wb = rand(rng, src[1], 3, 1, 1), rand(rng, 2, 3, 1, 1)

    def fn(x):
        a = F.conv2d(x, w)
        cat = F.concat([a, F.conv2d(x, wb)], axis=1)  # a is a slice of cat
        to = (-1, *dst[1:])
        return F.relu(F.reshape(F.relu(a), to)), F.reshape(a, to), cat

    plan = _check(fn, rand(rng, 2, 3, *src[2:]))
    assert plan.eager_nodes == []


def test_reshapes_that_move_data_run_as_gathers(isa):
    """A reshape that is no view of the stored order: one gather inside the Plan (plan/permute.py)."""
    rng = np.random.default_rng(3)
    w = rand(rng, 4, 3, 1, 1)

    def fn(x):
        return F.relu(F.reshape(F.conv2d(x, w), (-1, 2, 6, 5)))

    plan = _check(fn, rand(rng, 2, 3, 5, 3))
    assert plan.eager_nodes == [] and "gather_channels" in plan.summary()


def _spelled_gelu(x, order):
    """GELU as exporters write it: ``0.5 x (1 + erf(x / sqrt 2))``, its two multiplies in either order (the torch
    exporter before opset 20: ``(x * gate) * 0.5``; convcore's own export: ``(x * 0.5) * gate``)."""
    if order == "div":
        gate = F.add(F.erf(F.div(x, np.float32(np.sqrt(2)))), np.float32(1))
    else:
        gate = F.add(np.float32(1), F.erf(F.mul(x, np.float32(np.sqrt(0.5)))))
    if order == "half_first":
        return F.mul(F.mul(x, np.float32(0.5)), gate)
    return F.mul(F.mul(x, gate), np.float32(0.5))


@pytest.mark.parametrize("order", ["div", "mul", "half_first"])
def test_convnext_block_runs_channels_last_in_one_segment(isa, order):
    """ConvNeXt's block: depthwise conv, then channels-last (transpose, layer norm over the last axis, two linear
    layers with a spelled-out GELU between, transpose back), a per-channel scale and the residual. The Plan runs the
    linear layers as 1x1 convolutions on the stored NHWC order and the layer norm per pixel: one segment, no layout
    conversion inside, the GELU spelling an epilogue of the first linear layer."""
    rng = np.random.default_rng(4)
    c = 24
    wd, w1, w2 = rand(rng, c, 1, 7, 7) * 0.2, rand(rng, 4 * c, c) * 0.2, rand(rng, c, 4 * c) * 0.1
    b1, b2, gamma, ln_w, ln_b = rand(rng, 4 * c), rand(rng, c), rand(rng, c, 1, 1), rand(rng, c), rand(rng, c)

    def fn(x):
        t = F.transpose(F.conv2d(x, wd, padding=3, groups=c), (0, 2, 3, 1))
        t = F.layer_norm(t, ln_w, ln_b, eps=1e-6)
        t = F.linear(_spelled_gelu(F.linear(t, w1, b1), order), w2, b2)
        return F.add(x, F.mul(gamma, F.transpose(t, (0, 3, 1, 2))))

    plan = _check(fn, rand(rng, 2, c, 9, 11))
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and len(plan._segments()) == 1
    assert [k for k in kernels if k in LAYOUT] == ["nchw_to_nhwc", "nhwc_to_nchw"], kernels  # the edges only
    assert any(k.endswith("layer_norm") for k in kernels), kernels
    assert any(op[2].endswith("+gelu") for op in plan.ops()), plan.ops()  # the linear layer's epilogue


def test_layer_norm_of_rows_and_softmax_in_plan(isa):
    """A (N, F) head: linear, layer norm over the features, a last-axis softmax: one segment."""
    rng = np.random.default_rng(5)
    w, lw, lb = rand(rng, 19, 3 * 4 * 4), rand(rng, 19), rand(rng, 19)

    def fn(x):
        return F.softmax(F.layer_norm(F.linear(F.flatten(x), w), lw, lb), axis=1)

    plan = _check(fn, rand(rng, 3, 3, 4, 4) * 5 + 20)
    assert plan.eager_nodes == [] and any(op[1].endswith("layer_norm") for op in plan.ops())


def _shuffle(x, groups, last="reshape"):
    """torchvision's channel_shuffle; the ONNX importer makes its last reshape a flatten of axes 1-2."""
    _, c, h, w = x.shape
    t = F.transpose(F.reshape(x, (-1, groups, c // groups, h, w)), (0, 2, 1, 3, 4))
    return F.reshape(t, (-1, c, h, w)) if last == "reshape" else F.flatten(t, 1, 2)


@pytest.mark.parametrize("groups", [2, 3, 8])
def test_channel_shuffle_is_one_gather_inside_the_plan(isa, groups):
    """ShuffleNet's unit: two branches concatenated, shuffled (reshape, 5-D transpose, reshape), split in halves,
    one half convolved: one segment, the shuffle one channel gather; a gather of one ascending run is a view."""
    rng = np.random.default_rng(6)
    c = 2 * groups * 3
    wa, wb, wc = rand(rng, c // 2, 4, 1, 1), rand(rng, c // 2, 4, 3, 3), rand(rng, c // 2, c // 2, 1, 1)

    def fn(x):
        y = _shuffle(F.concat([F.conv2d(x, wa), F.relu(F.conv2d(x, wb, padding=1))], axis=1), groups)
        keep, work = F.slice(y, [0], [c // 2], [1]), F.slice(y, [c // 2], [c], [1])
        z = _shuffle(F.concat([keep, F.relu(F.conv2d(work, wc))], axis=1), groups, "flatten")
        return F.gather(z, list(range(2, 5)), axis=1), z

    plan = _check(fn, rand(rng, 2, 4, 5, 7))
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and kernels.count("gather_channels") == 2, kernels


def test_detector_head_sequences_run_inside_the_plan(isa):
    """YOLO-style heads: three levels flattened to (N, C, H * W) sequences, concatenated along the positions, split
    by channels, decoded with per-position constants, concatenated back and transposed to (N, L, C): all in one
    segment (a sequence is stored as L pixels of C channels, so the flatten and the transpose cost nothing)."""
    rng = np.random.default_rng(7)
    ws = [rand(rng, 6, 3, 1, 1) for _ in range(3)]
    anchors, scale = rand(rng, 1, 2, 1), rand(rng, 8 * 7 + 4 * 3 + 2 * 1)  # one per position of the 3 levels

    def fn(x):
        levels = [x, F.max_pool2d(x, 2), F.max_pool2d(x, 4)]
        seq = F.concat([F.flatten(F.conv2d(v, w), 2) for v, w in zip(levels, ws)], axis=2)  # (N, 6, L)
        box, score = F.slice(seq, [0], [2], [1]), F.slice(seq, [2], [6], [1])
        box = F.mul(F.add(box, anchors), scale)  # (1, 2, 1) and (L,) broadcast over the positions
        return F.transpose(F.concat([box, F.sigmoid(score)], axis=1), (0, 2, 1)), seq

    plan = _check(fn, rand(rng, 2, 3, 8, 7))
    assert plan.eager_nodes == [] and len(plan._segments()) == 1, plan.eager_nodes


def test_transformer_tokens_run_channels_last_inside_the_plan(isa):
    """ViT-style tokens: patches flattened and transposed to (N, L, C), a class token concatenated in front, a
    position embedding added, then layer norm, an MLP with GELU and the residual, per token: one segment."""
    rng = np.random.default_rng(8)
    c = 16
    wp, cls, pos = rand(rng, c, 3, 2, 2), rand(rng, 1, 1, c), rand(rng, 1, 13, c)
    lw, lb, w1, w2 = rand(rng, c), rand(rng, c), rand(rng, 2 * c, c) * 0.3, rand(rng, c, 2 * c) * 0.3

    def fn(x):
        t = F.transpose(F.flatten(F.conv2d(x, wp, stride=2), 2), (0, 2, 1))  # (N, 12, C)
        t = F.add(F.concat([cls, t], axis=1), pos)
        return F.add(t, F.linear(F.gelu(F.linear(F.layer_norm(t, lw, lb), w1)), w2))

    plan = convcore.compile(fn, (1, 3, 6, 8))
    x = rand(rng, 1, 3, 6, 8)
    assert_close(plan(x), fn(x), 1e-5)
    assert plan.eager_nodes == [] and len(plan._segments()) == 1, plan.eager_nodes
    kernels = [op[1] for op in plan.ops()]
    assert kernels[-1] == "copy_out", kernels  # (N, L, C) is the stored order


@pytest.mark.parametrize("square, divide, affine", [("pow", "div", True), ("mul", "reciprocal", False),
                                                    ("pow", "div", False)])
def test_spelled_out_layer_norm_is_one_op(isa, square, divide, affine):
    """``(x - mean) / sqrt(mean((x - mean)^2) + eps) [* g + b]`` over the last axis of a sequence, as paddle2onnx and
    the torch exporter before opset 17 write it: one layer_norm op inside the Plan."""
    rng = np.random.default_rng(9)
    g, b, w = rand(rng, 12), rand(rng, 12), rand(rng, 12, 3, 1, 1)

    def fn(x):
        t = F.transpose(F.flatten(F.conv2d(x, w), 2), (0, 2, 1))  # (N, L, 12)
        centred = F.sub(t, F.reduce_mean(t, axes=[2]))
        sq = F.pow(centred, np.float32(2)) if square == "pow" else F.mul(centred, centred)
        std = F.sqrt(F.add(F.reduce_mean(sq, axes=[2]), np.float32(1e-5)))
        y = F.div(centred, std) if divide == "div" else F.mul(centred, F.reciprocal(std))
        return F.add(F.mul(y, g), b) if affine else y

    plan = _check(fn, rand(rng, 2, 3, 4, 5) * 3 + 7)
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and sum(k.endswith("layer_norm") for k in kernels) == 1, kernels
    assert not any(k.endswith(("sub", "div", "scale_shift")) for k in kernels), kernels
