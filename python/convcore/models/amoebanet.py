"""AmoebaNet-A (Real et al. 2019, 'Regularized Evolution for Image Classifier Architecture Search').

Built from the paper's AmoebaNet-A genotype (Fig. 4) following the TF reference, tensorflow/tpu
models/official/amoeba_net (model_builder.py, network_utils.py): a 3x3 stride-2 stem conv (no padding), two
reduction "stem" cells (F/4 and F/2 filters), then 3 stacks of N normal cells (F, 2F, 4F filters) with a reduction
cell before the 2nd and 3rd stack, ReLU, global average pooling and a linear classifier. Every conv is ReLU-conv-BN
(BN eps 1e-3); separable ops are two stacked (ReLU, depthwise kxk, pointwise 1x1, BN); the 1x7-7x1 op is a
bottleneck at a quarter of the channels. Parameters: N=4, F=50: 5.09M; N=6, F=190: 86.7M; N=6, F=448: 468M (the
paper: 5.1M, 86.7M, 469M). The auxiliary head and drop path are training-only and not built. Our own state_dict
layout (there is no reference PyTorch checkpoint). Deviations: strided ops pad symmetrically (k // 2) where TF pads
'SAME' (same output sizes, the extra row on the other side); the reference asserts an even filter count in its
factorized reduction, here an odd count (F=190 gives 47 and 95 in the stem cells) gives the extra channel to the
second path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import register_model

# (input state, operation) pairs; each consecutive pair is summed into a new state. States 0 and 1 are the cell's
# inputs: 0 = the previous cell's output, 1 = the one before it.
NORMAL_OPERATIONS = [(0, "avg_pool_3x3"), (0, "max_pool_3x3"), (1, "separable_3x3_2"), (1, "none"),
                     (0, "none"), (1, "avg_pool_3x3"), (0, "separable_3x3_2"), (2, "separable_5x5_2"),
                     (5, "avg_pool_3x3"), (0, "separable_3x3_2")]
NORMAL_CONCAT = [1, 3, 4, 6]  # the states no operation consumes
REDUCTION_OPERATIONS = [(1, "separable_3x3_2"), (0, "avg_pool_3x3"), (0, "max_pool_3x3"), (2, "separable_7x7_2"),
                        (1, "max_pool_3x3"), (0, "max_pool_3x3"), (4, "separable_3x3_2"), (0, "1x7_7x1"),
                        (1, "avg_pool_3x3"), (0, "separable_7x7_2")]
REDUCTION_CONCAT = [2, 3, 4, 5, 6]


_EPS = 1e-3  # the reference's BatchNorm epsilon


def _conv_bn(in_channels, out_channels, kernel_size, stride=1, padding=0):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                   bias=False), nn.BatchNorm2d(out_channels, eps=_EPS))


def _relu_conv_bn(in_channels, out_channels, kernel_size=1, stride=1, padding=0):
    return nn.Sequential(nn.ReLU(), _conv_bn(in_channels, out_channels, kernel_size, stride, padding))


class SeparableStack(nn.Module):
    """Two (ReLU, depthwise kxk, pointwise 1x1, BN) layers; the stride is on the first depthwise conv."""

    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        layers = []
        for i in range(2):
            channels = in_channels if i == 0 else out_channels
            layers += [nn.ReLU(),
                       nn.Conv2d(channels, channels, kernel_size, stride=stride if i == 0 else 1,
                                 padding=kernel_size // 2, groups=channels, bias=False),
                       nn.Conv2d(channels, out_channels, 1, bias=False),
                       nn.BatchNorm2d(out_channels, eps=_EPS)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Pool(nn.Module):
    """3x3 average (padding not counted) or max pool; a 1x1 conv + BN after it when the channels change."""

    def __init__(self, kind, in_channels, out_channels, stride):
        super().__init__()
        if kind == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)
        self.project = None
        if in_channels != out_channels:
            self.project = _conv_bn(in_channels, out_channels, 1)

    def forward(self, x):
        x = self.pool(x)
        return x if self.project is None else self.project(x)


class FactorizedReduce(nn.Module):
    """ReLU, then two 1x1 stride-2 convs, one on the input and one on the input shifted by one pixel, concatenated
    and batch-normalized: halves H and W without discarding 3/4 of the pixels (NASNet's factorized reduction)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.path1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False)
        self.path2 = nn.Conv2d(in_channels, out_channels - out_channels // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=_EPS)

    def forward(self, x):
        x = F.relu(x)
        # The shifted path samples pixels (2i+1, 2j+1) (zero past the edge): a 2x2 stride-2 conv whose kernel is
        # the 1x1 weight at its bottom-right tap, with one row/column of zero padding at the bottom/right.
        shifted = np.pad(self.path2.weight, ((0, 0), (0, 0), (1, 0), (1, 0)))
        path2 = F.conv2d(x, shifted, stride=2, padding=(0, 1, 0, 1))
        return self.bn(F.concat([self.path1(x), path2], axis=1))


def _operation(name, in_channels, out_channels, stride):
    if name.startswith("separable"):
        return SeparableStack(in_channels, out_channels, int(name[10]), stride)
    if name.endswith("pool_3x3"):
        return Pool(name[:3], in_channels, out_channels, stride)
    if name == "1x7_7x1":
        # a bottleneck at a quarter of the channels (the reference's "pre_1x1 ... post_1x1"); none below 4 channels
        mid = out_channels // 4
        if mid < 1:
            return nn.Sequential(nn.ReLU(), _conv_bn(in_channels, out_channels, (1, 7), (1, stride), (0, 3)),
                                 nn.ReLU(), _conv_bn(out_channels, out_channels, (7, 1), (stride, 1), (3, 0)))
        return nn.Sequential(nn.ReLU(), _conv_bn(in_channels, mid, 1),
                             nn.ReLU(), _conv_bn(mid, mid, (1, 7), (1, stride), (0, 3)),
                             nn.ReLU(), _conv_bn(mid, mid, (7, 1), (stride, 1), (3, 0)),
                             nn.ReLU(), _conv_bn(mid, out_channels, 1))
    if name == "none":
        if stride == 1 and in_channels == out_channels:
            return nn.Identity()
        return _relu_conv_bn(in_channels, out_channels, stride=stride)
    raise ValueError(f"unknown AmoebaNet operation {name!r}")


class Cell(nn.Module):
    """One normal or reduction cell.

    The current input goes through ReLU-conv1x1-BN to `filters` channels (state 0). The earlier input (state 1) is
    used as it is when it already matches, else factorized-reduced (it is 2x larger) or ReLU-conv1x1-BN'd (other
    channel count); the very first cell has no earlier input and uses its own raw input. Operations reading states
    0 and 1 in a reduction cell have stride 2.

    Args:
        in_channels: channels of the current input.
        prev_channels: channels of the earlier input (None: the first cell).
        prev_is_larger: the earlier input has 2x the spatial size of the current one.
        filters: channels of each state; the output has len(concat) * filters channels.
        reduction: build a reduction cell (else a normal cell).
    """

    def __init__(self, in_channels, prev_channels, prev_is_larger, filters, reduction):
        super().__init__()
        self.base = _relu_conv_bn(in_channels, filters)
        self.prev = None
        if prev_channels is None:
            prev_channels = in_channels
        elif prev_is_larger:
            self.prev = FactorizedReduce(prev_channels, filters)
            prev_channels = filters
        elif prev_channels != filters:
            self.prev = _relu_conv_bn(prev_channels, filters)
            prev_channels = filters
        pairs = REDUCTION_OPERATIONS if reduction else NORMAL_OPERATIONS
        self.inputs = [index for index, _ in pairs]
        self.concat = REDUCTION_CONCAT if reduction else NORMAL_CONCAT
        channels = [filters, prev_channels] + [filters] * (len(pairs) // 2)
        self.ops = nn.ModuleList([
            _operation(name, channels[index], filters, 2 if reduction and index < 2 else 1)
            for index, name in pairs])
        self.out_channels = len(self.concat) * filters

    def forward(self, x, prev):
        # `prev` is None only for the first cell, whose earlier input is its own raw input
        prev = x if prev is None else prev
        states = [self.base(x), prev if self.prev is None else self.prev(prev)]
        for i in range(0, len(self.ops), 2):
            left = self.ops[i](states[self.inputs[i]])
            right = self.ops[i + 1](states[self.inputs[i + 1]])
            states.append(F.add(left, right))
        return F.concat([states[i] for i in self.concat], axis=1)


class AmoebaNet(nn.Module):
    """AmoebaNet-A for ImageNet.

    Args:
        num_normal_cells: N, normal cells per stack (3 stacks).
        filters: F, channels of each state in the first stack's cells (doubled by every reduction cell).
        num_classes: output classes.
        in_channels: input image channels.
        stem_filters: channels of the stem conv (32 in the reference).
        dropout: classifier dropout (identity at inference).

    Shape:
        input (N, in_channels, H, W) with H, W >= 35 (the stem conv has no padding); output (N, num_classes).
    """

    def __init__(self, num_normal_cells=6, filters=190, num_classes=1000, in_channels=3, stem_filters=32,
                 dropout=0.5):
        super().__init__()
        check_common(num_classes, in_channels)
        for name, value, least in (("num_normal_cells", num_normal_cells, 1), ("filters", filters, 4)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"expected an int for {name} (got {type(value).__name__})")
            if value < least:  # filters / 4 channels in the first stem cell
                raise ValueError(f"expected {name} >= {least} (got {value})")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_filters, 3, stride=2, bias=False),
                                  nn.BatchNorm2d(stem_filters, eps=_EPS))
        # (reduction, filter scale) for every cell: 2 stem reduction cells, then N normal / reduction / N / ... / N
        plan = [(True, 0.25), (True, 0.5)]
        for stack in range(3):
            if stack > 0:
                plan.append((True, 2.0 ** stack))
            plan += [(False, 2.0 ** stack)] * num_normal_cells
        cells = []
        in_ch, prev_ch, prev_is_larger = stem_filters, None, False
        for reduction, scale in plan:
            cell = Cell(in_ch, prev_ch, prev_is_larger, int(filters * scale), reduction)
            cells.append(cell)
            in_ch, prev_ch, prev_is_larger = cell.out_channels, in_ch, reduction
        self.cells = nn.ModuleList(cells)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = self.stem(x)
        prev = None
        for cell in self.cells:
            x, prev = cell(x, prev), x
        x = F.flatten(F.adaptive_avg_pool2d(F.relu(x), (1, 1)), 1)
        return self.fc(self.dropout(x))


@register_model("amoebanet", family="amoebanet", input_size=(3, 331, 331), min_size=35,
                source="Real et al. 2019 'Regularized Evolution for Image Classifier Architecture Search' "
                       "(AmoebaNet-A genotype; NASNet ImageNet skeleton, Zoph et al. 2018)")
def amoebanet(num_classes: int = 1000, in_channels: int = 3, num_normal_cells: int = 6, filters: int = 190,
              **kwargs: Any) -> AmoebaNet:
    """AmoebaNet-A; default N=6, F=190 (the paper's 86.7M-parameter ImageNet model at 331x331).

    The paper's other sizes: N=6, F=448 (469M parameters) and the mobile N=4, F=50 (5.1M, 224x224).
    """
    return AmoebaNet(num_normal_cells, filters, num_classes=num_classes, in_channels=in_channels, **kwargs)
