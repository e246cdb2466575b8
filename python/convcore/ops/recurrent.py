"""Recurrent layers with ONNX semantics: LSTM and GRU over a (L, N, I) sequence, forward, reverse or both directions,
with initial states (the head of a CRNN text recogniser). Each op gives one of the ONNX node's outputs (`output`):
the hidden states of every step, the last hidden state, or (LSTM) the last cell state.

The kernels step through time in float32 with numpy: the gates of all steps' inputs as one product up front, then one
(N, H) x (H, G * H) product per step and direction.
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from .._types import Array
from .registry import PlanRule, declare

__all__ = ["lstm", "gru"]

DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def _recurrent_rule(gates, name):
    """The shape rule of an LSTM (4 gates) or GRU (3): X (L, N, I), W (D, G * H, I), R (D, G * H, H), B (D, 2 * G *
    H), initial states (D, N, H), LSTM peepholes P (D, 3 * H); D directions, H = hidden_size."""
    def rule(shapes, attrs):
        x, w, r, b, h0, *rest = shapes
        direction = attrs["direction"]
        if direction not in DIRECTIONS:
            raise ValueError(f"direction: expected one of {sorted(DIRECTIONS)} (got {direction!r})")
        d = DIRECTIONS[direction]
        hidden = V.integer(attrs["hidden_size"], "hidden_size", 1)
        V.rank(x, "x", 3)
        if 0 in x:
            raise ValueError(f"x: expected a non-empty (L, N, I) sequence (got shape {x})")
        length, batch, features = x
        g = gates * hidden
        V.shape_is(w, "w", (d, g, features))
        V.shape_is(r, "r", (d, g, hidden))
        if b is not None:
            V.shape_is(b, "b", (d, 2 * g))
        for label, shape in (("initial_h", h0), *((("initial_c", rest[0]), ("p", rest[1])) if gates == 4 else ())):
            if shape is not None:
                V.shape_is(shape, label, (d, 3 * hidden) if label == "p" else (d, batch, hidden))
        outputs = ("y", "h", "c") if gates == 4 else ("y", "h")
        if attrs["output"] not in outputs:
            raise ValueError(f"output: expected one of {outputs} for {name} (got {attrs['output']!r})")
        out = (length, d, batch, hidden) if attrs["output"] == "y" else (d, batch, hidden)
        extra = {"linear_before_reset": bool(attrs["linear_before_reset"])} if gates == 3 else {}
        return {"hidden_size": hidden, "direction": direction, "output": attrs["output"], **extra}, out
    return rule


def _sigmoid(v):
    return (0.5 * (1.0 + np.tanh(0.5 * v))).astype(np.float32)  # no overflow for large |v|


def _steps(length, direction, index):
    """The time steps direction `index` visits, in order."""
    backward = direction == "reverse" or (direction == "bidirectional" and index == 1)
    return range(length - 1, -1, -1) if backward else range(length)


def _run(x, w, r, b, h0, direction, output, out, step):
    """The recurrence shared by LSTM and GRU: `step(t_inputs, h, state, d) -> (h, state)` per step."""
    length, batch, _ = x.shape
    dirs, g, hidden = w.shape[0], w.shape[1], r.shape[2]
    for d in range(dirs):
        bias = b[d] if b is not None else np.zeros(2 * g, np.float32)
        projected = (x.reshape(length * batch, -1) @ w[d].T + bias[:g]).reshape(length, batch, g)
        h = h0[d].copy() if h0 is not None else np.zeros((batch, hidden), np.float32)
        state = None
        for t in _steps(length, direction, d):
            h, state = step(projected[t], h, state, d, bias[g:])
            if output == "y":
                out[t, d] = h
        if output == "h":
            out[d] = h
        elif output == "c":
            out[d] = state
    return out


def _lstm_kernel(x, w, r, b, initial_h, initial_c, p, *, out, hidden_size, direction, output):
    hs = hidden_size

    def step(xt, h, c, d, rb):
        if c is None:
            c = initial_c[d].copy() if initial_c is not None else np.zeros_like(h)
        z = xt + h @ r[d].T + rb
        pi, po, pf = (p[d, :hs], p[d, hs:2 * hs], p[d, 2 * hs:]) if p is not None else (0.0, 0.0, 0.0)
        i = _sigmoid(z[:, :hs] + pi * c)
        f = _sigmoid(z[:, 2 * hs:3 * hs] + pf * c)
        c = f * c + i * np.tanh(z[:, 3 * hs:])
        o = _sigmoid(z[:, hs:2 * hs] + po * c)
        return (o * np.tanh(c)).astype(np.float32), c.astype(np.float32)

    return _run(x, w, r, b, initial_h, direction, output, out, step)


def _gru_kernel(x, w, r, b, initial_h, *, out, hidden_size, direction, output, linear_before_reset):
    hs = hidden_size

    def step(xt, h, _, d, rb):
        rz = h @ r[d, :2 * hs].T + rb[:2 * hs]
        z = _sigmoid(xt[:, :hs] + rz[:, :hs])
        reset = _sigmoid(xt[:, hs:2 * hs] + rz[:, hs:])
        if linear_before_reset:
            candidate = np.tanh(xt[:, 2 * hs:] + reset * (h @ r[d, 2 * hs:].T + rb[2 * hs:]))
        else:
            candidate = np.tanh(xt[:, 2 * hs:] + (reset * h) @ r[d, 2 * hs:].T + rb[2 * hs:])
        return ((1 - z) * candidate + z * h).astype(np.float32), None

    return _run(x, w, r, b, initial_h, direction, output, out, step)


def _plan_lstm_ok(node, graph):
    """A compiled Plan runs an LSTM of one sequence (a batch-1 graph: the (L, 1, I) input stored as L pixels of I
    channels) with constant weights and initial states."""
    x = graph.shapes[node.inputs[0]]
    batch = graph.shapes[graph.inputs[0]][0] if graph.inputs else None
    return batch == 1 and x[1] == 1 and all(v in graph.params for v in node.inputs[1:] if v)


def _to_onnx(op_type, extra_inputs):
    """The ONNX node, this op's output in its slot (Y, Y_h or Y_c) and the others left empty."""
    def lower(em, node):
        a = node.attrs
        inputs = [em.value(v) if v else "" for v in node.inputs[:4]] + [""] + \
                 [em.value(v) if v else "" for v in node.inputs[4:4 + extra_inputs]]
        while inputs and not inputs[-1]:
            inputs.pop()
        slot = {"y": 0, "h": 1, "c": 2}[a["output"]]
        attrs = {"hidden_size": a["hidden_size"], "direction": a["direction"]}
        if op_type == "GRU":
            attrs["linear_before_reset"] = int(a["linear_before_reset"])
        return em.node_outputs(op_type, inputs, [""] * slot + [node.outputs[0]], node.name, **attrs)
    return lower


