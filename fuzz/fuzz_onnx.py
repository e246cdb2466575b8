"""Fuzz target: `convcore.onnx.load` on mutated ONNX bytes, then the loaded model run eagerly and compiled.

Contract: load, run and compile raise only ValueError / TypeError (NotImplementedError too for `compile`, which
does not cover every op), never anything else, never crash, hang or blow memory up. A model is run only when its
shapes and work are small (the fuzzer looks for holes, not for legitimately large models).

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


def test_one_input(data):
    try:
        net = convcore.onnx.load(data)
    except (ValueError, TypeError):
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
    if not RUN_PLAN or len(inputs) != 1:
        return
    try:
        plan = convcore.compile(net, inputs[0].shape)
    except (ValueError, TypeError, NotImplementedError):
        return
    compiled = plan(inputs[0])
    for a, b in zip(eager if isinstance(eager, tuple) else (eager,), compiled if isinstance(compiled, tuple) else (compiled,)):
        if a.shape != b.shape:
            raise AssertionError(f"eager and compiled shapes differ: {a.shape} vs {b.shape}")


if __name__ == "__main__":
    main(test_one_input, "onnx")
