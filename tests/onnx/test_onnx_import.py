"""convcore.onnx.load: round trips of every exported op, hand-written ONNX graphs in each opset's form checked
against onnxruntime, refusals (one ValueError listing every unsupported op), the returned Module, and models
exported by torch.onnx.export checked against torch."""

import io
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import convcore

from onnx import helper, numpy_helper  # noqa: E402
from onnx_helpers import assert_parity, make_model, ort_run, randomize_batch_norm  # noqa: E402
from test_onnx_export import CASES, Fn, SmallResNet  # noqa: E402

import convcore.onnx  # noqa: E402
from convcore import nn  # noqa: E402

rng = np.random.default_rng(1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case):
    fn, shape = CASES[case]
    proto = convcore.onnx.export(Fn(fn), input_shape=(1, *shape), opset=17)
    net = convcore.onnx.load(proto.SerializeToString())
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    assert_parity(net(x), fn(x))


def _w(*shape, dtype=np.float32):
    return (rng.standard_normal(shape) * 0.5).astype(dtype)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _check(model, shape=(2, 4, 7, 8), expect_ops=None):
    """Load `model` with convcore and compare with onnxruntime on the same bytes; returns the loaded module."""
    data = model.SerializeToString()
    net = convcore.onnx.load(data)
    x = rng.standard_normal(shape).astype(np.float32)
    assert_parity(net(x), ort_run(data, x)[0])
    if expect_ops is not None:
        assert [n.op for n in net.graph.nodes] == expect_ops
    return net


X = ("x", ["N", 4, 7, 8])
CONV_W = _w(6, 4, 3, 3)


@pytest.mark.parametrize("opset", [9, 11, 18])
def test_pad_folds_into_conv(opset):
    pads = [0, 0, 1, 2, 0, 0, 2, 0]
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], pads=pads, mode="constant", value=0.0)
        inits = [_init("w", CONV_W)]
    else:
        pad = helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant")
        inits = [_init("w", CONV_W), _init("pads", np.array(pads, np.int64))]
    conv = helper.make_node("Conv", ["p", "w"], ["y"], pads=[1, 0, 0, 1])
    net = _check(make_model([pad, conv], [X], [("y", None)], inits, opset), expect_ops=["conv2d"])
    assert net.graph.nodes[0].attrs["padding"] == (1 + 1, 0 + 2, 0 + 2, 1 + 0)


def test_pad_with_axes_opset_18_and_pad_before_pools():
    inits = [_init("pads", np.array([1, 1, 1, 1], np.int64)), _init("axes", np.array([2, 3], np.int64)),
             _init("ninf", np.array(-np.inf, np.float32))]
    nodes = [helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"]),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], count_include_pad=1),
             helper.make_node("Pad", ["x", "pads", "", "axes"], ["q"]),
             helper.make_node("MaxPool", ["q"], ["m"], kernel_shape=[3, 3]),  # zeros can win: not folded
             helper.make_node("Pad", ["x", "pads", "ninf", "axes"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["n"], kernel_shape=[3, 3], strides=[2, 2]),  # -inf: folded
             helper.make_node("Concat", ["a", "m"], ["c"], axis=1)]
    model = make_model(nodes, [X], [("c", None), ("n", None)], inits, 18)
    net = convcore.onnx.load(model.SerializeToString())
    assert [n.op for n in net.graph.nodes] == ["avg_pool2d", "pad", "max_pool2d", "max_pool2d", "concat"]
    x = rng.standard_normal((2, 4, 7, 8)).astype(np.float32)
    for ours, theirs in zip(net(x), ort_run(model, x)):
        assert_parity(ours, theirs)


@pytest.mark.parametrize("opset", [9, 13])
def test_clip_forms(opset):
    if opset < 11:
        nodes = [helper.make_node("Clip", ["x"], ["a"], min=0.0, max=6.0), helper.make_node("Clip", ["a"], ["y"],
                                                                                          min=0.0)]
        inits = []
    else:
        nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["a"]), helper.make_node("Clip", ["a", "lo"], ["y"])]
        inits = [_init("lo", np.float32(0)), _init("hi", np.float32(6))]
    scale = helper.make_node("Mul", ["x0", "four"], ["x"])
    model = make_model([scale] + nodes, [("x0", X[1])], [("y", None)], inits + [_init("four", np.float32(4))],
                       opset)
    _check(model, expect_ops=["mul", "relu6", "relu"])


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_over_hw(opset, keepdims):
    if opset < 18:
        node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[-1, 2], keepdims=keepdims)
        inits = []
    else:
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)
        inits = [_init("axes", np.array([2, 3], np.int64))]
    _check(make_model([node], [X], [("y", None)], inits, opset))


