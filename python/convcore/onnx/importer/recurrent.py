"""ONNX LSTM and GRU: one `lstm` / `gru` node per output the graph reads (Y, Y_h, Y_c), default activations only.
Sequence lengths are accepted when they are constant and cover the whole sequence (what exporters write); `layout`
1 (batch first, opset 14) is transposed to and from the (L, N, I) order."""

import numpy as np

from .attributes import fail, float_attr, input_name, int_attr, str_attr

DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def convert_recurrent(ctx, node, a):
    op = node.op_type.lower()
    gates = 4 if op == "lstm" else 3
    direction = str_attr(node, a, "direction", "forward", ("forward", "reverse", "bidirectional"))
    hidden = int_attr(node, a, "hidden_size", None, 1)
    layout = int_attr(node, a, "layout", 0)
    if layout not in (0, 1):
        raise fail(node, f"expected layout 0 or 1 (got {layout})")
    dirs = 2 if direction == "bidirectional" else 1
    acts = a.get("activations")
    if acts is not None and [s.decode() if isinstance(s, bytes) else s for s in acts] != \
            DEFAULT_ACTIVATIONS[node.op_type] * dirs:
        raise fail(node, f"expected the default activations {DEFAULT_ACTIVATIONS[node.op_type]} (got {acts})")
    if "clip" in a and np.isfinite(float_attr(node, a, "clip", np.inf)):
        raise fail(node, "a cell clip is not supported")
    if int_attr(node, a, "input_forget", 0):
        raise fail(node, "input_forget=1 is not supported")
    x = ctx.tensor(node.input[0], node)
    if len(ctx.shape(x)) != 3:
        raise fail(node, f"expected a 3-D input (got shape {ctx.shape(x)})")
    if layout == 1:
        x = ctx.emit("transpose", f"{node.name}.time_first", [x], {"perm": (1, 0, 2)})
    length = ctx.shape(x)[0]
    lens = input_name(node, 4)
    if lens is not None:
        value = ctx.const(lens)
        if value is None or not np.all(np.asarray(value) == length):
            raise fail(node, "expected no sequence_lens, or constant ones equal to the sequence length")
    extras = 3 if gates == 4 else 1  # initial_h (, initial_c, P)
    names = [input_name(node, i) for i in range(1, 4)] + [input_name(node, i) for i in range(5, 5 + extras)]
    inputs = [x] + [ctx.tensor(n, node) if n is not None else "" for n in names]
    attrs = {"hidden_size": hidden, "direction": direction}
    if op == "gru":
        attrs["linear_before_reset"] = bool(int_attr(node, a, "linear_before_reset", 0))
    for slot, output in enumerate(("y", "h", "c")[:len(node.output)]):
        name = node.output[slot]
        if not name or not ctx.uses.get(name):  # an output nothing reads is not computed
            continue
        if layout == 1:  # Y (L, D, N, H) -> (N, L, D, H); Y_h / Y_c (D, N, H) -> (N, D, H)
            value = ctx.emit(op, f"{node.name}.{output}", inputs, {**attrs, "output": output})
            perm = (2, 0, 1, 3) if output == "y" else (1, 0, 2)
            ctx.values[name] = ctx.emit("transpose", f"{node.name}.{output}_batch_first", [value], {"perm": perm},
                                        name)
        else:
            ctx.values[name] = ctx.emit(op, f"{node.name}.{output}" if slot else node.name, inputs,
                                        {**attrs, "output": output}, name)


CONVERTERS = {"LSTM": convert_recurrent, "GRU": convert_recurrent}
