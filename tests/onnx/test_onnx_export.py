"""convcore.onnx.export: every functional op (each padding / pooling / window variant) against onnxruntime at
batch 1 and 3 and opsets 13 / 17 / 21, plus the model metadata (ir_version, producer, dynamic batch, names)."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import convcore

import onnx  # noqa: E402
from onnx import helper  # noqa: E402
from onnx_helpers import assert_parity, ort_run, ort_session, randomize_batch_norm  # noqa: E402

import convcore.onnx  # noqa: E402
from convcore import functional as F  # noqa: E402
from convcore import nn  # noqa: E402

OPSETS = (13, 17, 21)
rng = np.random.default_rng(0)


_WEIGHTS = {}


def _w(*shape, key=0):
    """A fixed random weight per (shape, key): the same array at trace and at eager time."""
    if (shape, key) not in _WEIGHTS:
        _WEIGHTS[shape, key] = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    return _WEIGHTS[shape, key]


class Fn(nn.Module):
    """A module whose forward is one function of functional ops (its arrays become graph constants)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


W8 = _w(8, 4, 3, 3)
W4 = _w(6, 4, 4, 4)
B8 = _w(8)
DW = _w(8, 1, 3, 3)
PW = _w(5, 8, 1, 1)
FC = _w(7, 9)
SE = _w(4, 4, 1, 1)
LIN = _w(10, 4 * 6 * 6)
VAR3 = np.abs(_w(3, key=3)) + np.float32(0.5)

