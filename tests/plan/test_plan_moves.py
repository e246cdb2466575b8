"""Reshapes and transposes that move values run inside the Plan (plan/permute.py: one gather, or a view), and so
does the LSTM of a batch-1 graph (csrc/plan/recurrent.cpp): a CRNN head, a YOLOv8 box decoder (DFL), a Keras
input reshape. Results against the eager graph and onnxruntime, on every ISA, 1 and 2 threads; no node outside the
Plan."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import assert_close

import convcore
import convcore.functional as F
import convcore.onnx


def rand(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _plan_matches(fn, x, bound=1e-5):
    plan = convcore.compile(fn, x.shape)
    assert plan.eager_nodes == []
    got, want = plan(x), fn(x)
    for g, w in zip(*((v if isinstance(v, tuple) else (v,)) for v in (got, want))):
        assert_close(g, w, bound)
    return plan


def test_yolo_box_decoder_runs_in_the_plan(isa, threads):
    """YOLOv8's DFL: (N, 64, A) -> (N, 4, 16, A) -> transpose (0, 2, 1, 3) -> softmax over the 16 bins -> 1x1 conv
    -> (N, 4, A), at batch 1 and 3 (the moves keep the batch first: each image's values move among themselves)."""
    rng = np.random.default_rng(0)
    w_head, w_bins = rand(rng, 64, 8, 1, 1), np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1)

    def fn(x):
        seq = F.reshape(F.conv2d(x, w_head), (-1, 64, 35))                # (N, 64, A)
        bins = F.transpose(F.reshape(seq, (-1, 4, 16, 35)), (0, 2, 1, 3))  # (N, 16, 4, A)
        return F.reshape(F.conv2d(F.softmax(bins, axis=1), w_bins), (-1, 4, 35))

    for batch in (1, 3):
        plan = _plan_matches(fn, rand(rng, batch, 8, 5, 7, scale=1.0))
        assert "gather_channels" in plan.summary()


def test_keras_input_reshape_and_moves_of_every_rank(isa, threads):
    """A (N, H, W, 1) input read as (N, 1, H, W); a 5-D transpose and a 2-D reshape of a map in between."""
    rng = np.random.default_rng(1)
    w1, w2 = rand(rng, 6, 1, 3, 3), rand(rng, 4, 6, 1, 1)

    def fn(x):
        h = F.relu(F.conv2d(F.reshape(x, (-1, 1, 9, 8)), w1, padding=1))      # (N, 6, 9, 8)
        h = F.reshape(F.transpose(F.reshape(h, (-1, 2, 3, 9, 8)), (0, 1, 3, 2, 4)), (-1, 6, 9, 8))
        flat = F.reshape(F.transpose(h, (0, 3, 2, 1)), (-1, 6 * 9 * 8))      # (N, W, H, C) flattened
        return F.conv2d(h, w2), F.sigmoid(flat)

    for batch in (1, 2):
        _plan_matches(fn, rand(rng, batch, 9, 8, 1, scale=1.0))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=3, max_size=3), perm=st.permutations(range(4)),
       batch=st.sampled_from([1, 2]), seed=st.integers(0, 2 ** 16))
def test_random_moves_match_eager(shape, perm, batch, seed):
    """Any transpose of a map, then a reshape to (N, -1, last) and a per-position op: the Plan's gathers against
    numpy (at batch 2 only the transposes that keep the batch first run in the Plan)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    weight = rand(rng, 3, c, 1, 1)

    def fn(x):
        t = F.transpose(F.relu(F.conv2d(x, weight)), tuple(perm))
        return F.sigmoid(F.reshape(t, (t.shape[0], -1, t.shape[-1])))

    x = rand(rng, batch, c, h, w, scale=1.0)
    plan = convcore.compile(fn, x.shape)
    assert_close(plan(x), fn(x), 1e-6)
    if batch == 1 or perm[0] == 0:
        assert plan.eager_nodes == []


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_concatenations_and_paddings_of_any_axis(isa, threads, mode):
    """Concatenations along rows, columns and the last axis of a 5-D value, paddings of a sequence's length and of
    a map's channels (cropping too): one gather each (plan/permute.py `is_assembly`), at batch 1 and 2."""
    rng = np.random.default_rng(5)
    w1, w2 = rand(rng, 4, 2, 3, 3), rand(rng, 3, 4, 1, 1)

    def fn(x):
        a = F.relu(F.conv2d(x, w1, padding=1))                          # (N, 4, 5, 6)
        b = F.conv2d(a, w2)                                              # (N, 3, 5, 6)
        rows = F.concat([F.slice(a, (0,), (3,), (1,)), b], axis=2)      # (N, 3, 10, 6)
        cols = F.concat([b, F.slice(a, (1,), (4,), (1,)), b], axis=3)   # (N, 3, 5, 18)
        seq = F.pad(F.reshape(b, (-1, 3, 30)), (0, 0, 0, 0, 4, 3), mode=mode, value=0.5)
        chans = F.pad(a, (0, 0, 2, -1, 0, 0, 0, 0), mode=mode, value=-1.0)  # channels padded, the last one cropped
        five = F.concat([F.reshape(a, (-1, 2, 2, 5, 6)), F.reshape(a, (-1, 2, 2, 5, 6))], axis=4)
        return F.sigmoid(rows), cols, F.relu(seq), chans, five

    for batch in (1, 2):
        _plan_matches(fn, rand(rng, batch, 2, 5, 6, scale=1.0))


