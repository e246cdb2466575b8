"""Registry API: list_models, get_model (weights), get_model_info, convert_state_dict, summary, load."""

import numpy as np
import pytest
from model_helpers import random_input

from convcore import models, nn  # noqa: E402

_REQUIRED = (
    ["alexnet", "googlenet", "mobilenet_v2", "resnext50_32x4d", "wide_resnet50_2", "lenet5", "amoebanet"]
    + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
    + [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    + [f"densenet{d}" for d in (121, 161, 169, 201)]
    + ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]
    + [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_lite{i}" for i in range(5)]
    + [f"preact_resnet{d}" for d in (18, 34, 50, 101, 152)] + [f"se_resnet{d}" for d in (50, 101, 152)]
)


def test_list_models_has_the_whole_zoo():
    names = models.list_models()
    assert sorted(_REQUIRED) == names
    assert names == sorted(names)


def test_list_models_pattern():
    assert models.list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert models.list_models("*_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert models.list_models("nothing*") == []
    with pytest.raises(TypeError, match="pattern"):
        models.list_models(3)


def test_every_model_is_exported_and_documented():
    for name in models.list_models():
        info = models.get_model_info(name)
        assert getattr(models, name) is info.builder
        assert info.builder.__doc__ and info.source and info.family
        assert len(info.input_size) == 3 and 1 <= info.min_size <= info.input_size[1]
    # __all__ is a literal list (type checkers and linters read it): every registered builder is in it.
    assert set(models.list_models()) <= set(models.__all__)
    assert all(hasattr(models, name) for name in models.__all__)


def test_model_info_metadata():
    assert models.get_model_info("lenet5").input_size == (1, 32, 32)
    assert models.get_model_info("efficientnet_b7").input_size == (3, 600, 600)
    assert models.get_model_info("amoebanet").input_size == (3, 331, 331)
    assert "torchvision" in models.get_model_info("resnet50").source
    assert "Hu et al. 2018" in models.get_model_info("se_resnet50").source


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="resnet50"):
        models.get_model("resnet05")
    with pytest.raises(TypeError, match="model name"):
        models.get_model(50)


def test_get_model_returns_eval_mode_module():
    model = models.get_model("resnet18")
    assert isinstance(model, nn.Module)
    assert not model.training and not model.layer1[0].bn1.training


def test_weights_mapping_is_loaded_strictly():
    source = models.get_model("mnasnet0_5", num_classes=4)
    state = {k: np.random.default_rng(1).standard_normal(v.shape).astype(v.dtype) for k, v in
             source.state_dict().items()}
    model = models.get_model("mnasnet0_5", num_classes=4, weights=state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
    bad = dict(state)
    bad.pop("classifier.1.bias")
    with pytest.raises(ValueError, match="classifier.1.bias"):
        models.get_model("mnasnet0_5", num_classes=4, weights=bad)
    with pytest.raises(ValueError, match="size mismatch"):
        models.get_model("mnasnet0_5", num_classes=5, weights=state)
    with pytest.raises(TypeError, match="weights"):
        models.get_model("mnasnet0_5", weights=3)


def test_weights_from_a_checkpoint_file(tmp_path):
    source = models.get_model("resnet18", num_classes=3)
    state = {k: np.random.default_rng(2).standard_normal(v.shape).astype(v.dtype) for k, v in
             source.state_dict().items()}
    path = tmp_path / "resnet18.npz"
    np.savez(path, **state)
    model = models.get_model("resnet18", num_classes=3, weights=str(path))
    np.testing.assert_array_equal(model.fc.weight, state["fc.weight"])
    x = random_input((1, 3, 32, 32))
    np.testing.assert_array_equal(model(x), models.get_model("resnet18", num_classes=3, weights=state)(x))


def test_convert_state_dict_is_identity_without_a_map():
    state = {"a.weight": np.zeros(2, np.float32)}
    converted = models.convert_state_dict("resnet18", state)
    assert converted == state and converted is not state


def test_summary_of_a_module_and_input_size_forms():
    model = models.get_model("lenet5")
    by_name = models.summary("lenet5")
    # LeNet-5 MACs: C1 28*28*6*25, C3 10*10*16*150, C5 120*400, F6 84*120, output 10*84
    expected = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 120 * 400 + 84 * 120 + 10 * 84
    assert by_name["macs"] == expected
    assert models.summary(model, (1, 32, 32))["macs"] == expected
    assert models.summary(model, (32, 32))["macs"] == expected
    assert models.summary(model, (4, 1, 32, 32))["macs"] == expected  # (N, C, H, W) as compile takes it: per image
    assert models.summary(model)["macs"] == expected  # a zoo model carries its registered input size
    assert by_name["params"] == models.count_parameters(model)
    with pytest.raises(ValueError, match="input_size: required for a Module that is not from the zoo"):
        models.summary(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(TypeError, match="name_or_model"):
        models.summary(3)


def test_summary_counts_grouped_and_depthwise_convs():
    # a depthwise 3x3 over 8 channels at 10x10 output: 8 * 100 * 9 MACs; then a 1x1 conv 8 -> 4: 4 * 100 * 8
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 4, 1)).eval()
    assert models.summary(model, (8, 10, 10))["macs"] == 8 * 100 * 9 + 4 * 100 * 8


def test_load_bundles_model_weights_preprocessing_and_labels():
    from convcore import data

    m = models.load("mobilenet_v2", weights=None)  # random weights
    assert isinstance(m.module, models.MobileNetV2) and not m.module.training
    assert (m.name, m.weights, m.input_size, m.fixed_batch) == ("mobilenet_v2", None, (3, 224, 224), None)
    assert m.preprocess == data.get_preset("mobilenet_v2") and len(m.labels) == 1000
    assert m.preprocess(np.zeros((300, 400, 3), np.uint8)).shape == (3, 224, 224)
    state = m.module.state_dict()
    again = models.load("mobilenet_v2", weights=state, preset="resnet50")
    assert again.module.state_dict()["features.0.0.weight"] is not state["features.0.0.weight"]
    np.testing.assert_array_equal(again.module.state_dict()["features.0.0.weight"], state["features.0.0.weight"])
    assert again.preprocess == models.get_preset("resnet50")
    assert models.load("amoebanet", weights=None).input_size == (3, 331, 331)


def test_load_installed_weights_or_a_clear_error():
    from convcore import data

    with pytest.raises(FileNotFoundError, match=r"pretrained weights for resnet18 on this machine \(got none\); "
                                                r"weights='DEFAULT' downloads IMAGENET1K_V1 from https://download"
                                                r"\.pytorch\.org/models/resnet18-f37072fd\.pth, or pass a checkpoint"):
        models.load("resnet18")
    if data.find_weights("efficientnet_lite0") is not None:
        m = models.load("efficientnet_lite0")
        assert m.weights == data.find_weights("efficientnet_lite0") and m.preprocess.interpolation == "bicubic"
