"""QDQ ONNX files (QuantizeLinear / DequantizeLinear, as onnxruntime's quantize_static writes them): imported with
ONNX semantics (int8 weights and int32 biases dequantized at import; activations quantized and dequantized exactly,
held in float32), run eagerly and compiled (each Q / DQ pair one fake_quantize, the convolutions int8:
tests/plan/test_plan_int8.py), exported back as QDQ, and bad quantization parameters refused with clear errors."""

import numpy as np
import pytest

import convcore
import convcore.functional as F
import convcore.onnx
from convcore import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_helpers import make_model, ort_session  # noqa: E402


def test_quantize_and_dequantize_against_numpy():
    """Ties round to even, values saturate at the type's range, per-axis scales and zero points apply along it."""
    x = np.array([[-300.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 300.0]], np.float32)
    assert F.quantize_linear(x, 1.0).tolist() == [[-128, -2, -2, -0, 0, 2, 2, 127]]
    assert F.quantize_linear(x, 1.0, 10, dtype="uint8").tolist() == [[0, 8, 8, 10, 10, 12, 12, 255]]
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3, 4)).astype(np.float32) * 10
    scale, zero = np.array([0.5, 0.1, 2.0], np.float32), np.array([3, -4, 0])
    q = F.quantize_linear(y, scale, zero, axis=1)
    want = np.clip(np.rint(y / scale[:, None]) + zero[:, None], -128, 127)
    np.testing.assert_array_equal(q, want)
    np.testing.assert_allclose(F.dequantize_linear(q, scale, zero, axis=1), (want - zero[:, None]) * scale[:, None],
                               rtol=1e-6)