def test_gathers_and_slices_of_any_axis(isa, threads):
    """A transformer's class token (gather of position 0), a gather with a 2-D index table, reversed and strided
    slices of a sequence's length and channels and of a 5-D value: one gather each, at batch 1 and 2."""
    rng = np.random.default_rng(7)
    w = rand(rng, 6, 2, 1, 1)

    def fn(x):
        seq = F.transpose(F.reshape(F.conv2d(x, w), (-1, 6, 20)), (0, 2, 1))     # (N, L, C)
        token = F.gather(seq, 0, axis=1)                                         # (N, C)
        table = F.gather(seq, np.array([[3, 1], [0, 19]]), axis=1)                # (N, 2, 2, C)
        back = F.slice(seq, (-1, 5), (-21, 0), (1, 2), (-2, -2))                  # (N, 10, 3)
        five = F.slice(F.reshape(seq, (-1, 4, 5, 2, 3)), (1, 0), (4, 3), (1, 4), (2, 2))
        return F.relu(token), table, back, five

    for batch in (1, 2):
        _plan_matches(fn, rand(rng, batch, 2, 4, 5, scale=1.0))


def test_windows_merged_back_meet_channels_last_values(isa, threads):
    """Swin's pattern: a channels-last map (layer norm, linear) plus windows merged back by moves (6-D transpose,
    reshape): the moved value is stored in the order its readers take (layout.py `_rows_wanted`), and an operand
    stored the other way is relaid by one gather; no node outside the Plan, at batch 1 and 2."""
    rng = np.random.default_rng(8)
    w_in, w_lin, g = rand(rng, 4, 3, 1, 1), rand(rng, 4, 4), rand(rng, 4)

    def fn(x):
        m = F.transpose(F.conv2d(x, w_in), (0, 2, 3, 1))                               # (N, 4, 6, 4) NHWC
        h = F.layer_norm(m, g)
        win = F.reshape(F.transpose(F.reshape(h, (-1, 2, 2, 3, 2, 4)), (0, 1, 3, 2, 4, 5)), (-1, 4, 6, 4))
        crossed = F.transpose(F.conv2d(x, w_in), (0, 1, 3, 2))                         # (N, 4, 6, 4) as NCHW
        merged = F.linear(win, w_lin) + m + crossed         # windows shuffled back; an operand relaid
        other = F.transpose(F.conv2d(x, w_in), (0, 3, 2, 1))                           # (N, 6, 4, 4): no view
        return F.layer_norm(merged), F.transpose(m, (0, 2, 1, 3)) * other

    for batch in (1, 2):
        _plan_matches(fn, rand(rng, batch, 3, 4, 6, scale=1.0))


def test_concatenation_with_a_constant_at_batch_1(isa):
    """A constant part of a concatenation along the rows (a learned padding row) in a batch-1 plan."""
    rng = np.random.default_rng(6)
    w, row = rand(rng, 3, 3, 1, 1), rand(rng, 1, 3, 1, 4)

    def fn(x):
        return F.concat([F.conv2d(x, w), row], axis=2)

    _plan_matches(fn, rand(rng, 1, 3, 2, 4))


