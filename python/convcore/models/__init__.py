"""The model zoo: torchvision-compatible classifiers and paper architectures, as `convcore.nn` modules.

Every model is registered by name with metadata (family, default input size, source):

    >>> from convcore import models
    >>> models.list_models('resnet*')
    ['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']
    >>> model = models.get_model('resnet50', weights='resnet50-11ad3fa6.pth')  # a torchvision checkpoint
    >>> models.summary('resnet50')['gmacs']
    4.089

torchvision models keep torchvision's structure and state_dict keys, so its checkpoints load unchanged (densenet's
legacy keys are renamed by `convert_state_dict`, as torchvision does). Every builder takes `num_classes` and
`in_channels`.

`load` bundles a model with its weights, the preprocessing they expect and the class labels (what a command, a
pipeline or a distributed worker needs):

    >>> m = models.load('efficientnet_lite0')                  # installed pretrained weights
    >>> logits = m.module(m.preprocess(img)[None])
    >>> m.labels[int(logits.argmax())]
"""

from ._load import LoadedModel, get_preset, load
from ._registry import (ModelInfo, closest_models, convert_state_dict, get_model, get_model_info, list_models,
                        register_model)
from ._summary import LayerInfo, count_macs, count_parameters, layers, summary
from .alexnet import AlexNet, alexnet
from .amoebanet import AmoebaNet, amoebanet
from .densenet import DenseNet, convert_densenet_state_dict, densenet121, densenet161, densenet169, densenet201
from .efficientnet import (EfficientNet, EfficientNetLite, efficientnet_b0, efficientnet_b1, efficientnet_b2,
                           efficientnet_b3, efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7,
                           efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, efficientnet_lite3,
                           efficientnet_lite4)
from .googlenet import GoogLeNet, googlenet
from .lenet import LeNet5, lenet5
from .mnasnet import MNASNet, mnasnet0_5, mnasnet0_75, mnasnet1_0, mnasnet1_3
from .mobilenet import MobileNetV2, mobilenet_v2
from .preact_resnet import (PreActResNet, preact_resnet18, preact_resnet34, preact_resnet50, preact_resnet101,
                            preact_resnet152)
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d, wide_resnet50_2
from .senet import se_resnet50, se_resnet101, se_resnet152
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

__all__ = ["LayerInfo", "LoadedModel", "ModelInfo", "closest_models", "convert_state_dict", "count_macs",
           "count_parameters", "get_model", "get_model_info", "get_preset", "layers", "list_models", "load",
           "register_model", "summary", "AlexNet", "AmoebaNet",
           "DenseNet", "EfficientNet", "EfficientNetLite", "GoogLeNet", "LeNet5", "MNASNet", "MobileNetV2",
           "PreActResNet", "ResNet", "VGG", "convert_densenet_state_dict",
           # the builders, one per registered name (list_models(); tests/models/test_models_registry.py checks it)
           "alexnet", "amoebanet", "densenet121", "densenet161", "densenet169", "densenet201", "efficientnet_b0",
           "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
           "efficientnet_b6", "efficientnet_b7", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
           "efficientnet_lite3", "efficientnet_lite4", "googlenet", "lenet5", "mnasnet0_5", "mnasnet0_75",
           "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "preact_resnet101", "preact_resnet152", "preact_resnet18",
           "preact_resnet34", "preact_resnet50", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
           "resnext50_32x4d", "se_resnet101", "se_resnet152", "se_resnet50", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
           "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "wide_resnet50_2"]
