"""convcore.nn.Module machinery: registration, iteration, state_dict / load_state_dict, modes, repr, pickling,
containers and init (no torch needed)."""

import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest

from convcore import nn


class Block(nn.Module):
    """conv-bn-relu with a buffer of its own, to check torch's key order (own params, own buffers, children)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.scale = nn.Parameter(np.ones(cout))
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.register_buffer("offset", np.zeros(cout, np.float32))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Block(3, 4)
        self.head = nn.Linear(4, 2)


BLOCK_KEYS = ["scale", "offset", "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
              "bn.num_batches_tracked"]


def test_registration_and_attribute_access():
    b = Block(3, 4)
    assert list(b._parameters) == ["scale"] and list(b._buffers) == ["offset"]
    assert list(b._modules) == ["conv", "bn", "relu"]
    assert isinstance(b.scale, np.ndarray) and b.scale.dtype == np.float32  # Parameter unwraps to float32
    assert b.conv.bias is None and "bias" in b.conv._parameters
    b.scale = np.full(4, 2.0)  # assigning to a parameter name replaces the value, as float32
    assert b.scale.dtype == np.float32 and b.scale[0] == 2.0 and "scale" not in b.__dict__
    b.offset = np.arange(4)
    assert b.offset.dtype == np.arange(4).dtype  # buffers keep their dtype
    del b.relu
    assert "relu" not in b._modules
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        b.missing


def test_register_errors():
    class NoInit(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2d(1, 1, 1)

    with pytest.raises(AttributeError, match="__init__"):
        NoInit()
    m = nn.Module()
    with pytest.raises(ValueError, match="without '.'"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="numeric"):
        m.register_parameter("w", np.array(["x"]))
    m.plain = 3
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", np.zeros(1))
    with pytest.raises(TypeError, match="expected a Module"):
        m.add_module("child", 3)


def test_iteration_names_order_and_sharing():
    net = Net()
    assert [name for name, _ in net.named_modules()] == ["", "stem", "stem.conv", "stem.bn", "stem.relu", "head"]
    assert [name for name, _ in net.named_children()] == ["stem", "head"]
    assert list(net.children()) == [net.stem, net.head]
    assert [name for name, _ in net.named_parameters()] == [
        "stem.scale", "stem.conv.weight", "stem.bn.weight", "stem.bn.bias", "head.weight", "head.bias"]
    assert [name for name, _ in net.named_buffers()] == [
        "stem.offset", "stem.bn.running_mean", "stem.bn.running_var", "stem.bn.num_batches_tracked"]
    assert len(list(net.parameters())) == 6 and len(list(net.buffers(recurse=False))) == 0
    # A module registered twice is visited once; a state_dict lists it under both names, like torch.
    net.alias = net.head
    assert [name for name, _ in net.named_modules()][-1] == "head"
    assert len(list(net.parameters())) == 6
    assert [k for k in net.state_dict() if k.startswith(("head", "alias"))] == [
        "head.weight", "head.bias", "alias.weight", "alias.bias"]


def test_state_dict_order_and_values():
    b = Block(3, 4)
    sd = b.state_dict()
    assert isinstance(sd, OrderedDict) and list(sd) == BLOCK_KEYS
    assert sd["conv.weight"] is b.conv.weight  # shares memory, like torch
    assert sd["bn.num_batches_tracked"].dtype == np.int64 and sd["bn.num_batches_tracked"].shape == ()
    b.register_buffer("scratch", np.zeros(2), persistent=False)
    assert "scratch" not in b.state_dict() and "scratch" in dict(b.named_buffers())
    assert list(nn.Linear(2, 3).state_dict(prefix="fc.")) == ["fc.weight", "fc.bias"]


def test_load_state_dict_copies_and_casts():
    src, dst = Block(3, 4), Block(3, 4)
    rng = np.random.default_rng(0)
    sd = {k: rng.standard_normal(v.shape) for k, v in src.state_dict().items()}  # float64 everywhere
    sd["bn.num_batches_tracked"] = np.array(7.0)
    conv_weight = dst.conv.weight
    result = dst.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert dst.conv.weight is conv_weight  # copied in place
    for key, value in dst.state_dict().items():
        assert value.dtype == (np.int64 if key.endswith("num_batches_tracked") else np.float32), key
        np.testing.assert_allclose(value, np.asarray(sd[key]).astype(value.dtype), rtol=0, atol=0)
    assert int(dst.bn.num_batches_tracked) == 7
    dst.load_state_dict({k: v.tolist() for k, v in src.state_dict().items()})  # anything np.asarray takes
    np.testing.assert_array_equal(dst.conv.weight, src.conv.weight)


def test_load_state_dict_names_every_problem_and_changes_nothing():
    b = Block(3, 4)
    before = {k: v.copy() for k, v in b.state_dict().items()}
    sd = {k: np.zeros_like(v) for k, v in b.state_dict().items()}
    del sd["bn.bias"], sd["scale"]
    sd["bn.extra"] = np.zeros(4)
    sd["head.weight"] = np.zeros(1)
    sd["conv.weight"] = np.zeros((4, 3, 5, 5))
    sd["bn.running_var"] = np.zeros(5)
    with pytest.raises(ValueError) as info:
        b.load_state_dict(sd)
    msg = str(info.value)
    for text in ["missing keys", "'bn.bias'", "'scale'", "unexpected keys", "'bn.extra'", "'head.weight'",
                 "'conv.weight': expected shape (4, 3, 3, 3) (got (4, 3, 5, 5))",
                 "'bn.running_var': expected shape (4,) (got (5,))"]:
        assert text in msg, (text, msg)
    for key, value in b.state_dict().items():  # nothing was copied: the zeros never landed
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_non_strict():
    b = Block(3, 4)
    sd = {"conv.weight": np.ones((4, 3, 3, 3)), "unknown": np.ones(1)}
    result = b.load_state_dict(sd, strict=False)
    assert result.unexpected_keys == ["unknown"]
    # num_batches_tracked may be absent (old checkpoints), as in torch
    assert result.missing_keys == [k for k in BLOCK_KEYS if k not in ("conv.weight", "bn.num_batches_tracked")]
    assert (b.conv.weight == 1).all()
    with pytest.raises(ValueError, match=re.escape("'conv.weight': expected shape (4, 3, 3, 3) (got (2,))")):
        b.load_state_dict({"conv.weight": np.ones(2)}, strict=False)  # shape mismatches raise even when not strict
    with pytest.raises(ValueError, match="numeric"):
        b.load_state_dict({**b.state_dict(), "scale": np.array(["a"] * 4)})
    with pytest.raises(TypeError, match="mapping"):
        b.load_state_dict([1, 2])


def test_batchnorm_accepts_checkpoints_without_num_batches_tracked():
    bn = nn.BatchNorm2d(3)
    sd = {k: np.full(v.shape, 2.0) for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    assert bn.load_state_dict(sd).missing_keys == []
    assert (bn.running_var == 2).all() and int(bn.num_batches_tracked) == 0


def test_train_eval_modes():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.stem.train()
    assert net.stem.bn.training and not net.training and not net.head.training
    with pytest.raises(TypeError, match="bool"):
        net.train("no")


def test_repr_nested():
    text = repr(Net())
    expected = """Net(
  (stem): Block(
    (conv): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    (bn): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (relu): ReLU(inplace=True)
  )
  (head): Linear(in_features=4, out_features=2, bias=True)
)"""
    assert text == expected


@pytest.mark.parametrize("layer, text", [
    (lambda: nn.Conv2d(8, 16, (3, 5), stride=2, padding=(1, 2, 0, 3), dilation=2, groups=4),
     "Conv2d(8, 16, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2, 0, 3), dilation=(2, 2), groups=4)"),
    (lambda: nn.Conv2d(3, 3, 3, padding="same"), "Conv2d(3, 3, kernel_size=(3, 3), stride=(1, 1), padding=same)"),
    (lambda: nn.Conv2d(3, 3, 1), "Conv2d(3, 3, kernel_size=(1, 1), stride=(1, 1))"),
    (lambda: nn.MaxPool2d(3, 2, 1), "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)"),
    (lambda: nn.AvgPool2d(2), "AvgPool2d(kernel_size=2, stride=2, padding=0)"),
    (lambda: nn.AdaptiveAvgPool2d((1, 1)), "AdaptiveAvgPool2d(output_size=(1, 1))"),
    (lambda: nn.LeakyReLU(0.2, inplace=True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda: nn.Softmax(dim=1), "Softmax(dim=1)"),
    (lambda: nn.Dropout(0.2), "Dropout(p=0.2, inplace=False)"),
    (lambda: nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
    (lambda: nn.LocalResponseNorm(5, k=2.0), "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=2.0)"),
    (lambda: nn.Hardswish(inplace=True), "Hardswish()"),
    (lambda: nn.Identity(54, unused=1), "Identity()"),
])
def test_layer_repr(layer, text):
    assert repr(layer()) == text


def test_pickle_round_trip():
    net = Block(3, 4)
    rng = np.random.default_rng(1)
    net.load_state_dict({k: rng.random(v.shape) + 0.5 for k, v in net.state_dict().items()})
    net.eval()
    clone = pickle.loads(pickle.dumps(net))
    assert repr(clone) == repr(net) and not clone.training and not clone.bn.training
    assert list(clone.state_dict()) == list(net.state_dict())
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(clone.state_dict()[key], value)
        assert clone.state_dict()[key] is not value
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(clone(x), net(x))


def test_sequential():
    a, b, c = nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    with pytest.raises(IndexError):
        seq[3]
    part = seq[1:]
    assert isinstance(part, nn.Sequential) and list(part._modules) == ["1", "2"] and part[0] is b
    d = nn.Sigmoid()
    assert seq.append(d) is seq and seq[3] is d and list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight",
                                                                               "2.bias"]
    seq[1] = nn.ReLU6()
    assert isinstance(seq[1], nn.ReLU6)
    named = nn.Sequential(OrderedDict([("conv", a), ("act", b)]))
    assert list(named.state_dict()) == ["conv.weight", "conv.bias"] and named.act is b
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(nn.Sequential(a, b)(x), b(a(x)), rtol=0, atol=0)


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.ReLU(), nn.Linear(2, 2)])
    layers.append(nn.Linear(2, 3)).extend([nn.Tanh()])
    layers.insert(0, nn.Linear(3, 2))
    assert len(layers) == 5 and isinstance(layers[0], nn.Linear) and isinstance(layers[-1], nn.Tanh)
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    with pytest.raises(NotImplementedError, match="forward"):
        layers(np.zeros(2, np.float32))
    heads = nn.ModuleDict({"cls": nn.Linear(4, 10)})
    heads["box"] = nn.Linear(4, 4)
    assert list(heads) == ["cls", "box"] and "box" in heads and len(heads) == 2
    assert list(heads.state_dict()) == ["cls.weight", "cls.bias", "box.weight", "box.bias"]
    del heads["cls"]
    assert list(heads.keys()) == ["box"] and list(dict(heads.items())) == ["box"]


def test_init_seeding_and_bounds():
    nn.manual_seed(123)
    first = nn.Conv2d(16, 32, 3)
    nn.manual_seed(123)
    second = nn.Conv2d(16, 32, 3)
    np.testing.assert_array_equal(first.weight, second.weight)
    np.testing.assert_array_equal(first.bias, second.bias)
    assert not np.array_equal(first.weight, nn.Conv2d(16, 32, 3).weight)
    bound = 1 / np.sqrt(16 * 9)  # torch default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(first.weight).max() <= bound and np.abs(first.weight).max() > 0.95 * bound
    assert np.abs(first.bias).max() <= bound
    grouped = nn.Conv2d(16, 32, 3, groups=4)
    assert grouped.weight.shape == (32, 4, 3, 3) and np.abs(grouped.weight).max() <= 1 / np.sqrt(4 * 9)
    fc = nn.Linear(100, 50)
    assert np.abs(fc.weight).max() <= 0.1 and np.abs(fc.weight).max() > 0.095 and fc.weight.dtype == np.float32
    w = np.empty((256, 128, 3, 3), np.float32)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.std() - np.sqrt(2 / (256 * 9))) < 0.02 * np.sqrt(2 / (256 * 9))
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_uniform_(w, mode="fan")


def test_constructor_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match="'valid', 'same' or 'full'"):
        nn.Conv2d(3, 3, 3, padding="half")
    with pytest.raises(ValueError, match="non-negative padding"):
        nn.Conv2d(3, 3, 3, padding=-1)
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(3, 3, (3, 3, 3))
    with pytest.raises(ValueError, match="positive"):
        nn.Conv2d(3, 3, 3, stride=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(NotImplementedError, match="return_indices"):
        nn.MaxPool2d(2, return_indices=True)


def test_input_checks():
    x3 = np.zeros((3, 8, 8), np.float32)
    for layer in [nn.Conv2d(3, 4, 3), nn.BatchNorm2d(3), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)]:
        with pytest.raises(ValueError, match=re.escape("expected 4D input (got 3D input)")):
            layer(x3)
    with pytest.raises(ValueError, match="expected input with 4 channels"):
        nn.Conv2d(4, 4, 3)(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="expected input with 5 channels"):
        nn.BatchNorm2d(5).eval()(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="last dimension 8"):
        nn.Linear(8, 2)(np.zeros((1, 7), np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        nn.Conv2d(3, 4, 3)([[1.0]])


def test_simple_layers():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    assert nn.Dropout(0.5)(x) is x and nn.Dropout(0.5).eval()(x) is x and nn.Identity()(x) is x
    assert nn.Flatten()(x).shape == (2, 60) and nn.Flatten(0, 2)(x).shape == (24, 5)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(nn.Softmax()(x).sum(axis=1), 1, rtol=1e-5)  # torch's default for 4D: dim 1
    assert nn.AdaptiveAvgPool2d((None, 2))(x).shape == (2, 3, 4, 2)  # None keeps the input size


def test_batchnorm_batch_statistics():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(np.float32)
    bn = nn.BatchNorm2d(3)  # training mode: batch statistics, running stats updated
    y = bn(x)
    mean, var = x.mean((0, 2, 3), dtype=np.float64), x.var((0, 2, 3), dtype=np.float64)
    ref = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, ref, atol=1e-4)
    n = x.size // 3
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    assert int(bn.num_batches_tracked) == 1 and bn.num_batches_tracked.dtype == np.int64
    frozen = bn.running_mean.copy()
    bn.eval()(x)
    np.testing.assert_array_equal(bn.running_mean, frozen)  # eval never updates
    stateless = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    assert list(stateless.state_dict()) == []
    np.testing.assert_allclose(stateless(x), ref, atol=1e-4)  # no running stats: batch stats even in eval
