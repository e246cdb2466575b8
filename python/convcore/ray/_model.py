"""What travels to the actors: a model as configuration + weights (a pickled Plan or module) with its preprocessing
and labels, built once on the driver and put in the object store once."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

from .. import data, models
from ..plan import Plan
from ..plan import compile as compile_plan

DEFAULT_MODEL = "efficientnet_lite0"


@dataclass(frozen=True)
class ModelBundle:
    """A model ready to classify images anywhere: what `put_model` stores and every `Classifier` actor reads.

    Nothing in it refers to a file: the model pickles as its configuration and weights (a `convcore.Plan` pickles as
    its graph and options and is recompiled, repacked for the receiving CPU, when unpickled; an eager module pickles
    as its modules and arrays), so a worker needs only convcore installed, not the checkpoint.

    Attributes:
        model: a `convcore.Plan`, or the module itself (`eager=True`, or a model the compiler does not cover).
        preprocess: the preprocessing its weights expect (a `convcore.data.Preset`).
        name: the model's name.
        input_size: the network input (C, H, W).
        fixed_batch: the one batch size the model takes (an ONNX file exported with a fixed batch), or None.
    """

    model: object
    preprocess: data.Preset
    name: str
    input_size: tuple
    fixed_batch: Optional[int] = None

    @property
    def labels(self):
        """The class names, indexed by the model's output."""
        return self.preprocess.categories

    @property
    def engine(self):
        """'compiled plan' or 'eager'."""
        return "compiled plan" if isinstance(self.model, Plan) else "eager"


def bundle_model(model=DEFAULT_MODEL, weights="installed", *, preset=None, batch_size=16, eager=False):
    """A `ModelBundle` for `model`, compiled here (a driver) for batches of `batch_size`.

    Args:
        model: a zoo name (built with `convcore.models.load(model, weights, preset)`), a `convcore.models.LoadedModel`
            (e.g. an ONNX file loaded by the command line; `weights` and `preset` do not apply), or a `ModelBundle`
            (returned as it is).
        weights: for a zoo name: "installed" (the pretrained weights installed here), a checkpoint path (read here,
            once), a mapping of arrays, or None (random initialization).
        preset: another zoo model's name whose preprocessing to use.
        batch_size: the batch the Plan is warmed up for (any batch runs).
        eager: ship the module and run it op by op (the reference) instead of a compiled Plan.
    """
    if isinstance(model, ModelBundle):
        return model
    if isinstance(model, str):
        loaded = models.load(model, weights=weights, preset=preset)
    elif isinstance(model, models.LoadedModel):
        if (isinstance(weights, str) and weights != "installed") or weights is None or preset is not None:
            raise ValueError("weights, preset: apply to a zoo model name, not to a LoadedModel (which has both)")
        loaded = model
    else:
        raise TypeError(f"model: expected a zoo model name, a convcore.models.LoadedModel or a ModelBundle "
                        f"(got {type(model).__name__})")
    module = loaded.module
    if not eager:
        batch = loaded.fixed_batch or batch_size
        try:
            module = compile_plan(module, (batch,) + tuple(loaded.input_size))
        except (ValueError, TypeError, NotImplementedError) as exc:  # as the command line: run it, eagerly
            warnings.warn(f"cannot compile {loaded.name} ({exc}); running it eagerly", RuntimeWarning, stacklevel=2)
    return ModelBundle(module, loaded.preprocess, loaded.name, tuple(loaded.input_size), loaded.fixed_batch)
