"""convcore.nn against torch.nn: same constructor arguments, reprs, state_dict keys, and outputs after copying
torch's state_dict in (max|err| / max|ref| <= 1e-4)."""

import re

import numpy as np
import pytest

from reference import assert_close

from convcore import nn
torch = pytest.importorskip("torch")
tnn = torch.nn

BOUND = 1e-4


def randomize(torch_module, seed=0):
    """Give BN running statistics non-trivial values so eval-mode outputs exercise them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_module.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.num_batches_tracked.fill_(17)
    return torch_module


def copy_and_compare(ours, theirs, x, bound=BOUND):
    """Load theirs' state_dict into ours, check keys / reprs, and compare eval-mode outputs on x."""
    theirs = randomize(theirs).eval()
    sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd)
    ours.load_state_dict({k: v.numpy() for k, v in sd.items()})
    ours.eval()
    # torch >= 2.13 prints BatchNorm's new keyword-only bias flag; convcore keeps the classic form.
    assert repr(ours) == re.sub(r"affine=(\w+), bias=\w+, ", r"affine=\1, ", repr(theirs))
    with torch.no_grad():
        ref = theirs(torch.from_numpy(x)).numpy()
    got = ours(x)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert_close(got, ref, bound)
    return got


LAYERS = [
    ("Conv2d", (3, 8, 3), {}),
    ("Conv2d", (3, 8, 3), dict(stride=2, padding=1)),
    ("Conv2d", (4, 6, (3, 5)), dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), bias=False)),
    ("Conv2d", (6, 6, 3), dict(padding=1, groups=6)),
    ("Conv2d", (4, 8, 3), dict(padding=1, groups=2)),
    ("Conv2d", (3, 5, 3), dict(padding="same", dilation=2)),
    ("Conv2d", (3, 5, 3), dict(padding="valid")),
    ("BatchNorm2d", (4,), {}),
    ("BatchNorm2d", (4,), dict(eps=1e-3, momentum=0.01, affine=False)),
    ("ReLU", (), dict(inplace=True)),
    ("ReLU6", (), {}),
    ("LeakyReLU", (0.2,), {}),
    ("SiLU", (), {}),
    ("Sigmoid", (), {}),
    ("Tanh", (), {}),
    ("Hardswish", (), {}),
    ("Hardsigmoid", (), {}),
    ("Softmax", (), dict(dim=1)),
    ("LogSoftmax", (), dict(dim=-1)),
    ("MaxPool2d", (3, 2, 1), {}),
    ("MaxPool2d", (2,), dict(ceil_mode=True)),
    ("MaxPool2d", (3,), dict(stride=1, padding=1, dilation=2)),
    ("AvgPool2d", (3, 2, 1), dict(count_include_pad=False)),
    ("AvgPool2d", (2,), dict(ceil_mode=True)),
    ("AdaptiveAvgPool2d", ((2, 3),), {}),
    ("AdaptiveAvgPool2d", (1,), {}),
    ("AdaptiveMaxPool2d", ((3, None),), {}),
    ("LocalResponseNorm", (3,), dict(alpha=1e-2, beta=0.75, k=2.0)),
    ("Dropout", (0.3,), {}),
    ("Flatten", (), {}),
    ("Identity", (), {}),
]


@pytest.mark.parametrize("name, args, kwargs", LAYERS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(LAYERS)])
def test_layer_matches_torch(name, args, kwargs):
    torch.manual_seed(0)
    theirs = getattr(tnn, name)(*args, **kwargs)
    ours = getattr(nn, name)(*args, **kwargs)
    channels = args[0] if name in ("Conv2d", "BatchNorm2d") else 4
    x = np.random.default_rng(1).standard_normal((2, channels, 9, 11)).astype(np.float32)
    copy_and_compare(ours, theirs, x)


def test_linear_matches_torch():
    x = np.random.default_rng(2).standard_normal((3, 5, 16)).astype(np.float32)
    copy_and_compare(nn.Linear(16, 7), tnn.Linear(16, 7), x)
    copy_and_compare(nn.Linear(16, 7, bias=False), tnn.Linear(16, 7, bias=False), x)


@pytest.mark.parametrize("padding, torch_pad", [((1, 2, 0, 3), (0, 3, 1, 2)), ("full", (8, 8, 2, 2))])
def test_conv_explicit_and_full_padding(padding, torch_pad):
    # torch's Conv2d has neither 4-tuple padding nor 'full': compare with F.pad (left, right, top, bottom) + conv.
    ours = nn.Conv2d(3, 4, (3, 5), padding=padding, dilation=(1, 1) if padding != "full" else (1, 2)).eval()
    x = np.random.default_rng(3).standard_normal((1, 3, 7, 8)).astype(np.float32)
    xt = torch.nn.functional.pad(torch.from_numpy(x), torch_pad)
    ref = torch.nn.functional.conv2d(xt, torch.from_numpy(ours.weight), torch.from_numpy(ours.bias),
                                     dilation=ours.dilation)
    assert_close(ours(x), ref.numpy(), BOUND)


# --- whole networks, the same structure in both frameworks -------------------------------------------------------

def make_stack(lib):
    """conv-bn-relu-pool-linear classifier."""
    return lib.Sequential(
        lib.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), lib.BatchNorm2d(16), lib.ReLU(inplace=True),
        lib.MaxPool2d(3, 2, 1),
        lib.Conv2d(16, 32, 3, padding=1), lib.BatchNorm2d(32), lib.ReLU6(),
        lib.AdaptiveAvgPool2d((1, 1)), lib.Flatten(), lib.Dropout(0.2), lib.Linear(32, 10))


def make_block(lib, add):
    """A torchvision-style BasicBlock with a strided downsample; `add` adds two arrays in that library."""

    class BasicBlock(lib.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = lib.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = lib.BatchNorm2d(cout)
            self.relu = lib.ReLU(inplace=True)
            self.conv2 = lib.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = lib.BatchNorm2d(cout)
            self.downsample = lib.Sequential(lib.Conv2d(cin, cout, 1, stride, bias=False), lib.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(add(out, self.downsample(x)))

    return BasicBlock(8, 16, 2)


def test_conv_bn_relu_pool_linear_stack():
    torch.manual_seed(0)
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    copy_and_compare(make_stack(nn), make_stack(tnn), x)


def test_residual_block():
    torch.manual_seed(0)
    x = np.random.default_rng(5).standard_normal((2, 8, 15, 15)).astype(np.float32)
    ours = make_block(nn, lambda a, b: a + b)
    theirs = make_block(tnn, lambda a, b: a + b)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    copy_and_compare(ours, theirs, x)


def test_torch_tensors_load_directly():
    theirs = randomize(tnn.BatchNorm2d(5))
    ours = nn.BatchNorm2d(5)
    ours.load_state_dict(theirs.state_dict())  # CPU tensors go through np.asarray
    np.testing.assert_array_equal(ours.running_var, theirs.running_var.numpy())
    assert int(ours.num_batches_tracked) == 17


def test_batchnorm_training_mode_matches_torch():
    x = (np.random.default_rng(6).standard_normal((4, 3, 5, 6)) * 2 + 1).astype(np.float32)
    for momentum in (0.1, None):
        theirs = randomize(tnn.BatchNorm2d(3, momentum=momentum)).train()
        ours = nn.BatchNorm2d(3, momentum=momentum)
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        for _ in range(2):
            with torch.no_grad():
                ref = theirs(torch.from_numpy(x)).numpy()
            assert_close(ours(x), ref, BOUND)
        for key, value in theirs.state_dict().items():
            assert_close(ours.state_dict()[key], value.numpy(), 1e-5)
