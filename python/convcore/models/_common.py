"""Small building blocks shared by several model files."""

from .. import functional as F
from .. import nn


def make_divisible(value, divisor=8, min_value=None):
    """Round a channel count to a multiple of `divisor`, never more than 10% below `value` (TF/torchvision rule)."""
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_norm_act(in_channels, out_channels, kernel_size=3, stride=1, groups=1, activation=nn.ReLU, eps=1e-5,
                  padding=None):
    """torchvision's `Conv2dNormActivation`: Sequential(conv (no bias), BatchNorm2d[, activation]).

    The state_dict keys are '0.weight' (conv) and '1.*' (BN), as in torchvision. `padding` defaults to
    (kernel_size - 1) // 2; `activation` is a module class or None.
    """
    if padding is None:
        padding = (kernel_size - 1) // 2
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=eps),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) with 1x1 convs, as torchvision's `ops.SqueezeExcitation`.

    scale = sigmoid(fc2(act(fc1(avgpool(x))))); output = x * scale. Keys: fc1.*, fc2.* (convs with bias).
    """

    def __init__(self, channels, squeeze_channels, activation=nn.ReLU):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return F.mul(x, scale)


def check_common(num_classes, in_channels):
    """Validate the options every builder takes."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"expected an int for {name} (got {type(value).__name__})")
        if value < 1:
            raise ValueError(f"expected a positive {name} (got {value})")
