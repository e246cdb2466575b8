"""General tensor ops of any rank: reshape, transpose, slice, pad, gather, expand, tile, identity. All data
movement runs one portable kernel (`_core.index_copy`, csrc/ops/tensor): each output dimension reads through a table
of input offsets, which expresses permutations, strided slices, broadcasting, repetition, reflection and constant
padding alike."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from .. import _core
from .. import _validate as V
from .._types import Array, Ints
from .registry import PlanRule, declare

__all__ = ["reshape", "transpose", "slice", "pad", "gather", "expand", "tile", "identity"]

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def strides(shape):
    """Element strides of a C-contiguous array of `shape`."""
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= int(d)
    return out[::-1]


def int_tuple(values, name, minimum=None):
    """A sequence of ints (an int alone is a 1-tuple) -> tuple, each checked by `V.integer`."""
    if V.is_int(values):
        values = (values,)
    if isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"{name}: expected a sequence of ints (got {type(values).__name__} {values!r})")
    return tuple(V.integer(v, name, minimum) for v in values)


def _copy(x, out, tables, fill=0.0):
    """out = x read through per-dimension offset tables (lists of ints, -1 = fill)."""
    if out.size:
        _core.index_copy(x, out, [np.asarray(t, np.int64) for t in tables], float(fill))
    return out


# --- reshape / identity -----------------------------------------------------------------------------------------

def _reshape_rule(shapes, attrs):
    x = shapes[0]
    target = int_tuple(attrs["shape"], "shape", -1)
    if target.count(-1) > 1:
        raise ValueError(f"shape: expected at most one -1 (got {target})")
    size = math.prod(x)
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        if known == 0 or size % known:
            raise ValueError(f"shape: expected a shape {x} can take (got {target})")
        out = tuple(size // known if d == -1 else d for d in target)
    else:
        out = target
    if math.prod(out) != size:
        raise ValueError(f"shape: expected a shape {x} can take (got {target})")
    V.check_size(out, "shape")
    return {"shape": target}, out


def _reshape_kernel(x, *, out, shape):
    return x.reshape(shape)


def _stored_flat(shape):
    """Whether a value's NCHW order is its order in a Plan's channels-last storage too: (N, F), or 4-D with one
    channel or one pixel."""
    return len(shape) == 2 or len(shape) == 4 and (shape[1] == 1 or shape[2] * shape[3] == 1)


def _plan_reshape_ok(node, graph):
    """Reshapes that keep each image's data in its stored order (e.g. a 1-channel NHWC input read as NCHW): views."""
    x, out = graph.shapes[node.inputs[0]], graph.shapes[node.outputs[0]]
    if tuple(x) == tuple(out) and len(x) in (2, 4):  # nothing moves (an imported model's batch guard)
        return True
    return x[0] == out[0] and _stored_flat(x) and _stored_flat(out)


def _reshape_keeps_channels(node, graph):
    """On a channels-last value: (N, L, C) <-> (N, H, W, C) with H * W = L (the same pixels and channels)."""
    x, out = graph.shapes[node.inputs[0]], graph.shapes[node.outputs[0]]
    return len(x) in (3, 4) and len(out) in (3, 4) and x[0] == out[0] and x[-1] == out[-1]


def _reshape_to_onnx(em, node):
    shape = list(node.attrs["shape"])
    attrs = {}
    if 0 in shape:  # a literal zero-sized dim: ONNX reads 0 as "copy the input's" unless allowzero
        if em.opset < 14:
            raise ValueError(f"node '{node.name}': a reshape to a zero-sized dim needs opset 14 (allowzero)")
        attrs["allowzero"] = 1
    return em.node("Reshape", [node.inputs[0], em.const(f"{node.name}.shape", shape, np.int64)], node.outputs[0],
                   node.name, **attrs)


@declare(("x",), _reshape_rule, _reshape_kernel, onnx=_reshape_to_onnx, allow_empty=True, view=True,
         plan=PlanRule(lambda low, node: low.reshape(node), _plan_reshape_ok, per_pixel=_reshape_keeps_channels))
def reshape(x: Array, shape: Ints) -> Array:
    """The same elements in a new shape (a view); one dim may be -1 (inferred from the others).

    Normalised: ``shape`` a tuple of ints >= -1 with at most one -1 (kept, so a graph follows its batch size).
    """


def _identity_rule(shapes, attrs):
    return {}, shapes[0]


def _identity_to_onnx(em, node):
    return em.node("Identity", [em.value(node.inputs[0])], node.outputs[0], node.name)


