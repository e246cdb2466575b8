"""VGG 11/13/16/19 (Simonyan & Zisserman 2015), with and without batch norm, as torchvision builds them."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import BuilderWithOptions, register_model

# Conv widths per configuration; "M" is a 2x2 max pool (torchvision's cfgs "A", "B", "D", "E").
_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _features(config, batch_norm, in_channels):
    layers = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG with torchvision's structure and state_dict keys (features.N.*, classifier.0/3/6).

    Args:
        depth: 11, 13, 16 or 19 weight layers.
        batch_norm: add BatchNorm2d after every conv (the `_bn` variants).
        num_classes: output classes.
        in_channels: input image channels.
        dropout: classifier dropout probability (identity at inference).

    Shape:
        input (N, in_channels, H, W) with H, W >= 32; output (N, num_classes).
    """

    def __init__(self, depth=16, batch_norm=False, num_classes=1000, in_channels=3, dropout=0.5):
        super().__init__()
        check_common(num_classes, in_channels)
        if depth not in _CONFIGS:
            raise ValueError(f"expected depth in {sorted(_CONFIGS)} (got {depth!r})")
        self.features = _features(_CONFIGS[depth], batch_norm, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(F.flatten(x, 1))


def _register(depth: int, batch_norm: bool) -> BuilderWithOptions:
    name = f"vgg{depth}" + ("_bn" if batch_norm else "")

    def builder(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        return VGG(depth, batch_norm, num_classes=num_classes, in_channels=in_channels, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"VGG-{depth}{' with batch norm' if batch_norm else ''} (torchvision.models.{name})."
    return register_model(name, family="vgg",
                          source=f"torchvision.models.{name} (Simonyan & Zisserman 2015)")(builder)


vgg11, vgg13, vgg16, vgg19 = (_register(d, False) for d in (11, 13, 16, 19))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_register(d, True) for d in (11, 13, 16, 19))