def test_squeeze_excitation_block():
    nodes = [helper.make_node("ReduceMean", ["x"], ["s"], axes=[2, 3]),
             helper.make_node("Conv", ["s", "w1", "b1"], ["r"]), helper.make_node("Relu", ["r"], ["rr"]),
             helper.make_node("Conv", ["rr", "w2"], ["e"]), helper.make_node("HardSigmoid", ["e"], ["g"]),
             helper.make_node("Mul", ["x", "g"], ["y"])]
    inits = [_init("w1", _w(2, 4, 1, 1)), _init("b1", _w(2)), _init("w2", _w(4, 2, 1, 1))]
    _check(make_model(nodes, [X], [("y", None)], inits, 13))


@pytest.mark.parametrize("trans_b, alpha, beta, c_shape", [(1, 1.0, 1.0, (5,)), (0, 0.5, 2.0, (1, 5)),
                                                           (0, 1.0, 1.0, None), (1, 2.0, 0.5, ())])
def test_gemm(trans_b, alpha, beta, c_shape):
    b = _w(5, 56) if trans_b else _w(56, 5)
    inputs = ["f", "b"] + (["c"] if c_shape is not None else [])
    inits = [_init("b", b)] + ([_init("c", _w(*c_shape))] if c_shape is not None else [])
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", inputs, ["y"], transB=trans_b, alpha=alpha, beta=beta)]
    _check(make_model(nodes, [("x", ["N", 1, 7, 8])], [("y", None)], inits, 11), shape=(3, 1, 7, 8))


def test_matmul_add_becomes_linear_with_bias():
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["m"]),
             helper.make_node("Add", ["bias", "m"], ["y"])]
    inits = [_init("shape", np.array([0, -1], np.int64)), _init("w", _w(224, 3)), _init("bias", _w(3))]
    net = _check(make_model(nodes, [X], [("y", None)], inits, 13), expect_ops=["flatten", "linear"])
    assert set(net.state_dict()) == {"w.T", "bias"}


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_and_log_softmax(opset):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Softmax", ["f"], ["s"], axis=1), helper.make_node("LogSoftmax", ["s"], ["y"])]
    _check(make_model(nodes, [X], [("y", None)], [], opset))


def test_elementwise_forms():
    nodes = [helper.make_node("Sub", ["x", "c"], ["a"]), helper.make_node("Div", ["a", "three"], ["b"]),
             helper.make_node("Sub", ["b", "x"], ["d"]), helper.make_node("Mean", ["x", "b", "d"], ["e"]),
             helper.make_node("Sum", ["e", "x"], ["f"]), helper.make_node("Identity", ["f"], ["g"]),
             helper.make_node("Dropout", ["g"], ["h"]), helper.make_node("Constant", [], ["k"], value_float=0.25),
             helper.make_node("Mul", ["h", "k"], ["m"]), helper.make_node("LeakyRelu", ["m"], ["n"], alpha=0.3),
             helper.make_node("Tanh", ["n"], ["t"]), helper.make_node("Sigmoid", ["t"], ["u"]),
             helper.make_node("HardSwish", ["u"], ["y"])]
    inits = [_init("c", _w(1, 4, 1, 1)), _init("three", np.float32(3))]
    _check(make_model(nodes, [X], [("y", None)], inits, 14))


def test_constant_node_weights_and_half_and_double_weights():
    const = helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(_w(6, 4, 3, 3), "w"))
    nodes = [const, helper.make_node("Conv", ["x", "w", "b"], ["c"], auto_pad="SAME_UPPER"),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], epsilon=1e-3)]
    inits = [_init("b", _w(6, dtype=np.float16)), _init("s", _w(6, dtype=np.float64)), _init("bb", _w(6)),
             _init("m", _w(6)), _init("v", np.abs(_w(6)) + 0.5)]
    net = convcore.onnx.load(make_model(nodes, [X], [("y", None)], inits, 15).SerializeToString())
    assert all(a.dtype == np.float32 for a in net.state_dict().values())
    # onnxruntime refuses mixed dtypes, so compare with the all-float32 model
    inits32 = [_init(i.name, numpy_helper.to_array(i).astype(np.float32)) for i in inits]
    x = rng.standard_normal((2, 4, 7, 8)).astype(np.float32)
    assert_parity(net(x), ort_run(make_model(nodes, [X], [("y", None)], inits32, 15), x)[0])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(auto_pad):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], auto_pad=auto_pad, strides=[2, 2]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], auto_pad=auto_pad)]
    _check(make_model(nodes, [X], [("y", None)], [_init("w", _w(6, 4, 4, 4))], 13))


