"""Regression tests for the ONNX importer holes a fuzz campaign found (issue 10, items 7-10): Gemm's C broadcast for
every shape C may take, divisions by constants whose reciprocal is not exact, out-of-range axes, and text that is
not UTF-8. Each failed on the importer before its fix."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402
from onnx_helpers import make_model, ort_run  # noqa: E402

import convcore.onnx  # noqa: E402

rng = np.random.default_rng(10)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


# --- item 7: Gemm's C broadcasts to (M, N) by ONNX's (numpy's unidirectional) rules, whatever its shape ---------
@pytest.mark.parametrize("c_shape", [(), (1,), (4,), (1, 4), (4, 1), (4, 4), (1, 1)])
@pytest.mark.parametrize("constant_b", [True, False])
def test_gemm_c_broadcasts_like_onnxruntime(c_shape, constant_b):
    a, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    c = (rng.standard_normal(c_shape) * 3).astype(np.float32)
    inits = [_init("c", c)] + ([_init("b", b)] if constant_b else [])
    inputs = [("a", [4, 3])] + ([] if constant_b else [("b", [3, 4])])
    model = make_model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0)], inputs,
                       [("y", [4, 4])], inits, 13)
    feeds = [a] if constant_b else [a, b]
    got = convcore.onnx.load(model.SerializeToString())(*feeds)
    np.testing.assert_allclose(got, ort_run(model, *feeds)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, 0.5 * a @ b + 2.0 * c, rtol=1e-5, atol=1e-5)


def test_gemm_column_c_is_not_a_row_bias():
    """The reported case: C of shape (M, 1) was applied as a per-column bias (max difference 3.0)."""
    a, b = np.eye(4, dtype=np.float32), np.zeros((4, 4), np.float32)
    c = np.array([[0], [1], [2], [3]], np.float32)
    model = make_model([helper.make_node("Gemm", ["a", "b", "c"], ["y"])], [("a", [4, 4])], [("y", [4, 4])],
                       [_init("b", b), _init("c", c)], 13)
    np.testing.assert_array_equal(convcore.onnx.load(model.SerializeToString())(a), np.broadcast_to(c, (4, 4)))


# --- item 8: x / c stays a division unless 1 / c is exact and finite ----------------------------------------------
def _div_model(divisor):
    return make_model([helper.make_node("Div", ["x", "c"], ["y"])], [("x", [4])], [("y", [4])],
                      [_init("c", np.float32(divisor))], 13)


def test_division_by_a_subnormal_constant():
    x = np.array([0, 1e-35, -2e-36, 1e-30], np.float32)
    model = _div_model(1e-39)  # 1 / 1e-39 overflows float32: a multiplication would give [nan, inf, -inf, inf]
    got = convcore.onnx.load(model.SerializeToString())(x)
    np.testing.assert_allclose(got, x / np.float32(1e-39), rtol=1e-6)
    np.testing.assert_allclose(got, [0, 1e4, -2e3, 1e9], rtol=1e-5)
    np.testing.assert_allclose(got, ort_run(model, x)[0], rtol=1e-6)


@pytest.mark.parametrize("divisor, op", [(3.0, "div"), (0.1, "div"), (255.0, "div"), (2.0, "mul"), (0.25, "mul"),
                                         (2.0 ** -130, "div"), (0.0, "div"), (-8.0, "mul")])
def test_division_by_a_constant_is_exact(divisor, op):
    x = (rng.standard_normal(4) * 1e3).astype(np.float32)
    net = convcore.onnx.load(_div_model(divisor).SerializeToString())
    assert [n.op for n in net.graph.nodes] == [op]
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(net(x), x / np.float32(divisor))  # bit for bit, as numpy and onnxruntime


# --- item 9: out-of-range axes are refused, naming the node and the valid range -----------------------------------
@pytest.mark.parametrize("node, shape, match", [
    (helper.make_node("Softmax", ["x"], ["y"], axis=2, name="sm"), [3, 5], r"node 'sm' \(Softmax\).*\[-2, 1\].*got 2"),
    (helper.make_node("Softmax", ["x"], ["y"], axis=16, name="sm"), [3, 5], r"\[-2, 1\].*got 16"),
    (helper.make_node("LogSoftmax", ["x"], ["y"], axis=-3, name="ls"), [3, 5], r"node 'ls'.*\[-2, 1\]"),
    (helper.make_node("Flatten", ["x"], ["y"], axis=5, name="fl"), [2, 3, 4, 5], r"node 'fl' \(Flatten\).*\[-4, 4\]"),
    (helper.make_node("Concat", ["x", "x"], ["y"], axis=4, name="cat"), [2, 3, 4, 5], r"node 'cat'.*\[-4, 3\]"),
    (helper.make_node("Gather", ["x", "i"], ["y"], axis=-5, name="g"), [2, 3, 4, 5], r"node 'g'.*\[-4, 3\]"),
    (helper.make_node("Split", ["x"], ["y", "z"], axis=7, name="sp"), [2, 4], r"node 'sp'.*\[-2, 1\]"),
    (helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 9], name="r"), [2, 3, 4, 5], r"node 'r'.*\[-4, 3\]"),
    (helper.make_node("Squeeze", ["x", "ax"], ["y"], name="sq"), [2, 1, 4, 5], r"node 'sq'.*\[-4, 3\]"),
])
def test_out_of_range_axes_are_refused(node, shape, match):
    inits = [_init("i", np.array([0], np.int64)), _init("ax", np.array([4], np.int64))]
    inits = [i for i in inits if i.name in node.input]
    model = make_model([node], [("x", shape)], [(o, None) for o in node.output], inits, 13)
    with pytest.raises(ValueError, match=match):
        convcore.onnx.load(model.SerializeToString())


# --- item 10: text that is not UTF-8 is a ValueError naming the node ----------------------------------------------
def _bytes_of(model):
    return model.SerializeToString()


def test_non_utf8_op_type():
    model = make_model([helper.make_node("Relu", ["x"], ["a"], name="first"),
                        helper.make_node("Relx", ["a"], ["y"], name="second")], [("x", [1, 2])], [("y", None)])
    data = _bytes_of(model).replace(b"Relx", b"R\xffl\xfe")
    with pytest.raises(ValueError, match="node 'second'.*op type.*not valid UTF-8"):
        convcore.onnx.load(data)


def test_non_utf8_string_attribute():
    model = make_model([helper.make_node("Pad", ["x", "p"], ["y"], name="padder", mode="reflect")],
                       [("x", [1, 2, 3, 3])], [("y", None)], [_init("p", np.zeros(8, np.int64))], 13)
    data = _bytes_of(model).replace(b"reflect", b"ref\xffect")
    with pytest.raises(ValueError, match="node 'padder'.*attribute 'mode' is not valid UTF-8"):
        convcore.onnx.load(data)


def test_non_utf8_node_and_value_names():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="nodename")], [("x", [1, 2])], [("y", None)])
    with pytest.raises(ValueError, match="not valid UTF-8"):
        convcore.onnx.load(_bytes_of(model).replace(b"nodename", b"node\xffame"))