def _quantized_file(folder, quant_format, activation_type):
    """A small CNN (dense, depthwise and 1x1 convolutions, max and average pooling, a linear layer) exported by
    convcore and quantized by onnxruntime's quantize_static (per-channel int8 weights, MinMax over 8 random inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    rng = np.random.default_rng(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, groups=8, padding=1), nn.ReLU6(), nn.Conv2d(8, 16, 1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    for module in net.modules():
        for _, p in module.named_parameters(recurse=False):
            p[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.5
    fp32, int8 = str(folder / "fp32.onnx"), str(folder / "int8.onnx")
    convcore.onnx.export(net, fp32, input_shape=(1, 3, 16, 16))
    name = onnx.load(fp32).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(fp32, int8, Reader(), quant_format=quant_format, per_channel=True,
                    activation_type=getattr(QuantType, activation_type), weight_type=QuantType.QInt8)
    return int8


@pytest.fixture(scope="module")
def qdq_file(tmp_path_factory):
    from onnxruntime.quantization import QuantFormat

    return _quantized_file(tmp_path_factory.mktemp("qdq"), QuantFormat.QDQ, "QInt8")


@pytest.mark.parametrize("activations", ["QUInt8", "QInt8"])
def test_qoperator_file_runs_as_its_qdq_meaning(activations, tmp_path):
    """onnxruntime's QOperator format (QLinearConv, com.microsoft QGemm / QLinearGlobalAveragePool, MaxPool on
    quantized values): each operator imported as DequantizeLinear -> float op -> QuantizeLinear; eager equals
    onnxruntime, and the Plan runs all of it with the dense convolutions and the Gemm in int8."""
    from onnxruntime.quantization import QuantFormat

    path = _quantized_file(tmp_path, QuantFormat.QOperator, activations)
    kinds = {n.op_type for n in onnx.load(path).graph.node}
    assert {"QLinearConv", "QGemm", "QLinearGlobalAveragePool"} <= kinds
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    want = ort_session(onnx.load(path), optimize=False)(x)[0]
    # The same model as a QDQ file (same calibration), run by onnxruntime node by node: the exact semantics. Its
    # QOperator kernels are exact with VNNI; its AVX2 ones sum u8 x s8 pairs in 16 bits (vpmaddubsw), which
    # saturate, so on such a CPU they are off by that much more.
    (tmp_path / "qdq").mkdir()
    qdq_path = _quantized_file(tmp_path / "qdq", QuantFormat.QDQ, activations)
    qdq = ort_session(onnx.load(qdq_path), optimize=False)(x)[0]
    net = convcore.onnx.load(path)
    step = float(np.abs(want).max()) / 100  # (a step of the output's grid is under 1 / 127 of its range... of 255)
    bound = step + float(np.abs(want - qdq).max())
    assert np.abs(net(x) - qdq).max() <= step and np.abs(net(x) - want).max() <= bound
    plan = convcore.compile(net)
    assert not plan.eager_nodes and len(plan.int8_ops) == 3, (plan.eager_nodes, plan.int8_ops)
    assert np.abs(plan(x) - qdq).max() <= step and np.abs(plan(x) - want).max() <= bound


def test_qoperator_with_computed_scales_is_refused():
    f = helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 2, 3, 3])
    nodes = [helper.make_node("QuantizeLinear", ["f", "fs", "z"], ["x"]),
             helper.make_node("ReduceMax", ["f"], ["s"], keepdims=0),  # the input scale: computed
             helper.make_node("QLinearConv", ["x", "s", "z", "w", "ws", "wz", "ys", "yz", "b"], ["y"])]
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in (
        ("fs", np.float32(0.5)), ("z", np.uint8(0)), ("w", np.ones((2, 2, 1, 1), np.int8)),
        ("ws", np.float32(0.1)), ("wz", np.int8(0)), ("ys", np.float32(0.2)), ("yz", np.uint8(0)),
        ("b", np.zeros(2, np.int32)))]
    graph = helper.make_graph(nodes, "g", [f], [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    with pytest.raises(ValueError, match="constant"):
        convcore.onnx.load(model.SerializeToString())


def test_qdq_file_matches_onnxruntime(qdq_file):
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    model = onnx.load(qdq_file)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    literal = ort_session(model, optimize=False)(x)[0]  # onnxruntime running the Q / DQ nodes as written
    fused = ort_session(model)(x)[0]  # its int8 kernels
    net = convcore.onnx.load(qdq_file)
    got = net(x)
    step = float(np.abs(literal).max()) / 127  # one step of the output's quantization, at most
    assert np.abs(got - literal).max() <= 1e-5 * np.abs(literal).max()
    # onnxruntime's int8 kernels are exact with VNNI; on AVX2 they sum u8 x s8 pairs in 16 bits (vpmaddubsw), which
    # saturate: they then stray from the literal result by more than a step, and convcore by that much from them.
    step_fused = step + float(np.abs(fused - literal).max())
    assert np.abs(got - fused).max() <= step_fused
    plan = convcore.compile(net)  # each Q / DQ pair one fake_quantize, the convolutions int8: all in the Plan
    assert not plan.eager_nodes
    assert "qconv" in plan.summary() and "fake_quant" in plan.summary()
    assert np.abs(plan(x) - fused).max() <= step_fused and np.abs(plan(x) - got).max() <= step
    exported = convcore.onnx.export(net, None)
    assert [n.op_type for n in exported.graph.node].count("QuantizeLinear") == \
        [n.op_type for n in model.graph.node].count("QuantizeLinear")
    assert np.abs(ort_session(exported, optimize=False)(x)[0] - literal).max() <= 1e-5 * np.abs(literal).max()


def _qdq(scale, zero, axis=None, shape=(1, 2, 3, 3), q_dtype=TensorProto.INT8, zero_shape=None):
    attrs = {} if axis is None else {"axis": axis}
    scale = np.asarray(scale, np.float32)
    zero = np.asarray(zero, {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8,
                             TensorProto.INT16: np.int16}[q_dtype]).reshape(zero_shape or scale.shape)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)]
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")]
    return make_model(nodes, [("x", list(shape))], [("y", list(shape))], inits, opset=19).SerializeToString()


@pytest.mark.parametrize("scale, zero, kwargs, match", [
    (0.0, 0, {}, "scale: expected positive finite"),
    (-0.5, 0, {}, "scale: expected positive finite"),
    (np.nan, 0, {}, "scale: expected positive finite"),
    (np.inf, 0, {}, "scale: expected positive finite"),
    ([0.5, 0.5, 0.5], [0, 0, 0], {"axis": 1}, r"scale: expected one value or 2"),
    ([0.5, 0.5], [0, 0], {"axis": 5}, "axis"),
    ([0.5, 0.5], [0, 0, 0], {"zero_shape": (3,)}, "zero point of the scale's shape"),
    (0.5, 0, {"q_dtype": TensorProto.INT16}, "INT16"),  # (the reader refuses the type first)
])
def test_bad_quantization_parameters_are_clear_errors(scale, zero, kwargs, match):
    axis = kwargs.pop("axis", None)
    with pytest.raises(ValueError, match=match):
        convcore.onnx.load(_qdq(scale, zero, axis, **kwargs))


def test_computed_scale_is_refused():
    nodes = [helper.make_node("Abs", ["x"], ["s"]), helper.make_node("QuantizeLinear", ["x", "s"], ["y"])]
    with pytest.raises(ValueError, match="constant"):
        convcore.onnx.load(make_model(nodes, [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3], TensorProto.UINT8)],
                                      opset=19).SerializeToString())


def test_export_refuses_a_quantized_tensor_read_as_float():
    def fn(x):
        return F.relu(F.quantize_linear(x, 0.5))

    with pytest.raises(ValueError, match="only dequantize_linear may read"):
        convcore.onnx.export(convcore.trace(fn, (1, 2, 3, 3)), None)
