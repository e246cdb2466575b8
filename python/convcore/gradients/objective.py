"""Objectives: what a gradient is taken of. A weighted sum of terms, each read from one value of the graph.

    >>> logit(208)                                   # the 'Labrador retriever' score, summed over the batch
    >>> channel("layer3.1.conv2", 17)                # the mean of channel 17 at that layer
    >>> 2 * channel("inception4a", 97) - 0.5 * layer("inception4a") + neuron("inception4a", 3)
    >>> as_objective("layer3.1.conv2:17")            # the string forms: "layer", "layer:channel", "layer:channel@y,x"

Every term is summed over the batch (or taken at one sample with ``sample=``), so each image's gradient does not
depend on the others in its batch; a term's value for one image is:

- ``logit(k)``: output k of the model (its first output, flattened per image);
- ``channel(name, c)``: the mean of channel c over the positions of that layer (a 2-D value: its feature c);
- ``layer(name)``: the mean of the whole value;
- ``neuron(name, c, y=None, x=None)``: one position of channel c, the centre (H // 2, W // 2) by default.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["Term", "Objective", "ObjectiveLike", "logit", "channel", "layer", "neuron", "as_objective"]

_KINDS = ("logit", "channel", "layer", "neuron")


@dataclass(frozen=True)
class Term:
    """One term of an objective (see the module docstring).

    Attributes:
        kind: "logit", "channel", "layer" or "neuron".
        layer: the layer's name (a module path, node or value name); None: the model's output (logits).
        channel: the logit / channel index (None for "layer").
        position: a neuron's (y, x), None for the centre.
        weight: its factor in the sum.
        sample: the one batch index this term reads, or None for every image.
    """

    kind: str
    layer: Optional[str] = None
    channel: Optional[int] = None
    position: Optional[tuple[int, int]] = None
    weight: float = 1.0
    sample: Optional[int] = None

    def __str__(self) -> str:
        where = "output" if self.layer is None else self.layer
        text = {"logit": f"logit {self.channel}", "channel": f"{where}:{self.channel}", "layer": where,
                "neuron": f"{where}:{self.channel}@" + ("centre" if self.position is None else
                                                         ",".join(map(str, self.position)))}[self.kind]
        if self.sample is not None:
            text += f"[sample {self.sample}]"
        return text if self.weight == 1 else f"{self.weight:g} * {text}"


class Objective:
    """A weighted sum of `Term`s; build with `logit`, `channel`, `layer`, `neuron`, `+`, `-` and `*` by a number.

    Attributes:
        terms: the tuple of terms.
    """

    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms = tuple(terms)
        if not self.terms:
            raise ValueError("objective: expected at least one term (got none)")

    def __add__(self, other: ObjectiveLike) -> Objective:
        return Objective(self.terms + as_objective(other).terms)

    def __radd__(self, other: ObjectiveLike) -> Objective:
        if isinstance(other, numbers.Integral) and not isinstance(other, (bool, np.bool_)) and other == 0:
            return self  # sum(objectives) starts from 0
        return as_objective(other) + self

    def __sub__(self, other: ObjectiveLike) -> Objective:
        return self + (-1.0) * as_objective(other)

    def __rsub__(self, other: ObjectiveLike) -> Objective:
        return as_objective(other) - self

    def __neg__(self) -> Objective:
        return (-1.0) * self

    def __mul__(self, factor: float) -> Objective:
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, numbers.Real):
            return NotImplemented
        return Objective(replace(t, weight=t.weight * float(factor)) for t in self.terms)

    __rmul__ = __mul__

    def at_sample(self, sample: int) -> Objective:
        """The same terms read at batch index `sample` only."""
        return Objective(replace(t, sample=int(sample)) for t in self.terms)

    def __repr__(self) -> str:
        return "Objective(" + " + ".join(map(str, self.terms)) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(self.terms)


ObjectiveLike = Union[Objective, Term, int, str, Mapping[Any, float], Sequence[Any]]
"""What `as_objective` accepts: an Objective or Term, an int (a logit), a str ("layer", "layer:channel",
"layer:channel@y,x"), a dict {spec: weight}, or a list of specs or (weight, spec) pairs."""


def _index(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int (got {type(value).__name__} {value!r})")
    return int(value)


def logit(k: int, sample: Optional[int] = None) -> Objective:
    """Output `k` of the model (a class score), summed over the batch (or at batch index `sample`)."""
    return Objective([Term("logit", None, _index(k, "target"), sample=sample)])


def channel(name: str, c: int, sample: Optional[int] = None) -> Objective:
    """The mean of channel `c` at layer `name` (a module path such as "layer3.1.conv2")."""
    return Objective([Term("channel", _name(name), _index(c, "channel"), sample=sample)])


def layer(name: str, sample: Optional[int] = None) -> Objective:
    """The mean of the whole value at layer `name`."""
    return Objective([Term("layer", _name(name), sample=sample)])


def neuron(name: str, c: int, y: Optional[int] = None, x: Optional[int] = None,
           sample: Optional[int] = None) -> Objective:
    """Channel `c` of layer `name` at one position (y, x); the centre (H // 2, W // 2) by default."""
    if (y is None) != (x is None):
        raise ValueError(f"neuron: expected both y and x, or neither for the centre (got y={y!r}, x={x!r})")
    position = None if y is None else (_index(y, "y"), _index(x, "x"))
    return Objective([Term("neuron", _name(name), _index(c, "channel"), position, sample=sample)])


def _name(name):
    if not isinstance(name, str) or not name:
        raise TypeError(f"layer: expected a layer name as a non-empty str (got {name!r})")
    return name


def _parse(text):
    """"layer", "layer:channel" or "layer:channel@y,x" (also "@centre")."""
    name, sep, rest = text.rpartition(":")
    if not sep or not rest.split("@")[0].strip().lstrip("-").isdigit():
        return layer(text)
    channel_text, at, where = rest.partition("@")
    c = int(channel_text)
    if not at:
        return channel(name, c)
    if where.strip().lower() in ("", "centre", "center"):
        return neuron(name, c)
    try:
        y, x = (int(v) for v in where.split(","))
    except ValueError:
        raise ValueError(f"objective: expected 'layer:channel@y,x' (got {text!r})") from None
    return neuron(name, c, y, x)


def as_objective(spec: ObjectiveLike) -> Objective:
    """An `Objective` from any accepted form: an Objective or Term; an int (a logit); a str ("layer",
    "layer:channel", "layer:channel@y,x"); a dict {spec: weight}; a list of specs or (weight, spec) pairs (summed).
    """
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, Term):
        return Objective([spec])
    if isinstance(spec, numbers.Integral) and not isinstance(spec, (bool, np.bool_)):
        return logit(int(spec))
    if isinstance(spec, str):
        return _parse(spec)
    if isinstance(spec, dict) and spec:
        return _sum(float(w) * as_objective(s) for s, w in spec.items())
    if isinstance(spec, (list, tuple)) and spec:
        parts = []
        for item in spec:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], numbers.Real) and \
                    not isinstance(item[0], (bool, np.bool_)):
                parts.append(float(item[0]) * as_objective(item[1]))
            else:
                parts.append(as_objective(item))
        return _sum(parts)
    raise TypeError(f"objective: expected an int (a logit), 'layer', 'layer:channel', an Objective, or a weighted "
                    f"sum of them as a dict or list (got {type(spec).__name__} {spec!r})")


def _sum(parts):
    parts = list(parts)
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total
