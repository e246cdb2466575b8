"""Every zoo model exported to ONNX runs in onnxruntime at batch 1 and 3 and matches convcore (max|err| <=
1e-4 max|y| + 1e-5), and loads back into convcore with the same output. One model per family runs by default (small
inputs, slimmed where the builder allows); the rest are marked slow."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_helpers import assert_parity, ort_run, ort_session, randomize_batch_norm  # noqa: E402

import convcore.onnx  # noqa: E402
from convcore import models  # noqa: E402

# One model per family for the default run, with builder options that keep it fast (same architecture family).
DEFAULT = {
    "alexnet": {"num_classes": 10},
    "amoebanet": {"num_normal_cells": 1, "filters": 24, "num_classes": 10},
    "densenet121": {},
    "efficientnet_b0": {},
    "efficientnet_lite0": {},
    "googlenet": {},
    "lenet5": {},
    "mnasnet0_5": {},
    "mobilenet_v2": {},
    "preact_resnet18": {},
    "resnet18": {},
    "se_resnet50": {"num_classes": 10},
    "vgg11": {"num_classes": 10},
}
# Models whose smallest input makes an adaptive pool upsample (1x1 -> 7x7): exported as Slice + Reduce, which
# convcore cannot import back, so they round-trip only at their full size (slow).
NO_SMALL_ROUND_TRIP = ("alexnet", "vgg")


def _cases():
    cases = []
    for name in models.list_models():
        if name in DEFAULT:
            cases.append(pytest.param(name, DEFAULT[name], id=name))
        else:
            cases.append(pytest.param(name, {}, id=name, marks=pytest.mark.slow))
    return cases


def test_every_family_has_a_default_model():
    families = {models.get_model_info(n).family for n in models.list_models()}
    assert families == {models.get_model_info(n).family for n in DEFAULT}


def _model_and_input(name, options, seed=0):
    info = models.get_model_info(name)
    size = max(info.min_size, 16)
    model = randomize_batch_norm(models.get_model(name, **options), seed)
    x = np.random.default_rng(seed).standard_normal((3, info.input_size[0], size, size)).astype(np.float32)
    return model, x


@pytest.mark.parametrize("name, options", _cases())
def test_zoo_model_matches_onnxruntime(name, options):
    model, x = _model_and_input(name, options)
    proto = convcore.onnx.export(model, input_shape=(1, *x.shape[1:]), opset=17)
    expected = model(x)
    run = ort_session(proto)
    assert_parity(run(x[:1])[0], expected[:1])
    assert_parity(run(x)[0], expected)
    if not name.startswith(NO_SMALL_ROUND_TRIP):
        assert_parity(convcore.onnx.load(proto.SerializeToString())(x), expected)


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("name", ["mobilenet_v2", "googlenet", "efficientnet_b0"])
def test_other_opsets(name, opset):
    model, x = _model_and_input(name, DEFAULT[name], seed=1)
    proto = convcore.onnx.export(model, input_shape=(1, *x.shape[1:]), opset=opset)
    assert_parity(ort_run(proto, x)[0], model(x))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_folded_batchnorm_matches(name):
    model, x = _model_and_input(name, DEFAULT[name], seed=2)
    proto = convcore.onnx.export(model, input_shape=(1, *x.shape[1:]), fold_batchnorm=True)
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert_parity(ort_run(proto, x)[0], model(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_round_trip_at_full_size(name):
    info = models.get_model_info(name)
    model = randomize_batch_norm(models.get_model(name, num_classes=10))
    x = np.random.default_rng(0).standard_normal((2, *info.input_size)).astype(np.float32)
    proto = convcore.onnx.export(model, input_shape=(1, *info.input_size))
    assert_parity(convcore.onnx.load(proto.SerializeToString())(x), model(x))