@pytest.mark.parametrize("opset", [9, 21])
def test_pooling_lrn_and_batchnorm_forms(opset):
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"]),
             helper.make_node("LRN", ["n"], ["l"], size=3, alpha=0.01, beta=0.7, bias=1.5),
             helper.make_node("MaxPool", ["l"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              ceil_mode=1),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2], pads=[1, 0, 0, 1]),
             helper.make_node("GlobalMaxPool", ["a"], ["g"]),
             helper.make_node("Squeeze", ["g"] + (["axes"] if opset >= 13 else []), ["y"],
                              **({} if opset >= 13 else {"axes": [2, 3]}))]
    inits = [_init("s", _w(4)), _init("b", _w(4)), _init("m", _w(4)), _init("v", np.abs(_w(4)) + 0.5),
             _init("axes", np.array([2, 3], np.int64))]
    if opset < 10:  # ceil_mode needs opset 10
        del nodes[2].attribute[[a.name for a in nodes[2].attribute].index("ceil_mode")]
    _check(make_model(nodes, [X], [("y", None)], inits, opset))


def test_unsupported_ops_listed_in_one_error():
    nodes = [helper.make_node("Hardmax", ["x"], ["t"], name="t1"),
             helper.make_node("Hardmax", ["t"], ["u"], name="t2"),
             helper.make_node("Relu", ["u"], ["r"], name="ok"),
             helper.make_node("Einsum", ["r"], ["y"], name="sum_of", equation="ijkl->ij")]
    with pytest.raises(ValueError) as info:
        convcore.onnx.load(make_model(nodes, [X], [("y", None)]).SerializeToString())
    message = str(info.value)
    assert "2 op type(s)" in message and "Einsum (sum_of)" in message and "Hardmax (t1, t2)" in message
    assert "Relu" not in message


@pytest.mark.parametrize("nodes, inits, inputs, match", [
    ([helper.make_node("Conv", ["x", "w"], ["y"])], [_init("w", _w(2, 3, 1, 1, 1, 1))],
     [("x", [1, 3, 4, 4, 4, 4])], "4-D kernel"),
    ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2, 2])], [], [("x", [1, 3, 4, 4, 4, 4])],
     "3-D pooling"),
    ([helper.make_node("ConvTranspose", ["x", "w"], ["y"])], [_init("w", _w(3, 2, 1, 1, 1))], [("x", [1, 3, 4, 4, 4])],
     "3-D kernel"),
    ([helper.make_node("Pad", ["x", "p"], ["y"], mode="mirror")], [_init("p", np.zeros(8, np.int64))], [X], "mode"),
    ([helper.make_node("Reshape", ["x", "s"], ["y"])], [_init("s", np.array([0, 8, 29], np.int64))], [X],
     "can take"),
    ([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], [_init("i", np.array([7], np.int64))], [X],
     r"indices in \[-4, 3\]"),
    ([helper.make_node("Conv", ["x", "w"], ["y"])], [_init("w", np.ones((2, 4, 1, 1), np.int64))], [X], "float"),
    ([helper.make_node("Relu", ["x"], ["y"])], [], [("x", [1, 4, "H", "W"])], "static shape"),
    ([helper.make_node("Clip", ["x", "lo"], ["y"])], [_init("lo", np.zeros(2, np.float32))], [X], "scalar"),
    ([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="bicubic")], [_init("s", np.ones(4, np.float32))], [X],
     "mode"),
])
def test_refusals(nodes, inits, inputs, match):
    with pytest.raises(ValueError, match=match):
        convcore.onnx.load(make_model(nodes, inputs, [("y", None)], inits, 13).SerializeToString())


def test_opset_outside_range_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [X], [("y", None)], opset=5, ir_version=3)
    with pytest.raises(ValueError, match=f"opset between 6 and {convcore.onnx.importer.MAX_OPSET}"):
        convcore.onnx.load(model.SerializeToString())
    newest = convcore.onnx.importer.MAX_OPSET
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [X], [("y", None)], opset=newest + 1, ir_version=11)
    with pytest.raises(ValueError, match=f"opset {newest + 1} is newer .* newest is {newest}"):
        convcore.onnx.load(model.SerializeToString())


def test_dynamic_hw_with_input_shape():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4, "H", "W"])], [("y", None)])
    net = convcore.onnx.load(model.SerializeToString(), input_shape=(1, 4, 5, 6))
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(net(x), np.maximum(x, 0))


