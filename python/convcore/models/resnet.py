"""ResNet (He et al. 2016), ResNeXt (Xie et al. 2017) and Wide ResNet (Zagoruyko & Komodakis 2016).

torchvision's structure and state_dict keys (ResNet v1.5: the stride of a bottleneck sits on its 3x3 conv).
"""

from __future__ import annotations

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import Builder, register_model


def conv3x3(in_channels, out_channels, stride=1, groups=1):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"expected groups=1 and base_width=64 for BasicBlock (got {groups}, {base_width})")
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(F.add(out, identity))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, strided), 1x1 expand (x4), residual connection."""

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(F.add(out, identity))


class ResNet(nn.Module):
    """ResNet / ResNeXt / Wide ResNet with torchvision's keys (conv1, bn1, layer1..4, fc).

    Args:
        block: BasicBlock or Bottleneck (or a compatible block class, e.g. SE blocks).
        layers: number of blocks in each of the 4 stages, e.g. [3, 4, 6, 3].
        num_classes: output classes.
        in_channels: input image channels.
        groups: groups of the 3x3 convs (ResNeXt cardinality).
        width_per_group: channels per group of the 3x3 convs at the first stage (64 = ResNet).

    Shape:
        input (N, in_channels, H, W) with H, W >= 32; output (N, num_classes).
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, groups=1, width_per_group=64):
        super().__init__()
        check_common(num_classes, in_channels)
        if len(layers) != 4:
            raise ValueError(f"expected 4 stage depths for layers (got {layers!r})")
        self.in_planes = 64
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.in_planes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.in_planes, planes, stride, downsample, self.groups, self.base_width)]
        self.in_planes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.in_planes, planes, groups=self.groups, base_width=self.base_width))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(F.flatten(self.avgpool(x), 1))


_DEPTHS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3]),
           101: (Bottleneck, [3, 4, 23, 3]), 152: (Bottleneck, [3, 8, 36, 3])}


def _register(name: str, depth: int, source: str, groups: int = 1, width_per_group: int = 64) -> Builder:
    block, layers = _DEPTHS[depth]

    def builder(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        return ResNet(block, layers, num_classes=num_classes, in_channels=in_channels, groups=groups,
                      width_per_group=width_per_group)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name} (torchvision.models.{name}); input (N, 3, H, W), H, W >= 32."
    builder = register_model(name, family="resnet", source=f"torchvision.models.{name} ({source})")(builder)
    return builder


resnet18, resnet34, resnet50, resnet101, resnet152 = (
    _register(f"resnet{d}", d, "He et al. 2016, v1.5") for d in (18, 34, 50, 101, 152))
resnext50_32x4d = _register("resnext50_32x4d", 50, "Xie et al. 2017", groups=32, width_per_group=4)
wide_resnet50_2 = _register("wide_resnet50_2", 50, "Zagoruyko & Komodakis 2016", width_per_group=128)
