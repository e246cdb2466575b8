"""Type aliases the public annotations share (numpy only; nothing here runs at import beyond building them).

The aliases are spelt with `typing.Union` / `typing.Tuple` so that they evaluate on Python 3.9.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]
"""A float32 numpy array: every tensor convcore computes (feature maps are NCHW)."""

Shape = Tuple[int, ...]

IntPair = Union[int, Tuple[int, int], List[int]]
"""An int used for both spatial axes, or one per axis (h, w)."""

SizePair = Union[int, None, Tuple[Optional[int], Optional[int]], List[Optional[int]]]
"""An output size: an int for both axes or one per axis (h, w); None keeps that input size."""

Pads = Union[int, Tuple[int, int], Tuple[int, int, int, int], List[int]]
"""An int, (pad_h, pad_w) or (top, bottom, left, right)."""

Padding = Union[Pads, str]
"""A `Pads`, or a mode: 'valid', 'same' or 'full'."""

Ints = Union[int, Sequence[int], NDArray[np.integer[Any]]]
"""Ints: one (a 1-tuple), a sequence of them, or an integer array."""

Axes = Union[int, Sequence[int], None]
"""One axis, several, or None (every axis)."""

Outputs = Any
"""What a model, graph or plan returns: an `Array`, or a tuple of them for several outputs. `Any`, so that the usual
one-output call (``model(x).argmax()``) needs no cast."""

__all__ = ["Array", "Axes", "IntPair", "Ints", "Outputs", "Padding", "Pads", "Shape", "SizePair"]