def test_module_state_dict_trace_and_path(tmp_path):
    model = randomize_batch_norm(SmallResNet().eval())
    path = tmp_path / "net.onnx"
    convcore.onnx.export(model, path, input_shape=(1, 3, 16, 16))
    net = convcore.onnx.load(path)
    assert isinstance(net, nn.Module) and isinstance(net, convcore.onnx.ONNXModule)
    assert set(net.state_dict()) == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    x = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    assert_parity(net(x), model(x))
    graph = convcore.trace(net, (1, 3, 16, 16))
    assert {"conv1.weight", "fc.weight"} <= set(graph.params)
    assert_parity(graph.run(x), model(x))
    # load_state_dict replaces the weights the module runs with
    state = {k: np.zeros_like(v) if k == "fc.weight" else v for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    np.testing.assert_allclose(net(x), np.broadcast_to(model.fc.bias, (3, 5)), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expected input 'input' of shape \(N, 3, 16, 16\)"):
        net(x[:, :, :8])


# ------------------------------------------------------------------------------------------ torch.onnx.export
def _torch_export(model, x, opset, **kwargs):
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, **kwargs)
    except Exception as exc:  # an exporter this torch build cannot run (missing packages, removed API)
        pytest.skip(f"torch.onnx.export failed: {exc}")
    return buffer.getvalue()


def _randomize_torch_bn(model):
    import torch

    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
    return model


@pytest.mark.parametrize("name, opset", [("resnet18", 13), ("mobilenet_v2", 17)])
def test_torchvision_export(name, opset):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = _randomize_torch_bn(getattr(torchvision.models, name)(weights=None)).eval()
    x = torch.randn(3, 3, 48, 48)
    net = convcore.onnx.load(_torch_export(model, x[:1], opset))
    with torch.no_grad():
        expected = model(x).numpy()
    assert_parity(net(x.numpy()), expected)


def _custom_torch_net():
    import torch
    from torch import nn as tnn

    class SE(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc1, self.fc2 = tnn.Conv2d(c, c // 4, 1), tnn.Conv2d(c // 4, c, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.pad = tnn.ZeroPad2d((1, 2, 0, 1))
            self.conv = tnn.Conv2d(3, 16, 3, stride=2)
            self.bn = tnn.BatchNorm2d(16)
            self.se = SE(16)
            self.dw = tnn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
            self.pool = tnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
            self.mp = tnn.MaxPool2d(2, ceil_mode=True)
            self.fc = tnn.Linear(16, 7)

        def forward(self, x):
            x = torch.nn.functional.hardswish(self.bn(self.conv(self.pad(x))))
            x = self.se(x)
            x = torch.nn.functional.relu6(self.dw(x)) + x
            x = self.mp(self.pool(x))
            x = torch.nn.functional.leaky_relu(x, 0.1).mean((2, 3))
            return torch.log_softmax(self.fc(torch.flatten(x, 1)), 1)

    return _randomize_torch_bn(Net()).eval()


@pytest.mark.parametrize("opset", [11, 14, 18])
def test_torch_custom_net_with_se_pad_reduce_mean(opset):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    model = _custom_torch_net()
    x = torch.randn(3, 3, 29, 30)
    data = _torch_export(model, x[:1], opset)
    net = convcore.onnx.load(data)
    with torch.no_grad():
        expected = model(x).numpy()
    assert_parity(net(x.numpy()), expected)


def test_tf2onnx_style_graph():
    """The forms tf2onnx writes for a Keras MobileNet-like head: SAME_UPPER convs, Clip(0, 6) as inputs, a
    depthwise conv, ReduceMean without keepdims, MatMul + Add, Reshape to [-1, C] and a last-axis Softmax."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], auto_pad="SAME_UPPER", strides=[2, 2],
                              kernel_shape=[3, 3]),
             helper.make_node("Clip", ["c1", "zero", "six"], ["r1"]),
             helper.make_node("Conv", ["r1", "dw"], ["c2"], auto_pad="SAME_UPPER", group=6, kernel_shape=[3, 3]),
             helper.make_node("Clip", ["c2", "zero", "six"], ["r2"]),
             helper.make_node("ReduceMean", ["r2"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("Reshape", ["m", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["mm"]), helper.make_node("Add", ["mm", "fcb"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["y"])]
    inits = [_init("w1", _w(6, 4, 3, 3)), _init("b1", _w(6)), _init("zero", np.float32(0)),
             _init("six", np.float32(6)), _init("dw", _w(6, 1, 3, 3)), _init("shape", np.array([-1, 6], np.int64)),
             _init("fc", _w(6, 3)), _init("fcb", _w(3))]
    net = _check(make_model(nodes, [X], [("y", None)], inits, 13))
    assert [n.op for n in net.graph.nodes] == ["conv2d", "relu6", "conv2d", "relu6", "global_avg_pool2d",
                                               "flatten", "linear", "softmax"]


def test_nhwc_input_model():
    """TensorFlow / Keras exports take NHWC input and begin with a Transpose."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w", "b"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])]
    inits = [_init("w", _w(6, 4, 3, 3)), _init("b", _w(6))]
    _check(make_model(nodes, [("x", ["N", 7, 8, 4])], [("y", None)], inits, 13), shape=(2, 7, 8, 4))


