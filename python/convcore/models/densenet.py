"""DenseNet-121/161/169/201 (Huang et al. 2017) with torchvision's structure and state_dict keys."""

from __future__ import annotations

import re

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import Builder, register_model


class _DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bn_size * growth) then BN-ReLU-conv3x3 (growth) on the concatenation of all inputs."""

    def __init__(self, in_channels, growth_rate, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, features):
        x = F.concat(features, axis=1) if len(features) > 1 else features[0]
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class _DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers (keys denselayer1..N); each sees every earlier feature map."""

    def __init__(self, num_layers, in_channels, growth_rate, bn_size):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size))

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return F.concat(features, axis=1)


class _Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (halves the channels) and a 2x2 average pool."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """DenseNet-BC with torchvision's keys (features.conv0 ... features.norm5, classifier).

    Args:
        growth_rate: channels each dense layer adds (k).
        block_config: dense layers in each of the 4 blocks.
        num_init_features: channels of the stem conv.
        bn_size: bottleneck width multiplier (bn_size * k channels in each 1x1 conv).
        num_classes: output classes.
        in_channels: input image channels.

    Shape:
        input (N, in_channels, H, W) with H, W >= 29; output (N, num_classes).
    """

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 num_classes=1000, in_channels=3):
        super().__init__()
        check_common(num_classes, in_channels)
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2,
                                                    padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(num_layers, channels, growth_rate, bn_size))
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


# torchvision's published densenet checkpoints use the old names 'norm.1', 'conv.2', ... inside dense layers;
# torchvision renames them with this pattern when it loads them, and so do we (num_batches_tracked added).
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                         r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def convert_densenet_state_dict(state_dict):
    """Rename torchvision's legacy densenet keys ('...denselayer1.norm.1.weight' -> '...denselayer1.norm1.weight')."""
    out = {}
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


_CONFIGS = {121: (32, (6, 12, 24, 16), 64), 161: (48, (6, 12, 36, 24), 96), 169: (32, (6, 12, 32, 32), 64),
            201: (32, (6, 12, 48, 32), 64)}


def _register(depth: int) -> Builder:
    name = f"densenet{depth}"
    growth, blocks, init = _CONFIGS[depth]

    def builder(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        return DenseNet(growth, blocks, init, num_classes=num_classes, in_channels=in_channels)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"DenseNet-{depth} (torchvision.models.{name}); input (N, 3, H, W), H, W >= 29."
    builder = register_model(name, family="densenet", min_size=29, convert=convert_densenet_state_dict,
                             source=f"torchvision.models.{name} (Huang et al. 2017)")(builder)
    return builder


densenet121, densenet161, densenet169, densenet201 = (_register(d) for d in (121, 161, 169, 201))
