"""ONNX BatchNormalization (inference) and LRN (odd sizes: ONNX centres an even window differently from torch)."""


def convert_batch_norm(ctx, node, a):
    if a.get("training_mode", 0) or any(o and ctx.uses.get(o) for o in node.output[1:]):
        raise ValueError(f"node '{node.name}' (BatchNormalization): expected inference mode (got training outputs)")
    for i, what in zip(range(1, 5), ("scale", "B", "mean", "var")):
        if ctx.const(node.input[i]) is None:
            raise ValueError(f"node '{node.name}' (BatchNormalization): expected a constant {what}")
    x, scale, bias, mean, var = (ctx.tensor(n, node) for n in node.input[:5])
    ctx.define(node, "batch_norm", [x, mean, var, scale, bias], {"eps": a.get("epsilon", 1e-5)})


def convert_lrn(ctx, node, a):
    size = int(a["size"])
    if size % 2 == 0:
        raise ValueError(f"node '{node.name}' (LRN): expected an odd size, ONNX centres an even window differently "
                         f"from convcore / torch (got size {size})")
    attrs = {"size": size, "alpha": a.get("alpha", 1e-4), "beta": a.get("beta", 0.75), "k": a.get("bias", 1.0)}
    ctx.define(node, "local_response_norm", [ctx.tensor(node.input[0], node)], attrs)


CONVERTERS = {"BatchNormalization": convert_batch_norm, "LRN": convert_lrn}
