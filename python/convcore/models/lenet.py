"""LeNet-5 (LeCun et al. 1998, 'Gradient-Based Learning Applied to Document Recognition')."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import register_model

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet5(nn.Module):
    """LeNet-5 on 32x32 images: C1 conv5x5 (6) - S2 pool - C3 conv5x5 (16) - S4 pool - C5 conv5x5 (120) -
    F6 linear (84) - output linear.

    Differences from the paper, as in common modern versions: C3 connects to all 6 S2 maps (the paper's sparse
    table gives 1,516 instead of 2,416 weights), the subsampling layers have no trainable coefficient, and the output
    is a linear layer instead of Euclidean RBF units. `activation='tanh', pooling='avg'` gives the paper's choices
    (its tanh is scaled, 1.7159 tanh(2x/3); plain tanh here).

    Args:
        num_classes: output classes (10 digits in the paper).
        in_channels: input image channels (1 in the paper).
        activation: 'relu' (default) or 'tanh'.
        pooling: 'max' (default) or 'avg'.

    Shape:
        input (N, in_channels, 32, 32) (C5 then sees 5x5 maps and outputs 1x1); output (N, num_classes).
    """

    def __init__(self, num_classes=10, in_channels=1, activation="relu", pooling="max"):
        super().__init__()
        check_common(num_classes, in_channels)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"expected activation 'relu' or 'tanh' (got {activation!r})")
        if pooling not in _POOLS:
            raise ValueError(f"expected pooling 'max' or 'avg' (got {pooling!r})")
        act, pool = _ACTIVATIONS[activation], _POOLS[pooling]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5), act(), pool(kernel_size=2, stride=2),   # C1, S2
            nn.Conv2d(6, 16, kernel_size=5), act(), pool(kernel_size=2, stride=2),            # C3, S4
            nn.Conv2d(16, 120, kernel_size=5), act(),                                         # C5
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), act(), nn.Linear(84, num_classes))  # F6, output

    def forward(self, x):
        return self.classifier(F.flatten(self.features(x), 1))


@register_model("lenet5", family="lenet", input_size=(1, 32, 32), min_size=32,
                source="LeCun et al. 1998 'Gradient-Based Learning Applied to Document Recognition' (LeNet-5)")
def lenet5(num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> LeNet5:
    """LeNet-5 (ReLU and max pooling by default; activation='tanh', pooling='avg' for the paper's choices)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **kwargs)
