"""One compiled model at any input size: a plan compiled from a Module or an ONNX file compiles the model again at
each new height x width it meets (kept per size, bounded), and `convcore.compile(model)` without a shape compiles at
the first call. Results against the eager model at each size."""

import pickle

import numpy as np
import pytest

from reference import assert_close

import convcore
import convcore.functional as F
from convcore import nn


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


class Net(nn.Module):
    """A conv, a global pool and a head, plus a reshape whose size is computed from the input (frozen by a trace)."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w, self.head = rand(rng, 6, 3, 3, 3), rand(rng, 4, 6)

    def forward(self, x):
        y = F.relu(F.conv2d(x, self.w, padding=1))
        n, c, h, w = y.shape
        flat = F.reshape(y, (n, c, h * w))  # a size the tracer freezes at the traced shape
        return F.linear(F.reduce_mean(flat, axes=[2], keepdims=False), self.head), y


def _check(plan, model, x):
    for got, want in zip(plan(x), model(x)):
        assert_close(got, want, 1e-5)


def test_module_plan_follows_height_and_width():
    model = Net()
    plan = convcore.compile(model, (1, 3, 8, 9))
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 8, 9), (2, 3, 5, 7), (1, 3, 16, 4), (3, 3, 5, 7), (1, 3, 1, 1)]:
        _check(plan, model, rand(rng, *shape))
    assert set(plan._shape_variants) == {(5, 7), (16, 4), (1, 1)}
    for i in range(plan.MAX_SHAPE_VARIANTS + 2):  # bounded: the oldest sizes go
        _check(plan, model, rand(rng, 1, 3, 2 + i, 3))
    assert len(plan._shape_variants) == plan.MAX_SHAPE_VARIANTS
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3, 8, 9\)"):
        plan(rand(rng, 1, 4, 8, 9))  # the channels are the model's


def test_compile_without_a_shape_compiles_at_the_first_call():
    model = Net()
    plan = convcore.compile(model)
    assert not plan.compiled and "first call" in repr(plan)
    with pytest.raises(ValueError, match="not compiled yet"):
        plan.ops()
    rng = np.random.default_rng(2)
    x = rand(rng, 2, 3, 6, 5)
    _check(plan, model, x)
    assert plan.compiled and plan.input_shape == (2, 3, 6, 5) and plan.ops()
    _check(plan, model, rand(rng, 1, 3, 9, 9))
    again = pickle.loads(pickle.dumps(plan))
    _check(again, model, rand(rng, 1, 3, 4, 11))


def test_a_plan_from_a_graph_serves_its_size_only():
    graph = convcore.trace(Net(), (1, 3, 8, 9))
    plan = convcore.compile(graph)
    with pytest.raises(ValueError, match="compile the model or the ONNX file itself"):
        plan(np.zeros((1, 3, 9, 9), np.float32))


def test_onnx_file_with_dynamic_size_is_imported_again_per_size(tmp_path):
    """An ONNX file whose height and width are dynamic (and whose Reshape sizes come from Shape ops): compiled
    without a shape, each size imported again, so the folded sizes are that size's."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rand(rng, 5, 3, 3, 3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["y"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "two"], ["nc"]),
        helper.make_node("Concat", ["nc", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["y", "target"], ["flat"]),
        helper.make_node("ReduceMax", ["flat", "axes"], ["out"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
             numpy_helper.from_array(np.array([2], np.int64), "axes")]
    graph = helper.make_graph(nodes, "dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                               ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    plan = convcore.compile(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 7, 6), (2, 3, 4, 9), (1, 3, 7, 6)]:
        x = rand(rng, *shape)
        assert_close(plan(x), session.run(None, {"x": x})[0], 1e-5)
    assert plan.input_shape == (1, 3, 7, 6) and set(plan._shape_variants) == {(4, 9)}