@declare(("x", "w", "r", "b", "initial_h", "initial_c", "p"), _recurrent_rule(4, "lstm"), _lstm_kernel,
         onnx=_to_onnx("LSTM", 3),
         plan=PlanRule(lambda low, node: low.lstm(node), _plan_lstm_ok, needs=frozenset({"lstm"}),
                       per_pixel=_plan_lstm_ok, sequences=True))
def lstm(x: Array, w: Array, r: Array, b: Array | None = None, initial_h: Array | None = None,
         initial_c: Array | None = None, p: Array | None = None, hidden_size: int = 1, direction: str = "forward",
         output: str = "y") -> Array:
    """ONNX LSTM (gates in the order input, output, forget, cell; default activations, no sequence lengths).

    Args:
        x: (L, N, I). w: (D, 4H, I). r: (D, 4H, H). b: (D, 8H) (input then recurrent biases).
        initial_h, initial_c: (D, N, H), zeros by default. p: peepholes (D, 3H) for input, output, forget.
        direction: "forward", "reverse" or "bidirectional" (D = 2).
        output: "y" (every step's hidden state, (L, D, N, H)), "h" (the last, (D, N, H)) or "c" (the last cell).
    """


@declare(("x", "w", "r", "b", "initial_h"), _recurrent_rule(3, "gru"), _gru_kernel, onnx=_to_onnx("GRU", 1))
def gru(x: Array, w: Array, r: Array, b: Array | None = None, initial_h: Array | None = None, hidden_size: int = 1,
        direction: str = "forward", output: str = "y", linear_before_reset: bool = False) -> Array:
    """ONNX GRU (gates in the order update, reset, hidden; default activations, no sequence lengths).

    Args:
        x: (L, N, I). w: (D, 3H, I). r: (D, 3H, H). b: (D, 6H). initial_h: (D, N, H), zeros by default.
        linear_before_reset: apply the reset gate after the recurrent product (torch's GRU exports 1).
        output: "y" ((L, D, N, H)) or "h" (the last hidden state, (D, N, H)).
    """
