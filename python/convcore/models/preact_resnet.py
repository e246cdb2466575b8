"""Pre-activation ResNet ("ResNet v2", He et al. 2016, 'Identity Mappings in Deep Residual Networks').

BN-ReLU come before each conv; the shortcut is an identity, or a 1x1 projection of the pre-activated input where
the shape changes; one BN-ReLU after the last block. The ImageNet layout (7x7 stem conv without BN, max pool) and
the state_dict keys follow timm's resnetv2_18/34/50/101/152 (stem.conv, stages.N.blocks.M.*, norm, head.fc as a
1x1 conv), so timm checkpoints load unchanged.
"""

from __future__ import annotations

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import Builder, register_model


class PreActBasic(nn.Module):
    """BN-ReLU-conv3x3 (stride), BN-ReLU-conv3x3; shortcut: identity or 1x1 conv of the pre-activated input."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out_channels = planes * self.expansion
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = _Downsample(in_channels, out_channels, stride)
        self.norm1 = _NormAct(in_channels)
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.norm2 = _NormAct(planes)
        self.conv2 = nn.Conv2d(planes, out_channels, 3, padding=1, bias=False)

    def forward(self, x):
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        out = self.conv2(self.norm2(self.conv1(x_preact)))
        return F.add(out, shortcut)


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (stride), BN-ReLU-conv1x1 (x4); shortcut as in PreActBasic."""

    expansion = 4

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out_channels = planes * self.expansion
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = _Downsample(in_channels, out_channels, stride)
        self.norm1 = _NormAct(in_channels)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.norm2 = _NormAct(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm3 = _NormAct(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)

    def forward(self, x):
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        out = self.conv1(x_preact)
        out = self.conv2(self.norm2(out))
        out = self.conv3(self.norm3(out))
        return F.add(out, shortcut)


class _NormAct(nn.BatchNorm2d):
    """BatchNorm2d followed by ReLU in one module (timm's BatchNormAct2d: same keys as a BatchNorm2d)."""

    def forward(self, x):
        return F.relu(super().forward(x))


class _Downsample(nn.Module):
    """1x1 (strided) projection of the shortcut, no BN (pre-activation: its input is already normalized)."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x):
        return self.conv(x)


class _Stage(nn.Module):
    def __init__(self, block, in_channels, planes, depth, stride):
        super().__init__()
        blocks = [block(in_channels, planes, stride)]
        blocks += [block(planes * block.expansion, planes) for _ in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class _Stem(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(self.conv(x))


class _Head(nn.Module):
    def __init__(self, channels, num_classes):
        super().__init__()
        self.fc = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return F.flatten(self.fc(F.adaptive_avg_pool2d(x, (1, 1))), 1)


class PreActResNet(nn.Module):
    """Pre-activation ResNet with timm's resnetv2 keys.

    Args:
        block: PreActBasic or PreActBottleneck.
        layers: blocks per stage, e.g. [3, 4, 6, 3].
        num_classes: output classes.
        in_channels: input image channels.

    Shape:
        input (N, in_channels, H, W) with H, W >= 32; output (N, num_classes).
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3):
        super().__init__()
        check_common(num_classes, in_channels)
        self.stem = _Stem(in_channels)
        stages, channels = [], 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stages.append(_Stage(block, channels, planes, depth, 1 if i == 0 else 2))
            channels = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.norm = _NormAct(channels)
        self.head = _Head(channels, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.stages(self.stem(x))))


_DEPTHS = {18: (PreActBasic, [2, 2, 2, 2]), 34: (PreActBasic, [3, 4, 6, 3]), 50: (PreActBottleneck, [3, 4, 6, 3]),
           101: (PreActBottleneck, [3, 4, 23, 3]), 152: (PreActBottleneck, [3, 8, 36, 3])}


def _register(depth: int) -> Builder:
    name = f"preact_resnet{depth}"
    block, layers = _DEPTHS[depth]

    def builder(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        return PreActResNet(block, layers, num_classes=num_classes, in_channels=in_channels)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"Pre-activation ResNet-{depth} (He et al. 2016 v2); timm's resnetv2_{depth} layout."
    builder = register_model(name, family="preact_resnet",
                             source=f"He et al. 2016 'Identity Mappings in Deep Residual Networks'; keys of timm "
                                    f"resnetv2_{depth}")(builder)
    return builder


preact_resnet18, preact_resnet34, preact_resnet50, preact_resnet101, preact_resnet152 = (
    _register(d) for d in (18, 34, 50, 101, 152))
