"""MobileNetV2 (Sandler et al. 2018) with torchvision's structure and state_dict keys."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import check_common, conv_norm_act, make_divisible
from ._registry import register_model


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(in_channels, hidden, kernel_size=1, activation=nn.ReLU6))
        layers += [
            conv_norm_act(hidden, hidden, stride=stride, groups=hidden, activation=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv(x)
        return F.add(x, out) if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with torchvision's keys (features.N.*, classifier.1).

    Args:
        num_classes: output classes.
        in_channels: input image channels.
        width_mult: channel multiplier (channels rounded to multiples of `round_nearest`).
        round_nearest: channel rounding.
        dropout: classifier dropout (identity at inference).

    Shape:
        input (N, in_channels, H, W) with H, W >= 1; output (N, num_classes).
    """

    # t (expansion), c (channels), n (blocks), s (stride of the first block)
    settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                [6, 320, 1, 1]]

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0, round_nearest=8, dropout=0.2):
        super().__init__()
        check_common(num_classes, in_channels)
        channels = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [conv_norm_act(in_channels, channels, stride=2, activation=nn.ReLU6)]
        for t, c, n, s in self.settings:
            out_channels = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(channels, out_channels, s if i == 0 else 1, t))
                channels = out_channels
        features.append(conv_norm_act(channels, self.last_channel, kernel_size=1, activation=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(F.flatten(x, 1))


@register_model("mobilenet_v2", family="mobilenet_v2", min_size=1,
                source="torchvision.models.mobilenet_v2 (Sandler et al. 2018)")
def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 (width_mult=1.0 by default)."""
    return MobileNetV2(num_classes=num_classes, in_channels=in_channels, **kwargs)
