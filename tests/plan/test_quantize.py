"""convcore.quantize (python/convcore/quantization.py): post-training int8 quantization of a model into a QDQ graph
that the Plan runs on its int8 kernels, the eager graph computes with ONNX semantics, and an ONNX export writes as a
QDQ file (int8 weights) that onnxruntime and OpenVINO run with the same results; compile's precision; clear errors."""

import numpy as np
import pytest

import convcore
import convcore.functional as F
import convcore.models
from convcore import nn
from convcore.graph.quantized import int8_weights
from convcore.quantization import METHODS


def small_net(seed=0):
    """Dense, strided, grouped and depthwise convolutions, batch norms, a residual add, pooling and a linear layer."""
    rng = np.random.default_rng(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
            self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
            self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=2)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = self.stem(x)
            x = F.relu(F.add(self.body(x), x))
            x = self.down(F.relu(self.dw(x)))
            return self.fc(F.flatten(F.global_avg_pool2d(x)))

    net = Net().eval()
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            p[...] = (rng.standard_normal(p.shape) * (0.3 if name == "weight" else 0.1)).astype(np.float32)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean[...] = rng.standard_normal(16).astype(np.float32) * 0.1
            module.running_var[...] = rng.uniform(0.5, 1.5, 16).astype(np.float32)
    return net


def batches(seed, count=4, n=4, shape=(3, 12, 12)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, *shape)).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def quantized():
    net = small_net()
    return net, convcore.quantize(net, batches(1), input_shape=(1, 3, 12, 12), first_layer=True)


def test_quantized_graph_runs_int8_and_matches_its_eager_semantics(quantized, isa):
    net, q = quantized
    x = batches(2, 1, 3)[0]
    plan = convcore.compile(q)
    assert plan.eager_nodes == []
    assert sorted(plan.int8_ops) == ["body.0", "body.2", "down", "fc", "stem.0"]  # not the depthwise one
    got, eager = plan(x), q.run(x)
    scale = np.abs(eager).max()
    assert np.abs(got - eager).max() <= 2e-2 * scale  # int8 sums vs float sums of the same grid values
    float_out = net(x)
    assert np.abs(got - float_out).max() <= 0.1 * np.abs(float_out).max()  # near the float model
    fp32 = convcore.compile(q, precision="fp32")  # the same graph, quantize / dequantize in float, no int8 kernel
    assert fp32.int8_ops == [] and np.abs(fp32(x) - eager).max() <= 1e-4 * scale


def test_every_weight_is_on_an_int8_grid_and_the_report_covers_each_layer(quantized):
    _, q = quantized
    convs = [n for n in q.nodes if n.op in ("conv2d", "linear")]
    for node in convs:
        if node.name != "dw":
            assert int8_weights(q.params[node.inputs[1]]) is not None, node.name
            assert q.shapes[node.inputs[0]] and any(
                n.op == "fake_quantize" and n.outputs[0] == node.inputs[0] for n in q.nodes)
    by_name = {r.name: r for r in q.layers}
    assert set(by_name) == {n.name for n in convs}
    assert not by_name["dw"].quantized and "depthwise" in by_name["dw"].reason
    assert all(0 < r.error < 0.05 for r in q.layers if r.quantized), q.report()
    text = q.report()
    assert "stem.0" in text and "int8" in text and "largest errors" in text


@pytest.mark.parametrize("method", METHODS)
def test_methods_per_tensor_and_bias_correction_keep_outputs_close(method):
    net = small_net(3)
    x = batches(9, 1, 8)[0]
    want = net(x)
    errors = {}
    for per_channel in (True, False):
        for correction in (True, False):
            q = convcore.quantize(net, batches(4), method=method, per_channel=per_channel,
                                  bias_correction=correction, input_shape=(1, 3, 12, 12))
            got = convcore.compile(q)(x)
            errors[per_channel, correction] = np.abs(got - want).max() / np.abs(want).max()
    assert max(errors.values()) < 0.15, errors
    assert errors[True, True] <= errors[False, False] * 1.5, errors  # per channel + correction: no worse


def test_excluded_layers_stay_float():
    net = small_net()
    q = convcore.quantize(net, batches(1), exclude=["body.0", "fc"], input_shape=(1, 3, 12, 12))
    plan = convcore.compile(q)
    assert sorted(plan.int8_ops) == ["body.2", "down"]  # (stem.0 reads the input: float unless first_layer=True)
    reasons = {r.name: r.reason for r in q.layers}
    assert reasons["fc"] == "excluded" and "model's input" in reasons["stem.0"]


def test_quantized_export_runs_in_onnxruntime_and_openvino(quantized, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    _, q = quantized
    path = str(tmp_path / "q.onnx")
    model = convcore.onnx.export(q, path)
    onnx.checker.check_model(model, full_check=True)
    kinds = [n.op_type for n in model.graph.node]
    int8_inits = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert kinds.count("QuantizeLinear") == 5 and kinds.count("DequantizeLinear") == 5 + 5  # activations, weights
    assert len([n for n in int8_inits if n.endswith(".int8")]) == 5
    x = batches(5, 1, 2)[0]
    want = convcore.compile(q)(x)
    scale = np.abs(want).max()
    for optimize in (False, True):  # the Q / DQ nodes as written, and onnxruntime's int8 kernels
        opts = ort.SessionOptions()
        if not optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        got = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        assert np.abs(got - want).max() <= 2e-2 * scale
    ov = pytest.importorskip("openvino")
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert np.abs(compiled(x)[0] - want).max() <= 2e-2 * scale
    back = convcore.onnx.load(path)  # and back: the same int8 plan
    assert sorted(convcore.compile(back).int8_ops) == sorted(convcore.compile(q).int8_ops)


def test_zoo_model_quantizes_and_stays_close_at_batch_4():
    net = convcore.models.get_model("resnet18")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((2, 3, 64, 64)).astype(np.float32) for _ in range(2)]
    q = convcore.quantize(net, calib, input_shape=(1, 3, 64, 64))
    x = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
    plan = convcore.compile(q)
    assert len(plan.int8_ops) == 20 and "conv1" not in plan.int8_ops and plan.eager_nodes == []
    want = convcore.compile(net, (4, 3, 64, 64))(x)
    assert np.abs(plan(x) - want).max() <= 0.05 * np.abs(want).max()


def test_bad_arguments_are_clear_errors():
    net = small_net()
    good = batches(1)
    with pytest.raises(TypeError, match="calibration: expected float32"):
        convcore.quantize(net, [good[0].astype(np.float64)], input_shape=(1, 3, 12, 12))
    with pytest.raises(ValueError, match="calibration: expected at least one batch"):
        convcore.quantize(net, [], input_shape=(1, 3, 12, 12))
    with pytest.raises(ValueError, match="calibration: expected batches"):
        convcore.quantize(net, [good[0], good[1][:, :, :6]], input_shape=(1, 3, 12, 12))
    with pytest.raises(ValueError, match="method"):
        convcore.quantize(net, good, method="entropy!", input_shape=(1, 3, 12, 12))
    with pytest.raises(ValueError, match="exclude: no layer named"):
        convcore.quantize(net, good, exclude=["nope"], input_shape=(1, 3, 12, 12))
    with pytest.raises(ValueError, match="precision: 'int8' needs a quantized graph"):
        convcore.compile(net, (1, 3, 12, 12), precision="int8")
    with pytest.raises(ValueError, match="precision: expected one of"):
        convcore.compile(net, (1, 3, 12, 12), precision="int4")
