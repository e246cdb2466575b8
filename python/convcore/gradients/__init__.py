"""convcore.gradients: gradients through the Graph, for seeing what a convnet learns (`convcore.visualize`).

`convcore.grad(model, x, objective)` returns the objective's value and its gradient with respect to the input. Each
op's backward rule is part of its declaration (`convcore.ops.Backward`; the convolution's input gradient is a
transposed convolution in C++, csrc/ops/conv2d/conv2d_backward.cpp); a `GradientProgram` runs the graph forward,
keeping only the values those rules read, then backward in reverse order.

    >>> value, dx = convcore.grad(model, x, 281)                     # d logit[281] / dx, summed over the batch
    >>> value, dx = convcore.grad(model, x, "layer3.1.conv2:17")     # the mean of channel 17 of that layer
    >>> from convcore.gradients import channel, neuron
    >>> value, dx = convcore.grad(model, x, channel("layer4", 5) - 0.5 * neuron("layer3", 9))
    >>> program = GradientProgram(model, x.shape, 281)               # prepared once, run many times
    >>> result = program(x)                                          # .value, .values, .grads, .activations

Objectives (`objective.py`): an int (that output logit, summed over the batch), "layer:channel" (the mean of that
channel at the layer named by its module path), "layer" (the mean of the layer), "layer:channel@y,x" (one neuron),
or weighted sums of `logit`, `channel`, `layer` and `neuron` terms. Weight gradients are not computed today: a rule
receives which of its inputs' gradients are wanted (`BackwardCall.needs`) and reads its forward values through
`Backward.saves`, which is where they would go.
"""

from __future__ import annotations

from typing import Any, Optional, Union, overload

from .._types import Array
from .objective import Objective, ObjectiveLike, Term, as_objective, channel, layer, logit, neuron
from .program import GradientProgram, GradResult, Layers, guided_rules, layer_names, model_graph

__all__ = ["grad", "GradientProgram", "GradResult", "Layers", "Objective", "ObjectiveLike", "Term", "as_objective",
           "channel", "layer", "logit", "neuron", "guided_rules", "layer_names", "model_graph"]


@overload
def grad(model: Any, x: Array, objective: ObjectiveLike, wrt: Optional[str] = None) -> tuple[float, Array]: ...


@overload
def grad(model: Any, x: Array, objective: ObjectiveLike,
         wrt: Union[list[str], tuple[str, ...]]) -> tuple[float, list[Array]]: ...


def grad(model: Any, x: Array, objective: ObjectiveLike,
         wrt: Union[str, list[str], tuple[str, ...], None] = None) -> tuple[float, Union[Array, list[Array]]]:
    """The value of `objective` on `x` and its gradient with respect to `x` (or to the layer(s) `wrt`).

    Args:
        model: a `convcore.nn.Module`, a `Graph`, a model from `convcore.onnx.load`, a `LoadedModel` or a `Plan`.
        x: float32 input batch (N, C, H, W).
        objective: an int (that output logit, summed over the batch), "layer:channel" (the mean of that channel at
            the layer named by its module path, e.g. "layer3.1.conv2:17"), "layer" (the mean of the layer),
            "layer:channel@y,x" (one neuron), or an `Objective` (weighted sums of `logit`, `channel`, `layer` and
            `neuron` terms; also a dict {spec: weight}).
        wrt: None (the input), a layer name, or a list of them.

    Returns:
        (value, gradient): the objective (a float, summed over the batch) and d objective / d x shaped like x (a list
        of gradients for a list `wrt`).

    Raises:
        ValueError: an unknown layer or channel, a class index out of range (the message names the valid choices).
        NotImplementedError: the path from `wrt` to the objective crosses an op without a backward rule.
    """
    shape = getattr(x, "shape", None)
    program = GradientProgram(model, shape, objective, wrt, forward="eager")
    result = program(x)
    grads = [result.grads[v] for v in program.wrt]
    return result.value, (grads if isinstance(wrt, (list, tuple)) else grads[0])
