"""ONNX Add / Sub / Mul / Div / Pow with numpy broadcasting (and opset 6's `broadcast` / `axis`), Sum / Mean / Max /
Min of any number of inputs, MatMul and Gemm. Constant operands become params; a MatMul or Gemm with a constant 2-D
weight is a `linear` node (a bias Add after it folds in), anything else a `matmul`.

A division by a constant becomes a multiplication only when the reciprocal is exact and finite (a power of two in
float32's range): then x * (1 / c) equals x / c bit for bit; any other divisor stays a division."""

import numpy as np

from .attributes import fail, float_attr, input_name, int_attr

BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}


def _legacy_operand(ctx, node, a, left, right):
    """Opset 6 and below: with broadcast=1, B's dims line up with A's from `axis` on (default: the trailing ones)."""
    if ctx.opset >= 7 or not int_attr(node, a, "broadcast", 0):
        return right
    a_shape, b_shape = ctx.static_shape(left), ctx.static_shape(right)
    axis = int_attr(node, a, "axis", len(a_shape) - len(b_shape))
    if axis < 0:
        axis += len(a_shape)
    if not 0 <= axis <= len(a_shape) - len(b_shape):
        raise fail(node, f"expected axis in [0, {len(a_shape) - len(b_shape)}] for legacy broadcasting of {b_shape} "
                         f"to {a_shape} (got {a.get('axis')})")
    target = tuple(b_shape) + (1,) * (len(a_shape) - axis - len(b_shape))
    constant = ctx.const(right)
    if constant is not None:
        return _derived_const(ctx, right, constant.reshape(target))
    return ctx.emit("reshape", f"{node.name}.broadcast", [ctx.tensor(right, node)], {"shape": target})


def _derived_const(ctx, name, array):
    derived = ctx.fresh(f"{name}.derived")
    ctx.consts[derived] = array
    return derived


def exact_reciprocal(c):
    """1 / c as float32 when every element's reciprocal is exactly representable and finite, else None."""
    c64 = np.asarray(c, np.float64)
    with np.errstate(all="ignore"):
        r = 1.0 / c64
        r32 = r.astype(np.float32)
    if not np.isfinite(r32).all():
        return None
    return r32 if np.array_equal(r32.astype(np.float64), r) else None


def convert_binary(ctx, node, a):
    op_type, left = node.op_type, node.input[0]
    right = input_name(node, 1)
    if right is None:
        raise fail(node, "expected two inputs")
    right = _legacy_operand(ctx, node, a, left, right)
    cb = ctx.const(right)
    op = BINARY[op_type]
    if cb is not None and cb.dtype.kind in "iub" and op_type == "Pow":  # an integer exponent of a float base
        right = _derived_const(ctx, right, cb.astype(np.float32))
    elif cb is not None and cb.dtype.kind == "f" and op_type == "Div":
        reciprocal = exact_reciprocal(cb)
        if reciprocal is not None:  # x / 2 == x * 0.5 exactly; x / 3 != x * (1 / 3) for some x: kept a division
            right, op = _derived_const(ctx, right, reciprocal), "mul"
    elif cb is not None and cb.dtype.kind == "f" and op_type == "Sub":
        right, op = _derived_const(ctx, right, -cb), "add"  # negation is exact
    if op == "add" and _fold_bias(ctx, node, left, right):
        return
    ctx.define(node, op, [ctx.tensor(left, node), ctx.tensor(right, node)], {})


def _fold_bias(ctx, node, left, right):
    """MatMul + Add(bias): put the bias into the linear node the MatMul became. Returns whether it did."""
    for x, b in ((left, right), (right, left)):
        bias = ctx.const(b)
        value = ctx.values.get(x)
        last = ctx.producer.get(value)
        if (bias is None or last is None or last.op != "linear" or len(last.inputs) > 2 or ctx.uses.get(x) != 1
                or bias.dtype.kind != "f" or x in ctx.graph.outputs):
            continue
        out_features = ctx.shape(last.inputs[1])[0]
        out_shape = ctx.shape(value)
        if bias.size != out_features or bias.ndim > 1 and bias.shape[-1] != out_features or bias.ndim > len(out_shape):
            continue
        last.inputs.append(ctx.param(bias.reshape(-1), b, exact=True))
        ctx.values[node.output[0]] = value
        return True
    return False