CASES = {
    # convolutions: every padding form, asymmetric 'same', groups, dilation, no bias
    "conv_int_pad": (lambda x: F.conv2d(x, W8, B8, padding=1), (4, 9, 11)),
    "conv_pair_pad_stride": (lambda x: F.conv2d(x, W8, B8, stride=2, padding=(1, 2)), (4, 9, 11)),
    "conv_4_pads": (lambda x: F.conv2d(x, W8, None, padding=(0, 2, 1, 0)), (4, 9, 11)),
    "conv_valid": (lambda x: F.conv2d(x, W8, B8, padding="valid"), (4, 9, 11)),
    "conv_same_even_kernel": (lambda x: F.conv2d(x, W4, None, padding="same"), (4, 9, 10)),
    "conv_same_stride2": (lambda x: F.conv2d(x, W8, B8, stride=2, padding="same"), (4, 9, 12)),
    "conv_same_dilated": (lambda x: F.conv2d(x, W8, B8, padding="same", dilation=(2, 3)), (4, 11, 12)),
    "conv_full": (lambda x: F.conv2d(x, W8, B8, padding="full"), (4, 5, 6)),
    "conv_groups": (lambda x: F.conv2d(x, _w(6, 2, 3, 3), None, padding=1, groups=2), (4, 7, 7)),
    "conv_depthwise_groups": (lambda x: F.conv2d(x, _w(8, 1, 3, 3), None, padding=1, groups=4), (4, 7, 7)),
    "depthwise": (lambda x: F.depthwise_conv2d(x, DW, B8, stride=2, padding="same"), (4, 9, 9)),
    "separable": (lambda x: F.separable_conv2d(x, DW, PW, B8, None, padding=1), (4, 8, 8)),
    # pooling: ceil_mode, count_include_pad, dilation, asymmetric pads, pads beyond the kernel (dilated)
    "max_pool": (lambda x: F.max_pool2d(x, 3, 2, 1), (3, 9, 10)),
    "max_pool_ceil": (lambda x: F.max_pool2d(x, 3, 2, 0, ceil_mode=True), (3, 10, 9)),
    "max_pool_ceil_pad": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), (3, 10, 11)),
    "max_pool_dilated": (lambda x: F.max_pool2d(x, 3, 1, 2, dilation=2), (3, 9, 9)),
    "max_pool_dilated_big_pad": (lambda x: F.max_pool2d(x, 2, 2, 2, dilation=3, ceil_mode=True), (3, 9, 10)),
    "max_pool_4_pads": (lambda x: F.max_pool2d(x, (3, 2), (2, 1), (1, 0, 0, 1)), (3, 8, 7)),
    "avg_pool": (lambda x: F.avg_pool2d(x, 2), (3, 8, 9)),
    "avg_pool_pad_include": (lambda x: F.avg_pool2d(x, 3, 2, 1), (3, 9, 10)),
    "avg_pool_pad_exclude": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (3, 9, 10)),
    "avg_pool_ceil": (lambda x: F.avg_pool2d(x, 3, 2, 0, ceil_mode=True), (3, 10, 9)),
    "avg_pool_ceil_pad_include": (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), (3, 10, 11)),
    "avg_pool_ceil_pad_exclude": (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                                  (3, 10, 11)),
    "adaptive_avg_global": (lambda x: F.adaptive_avg_pool2d(x, 1), (3, 7, 5)),
    "adaptive_avg_divisible": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (3, 8, 9)),
    "adaptive_avg_general": (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), (3, 7, 9)),
    "adaptive_avg_upsample": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (3, 1, 1)),
    "adaptive_avg_keep_w": (lambda x: F.adaptive_avg_pool2d(x, (2, None)), (3, 5, 4)),
    "adaptive_max_global": (lambda x: F.adaptive_max_pool2d(x, (1, 1)), (3, 6, 5)),
    "adaptive_max_general": (lambda x: F.adaptive_max_pool2d(x, (4, 3)), (3, 9, 7)),
    "global_avg": (lambda x: F.global_avg_pool2d(x), (3, 6, 5)),
    "global_max": (lambda x: F.global_max_pool2d(x), (3, 6, 5)),
    # normalization
    "batch_norm": (lambda x: F.batch_norm(x, _w(3), VAR3, _w(3, key=1), _w(3, key=2), eps=1e-3), (3, 4, 5)),
    "batch_norm_no_affine": (lambda x: F.batch_norm(x, _w(3), VAR3), (3, 4, 5)),
    "lrn_odd": (lambda x: F.local_response_norm(x, 5, 1e-2, 0.75, 2.0), (8, 4, 5)),
    "lrn_even": (lambda x: F.local_response_norm(x, 4, 1e-1, 0.6, 1.5), (8, 4, 5)),
    "lrn_even_3d": (lambda x: F.local_response_norm(x, 2, 1e-1, 0.75, 1.0), (7, 6)),
    # activations
    "relu": (F.relu, (3, 4, 5)),
    "relu6": (lambda x: F.relu6(x * np.float32(4)), (3, 4, 5)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), (3, 4, 5)),
    "sigmoid": (F.sigmoid, (3, 4, 5)),
    "tanh": (F.tanh, (3, 4, 5)),
    "silu": (F.silu, (3, 4, 5)),
    "hardswish": (lambda x: F.hardswish(x * np.float32(4)), (3, 4, 5)),
    "hardsigmoid": (lambda x: F.hardsigmoid(x * np.float32(4)), (3, 4, 5)),
    "softmax": (lambda x: F.softmax(x, axis=1), (3, 4, 5)),
    "softmax_last": (lambda x: F.softmax(x, axis=-1), (3, 4, 5)),
    "log_softmax": (lambda x: F.log_softmax(F.flatten(x), axis=1), (3, 4, 5)),
    # dense, elementwise, shape
    "linear_2d": (lambda x: F.linear(F.flatten(x), LIN, _w(10)), (4, 6, 6)),
    "linear_no_bias": (lambda x: F.linear(F.flatten(x), LIN), (4, 6, 6)),
    "linear_4d": (lambda x: F.linear(x, FC, _w(7)), (3, 5, 9)),
    "linear_4d_no_bias": (lambda x: F.linear(x, FC), (3, 5, 9)),
    "squeeze_excitation": (lambda x: F.mul(x, F.sigmoid(F.conv2d(F.global_avg_pool2d(x), SE))), (4, 5, 6)),
    "add_scalar": (lambda x: F.add(F.add(x, np.float32(1.5)), x), (3, 4, 5)),
    "mul_broadcast": (lambda x: F.mul(x, _w(1, 3, 1, 5)), (3, 4, 5)),
    "concat": (lambda x: F.concat([x, F.relu(x), x], axis=1), (3, 4, 5)),
    "concat_last": (lambda x: F.concat([x, F.max_pool2d(x, (1, 2))], axis=-1), (3, 4, 6)),
    "flatten_middle": (lambda x: F.flatten(x, 2, 3), (3, 4, 5)),
    "flatten_all": (lambda x: F.flatten(x, 0), (3, 4, 5)),
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, opset):
    fn, shape = CASES[case]
    model = Fn(fn)
    proto = convcore.onnx.export(model, input_shape=(1, *shape), opset=opset)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    run = ort_session(proto)
    for batch in (1, 3):
        assert_parity(run(x[:batch])[0], fn(x[:batch]))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.layer1(x) + x)
        return self.fc(F.flatten(self.pool(x)))


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_metadata_names_and_dynamic_batch(tmp_path):
    model = randomize_batch_norm(SmallResNet().eval())
    path = tmp_path / "net.onnx"
    proto = convcore.onnx.export(model, path, input_shape=(1, 3, 16, 16), opset=17)
    assert proto.ir_version == helper.find_min_ir_version_for([helper.make_opsetid("", 17)]) == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert proto.producer_name == "convcore" and proto.producer_version == convcore.__version__
    assert _dims(proto.graph.input[0]) == ["N", 3, 16, 16]
    assert _dims(proto.graph.output[0]) == ["N", 5]
    names = {n.name for n in proto.graph.node}
    assert {"conv1", "bn1", "layer1.0", "layer1.1", "add", "fc"} <= names
    assert {"conv1.weight", "bn1.running_var", "layer1.0.bias", "fc.weight"} <= {i.name for i in
                                                                             proto.graph.initializer}
    assert onnx.load(str(path)) == proto  # the file holds the returned model
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    assert_parity(ort_run(proto, x)[0], model(x))


