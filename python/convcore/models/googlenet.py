"""GoogLeNet / Inception v1 (Szegedy et al. 2015), torchvision's variant (BN after every conv)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import register_model


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm2d(eps=1e-3) -> ReLU, keys conv.* and bn.*."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1->3x3; 1x1->3x3 (torchvision's '5x5'); pool->1x1) concatenated."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # torchvision uses a 3x3 here (a known deviation from the paper's 5x5 kept for its weights)
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        return F.concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier head (training only; kept so torchvision checkpoints with aux weights load)."""

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(F.flatten(x, 1)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's structure and state_dict keys.

    Inference only: the output is always the main logits. The auxiliary heads (aux1, aux2) are built only with
    aux_logits=True; otherwise a checkpoint's aux weights (torchvision's googlenet-1378be20.pth has them) are
    ignored on load.

    Args:
        num_classes: output classes.
        in_channels: input image channels.
        aux_logits: build the auxiliary heads aux1/aux2 (training-only; default False).
        transform_input: re-normalize the input from ImageNet mean/std to the [-1, 1] range the original weights
            expect, as torchvision does (needs 3 input channels).
        dropout: dropout before fc (identity at inference); dropout_aux: in the aux heads.

    Shape:
        input (N, in_channels, H, W) with H, W >= 15; output (N, num_classes).
    """

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=False, transform_input=False, dropout=0.2,
                 dropout_aux=0.7):
        super().__init__()
        check_common(num_classes, in_channels)
        if transform_input and in_channels != 3:
            raise ValueError(f"expected in_channels=3 with transform_input=True (got {in_channels})")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        if transform_input:
            # x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5 per channel (torchvision's _transform_input)
            std = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
            mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
            self.register_buffer("input_scale", std / 0.5, persistent=False)
            self.register_buffer("input_shift", (mean - 0.5) / 0.5, persistent=False)

    def load_state_dict(self, state_dict, strict=True):
        """Like `Module.load_state_dict`; without aux heads, a checkpoint's aux1.* / aux2.* entries are ignored
        (torchvision does the same when it loads its weights with aux_logits=False)."""
        if not self.aux_logits and hasattr(state_dict, "items"):
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}
        return super().load_state_dict(state_dict, strict=strict)

    def forward(self, x):
        if self.transform_input:
            x = F.add(F.mul(x, self.input_scale), self.input_shift)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4d(self.inception4c(self.inception4b(self.inception4a(x))))
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = F.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


@register_model("googlenet", family="googlenet", min_size=15,
                source="torchvision.models.googlenet (Szegedy et al. 2015 'Going Deeper with Convolutions')")
def googlenet(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet (aux_logits=False and transform_input=False by default)."""
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