def convert_variadic(ctx, node, a):
    """Sum / Mean / Max / Min of any number of inputs: a chain of binary ops (Mean then divides by the count)."""
    names = [n for n in node.input if n]
    if not names:
        raise fail(node, "expected at least one input")
    op = {"Sum": "add", "Mean": "add", "Max": "maximum", "Min": "minimum"}[node.op_type]
    total = ctx.tensor(names[0], node)
    for i, name in enumerate(names[1:], 1):
        last = i == len(names) - 1 and node.op_type != "Mean"
        total = ctx.emit(op, node.name if last else f"{node.name}.{op}{i}", [total, ctx.tensor(name, node)], {},
                         node.output[0] if last else None)
    if node.op_type == "Mean" and len(names) > 1:
        count = ctx.constant(np.float32(len(names)), f"{node.name}.count")
        return ctx.define(node, "div", [total, count], {})
    ctx.alias(node, total)


def _linear_weight(ctx, base, weight):
    """A (out, in) weight param from a constant (in, out) MatMul weight."""
    name = base[:-2] if base.endswith(".T") else f"{base}.T"
    return ctx.param(np.ascontiguousarray(weight.T), name)


def convert_matmul(ctx, node, a):
    left, right = node.input[0], input_name(node, 1)
    if right is None:
        raise fail(node, "expected two inputs")
    weight = ctx.const(right)
    a_shape = ctx.static_shape(left)
    if weight is not None and weight.ndim == 2 and 1 <= len(a_shape) <= 4 and ctx.const(left) is None \
            and weight.dtype.kind == "f":
        return ctx.define(node, "linear", [ctx.tensor(left, node), _linear_weight(ctx, right, weight)], {})
    ctx.define(node, "matmul", [ctx.tensor(left, node), ctx.tensor(right, node)], {})


def convert_gemm(ctx, node, a):
    left, right, c_name = node.input[0], input_name(node, 1), input_name(node, 2)
    if right is None:
        raise fail(node, "expected the inputs A and B")
    alpha, beta = float_attr(node, a, "alpha", 1.0), float_attr(node, a, "beta", 1.0)
    trans_a, trans_b = int_attr(node, a, "transA", 0), int_attr(node, a, "transB", 0)
    a_shape, b_shape = ctx.static_shape(left), ctx.static_shape(right)
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise fail(node, f"expected 2D A and B (got shapes {a_shape} and {b_shape})")
    m, k = a_shape[::-1] if trans_a else a_shape
    k2, n = b_shape[::-1] if trans_b else b_shape
    if k != k2:
        raise fail(node, f"expected A's and B's inner dims to agree (got {a_shape} and {b_shape} with transA={trans_a},"
                         f" transB={trans_b})")
    c_shape = ctx.static_shape(c_name) if c_name else None
    if c_shape is not None:
        try:
            fits = np.broadcast_shapes(c_shape, (m, n)) == (m, n)
        except ValueError:
            fits = False
        if not fits:
            raise fail(node, f"expected C broadcastable to ({m}, {n}) (got shape {tuple(c_shape)})")
    weight = ctx.const(right)
    c_const = ctx.const(c_name) if c_name else None
    x = ctx.tensor(left, node)
    if weight is not None and not trans_a and weight.dtype.kind == "f":
        w = weight if trans_b else weight.T  # linear's (out, in) layout
        w_name = ctx.param(w if alpha == 1 else (w * np.float32(alpha)).astype(np.float32), right,
                           exact=w is weight and alpha == 1)
        inputs = [x, w_name]
        # a C that is the same for every row (shape (), (1,), (N,), (1, N)) is linear's bias
        if c_const is not None and c_const.dtype.kind == "f" and (len(c_shape) < 2 or c_shape[0] == 1):
            bias = np.broadcast_to(c_const.reshape(-1) if c_const.ndim else c_const, (n,)).astype(np.float32)
            same = c_const.shape == (n,) and beta == 1  # the initializer's values as they are: keep its name
            if beta != 0:
                inputs.append(ctx.param(bias if beta == 1 else bias * np.float32(beta), c_name, exact=same))
            return ctx.define(node, "linear", inputs, {})
        product = ctx.emit("linear", node.name if not c_name else f"{node.name}.linear", inputs, {},
                           node.output[0] if not c_name or beta == 0 else None)
    else:
        if trans_a:
            x = ctx.emit("transpose", f"{node.name}.a_t", [x], {"perm": (1, 0)})
        b = ctx.tensor(right, node)
        if trans_b:
            b = ctx.emit("transpose", f"{node.name}.b_t", [b], {"perm": (1, 0)})
        last = not c_name or beta == 0
        product = ctx.emit("matmul", node.name if last and alpha == 1 else f"{node.name}.matmul", [x, b], {},
                           node.output[0] if last and alpha == 1 else None)
        if alpha != 1:
            product = ctx.emit("mul", node.name if last else f"{node.name}.alpha",
                               [product, ctx.constant(np.float32(alpha), f"{node.name}.alpha")], {},
                               node.output[0] if last else None)
    if not c_name or beta == 0:
        return ctx.alias(node, product)
    if c_const is not None and c_const.dtype.kind == "f":
        c_value = ctx.param(c_const, c_name, exact=True) if beta == 1 else \
            ctx.constant(c_const.astype(np.float64) * beta, f"{c_name}.beta")
    else:
        c_value = ctx.tensor(c_name, node)
        if beta != 1:
            c_value = ctx.emit("mul", f"{node.name}.beta", [c_value, ctx.constant(np.float32(beta),
                                                                                  f"{node.name}.beta")], {})
    ctx.define(node, "add", [product, c_value], {})


