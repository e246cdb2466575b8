"""AlexNet (Krizhevsky et al. 2012), torchvision's single-tower variant."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import check_common
from ._registry import register_model


class AlexNet(nn.Module):
    """AlexNet with torchvision's structure and state_dict keys (features.*, classifier.1/4/6).

    Args:
        num_classes: output classes.
        in_channels: input image channels.
        dropout: dropout probability of the classifier (identity at inference).

    Shape:
        input (N, in_channels, H, W) with H, W >= 63; output (N, num_classes).
    """

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.5):
        super().__init__()
        check_common(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(F.flatten(x, 1))


@register_model("alexnet", family="alexnet", min_size=63,
                source="torchvision.models.alexnet (Krizhevsky et al. 2012; Krizhevsky 2014 'One weird trick')")
def alexnet(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> AlexNet:
    """AlexNet. Example: `alexnet(num_classes=10)(x)` with x of shape (N, 3, 224, 224) -> (N, 10)."""
    return AlexNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