def test_static_batch():
    model = SmallResNet().eval()
    proto = convcore.onnx.export(model, input_shape=(2, 3, 16, 16), dynamic_batch=False)
    assert _dims(proto.graph.input[0]) == [2, 3, 16, 16] and _dims(proto.graph.output[0]) == [2, 5]
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    assert_parity(ort_run(proto, x)[0], model(x))


def test_batch_merging_flatten_leaves_output_dim_unnamed():
    proto = convcore.onnx.export(Fn(lambda x: F.flatten(x, 0)), input_shape=(1, 2, 3, 4))
    assert _dims(proto.graph.output[0]) == [0]  # neither "N" nor a fixed size


def test_export_graph_and_fold_batchnorm():
    model = randomize_batch_norm(SmallResNet().eval(), seed=3)
    graph = convcore.trace(model, (1, 3, 16, 16))
    x = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    plain = convcore.onnx.export(graph)
    folded = convcore.onnx.export(model, input_shape=(1, 3, 16, 16), fold_batchnorm=True)
    assert sum(n.op_type == "BatchNormalization" for n in plain.graph.node) == 2
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    for proto in (plain, folded):
        assert_parity(ort_run(proto, x)[0], model(x))


def test_hardswish_below_opset_14_uses_hardsigmoid():
    proto = convcore.onnx.export(nn.Hardswish(), input_shape=(1, 2, 3, 3), opset=13)
    assert [n.op_type for n in proto.graph.node] == ["HardSigmoid", "Mul"]
    proto = convcore.onnx.export(nn.Hardswish(), input_shape=(1, 2, 3, 3), opset=14)
    assert [n.op_type for n in proto.graph.node] == ["HardSwish"]


def test_silu_is_sigmoid_mul_and_relu6_is_clip_with_inputs():
    proto = convcore.onnx.export(nn.Sequential(nn.SiLU(), nn.ReLU6()), input_shape=(1, 2, 3, 3), opset=13)
    assert [n.op_type for n in proto.graph.node] == ["Sigmoid", "Mul", "Clip"]
    assert len(proto.graph.node[2].input) == 3


@pytest.mark.parametrize("opset", [12, 22, 17.0, "17", True])
def test_bad_opset(opset):
    with pytest.raises(ValueError, match="opset"):
        convcore.onnx.export(nn.ReLU(), input_shape=(1, 2, 3, 3), opset=opset)