# ------------------------------------------------------------------------------------------------------- LSTM
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _crnn(rng, direction, hidden, output, peepholes, initial, channels=4, rows=3, length=7, batch=1):
    """conv -> (W, N, C * H) sequence (torch's CRNN export) -> LSTM -> (L, N, D * H) -> linear head."""
    d = 2 if direction == "bidirectional" else 1
    features = channels * rows
    arrays = {"cw": rand(rng, channels, 2, 3, 3), "W": rand(rng, d, 4 * hidden, features),
              "R": rand(rng, d, 4 * hidden, hidden), "B": rand(rng, d, 8 * hidden),
              "shape": np.array([length, -1, features], np.int64)}
    inputs = ["seq", "W", "R", "B", ""]
    if initial:
        arrays["h0"], arrays["c0"] = rand(rng, d, batch, hidden), rand(rng, d, batch, hidden)
        inputs += ["h0", "c0"]
    if peepholes:
        arrays["P"] = rand(rng, d, 3 * hidden)
        inputs += [""] * (7 - len(inputs)) + ["P"]
    slot = {"y": 0, "h": 1, "c": 2}[output]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["map"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["map"], ["t"], perm=[3, 0, 1, 2]),
             helper.make_node("Reshape", ["t", "shape"], ["seq"]),
             helper.make_node("LSTM", inputs, [""] * slot + ["r"], hidden_size=hidden, direction=direction)]
    if output == "y":
        arrays["head"], arrays["shape2"] = rand(rng, d * hidden, 5), np.array([length, -1, d * hidden], np.int64)
        nodes += [helper.make_node("Transpose", ["r"], ["rt"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["rt", "shape2"], ["rs"]),
                  helper.make_node("MatMul", ["rs", "head"], ["out"])]
    else:
        nodes.append(helper.make_node("Relu", ["r"], ["out"]))
    graph = helper.make_graph(nodes, "crnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [batch, 2, rows, length])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString(), rand(rng, batch, 2, rows, length, scale=1.0)


@pytest.mark.parametrize("direction, hidden, output, peepholes, initial", [
    ("bidirectional", 17, "y", True, True),
    ("bidirectional", 40, "y", False, False),
    ("forward", 1, "y", False, True),
    ("reverse", 33, "y", True, False),
    ("forward", 16, "h", False, True),
    ("bidirectional", 5, "c", True, True),
])
def test_crnn_lstm_runs_in_the_plan(isa, threads, direction, hidden, output, peepholes, initial):
    """The whole CRNN, its LSTM and the moves around it, in one Plan: against onnxruntime and the eager graph."""
    rng = np.random.default_rng(hidden)
    data, x = _crnn(rng, direction, hidden, output, peepholes, initial)
    graph = convcore.onnx.load(data)
    plan = convcore.compile(graph, x.shape)
    assert plan.eager_nodes == []
    assert "lstm_step" in plan.summary()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    assert_close(plan(x), want, 1e-5)
    assert_close(plan(x), graph(x), 1e-5)


def test_lstm_of_a_batch_stays_eager_and_right():
    """A batch of several sequences: the LSTM runs eagerly (the Plan's takes one sequence), results unchanged."""
    rng = np.random.default_rng(3)
    data, x = _crnn(rng, "bidirectional", 6, "y", False, True, batch=2)
    plan = convcore.compile(convcore.onnx.load(data), x.shape)
    assert "r" in plan.eager_nodes  # the LSTM node (named after its output)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert_close(plan(x), want, 1e-5)


def test_windows_in_blocks_of_rows_at_any_batch(isa, threads):
    """Swin's window partition at batch > 1: (N, H, W, C) -> (N * windows, window pixels, C), each image's windows a
    block of rows of the value (permute.is_raw), per-window ops (linear, layer norm, softmax), then merged back: one
    segment, no node outside the Plan, at batch 1, 2 and 3."""
    rng = np.random.default_rng(11)
    w1, w2 = rand(rng, 6, 3, 3, 3), rand(rng, 6, 6)

    def fn(x):
        y = F.transpose(F.relu(F.conv2d(x, w1, padding=1)), (0, 2, 3, 1))            # (N, 4, 6, 6)
        win = F.transpose(F.reshape(y, (-1, 2, 2, 3, 2, 6)), (0, 1, 3, 2, 4, 5))      # (N, 2, 3, 2, 2, 6)
        rows = F.softmax(F.layer_norm(F.linear(F.reshape(win, (-1, 4, 6)), w2), np.ones(6, np.float32)), axis=2)
        back = F.reshape(F.transpose(F.reshape(rows, (-1, 2, 3, 2, 2, 6)), (0, 1, 3, 2, 4, 5)), (-1, 4, 6, 6))
        return F.transpose(F.add(back, y), (0, 3, 1, 2))

    for batch in (1, 2, 3):
        x = rand(rng, batch, 3, 4, 6, scale=1.0)
        plan = convcore.compile(fn, x.shape)
        assert plan.eager_nodes == [] and len(plan._segments()) == 1, plan.summary()
        assert_close(plan(x), fn(x), 1e-5)
