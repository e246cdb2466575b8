"""`load`: a zoo model with its weights, the preprocessing those weights expect and the class labels, in one object
that a command, a pipeline or a distributed worker can use as it is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Union

from numpy.typing import ArrayLike

from .. import data
from ..nn import Module
from ._registry import get_model, get_model_info, resolve_weights


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to classify images.

    Attributes:
        module: the model (a `convcore.nn.Module`, in eval mode): NCHW float32 batches -> logits.
        preprocess: the preprocessing its weights expect (a `convcore.data.Preset`): HWC image -> CHW float32;
            its fields tell the resize, crop, mean, std and interpolation.
        name: the model's name (a zoo name, or an ONNX file's name).
        weights: where the weights came from: a checkpoint path, or None (random initialization, or an ONNX file's
            own).
        input_size: the network input (C, H, W).
        fixed_batch: the one batch size the module takes (an ONNX file exported with a fixed batch), or None.

    Example:
        >>> m = convcore.models.load("efficientnet_lite0")      # the installed pretrained weights
        >>> x = m.preprocess(convcore.transforms.load_image("cat.jpg"))[None]
        >>> m.labels[int(m.module(x).argmax())]
        'tabby'
    """

    module: Module
    preprocess: data.Preset
    name: str
    weights: Optional[str]
    input_size: tuple[int, ...]
    fixed_batch: Optional[int] = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names, indexed by the model's output."""
        return self.preprocess.categories


def get_preset(name: str, weights: Union[str, os.PathLike[str], None] = None) -> data.Preset:
    """The preprocessing for zoo model `name` with `weights` (a checkpoint path or None): `convcore.data.get_preset`
    with the model's registered input size for models without a bundled preset."""
    return data.get_preset(name, weights, input_size=get_model_info(name).input_size)


def load(name: str, weights: Union[str, os.PathLike[str], Mapping[str, ArrayLike], None] = "installed",
         preset: Optional[str] = None) -> LoadedModel:
    """Build zoo model `name` with its weights, preprocessing and labels.

    Args:
        name: a name from `list_models()`.
        weights: "installed" (default): the pretrained weights already on this machine (a pip package's, or the
            download cache's; FileNotFoundError saying how to get them when there are none); "DEFAULT" or a
            published name ('IMAGENET1K_V2', see `data.list_weights`): downloaded into the cache on first use; an
            http(s) URL, likewise; a checkpoint path (.pth, .safetensors, .npz; a torchvision file name also selects
            torchvision's preprocessing for it) or a mapping of arrays; None: random initialization.
        preset: another zoo model's name whose preprocessing to use; default: the one these weights expect.

    Returns:
        A `LoadedModel`.
    """
    info = get_model_info(name)
    entry = None
    if isinstance(weights, (str, os.PathLike)):
        weights, entry = resolve_weights(name, weights)
    path = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else None
    module = get_model(name, weights=weights)
    if preset is not None:
        preprocess = get_preset(preset)
    elif entry is not None:
        preprocess = data.weights_preset(entry)
    else:
        preprocess = get_preset(name, path)
    return LoadedModel(module, preprocess, name, path, (info.input_size[0], preprocess.crop, preprocess.crop))