CONVERTERS = {**{op: convert_binary for op in BINARY}, "Sum": convert_variadic, "Mean": convert_variadic,
              "Max": convert_variadic, "Min": convert_variadic, "MatMul": convert_matmul, "Gemm": convert_gemm}


# --- comparisons, logic and Where: ONNX's bool tensors are float masks (1.0 / 0.0) in the graph ----------------------
COMPARISONS = {"Less": "less", "LessOrEqual": "less_equal", "Greater": "greater", "GreaterOrEqual": "greater_equal",
               "Equal": "equal"}


def mask_operand(ctx, node, name):
    """The graph value of a bool operand: a mask a comparison computed, or a bool constant (as a float param)."""
    array = ctx.const(name)
    if array is not None:
        if array.dtype != np.bool_:
            raise fail(node, f"expected a bool tensor for '{name}' (got {array.dtype})")
        return ctx.param(array.astype(np.float32), f"{name}.mask")
    value = ctx.tensor(name, node)
    if value not in ctx.masks:
        raise fail(node, f"expected a bool tensor for '{name}' (got a float one)")
    return value


def convert_comparison(ctx, node, a):
    left, right = node.input[0], input_name(node, 1)
    if right is None:
        raise fail(node, "expected two inputs")
    if left in ctx.masks or ctx.values.get(left) in ctx.masks or ctx.values.get(right) in ctx.masks:
        if node.op_type != "Equal":
            raise fail(node, "expected float operands (got a bool tensor)")
        x, y = mask_operand(ctx, node, left), mask_operand(ctx, node, right)
    else:
        x, y = ctx.tensor(left, node), ctx.tensor(right, node)
    ctx.define(node, COMPARISONS[node.op_type], [x, y], {})
    ctx.masks.add(ctx.values[node.output[0]])


def convert_logic(ctx, node, a):
    """Not / And / Or / Xor on masks: 1 - x (as x == 0), x * y, max(x, y), |x - y| (exact on 0 / 1)."""
    operands = [mask_operand(ctx, node, n) for n in node.input if n]
    if len(operands) != (1 if node.op_type == "Not" else 2):
        raise fail(node, f"expected {1 if node.op_type == 'Not' else 2} inputs")
    if node.op_type == "Not":
        ctx.define(node, "equal", [operands[0], ctx.constant(np.float32(0), f"{node.name}.zero")], {})
    elif node.op_type == "And":
        ctx.define(node, "mul", operands, {})
    elif node.op_type == "Or":
        ctx.define(node, "maximum", operands, {})
    else:
        difference = ctx.emit("sub", f"{node.name}.difference", operands, {})
        ctx.define(node, "abs", [difference], {})
    ctx.masks.add(ctx.values[node.output[0]])


def convert_where(ctx, node, a):
    names = [input_name(node, i) for i in range(3)]
    if None in names:
        raise fail(node, "expected the inputs condition, X and Y")
    condition = mask_operand(ctx, node, names[0])
    x, y = ctx.tensor(names[1], node), ctx.tensor(names[2], node)
    ctx.define(node, "where", [condition, x, y], {})
    if x in ctx.masks and y in ctx.masks:
        ctx.masks.add(ctx.values[node.output[0]])


CONVERTERS.update({**{op: convert_comparison for op in COMPARISONS}, "Not": convert_logic, "And": convert_logic,
                   "Or": convert_logic, "Xor": convert_logic, "Where": convert_where})