@declare(("x",), _identity_rule, lambda x, *, out: x, onnx=_identity_to_onnx, allow_empty=True, view=True)
def identity(x: Array) -> Array:
    """`x` itself (ONNX Identity; a graph output that is a graph input or a constant)."""


# --- transpose --------------------------------------------------------------------------------------------------

def _transpose_rule(shapes, attrs):
    x = shapes[0]
    perm = tuple(reversed(range(len(x)))) if attrs["perm"] is None else int_tuple(attrs["perm"], "perm")
    if sorted(perm) != list(range(len(x))):
        raise ValueError(f"perm: expected a permutation of the {len(x)} axes (got {perm})")
    return {"perm": perm}, tuple(x[p] for p in perm)


def _transpose_kernel(x, *, out, perm):
    if out.size == 0:
        return out
    st = strides(x.shape)
    return _copy(x, out, [np.arange(out.shape[d]) * st[p] for d, p in enumerate(perm)])


def _transpose_to_onnx(em, node):
    return em.node("Transpose", [em.value(node.inputs[0])], node.outputs[0], node.name, perm=list(node.attrs["perm"]))


@declare(("x",), _transpose_rule, _transpose_kernel, onnx=_transpose_to_onnx, allow_empty=True,
         plan=PlanRule(lambda low, node: low.transpose(node)))  # NCHW <-> NHWC only: plan.lower.supported
def transpose(x: Array, perm: Ints | None = None) -> Array:
    """Permutes the axes: output axis d is input axis ``perm[d]`` (None: reversed).

    Normalised: ``perm`` a tuple of ints.
    """


# --- slice ------------------------------------------------------------------------------------------------------

def _clamped_ints(values, name):
    """Any ints (ONNX writes INT64_MAX for "to the end"), clamped to +-(2**31 - 1): the same slice of any tensor."""
    if V.is_int(values):
        values = (values,)
    if isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    if not isinstance(values, (tuple, list)) or not all(V.is_int(v) for v in values):
        raise TypeError(f"{name}: expected a sequence of ints (got {values!r})")
    return tuple(max(-V.MAX_ELEMENTS, min(V.MAX_ELEMENTS, int(v))) for v in values)


def _slice_rule(shapes, attrs):
    x = shapes[0]
    starts = _clamped_ints(attrs["starts"], "starts")  # numpy / ONNX clamping applies below
    ends = _clamped_ints(attrs["ends"], "ends")
    axes = tuple(range(len(starts))) if attrs["axes"] is None else tuple(
        V.axis(a, len(x), "axes") for a in int_tuple(attrs["axes"], "axes"))
    steps = (1,) * len(starts) if attrs["steps"] is None else int_tuple(attrs["steps"], "steps")
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"starts, ends, axes, steps: expected equal lengths (got {len(starts)}, {len(ends)}, "
                         f"{len(axes)}, {len(steps)})")
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes: expected distinct axes (got {axes})")
    if 0 in steps:
        raise ValueError(f"steps: expected non-zero steps (got {steps})")
    order = sorted(range(len(axes)), key=lambda i: axes[i])
    attrs = {"starts": tuple(starts[i] for i in order), "ends": tuple(ends[i] for i in order),
             "axes": tuple(axes[i] for i in order), "steps": tuple(steps[i] for i in order)}
    shape = list(x)
    for start, end, axis, step in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        shape[axis] = len(range(*np.s_[start:end:step].indices(x[axis])))
    return attrs, tuple(shape)


def _slice_kernel(x, *, out, starts, ends, axes, steps):
    if out.size == 0:  # no tables: an empty value's other axes may be long
        return out
    st = strides(x.shape)
    tables = [np.arange(n) * s for n, s in zip(x.shape, st)]
    for start, end, axis, step in zip(starts, ends, axes, steps):
        tables[axis] = np.arange(*np.s_[start:end:step].indices(x.shape[axis])) * st[axis]
    return _copy(x, out, tables)


def _slice_ranges(node, shape):
    """The range of indices a slice keeps along each axis of a value of `shape`."""
    kept = [range(n) for n in shape]
    a = node.attrs
    for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        kept[axis] = range(*np.s_[start:end:step].indices(shape[axis]))
    return kept


