"""Dynamically quantized ONNX files (onnxruntime's quantize_dynamic: DynamicQuantizeLinear before each ConvInteger /
MatMulInteger, a Cast and a Mul by the scales after): imported with ONNX semantics, run eagerly and compiled, matched
against onnxruntime, exported back; bad integer operators refused with clear errors."""

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


def _dql_model():
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    return make_model([node], [("x", [None])], [("y", [None], TensorProto.UINT8), ("s", [], TensorProto.FLOAT),
                                                 ("z", [], TensorProto.UINT8)])


@pytest.mark.parametrize("case", ["normal", "positive", "negative", "zeros", "one", "wide", "tiny"])
def test_dynamic_quantize_linear_matches_onnxruntime(case):
    """y, scale and zero point equal onnxruntime's bit for bit: ranges that hold 0 or not, a tensor of zeros (scale
    1, not a division by zero), one element, values far apart and tiny ones."""
    run = ort_session(_dql_model())
    rng = np.random.default_rng(abs(hash(case)) % 1000)
    x = {"normal": rng.standard_normal(999) * 3 + 1, "positive": rng.uniform(0.5, 9, 500),
         "negative": -rng.uniform(0.5, 9, 500), "zeros": np.zeros(7), "one": np.array([-2.5]),
         "wide": rng.standard_normal(300) * 1e6, "tiny": rng.standard_normal(300) * 1e-30}[case].astype(np.float32)
    y, scale, zero = run(x)
    for part, want in (("y", y), ("scale", scale), ("zero_point", zero)):
        got = F.dynamic_quantize_linear(x, output=part)
        assert got.shape == np.shape(want)
        np.testing.assert_array_equal(got, np.asarray(want, np.float32), err_msg=part)


def test_dynamic_quantize_linear_refuses_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        F.dynamic_quantize_linear(np.array([1.0, np.inf], np.float32))
    with pytest.raises(ValueError, match="output"):
        F.dynamic_quantize_linear(np.ones(3, np.float32), output="range")


