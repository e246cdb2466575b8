"""Values in a Plan (`Ref`) and the gathers that move them: a reshape / transpose / flatten that moves values
(`permute.is_move`), an assembly (concatenation, padding, gather or slice as one gather: `permute.is_assembly`) and
a relayout to row-major order are each one `gather_channels` of element indices.

A gather is emitted lazily: its value is a `PendingRef` until something reads its tensor, and a gather of a pending
value composes the two index tables instead. A chain of moves (Swin's window partition: a padding, two rolls as
slices and concatenations, a reshape, a transpose) costs one pass over the values, and a value only other gathers
read is never written.
"""

from __future__ import annotations

import numpy as np

from ..ops.shape import pad_indices
from .permute import assembly, gather_table, positions, stored_dims, table_of


class Ref:
    """A graph value in the plan: its tensor id and logical (NCHW) shape; `flat` marks a flatten of a 4-D value
    that is still stored as (H, W, C) (its NCHW order exists only once someone needs it); `nhwc` marks a 4-D value
    whose logical shape (N, H, W, C) is its storage order (a transpose to channels-last: no copy, see
    `channels_last_values`)."""

    __slots__ = ("tid", "shape", "flat", "nhwc")

    def __init__(self, tid, shape, flat=None, nhwc=False):
        self.tid, self.shape, self.flat, self.nhwc = tid, tuple(shape), flat, nhwc


class PendingRef(Ref):
    """A gathered value not written yet: `base` (one pixel of all of an image's values) picked by `table` (None: as
    it is), stored as (H, W, C) `dims`. Reading `tid` emits the gather (once); gathers read `base` and `table`."""

    __slots__ = ("base", "table", "dims", "name", "_emit", "_tid")

    def __init__(self, shape, nhwc, base, table, dims, name, emit):
        self._tid = None
        super().__init__(None, shape, None, nhwc)
        self.base, self.table, self.dims, self.name, self._emit = base, table, dims, name, emit

    @property
    def tid(self):
        if self._tid is None:
            self._tid = self._emit(self)
        return self._tid

    @tid.setter
    def tid(self, value):
        self._tid = value

    @property
    def pending(self):
        return self._tid is None


def is_pending(ref):
    return isinstance(ref, PendingRef) and ref.pending


def compose(first, second):
    """The table picking `second` from what `first` picked (either None: the identity)."""
    if first is None or second is None:
        return second if first is None else first
    return np.ascontiguousarray(first[second], np.int64)


def source(low, x, name):
    """(base tensor, table into it) holding Ref x's stored values: a pending gather's own, else x as one pixel."""
    return (x.base, x.table) if is_pending(x) else (low.dense(x, name), None)


def gathered(low, name, flat, table, dims):
    """The one-pixel tensor `flat` picked by `table` (None: as it is), seen as (H, W, C) `dims`."""
    if table is not None:
        flat = low.builder.gather_channels(name, flat, table)
    return low.builder.reshape(flat, *dims)


def define_gathered(low, value, name, x_source, table, dims, nhwc):
    """Defines `value` as the values of `x_source` (base, table) picked by `table`, pending (module docstring)."""
    base, first = x_source
    low.env[value] = PendingRef(low.shape(value), nhwc, base, compose(first, table), dims, name,
                                lambda p: gathered(low, p.name, p.base, p.table, p.dims))


def lower_move(low, node):
    """A reshape / transpose / flatten that moves values: one gather, or a view where the stored order does not
    change."""
    out_value = node.outputs[0]
    x = low.ref(node.inputs[0])
    if x.flat is not None and x.flat[1] * x.flat[2] == 1:
        x = low.materialize(x, node.name)
    out_shape, row_major = low.shape(out_value), out_value in low.channels_last
    table = gather_table(node, x.shape, x.nhwc, x.flat, out_shape, row_major, low.batch)
    dims = stored_dims(out_shape, row_major, low.batch)
    define_gathered(low, out_value, node.name, source(low, x, node.name), table, dims, row_major)


def lower_assembly(low, node):
    """The node's output as elements of its inputs picked by one gather: their values side by side in one buffer
    (then a padding's constant), placed by `permute.assembly`; inputs gathered from the same tensor are read from
    it, not copied."""
    g = low.g
    sources, combine = assembly(node, low.shape(node.inputs[0]), pad_indices)
    fill = node.attrs["value"] if node.op == "pad" and node.attrs["mode"] == "constant" else None
    pieces, starts, logical, offset = [], {}, [], 0
    for v in sources:
        if v in g.params:  # a batch-1 plan: its values as they are
            array = np.ascontiguousarray(g.params[v], np.float32)
            key, base, table = ("param", v), None, None
            stored = np.arange(array.size).reshape(array.shape)
        else:
            x = low.ref(v)
            key = ("tensor", x.base) if is_pending(x) else ("value", v)
            base, table = source(low, x, f"{node.name}.{v}") if key not in starts else (
                None, x.table if is_pending(x) else None)
            stored = positions(x.shape, x.nhwc, x.flat, low.batch)
        if key not in starts:
            if base is None:
                base = low.builder.constant(array.reshape(1, 1, -1))
            starts[key] = offset
            pieces.append(base)
            offset += low.builder.dims(base)[2]
        logical.append((table[stored] if table is not None else stored) + starts[key])
    placed = combine(logical)
    if fill is not None and np.any(placed < 0):
        pieces.append(low.builder.constant(np.full((1, 1, 1), fill, np.float32)))
        placed = np.where(placed < 0, offset, placed)
        offset += 1
    buffer = pieces[0]
    if len(pieces) > 1:
        buffer = low.builder.tensor(1, 1, offset)
        start = 0
        for i, piece in enumerate(pieces):
            low.builder.copy_into(f"{node.name}.{i}", piece, buffer, start)
            start += low.builder.dims(piece)[2]
    out_value = node.outputs[0]
    row_major = out_value in low.channels_last
    table = table_of(placed, row_major)
    if table is None and placed.size != offset:  # the first values of the buffer: copied still
        table = np.arange(placed.size, dtype=np.int64)
    dims = stored_dims(low.shape(out_value), row_major, low.batch)
    define_gathered(low, out_value, node.name, (buffer, None), table, dims, row_major)


def row_major(low, x, name):
    """Ref x's tensor in its logical row-major order, pixels of its last axis (a view where it is stored so)."""
    if x.nhwc and not is_pending(x):
        h, w, c = low.builder.dims(x.tid)
        return low.builder.reshape(low.dense(x, name), h * w, 1, c)
    table = None if x.nhwc else gather_table(None, x.shape, False, x.flat, x.shape, True, low.batch)
    base, first = source(low, x, name)
    dims = (x.dims[0] * x.dims[1], 1, x.dims[2]) if x.nhwc else stored_dims(x.shape, True, low.batch)
    return gathered(low, name + ".rows", base, compose(first, table), dims)
