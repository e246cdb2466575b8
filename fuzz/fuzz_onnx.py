"""Fuzz target: `convcore.onnx.load` on mutated ONNX bytes, then the loaded model run eagerly and compiled.

Contract: load, run and compile raise only ValueError / TypeError (NotImplementedError too for `compile`, which
does not cover every op), never anything else, never crash, hang or blow memory up. A model is run only when its
shapes and work are small (the fuzzer looks for holes, not for legitimately large models).

Integer graph inputs (shapes, axes fed at run time) are bound with `load(constants=)` (a model whose float input feeds
a constant slot loads as a BoundONNXModule and is left to the tests): to the values a seed keeps in
its metadata (key "convcore.fuzz.<input>", e.g. "1,-1,3,4"; mutated with the rest), else to small ints. A model with
a dynamic batch is also run at the next batch size: eager and compiled, it must give what the model imported at that
batch gives, or a ValueError (a graph specialised to its batch refuses another one): never a silent wrong result.

    python fuzz/fuzz_onnx.py -max_total_time=60            # seeds: fuzz/seeds/onnx
"""

import math

import numpy as np

from _harness import main

import convcore
import convcore.onnx
from convcore.models._summary import count_macs

MAX_VALUE_ELEMENTS = 1 << 20  # run a model only when every value in it is at most this large
MAX_WORK = 2e7  # ... and its multiply-accumulates (convolutions, linear) plus window reads (pools) stay below this
RUN_PLAN = True


def _work(graph):
    """Multiply-accumulates plus the elements pooling windows read: what running the graph costs, roughly."""
    work = count_macs(graph)
    for node in graph.nodes:
        kernel = node.attrs.get("kernel_size")
        out = graph.shapes[node.outputs[0]]
        work += math.prod(out) * (math.prod(kernel) if kernel else 1)
        if node.op.startswith("adaptive") or node.op.startswith("global"):
            work += math.prod(graph.shapes[node.inputs[0]])
    return work


def _model_inputs(data):
    """(integer input bindings for load(constants=), names of the float inputs whose batch is dynamic), read with
    onnx; ({}, []) when the bytes do not parse (convcore.onnx.load refuses them itself)."""
    try:
        import onnx

        proto = onnx.ModelProto.FromString(data)
        graph = proto.graph
        metadata = {p.key: p.value for p in proto.metadata_props}
        initializers = {t.name for t in graph.initializer}
        constants, dynamic = {}, []
        for value in graph.input:
            if value.name in initializers or not value.type.HasField("tensor_type"):
                continue
            t = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim] if t.HasField("shape") else []
            if t.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
                dtype = np.int64 if t.elem_type == onnx.TensorProto.INT64 else np.int32
                text = metadata.get(f"convcore.fuzz.{value.name}")
                if text is not None:
                    values = [int(v) for v in text.split(",") if v.strip()][:64]
                else:
                    count = dims[0] if len(dims) == 1 and 0 <= dims[0] <= 8 else 1
                    values = np.random.default_rng(len(data)).integers(-1, 5, count).tolist()
                constants[value.name] = np.asarray(values, dtype).reshape(-1 if dims else ())
            elif t.elem_type == onnx.TensorProto.FLOAT and dims and dims[0] < 1:
                dynamic.append(value.name)
        return constants, dynamic
    except Exception:  # DecodeError, a malformed metadata value, ...: load decides on the bytes alone
        return {}, []


def _same(a, b):
    """Equal shapes and close values; non-finite values only need to be non-finite in both (an eager kernel and a
    plan's may reach -inf or NaN from the same infinities)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return False
    scale = max(float(np.abs(b[finite]).max(initial=0.0)), 1.0)
    return bool(np.allclose(a[finite], b[finite], rtol=1e-4, atol=1e-5 * scale))


def _check_other_batch(data, constants, net, x):
    """The model imported at batch n, run at n + 1 (eagerly, then compiled at n), against the model imported at n + 1
    (eagerly, then compiled at n + 1): the same answer, or a ValueError; never another answer."""
    graph = net.graph
    bigger = np.concatenate([x, x[:1] * 0.5])
    try:
        reference = convcore.onnx.load(data, input_shape={graph.inputs[0]: bigger.shape}, constants=constants or None)
    except (ValueError, TypeError):
        reference = None
    for run in ("eager", "plan") if RUN_PLAN else ("eager",):
        try:
            got = net(bigger) if run == "eager" else convcore.compile(net, x.shape, winograd=False)(bigger)
        except (ValueError, TypeError, NotImplementedError):
            continue  # a clean refusal (a guarded graph, an op plans do not cover, ...)
        if reference is None:
            raise AssertionError(f"{run}: ran at batch {len(bigger)}, which the model cannot be imported at")
        try:
            expected = reference(bigger) if run == "eager" else \
                convcore.compile(reference, bigger.shape, winograd=False)(bigger)
        except (ValueError, TypeError, NotImplementedError):
            continue
        for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else
                        (expected,)):
            if not _same(a, b):
                raise AssertionError(f"{run}: at batch {len(bigger)} the model imported at batch {len(x)} gives "
                                     f"{np.shape(a)}, the model imported at {len(bigger)} gives {np.shape(b)} (or "
                                     f"other values): a silent wrong result")


def test_one_input(data):
    constants, dynamic = _model_inputs(data)
    try:
        net = convcore.onnx.load(data, constants=constants or None)
    except (ValueError, TypeError):
        return
    if isinstance(net, convcore.onnx.BoundONNXModule):  # a float input feeds a constant slot: bound per call
        return
    graph = net.graph
    shapes = [graph.shapes[name] for name in graph.values]
    if any(math.prod(s) > MAX_VALUE_ELEMENTS for s in shapes) or _work(graph) > MAX_WORK:
        return
    inputs = [np.random.default_rng(0).standard_normal(graph.shapes[name]).astype(np.float32)
              for name in graph.inputs]
    try:
        eager = net(*inputs)
    except (ValueError, TypeError):
        return
    if dynamic and dynamic == list(graph.inputs) and inputs[0].ndim >= 1 and \
            2 * math.prod(inputs[0].shape) <= MAX_VALUE_ELEMENTS and 2 * _work(graph) <= MAX_WORK:
        _check_other_batch(data, constants, net, inputs[0])
    if not RUN_PLAN or len(inputs) != 1:
        return
    try:
        plan = convcore.compile(net, inputs[0].shape)
    except (ValueError, TypeError, NotImplementedError):
        return
    compiled = plan(inputs[0])
    for a, b in zip(eager if isinstance(eager, tuple) else (eager,),
                    compiled if isinstance(compiled, tuple) else (compiled,)):
        if a.shape != b.shape:
            raise AssertionError(f"eager and compiled shapes differ: {a.shape} vs {b.shape}")


if __name__ == "__main__":
    main(test_one_input, "onnx")
