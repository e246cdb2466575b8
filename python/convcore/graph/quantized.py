"""Which convolutions of a graph are int8 ones: their input is a ``fake_quantize`` (through flatten / reshape
views) and their weights lie on an int8 grid per output channel (a QDQ file's DequantizeLinear of int8 weights,
folded at import, or `convcore.quantize`'s rounding). Compiled Plans run those on int8 kernels (plan/quantized.py);
the ONNX export writes their weights as int8 initializers."""

from __future__ import annotations

import numpy as np

# The largest |q| of a channel's int8 weights that quantizers write: symmetric 8-bit (127, or 128 for -128),
# reduce_range 7-bit (63 / 64).
_LEVELS = (127.0, 128.0, 63.0, 64.0)


def int8_weights(weight):
    """(int8 values, float32 scale per output channel) of a float weight (K, ...) whose every output channel is an
    integer multiple of one scale within [-128, 127] (zero point 0), else None."""
    w = np.asarray(weight, np.float32).reshape(weight.shape[0], -1).astype(np.float64)
    peak = np.abs(w).max(axis=1)
    scale = np.zeros(len(w))
    q = np.zeros(w.shape)
    todo = np.ones(len(w), bool)
    # each channel's own scale (per-channel files), or the tensor's (per-tensor ones: a channel may not reach it)
    candidates = [peak / levels for levels in _LEVELS] + [np.full(len(w), peak.max() / levels) for levels in _LEVELS]
    for s in candidates:
        s = np.where(s > 0, s, 1.0)
        cand = np.rint(w / s[:, None])
        ok = todo & (np.abs(cand * s[:, None] - w) <= 1e-6 * np.maximum(peak.max(), 1e-30)).all(axis=1) & (
            cand.min(axis=1) >= -128) & (cand.max(axis=1) <= 127)
        scale[ok], q[ok] = s[ok], cand[ok]
        todo &= ~ok
        if not todo.any():
            return q.astype(np.int8).reshape(weight.shape), scale.astype(np.float32)
    return None


def _grid_source(producer, value):
    """The fake_quantize node behind `value` (through flatten / reshape views), or None."""
    source = producer.get(value)
    while source is not None and source.op in ("flatten", "reshape"):  # views of the grid's values
        source = producer.get(source.inputs[0])
    return source if source is not None and source.op == "fake_quantize" else None


def quantized_weights(graph):
    """{weight param: (int8 values, scale per output channel)} of the conv2d / linear layers of `graph` that read a
    fake-quantized input with weights on an int8 grid (those an int8 Plan runs, and an export writes as int8)."""
    producer = {out: node for node in graph.nodes for out in node.outputs}
    found = {}
    for node in graph.nodes:
        if node.op not in ("conv2d", "linear") or len(node.inputs) < 2 or node.inputs[1] not in graph.params:
            continue
        if node.inputs[1] not in found and _grid_source(producer, node.inputs[0]) is not None:
            grid = int8_weights(graph.params[node.inputs[1]])
            if grid is not None:
                found[node.inputs[1]] = grid
    return found
