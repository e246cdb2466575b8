"""SE-ResNet-50/101/152 (Hu et al. 2018, 'Squeeze-and-Excitation Networks'), reduction ratio 16.

A torchvision ResNet bottleneck (stride on the 3x3 conv, as timm's seresnet) with a squeeze-and-excitation block on
the residual branch before the addition. Keys are torchvision's ResNet keys plus `layerX.Y.se.fc1/fc2` (1x1 convs
with bias), the layout of timm's seresnet50/101/152, so their checkpoints load unchanged.
"""

from __future__ import annotations

from .. import functional as F
from ._common import SqueezeExcitation
from ._registry import Builder, register_model
from .resnet import Bottleneck, ResNet


class SEBottleneck(Bottleneck):
    """ResNet bottleneck with SE (channels -> channels / reduction -> channels) before the residual addition."""

    reduction = 16

    def __init__(self, in_channels, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__(in_channels, planes, stride, downsample, groups, base_width)
        channels = planes * self.expansion
        self.se = SqueezeExcitation(channels, channels // self.reduction)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(F.add(out, identity))


_LAYERS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def _register(depth: int) -> Builder:
    name = f"se_resnet{depth}"

    def builder(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
        return ResNet(SEBottleneck, _LAYERS[depth], num_classes=num_classes, in_channels=in_channels)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"SE-ResNet-{depth} (Hu et al. 2018), reduction 16; timm's seresnet{depth} layout."
    return register_model(name, family="se_resnet",
                          source=f"Hu et al. 2018 'Squeeze-and-Excitation Networks'; keys of timm seresnet{depth}"
                          )(builder)


se_resnet50, se_resnet101, se_resnet152 = (_register(d) for d in (50, 101, 152))
