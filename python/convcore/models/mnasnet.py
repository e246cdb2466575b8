"""MNASNet-B1 (Tan et al. 2019) 0.5/0.75/1.0/1.3 with torchvision's structure and state_dict keys."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import check_common, make_divisible
from ._registry import BuilderWithOptions, register_model


class _InvertedResidual(nn.Module):
    """1x1 expand -> kxk depthwise -> 1x1 project (all BN, ReLU after the first two), residual when shapes match."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, expansion):
        super().__init__()
        mid = in_channels * expansion
        self.apply_residual = in_channels == out_channels and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, kernel_size, padding=kernel_size // 2, stride=stride, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x):
        out = self.layers(x)
        return F.add(out, x) if self.apply_residual else out


def _stack(in_channels, out_channels, kernel_size, stride, expansion, repeats):
    blocks = [_InvertedResidual(in_channels, out_channels, kernel_size, stride, expansion)]
    blocks += [_InvertedResidual(out_channels, out_channels, kernel_size, 1, expansion) for _ in range(repeats - 1)]
    return nn.Sequential(*blocks)


class MNASNet(nn.Module):
    """MNASNet-B1 with torchvision's keys (layers.N.*, classifier.1).

    Args:
        alpha: depth (width) multiplier; channels rounded up to multiples of 8.
        num_classes: output classes.
        in_channels: input image channels.
        dropout: classifier dropout (identity at inference).

    Shape:
        input (N, in_channels, H, W) with H, W >= 1; output (N, num_classes).
    """

    def __init__(self, alpha=1.0, num_classes=1000, in_channels=3, dropout=0.2):
        super().__init__()
        check_common(num_classes, in_channels)
        if alpha <= 0:
            raise ValueError(f"expected a positive alpha (got {alpha!r})")
        # torchvision's _round_to_multiple_of(x, 8, 0.9) is the same rule as make_divisible
        d = [make_divisible(c * alpha, 8) for c in (32, 16, 24, 40, 80, 96, 192, 320)]
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, d[0], 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(d[0]),
            nn.ReLU(),
            nn.Conv2d(d[0], d[0], 3, padding=1, stride=1, groups=d[0], bias=False),
            nn.BatchNorm2d(d[0]),
            nn.ReLU(),
            nn.Conv2d(d[0], d[1], 1, bias=False),
            nn.BatchNorm2d(d[1]),
            _stack(d[1], d[2], 3, 2, 3, 3),
            _stack(d[2], d[3], 5, 2, 3, 3),
            _stack(d[3], d[4], 5, 2, 6, 3),
            _stack(d[4], d[5], 3, 1, 6, 2),
            _stack(d[5], d[6], 5, 2, 6, 4),
            _stack(d[6], d[7], 3, 1, 6, 1),
            nn.Conv2d(d[7], 1280, 1, bias=False),
            nn.BatchNorm2d(1280),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = F.flatten(F.adaptive_avg_pool2d(self.layers(x), (1, 1)), 1)
        return self.classifier(x)


def _register(alpha: float) -> BuilderWithOptions:
    name = "mnasnet" + str(alpha).replace(".", "_")

    def builder(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        return MNASNet(alpha, num_classes=num_classes, in_channels=in_channels, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"MNASNet-B1 with depth multiplier {alpha} (torchvision.models.{name})."
    return register_model(name, family="mnasnet", min_size=1,
                          source=f"torchvision.models.{name} (Tan et al. 2019)")(builder)


mnasnet0_5, mnasnet0_75, mnasnet1_0, mnasnet1_3 = (_register(a) for a in (0.5, 0.75, 1.0, 1.3))