@pytest.fixture(scope="module", params=["QInt8", "QUInt8"])
def dynamic_file(request, tmp_path_factory):
    """A small CNN (dense, strided, grouped and 1x1 convolutions with padding, a linear layer) exported by convcore
    and quantized by onnxruntime's quantize_dynamic (int8 or uint8 weights, per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, groups=2, padding=1),
                        nn.ReLU6(), nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    for module in net.modules():
        for _, p in module.named_parameters(recurse=False):
            p[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.5
    folder = tmp_path_factory.mktemp("dynamic")
    fp32, quantized = str(folder / "fp32.onnx"), str(folder / f"{request.param}.onnx")
    convcore.onnx.export(net, fp32, input_shape=(2, 3, 15, 15))
    quantize_dynamic(fp32, quantized, weight_type=getattr(QuantType, request.param), per_channel=True)
    ops = {n.op_type for n in onnx.load(quantized).graph.node}
    assert {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"} <= ops, ops
    return quantized


def test_dynamic_file_matches_onnxruntime(dynamic_file):
    """Eager and compiled at the exported batch and another one: onnxruntime's outputs up to float32 rounding of the
    scale products (the quantized integers themselves are the same); the graph holds the dynamic quantization."""
    model = convcore.onnx.load(dynamic_file)
    assert any(n.op == "dynamic_quantize_linear" for n in model.graph.nodes)
    run = ort_session(onnx.load(dynamic_file))
    rng = np.random.default_rng(4)
    for batch in (2, 3):
        x = rng.standard_normal((batch, 3, 15, 15)).astype(np.float32)
        (want,) = run(x)
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(model.graph.run(x), want, rtol=0, atol=1e-5 * scale)
        plan = convcore.compile(model, x.shape)
        np.testing.assert_allclose(plan(x), want, rtol=0, atol=1e-5 * scale)


def test_dynamic_graph_exports_and_runs_in_onnxruntime(dynamic_file, tmp_path):
    """The imported graph written back (DynamicQuantizeLinear + Cast per part read) runs in onnxruntime as it runs
    here."""
    model = convcore.onnx.load(dynamic_file)
    path = str(tmp_path / "again.onnx")
    convcore.onnx.export(model.graph, path)
    onnx.checker.check_model(onnx.load(path))
    x = np.random.default_rng(5).standard_normal((2, 3, 15, 15)).astype(np.float32)
    (got,) = ort_session(onnx.load(path))(x)
    want = model.graph.run(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def _integer_model(op, w, x_zero=None, w_zero=None, x_type=TensorProto.UINT8, shape=(1, 3, 4, 4), **attrs):
    """One ConvInteger / MatMulInteger on input x (of `x_type`) with constant weights and zero points; the int32 result
    cast to float, so onnxruntime and convcore compare on float outputs."""
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["xq", "w", "", ""]
    if x_zero is not None:
        inits.append(numpy_helper.from_array(x_zero, "xz"))
        inputs[2] = "xz"
    if w_zero is not None:
        inits.append(numpy_helper.from_array(w_zero, "wz"))
        inputs[3] = "wz"
    while inputs[-1] == "":
        inputs.pop()
    to = "int8" if x_type == TensorProto.INT8 else "uint8"
    nodes = [helper.make_node("QuantizeLinear", ["x", "one", "zero"], ["xq"]),
             helper.make_node(op, inputs, ["acc"], **attrs), helper.make_node("Cast", ["acc"], ["y"], to=1)]
    inits += [numpy_helper.from_array(np.float32(1), "one"), numpy_helper.from_array(np.zeros((), to), "zero")]
    return make_model(nodes, [("x", list(shape))], [("y", None)], inits)


def _exact_conv(x, x_zero, w, w_zero, attrs):
    """The integer convolution in float64 (exact at these sizes) by torch, the independent oracle: onnxruntime's
    ConvInteger takes one weight zero point only, and its AVX2 kernels saturate some int8 x uint8 products."""
    torch = pytest.importorskip("torch")
    t, l, b, r = (attrs.get("pads", [0] * 4)[i] for i in (0, 1, 2, 3))
    xs = torch.nn.functional.pad(torch.tensor(x, dtype=torch.float64) - float(x_zero), (l, r, t, b),
                                 value=0.0)
    ws = torch.tensor(w.astype(np.float64) - w_zero.astype(np.float64).reshape(-1, 1, 1, 1))
    return torch.nn.functional.conv2d(xs, ws, stride=attrs.get("strides", 1), dilation=attrs.get("dilations", 1),
                                      groups=attrs.get("group", 1)).numpy()


@pytest.mark.parametrize("attrs", [dict(pads=[1, 1, 1, 1]), dict(strides=[2, 2], pads=[0, 1, 2, 1]),
                                   dict(group=3, dilations=[2, 1]), dict(kernel_shape=[3, 3])])
@pytest.mark.parametrize("types", [(np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8)])
def test_conv_integer_is_exact(attrs, types):
    """Exact integer results, eager and compiled: activation and weight types, a constant input zero point, weight
    zero points per output channel, padding (which holds the input zero point's value, so it adds 0), strides,
    groups, dilation; onnxruntime agrees where its kernels are exact (uint8 x int8, one weight zero point)."""
    x_type, w_type = types
    rng = np.random.default_rng(6)
    info = np.iinfo(w_type)
    w = rng.integers(info.min, info.max + 1, (6, 3 // attrs.get("group", 1), 3, 3)).astype(w_type)
    x_zero = np.array(7 if x_type == np.uint8 else -5, x_type)
    w_zero = rng.integers(info.min, info.max + 1, 6).astype(w_type)
    onnx_type = TensorProto.UINT8 if x_type == np.uint8 else TensorProto.INT8
    lo, hi = (0, 255) if x_type == np.uint8 else (-128, 127)
    x = rng.integers(lo, hi + 1, (2, 3, 9, 8)).astype(np.float32)
    graph = convcore.onnx.load(_integer_model("ConvInteger", w, x_zero, w_zero, onnx_type, shape=x.shape,
                                              **attrs)).graph
    want = _exact_conv(x, x_zero, w, w_zero, attrs)
    np.testing.assert_array_equal(graph.run(x), want)
    np.testing.assert_array_equal(convcore.compile(graph, x.shape)(x), want)
    if types == (np.uint8, np.int8):
        model = _integer_model("ConvInteger", w, x_zero, w_zero[:1], onnx_type, shape=x.shape, **attrs)
        (ort_out,) = ort_session(model)(x)
        np.testing.assert_array_equal(ort_out, _exact_conv(x, x_zero, w, np.repeat(w_zero[:1], 6), attrs))


def test_matmul_integer_is_exact():
    """Per-column weight zero points, a constant input zero point, 3-D inputs: the exact int64 product."""
    rng = np.random.default_rng(7)
    w = rng.integers(-128, 128, (12, 5)).astype(np.int8)
    w_zero = rng.integers(-128, 128, 5).astype(np.int8)
    x = rng.integers(0, 256, (2, 4, 12)).astype(np.float32)
    graph = convcore.onnx.load(_integer_model("MatMulInteger", w, np.array(3, np.uint8), w_zero,
                                              shape=x.shape)).graph
    exact = (x.astype(np.int64) - 3) @ (w.astype(np.int64) - w_zero.astype(np.int64))
    np.testing.assert_array_equal(graph.run(x), exact)
    np.testing.assert_array_equal(convcore.compile(graph, x.shape)(x), exact)


def test_bad_integer_operators_are_clear_errors():
    """Float weights, a weight zero point of the wrong type or length, a non-scalar input zero point: ValueErrors
    naming the node's problem."""
    w = np.ones((4, 3, 1, 1), np.int8)
    cases = [(dict(w=w.astype(np.float32)), "int8 or uint8 weight"),
             (dict(w=w, w_zero=np.zeros(3, np.int8)), "weight zero point"),
             (dict(w=w, w_zero=np.zeros(4, np.uint8)), "weight zero point"),
             (dict(w=w, x_zero=np.zeros(2, np.uint8)), "scalar")]
    for kwargs, match in cases:
        model = _integer_model("ConvInteger", **kwargs)
        with pytest.raises(ValueError, match=match):
            convcore.onnx.load(model)
