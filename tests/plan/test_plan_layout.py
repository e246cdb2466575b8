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


def test_reshapes_that_move_data_stay_outside(isa):
    rng = np.random.default_rng(3)
    w = rand(rng, 4, 3, 1, 1)

    def fn(x):
        return F.relu(F.reshape(F.conv2d(x, w), (-1, 2, 6, 5)))

    plan = _check(fn, rand(rng, 2, 3, 5, 3))
    assert [n.split("_")[0] for n in plan.eager_nodes] == ["reshape"]