def _plan_slice_ok(node, graph):
    """Slices of a computed 4-D map, (N, F) value or (N, C, L) sequence that keep every image and a channel range
    (any spatial steps on a map): a Split's parts, a crop, YOLOX's space-to-depth stem, a detector head's split."""
    x = node.inputs[0]
    if x in graph.params:
        return False
    a = node.attrs
    if any(axis == 0 and (start, step) != (0, 1) or axis == 0 and end < 2**31 - 1
           for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"])):
        return False  # a batch range fixed at the traced batch means something else at another
    kept = _slice_ranges(node, graph.shapes[x])
    if len(kept) == 3 and kept[2] != range(graph.shapes[x][2]):
        return False  # a sequence's channel range only
    return kept[1].step == 1 and all(len(r) >= 1 for r in kept)


def slice_map(low, node):
    """A channel range is a view into x (no op); rows and columns are picked by one copy (`Lowering.pick_pixels`)."""
    x = low.materialize(low.ref(node.inputs[0]), node.name)
    kept = _slice_ranges(node, x.shape)
    out = node.outputs[0]
    if kept[1] != range(x.shape[1]):
        c0, count = kept[1].start, len(kept[1])
        x = low.channel_slice(x, c0, count, node.name)
        if len(kept) == 2 or kept[2:] == [range(n) for n in x.shape[2:]]:
            low.slices[out] = (node.inputs[0], c0, count)
    if len(kept) == 4 and kept[2:] != [range(n) for n in x.shape[2:]]:
        low.pick_pixels(out, x, np.array(kept[2]), np.array(kept[3]), 0.0, node.name)
    else:
        low.env[out] = x


def _slice_to_onnx(em, node):
    a, n = node.attrs, node.name
    inputs = [em.value(node.inputs[0])] + [em.const(f"{n}.{key}", a[key], np.int64)
                                           for key in ("starts", "ends", "axes", "steps")]
    return em.node("Slice", inputs, node.outputs[0], n)


@declare(("x",), _slice_rule, _slice_kernel, onnx=_slice_to_onnx, allow_empty=True,
         plan=PlanRule(lambda low, node: low.slice(node), _plan_slice_ok, sequences=True))
def slice(x: Array, starts: Ints, ends: Ints, axes: Ints | None = None,  # noqa: A001  (the ONNX / numpy name)
          steps: Ints | None = None) -> Array:
    """``x[start:end:step]`` along each listed axis (numpy / ONNX clamping; negative values count from the end).

    Normalised: ``starts``, ``ends``, ``axes``, ``steps`` tuples of one entry per sliced axis, sorted by axis (axes
    non-negative; starts / ends clamped to +-(2**31 - 1), which slices every tensor alike).
    """


# --- pad --------------------------------------------------------------------------------------------------------

def _pad_rule(shapes, attrs):
    x = shapes[0]
    pads = int_tuple(attrs["pads"], "pads")
    if len(pads) != 2 * len(x):
        raise ValueError(f"pads: expected 2 values (begin, end) per axis of the {len(x)}D input (got {len(pads)})")
    mode = attrs["mode"]
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {', '.join(PAD_MODES)} (got {mode!r})")
    value = V.number(attrs["value"], "value")
    shape = []
    for d, n in enumerate(x):
        begin, end = pads[2 * d], pads[2 * d + 1]
        kept = n + min(begin, 0) + min(end, 0)  # negative pads crop first
        if kept < 0:
            raise ValueError(f"pads: expected crops of at most the {n} elements of axis {d} (got {begin}, {end})")
        if mode != "constant" and kept == 0 and (begin > 0 or end > 0):
            raise ValueError(f"mode: {mode!r} padding needs a non-empty axis {d} to read from")
        shape.append(kept + max(begin, 0) + max(end, 0))
    V.check_size(shape, "pads")
    return {"pads": pads, "mode": mode, "value": value}, tuple(shape)


def pad_indices(n, begin, end, mode):
    """Input indices (-1: the constant) along one axis of length n for pads (begin, end), negative ones cropping."""
    lo, hi = max(-begin, 0), n - max(-end, 0)  # the kept range [lo, hi)
    k = hi - lo
    out = np.arange(-max(begin, 0), k + max(end, 0))  # positions relative to the kept range
    if mode == "constant":
        idx = np.where((out >= 0) & (out < k), out, -1)
    elif mode == "edge":
        idx = np.clip(out, 0, k - 1)
    elif mode == "wrap":
        idx = out % k
    else:  # reflect (numpy's: the edge is not repeated), folding back and forth for pads beyond the axis
        period = 2 * (k - 1)
        if period == 0:
            idx = np.zeros_like(out)
        else:
            idx = out % period
            idx = np.where(idx >= k, period - idx, idx)
    return np.where(idx >= 0, idx + lo, -1)


def _pad_kernel(x, *, out, pads, mode, value):
    if out.size == 0:  # no tables: an empty value's other axes may be long
        return out
    st = strides(x.shape)
    tables = []
    for d, n in enumerate(x.shape):
        idx = pad_indices(n, pads[2 * d], pads[2 * d + 1], mode)
        tables.append(np.where(idx >= 0, idx * st[d], -1))
    return _copy(x, out, tables, value)


def _pad_to_onnx(em, node):
    a, n = node.attrs, node.name
    pads = list(a["pads"][0::2]) + list(a["pads"][1::2])  # ONNX: every begin, then every end
    if a["mode"] == "wrap" and em.opset < 19:
        raise ValueError(f"node '{n}': wrap padding needs opset 19")
    inputs = [em.value(node.inputs[0]), em.const(f"{n}.pads", pads, np.int64)]
    if a["mode"] == "constant" and a["value"] != 0:
        inputs.append(em.const(f"{n}.value", np.float32(a["value"])))
    return em.node("Pad", inputs, node.outputs[0], n, mode=a["mode"])


def _plan_pad_ok(node, graph):
    """Padding and cropping of the rows and columns of a computed map, in any mode."""
    x, pads = node.inputs[0], node.attrs["pads"]
    return (x not in graph.params and len(graph.shapes[x]) == 4 and not any(pads[:4])
            and min(graph.shapes[node.outputs[0]][2:]) >= 1)


def pad_map(low, node):
    """Padding of a map's rows and columns: one pixel copy from index tables (-1: the constant)."""
    x = low.materialize(low.ref(node.inputs[0]), node.name)
    pads, mode = node.attrs["pads"], node.attrs["mode"]
    rows, cols = (pad_indices(n, pads[2 * d], pads[2 * d + 1], mode) for d, n in ((2, x.shape[2]), (3, x.shape[3])))
    low.pick_pixels(node.outputs[0], x, rows, cols, node.attrs["value"], node.name)


@declare(("x",), _pad_rule, _pad_kernel, onnx=_pad_to_onnx, allow_empty=True,
         plan=PlanRule(lambda low, node: low.pad(node), _plan_pad_ok))
def pad(x: Array, pads: Ints, mode: str = "constant", value: float = 0.0) -> Array:
    """Pads every axis: ``pads = (begin_0, end_0, begin_1, end_1, ...)``, negative values crop. Modes: 'constant'
    (`value`), 'reflect' (mirror without repeating the edge, numpy's), 'edge' (repeat the edge), 'wrap' (periodic).

    Normalised: ``pads`` a tuple of 2 ints per axis (the order above, as convolution padding's (top, bottom, left,
    right)), ``mode`` a str, ``value`` a float.
    """


# --- gather -----------------------------------------------------------------------------------------------------

def _gather_rule(shapes, attrs):
    x = shapes[0]
    if not x:
        raise ValueError("x: expected at least 1D input (got 0D)")
    axis = V.axis(attrs["axis"], len(x))
    indices = attrs["indices"]
    if isinstance(indices, np.ndarray):
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices: expected integers (got dtype {indices.dtype})")
        ishape, flat = tuple(indices.shape), indices.reshape(-1).tolist()
    elif V.is_int(indices):
        ishape, flat = (), [indices]
    else:
        array = np.asarray(indices) if not isinstance(indices, (tuple, list)) or indices else np.zeros(0, np.int64)
        if array.dtype.kind not in "iu":
            raise TypeError(f"indices: expected integers (got {indices!r})")
        ishape, flat = tuple(array.shape), array.reshape(-1).tolist()
    if attrs["indices_shape"] is not None:
        ishape = int_tuple(attrs["indices_shape"], "indices_shape", 0)
        if math.prod(ishape) != len(flat):
            raise ValueError(f"indices_shape: expected {len(flat)} elements (got shape {ishape})")
    n = x[axis]
    resolved = []
    for i in flat:
        i = V.integer(i, "indices")
        if not -n <= i < n:
            raise ValueError(f"indices: expected values in [{-n}, {n - 1}] for axis {axis} of size {n} (got {i})")
        resolved.append(i % n)
    return ({"indices": tuple(resolved), "indices_shape": ishape, "axis": axis},
            (*x[:axis], *ishape, *x[axis + 1:]))


def _gather_kernel(x, *, out, indices, indices_shape, axis):
    if out.size == 0:
        return out
    st = strides(x.shape)
    flat = (*x.shape[:axis], len(indices), *x.shape[axis + 1:])
    tables = [np.arange(n) * st[d] for d, n in enumerate(x.shape)]
    tables[axis] = np.asarray(indices, np.int64) * st[axis]
    _copy(x, out.reshape(flat), tables)
    return out


def _gather_to_onnx(em, node):
    a = node.attrs
    indices = em.const(f"{node.name}.indices", np.asarray(a["indices"], np.int64).reshape(a["indices_shape"]),
                       np.int64)
    return em.node("Gather", [em.value(node.inputs[0]), indices], node.outputs[0], node.name, axis=a["axis"])


def _plan_gather_ok(node, graph):
    """Channels (axis 1 of a map or a row) picked by a flat list of indices."""
    return node.attrs["axis"] == 1 and len(node.attrs["indices_shape"]) == 1 and len(node.attrs["indices"]) > 0


@declare(("x",), _gather_rule, _gather_kernel, onnx=_gather_to_onnx, allow_empty=True,
         plan=PlanRule(lambda low, node: low.gather_channels(node), _plan_gather_ok))
def gather(x: Array, indices: int | Sequence[Any] | NDArray[np.integer[Any]], axis: int = 0,
           indices_shape: Ints | None = None) -> Array:
    """``numpy.take(x, indices, axis)``: the output replaces `axis` by the indices' shape (negative indices count
    from the end). `indices`: an int, a nested sequence or an integer array (or a flat sequence with
    `indices_shape`).

    Normalised: ``indices`` a flat tuple of non-negative ints, ``indices_shape`` a tuple, ``axis`` a non-negative int.
    """


# --- expand / tile ----------------------------------------------------------------------------------------------

def _expand_rule(shapes, attrs):
    x = shapes[0]
    target = int_tuple(attrs["shape"], "shape", 0)
    try:
        out = tuple(np.broadcast_shapes(x, target))
    except ValueError:
        raise ValueError(f"shape: expected a shape broadcastable with {x} (got {target})") from None
    V.check_size(out, "shape")
    return {"shape": target}, out


def _broadcast_tables(x_shape, out_shape):
    """Offset tables reading x (aligned to the right) broadcast to out_shape."""
    st = strides(x_shape)
    lead = len(out_shape) - len(x_shape)
    tables = []
    for d, n in enumerate(out_shape):
        k = d - lead
        tables.append(np.zeros(n, np.int64) if k < 0 or x_shape[k] == 1 else np.arange(n) * st[k])
    return tables


def _expand_kernel(x, *, out, shape):
    if out.size == 0:
        return out
    return _copy(x, out, _broadcast_tables(x.shape, out.shape))


def _expand_to_onnx(em, node):
    shape = em.const(f"{node.name}.shape", node.attrs["shape"], np.int64)
    return em.node("Expand", [em.value(node.inputs[0]), shape], node.outputs[0], node.name)


@declare(("x",), _expand_rule, _expand_kernel, onnx=_expand_to_onnx, allow_empty=True)
def expand(x: Array, shape: Ints) -> Array:
    """`x` broadcast with `shape` (numpy rules, both ways: the result has the larger of each pair of dims).

    Normalised: ``shape`` a tuple of non-negative ints.
    """


def _tile_rule(shapes, attrs):
    x = shapes[0]
    repeats = int_tuple(attrs["repeats"], "repeats", 0)
    if len(repeats) != len(x):
        raise ValueError(f"repeats: expected one per axis of the {len(x)}D input (got {len(repeats)})")
    out = tuple(n * r for n, r in zip(x, repeats))
    V.check_size(out, "repeats")
    return {"repeats": repeats}, out


def _tile_kernel(x, *, out, repeats):
    if out.size == 0:
        return out
    st = strides(x.shape)
    return _copy(x, out, [(np.arange(m) % max(n, 1)) * s for n, m, s in zip(x.shape, out.shape, st)])


def _tile_to_onnx(em, node):
    repeats = em.const(f"{node.name}.repeats", node.attrs["repeats"], np.int64)
    return em.node("Tile", [em.value(node.inputs[0]), repeats], node.outputs[0], node.name)


@declare(("x",), _tile_rule, _tile_kernel, onnx=_tile_to_onnx, allow_empty=True)
def tile(x: Array, repeats: Ints) -> Array:
    """`x` repeated ``repeats[d]`` times along each axis d (``numpy.tile`` with one count per axis).

    Normalised: ``repeats`` a tuple of non-negative ints.
    """
