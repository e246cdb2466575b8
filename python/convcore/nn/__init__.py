"""convcore.nn: torch.nn-like layers for inference, with numpy float32 arrays as parameters.

Modules mirror torch.nn: the same constructor arguments, attribute names and state_dict keys, so torchvision
checkpoints load with `load_state_dict({k: v.numpy() for k, v in torch_sd.items()})`.

Example:
    >>> from convcore import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    >>> net(np.zeros((1, 3, 32, 32), np.float32)).shape
    (1, 10)
"""

from . import init
from .activation import (Hardsigmoid, Hardswish, LeakyReLU, LogSoftmax, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
                         Tanh)
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .linear import Dropout, Flatten, Identity, Linear
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .normalization import BatchNorm2d, LocalResponseNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d

manual_seed = init.manual_seed

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten",
    "Hardsigmoid", "Hardswish", "Identity", "IncompatibleKeys", "LeakyReLU", "Linear", "LocalResponseNorm",
    "LogSoftmax", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "Parameter", "ReLU", "ReLU6", "Sequential",
    "SiLU", "Sigmoid", "Softmax", "StateDictError", "Tanh", "init", "manual_seed",
]