def _generative_torch_net():
    import torch
    from torch import nn as tnn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.reflect, self.replicate = tnn.ReflectionPad2d((1, 2, 2, 1)), tnn.ReplicationPad2d(1)
            self.conv = tnn.Conv2d(3, 8, 3)
            self.norm = tnn.InstanceNorm2d(8, affine=True)
            self.up = tnn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
            self.shuffle = tnn.Conv2d(4, 16, 1)

        def forward(self, x):
            x = torch.nn.functional.elu(self.norm(self.conv(self.reflect(x))))
            x = torch.nn.functional.pad(self.replicate(x), (1, 1, 0, 2), value=0.5)
            x = torch.nn.functional.gelu(self.up(x))
            x = torch.nn.functional.pixel_shuffle(self.shuffle(x), 2)
            a = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            b = torch.nn.functional.interpolate(x, size=(a.shape[2], a.shape[3]), mode="bilinear", align_corners=False)
            return torch.softmax(torch.cat([a, b * 0.5], 1).mean((2, 3)), 1)

    torch.manual_seed(3)
    return Net().eval()


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_torch_generative_net_with_every_pad_mode_upsampling_and_pixel_shuffle(opset):
    torch = pytest.importorskip("torch")
    model = _generative_torch_net()
    x = torch.randn(2, 3, 9, 10)
    data = _torch_export(model, x[:1], opset)
    net = convcore.onnx.load(data)
    assert_parity(net(x.numpy()), ort_run(data, x.numpy())[0])
    if opset >= 11:  # (opset 9 has no half-pixel Upsample: torch exports bilinear resizing inexactly there)
        with torch.no_grad():
            assert_parity(net(x.numpy()), model(x).numpy())


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_nd_of_constants_folds(reduction):
    """A mask built from the input's shape with ScatterND (Swin-T's shifted windows): folded at import, and the
    model's result is onnxruntime's. A ScatterND of a computed tensor stays unsupported."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "two", "four"], ["hw"]),
             helper.make_node("ConstantOfShape", ["hw"], ["zeros"], value=helper.make_tensor("v", 1, [1], [1.0])),
             helper.make_node("ScatterND", ["zeros", "idx", "upd"], ["mask"], reduction=reduction),
             helper.make_node("Mul", ["x", "mask"], ["y"])]
    inits = [numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.array([4], np.int64), "four"),
             numpy_helper.from_array(np.array([[0, 1], [2, -1], [0, 1]], np.int64), "idx"),
             numpy_helper.from_array(np.array([5.0, -3.0, 2.0], np.float32), "upd")]
    if reduction == "none":  # (duplicate indices are undefined without a reduction)
        inits[2] = numpy_helper.from_array(np.array([[0, 1], [2, -1]], np.int64), "idx")
        inits[3] = numpy_helper.from_array(np.array([5.0, -3.0], np.float32), "upd")
    model = make_model(nodes, [("x", [1, 2, 3, 4])], [("y", [1, 2, 3, 4])], inits, opset=18)
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(np.float32)
    net = convcore.onnx.load(model.SerializeToString())
    np.testing.assert_allclose(net(x), ort_run(model, x)[0], rtol=1e-6)
    assert [n.op for n in net.graph.nodes] == ["mul"]
    computed = make_model([helper.make_node("ScatterND", ["x", "idx", "upd"], ["y"])], [("x", [1, 2, 3, 4])],
                          [("y", [1, 2, 3, 4])], [numpy_helper.from_array(np.zeros((1, 4), np.int64), "idx"),
                                                  numpy_helper.from_array(np.ones(1, np.float32), "upd")])
    with pytest.raises(ValueError, match="ScatterND"):
        convcore.onnx.load(computed.SerializeToString())
