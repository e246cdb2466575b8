"""ONNX Add / Sub / Mul / Div / Sum / Mean -> add / mul; MatMul and Gemm with constant weights -> linear (a bias
Add after a MatMul folds into it)."""

import numpy as np


def convert_binary(ctx, node, a):
    op_type, (left, right) = node.op_type, node.input[:2]
    ca, cb = ctx.const(left), ctx.const(right)
    if op_type in ("Sub", "Div") and ca is not None:
        raise ValueError(f"node '{node.name}' ({op_type}): expected a computed value {op_type.lower()} a constant "
                         f"(got a constant on the left)")
    if op_type == "Div":
        if cb is None:
            raise ValueError(f"node '{node.name}' (Div): expected a constant divisor (got a computed value)")
        # x / c as x * (1 / c): within one rounding of the division
        right = _derived_const(ctx, right, (1.0 / cb.astype(np.float64)).astype(np.float32))
    elif op_type == "Sub":
        if cb is not None:
            right = _derived_const(ctx, right, -cb.astype(np.float32))
        else:
            right_value = ctx.tensor(right, node)
            neg = ctx.emit("mul", f"{node.name}.negate", [right_value, ctx.param(np.float32(-1), f"{node.name}.-1")],
                           {})
            ctx.define(node, "add", [ctx.tensor(left, node), neg], {})
            return
    op = "mul" if op_type in ("Mul", "Div") else "add"
    if op == "add" and _fold_bias(ctx, node, left, right):
        return
    ctx.define(node, op, [ctx.tensor(left, node), ctx.tensor(right, node)], {})


def _derived_const(ctx, name, array):
    derived = ctx.fresh(f"{name}.derived")
    ctx.consts[derived] = array
    return derived


def _fold_bias(ctx, node, left, right):
    """MatMul + Add(bias): put the bias into the linear node the MatMul became. Returns whether it did."""
    for x, b in ((left, right), (right, left)):
        bias = ctx.const(b)
        value = ctx.values.get(x)
        last = ctx.producer.get(value)
        if (bias is None or last is None or last.op != "linear" or len(last.inputs) > 2 or ctx.uses.get(x) != 1
                or bias.dtype.kind != "f"):
            continue
        out_features = ctx.shape(last.inputs[1])[0]
        if bias.size != out_features or bias.ndim > 1 and bias.shape[-1] != out_features or bias.ndim > 2:
            continue
        last.inputs.append(ctx.param(bias.reshape(-1), b, exact=True))
        ctx.values[node.output[0]] = value
        return True
    return False


def convert_variadic(ctx, node, a):
    """Sum / Mean of several inputs: a chain of adds (then a scale by 1 / count for Mean)."""
    names = [n for n in node.input if n]
    total = ctx.tensor(names[0], node)
    for i, name in enumerate(names[1:], 1):
        total = ctx.emit("add", f"{node.name}.add{i}", [total, ctx.tensor(name, node)], {})
    if node.op_type == "Mean" and len(names) > 1:
        total = ctx.emit("mul", node.name, [total, ctx.param(np.float32(1 / len(names)), f"{node.name}.scale")], {})
    ctx.values[node.output[0]] = total


def convert_matmul(ctx, node, a):
    weight = ctx.const(node.input[1])
    if weight is None or weight.ndim != 2 or ctx.const(node.input[0]) is not None:
        raise ValueError(f"node '{node.name}' (MatMul): expected a computed value @ a constant 2D weight")
    base = node.input[1][:-2] if node.input[1].endswith(".T") else f"{node.input[1]}.T"
    w = ctx.param(np.ascontiguousarray(weight.T), base)
    ctx.define(node, "linear", [ctx.tensor(node.input[0], node), w], {})


def convert_gemm(ctx, node, a):
    weight = ctx.const(node.input[1])
    if weight is None or weight.ndim != 2 or a.get("transA", 0):
        raise ValueError(f"node '{node.name}' (Gemm): expected A @ a constant 2D B with transA=0")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    w = weight if a.get("transB", 0) else weight.T
    w_name = ctx.param(w if alpha == 1 else w * np.float32(alpha), node.input[1], exact=w is weight and alpha == 1)
    inputs = [ctx.tensor(node.input[0], node), w_name]
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const(node.input[2])
        out_features = w.shape[0]
        if c is None or c.size not in (1, out_features) or c.ndim > 2:
            raise ValueError(f"node '{node.name}' (Gemm): expected a constant C of shape ({out_features},) or (1, "
                             f"{out_features}) (got {'a computed value' if c is None else c.shape})")
        bias = np.broadcast_to(c.reshape(-1), (out_features,)).astype(np.float32)
        same = c.size == out_features and beta == 1  # the initializer's values as they are: keep its name
        inputs.append(ctx.param(bias if beta == 1 else bias * np.float32(beta), node.input[2], exact=same))
    ctx.define(node, "linear", inputs, {})


CONVERTERS = {"Add": convert_binary, "Mul": convert_binary, "Sub": convert_binary, "Div": convert_binary,
              "Sum": convert_variadic, "Mean": convert_variadic, "MatMul": convert_matmul, "Gemm": convert_gemm}
