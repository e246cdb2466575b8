"""Reductions over any axes: reduce_sum, reduce_mean, reduce_max, reduce_min, reduce_prod, reduce_l1, reduce_l2,
reduce_sum_square, reduce_log_sum, reduce_log_sum_exp (kernel: csrc/ops/reduce)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .. import _core
from .. import _validate as V
from .._types import Array, Axes
from .registry import PlanRule, declare

__all__ = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
           "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp"]


def axes_of(axes, rank, name="axes"):
    """None (every axis), an int or a sequence of distinct ints in [-rank, rank) -> sorted non-negative tuple."""
    if axes is None:
        return tuple(range(rank))
    if V.is_int(axes):
        axes = (axes,)
    if not isinstance(axes, (tuple, list)):
        raise TypeError(f"{name}: expected None, an int or a sequence of ints (got {axes!r})")
    resolved = tuple(sorted(V.axis(a, rank, name) for a in axes))
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"{name}: expected distinct axes (got {tuple(axes)})")
    return resolved


def _reduce_rule(shapes, attrs):
    x = shapes[0]
    axes = axes_of(attrs["axes"], len(x))
    keepdims = bool(attrs["keepdims"])
    shape = tuple(1 if d in axes else n for d, n in enumerate(x)) if keepdims else \
        tuple(n for d, n in enumerate(x) if d not in axes)
    return {"axes": axes, "keepdims": keepdims}, shape


def _reduce_kernel(kind):
    def kernel(x, *, out, axes, keepdims):
        _core.reduce(x, out, list(axes), kind)
        return out

    return kernel


def _reduce_to_onnx(op_type):
    def lower(em, node):
        x, out, n = node.inputs[0], node.outputs[0], node.name
        axes, keepdims = list(node.attrs["axes"]), int(node.attrs["keepdims"])
        if not axes:  # nothing reduced: a copy (an empty axes list means "all axes" to ONNX)
            return em.node("Identity", [x], out, n)
        since = 13 if op_type == "ReduceSum" else 18  # axes became an input
        if em.opset >= since:
            return em.node(op_type, [x, em.const(f"{n}.axes", axes, np.int64)], out, n, keepdims=keepdims)
        return em.node(op_type, [x], out, n, axes=axes, keepdims=keepdims)

    return lower


class Reduction(Protocol):
    """The signature of every reduction (the type checkers' view of `reduce_sum`, ...)."""

    def __call__(self, x: Array, axes: Axes = None, keepdims: bool = True) -> Array: ...


def _reduction(name: str, kind: str, op_type: str, doc: str) -> Reduction:
    def spec(x: Array, axes: Axes = None, keepdims: bool = True) -> Array:
        pass

    spec.__name__ = spec.__qualname__ = name
    spec.__doc__ = (f"{doc} over `axes` (None: every axis; negative axes count from the end), keeping them as size "
                    f"1 when `keepdims`.\n\n    Normalised: ``axes`` a sorted tuple of non-negative ints, ``keepdims`` "
                    f"a bool.\n    ")
    return declare(("x",), _reduce_rule, _reduce_kernel(kind), onnx=_reduce_to_onnx(op_type), allow_empty=True,
                   plan=_PLAN)(spec)


def _plan_ok(node, graph):
    """A reduction a Plan runs (plan/reduction.py): something reduced, not the first axis, which is the batch."""
    axes, x = node.attrs["axes"], node.inputs[0]
    return bool(axes) and 0 not in axes and graph.shapes[x][0] == graph.shapes[graph.inputs[0]][0]


def _over_last_axis(node, graph):
    """A reduction over the last axis only: of a channels-last value, each pixel's own channels."""
    return tuple(node.attrs["axes"]) == (len(graph.shapes[node.inputs[0]]) - 1,)


_PLAN = PlanRule(lambda low, node: low.reduce(node), _plan_ok, needs=frozenset({"reduce"}), per_pixel=_over_last_axis,
                 sequences=True, any_layout=True)


reduce_sum = _reduction("reduce_sum", "sum", "ReduceSum", "Sum")
reduce_mean = _reduction("reduce_mean", "mean", "ReduceMean", "Mean")
reduce_max = _reduction("reduce_max", "max", "ReduceMax", "Maximum (NaN propagates; -inf for an empty set)")
reduce_min = _reduction("reduce_min", "min", "ReduceMin", "Minimum (NaN propagates; +inf for an empty set)")
reduce_prod = _reduction("reduce_prod", "prod", "ReduceProd", "Product")
reduce_l1 = _reduction("reduce_l1", "l1", "ReduceL1", "Sum of absolute values")
reduce_l2 = _reduction("reduce_l2", "l2", "ReduceL2", "Euclidean norm")
reduce_sum_square = _reduction("reduce_sum_square", "sum_square", "ReduceSumSquare", "Sum of squares")
reduce_log_sum = _reduction("reduce_log_sum", "log_sum", "ReduceLogSum", "log of the sum")
reduce_log_sum_exp = _reduction("reduce_log_sum_exp", "log_sum_exp", "ReduceLogSumExp",
                                "log(sum(exp(x))) (max-subtracted)")
