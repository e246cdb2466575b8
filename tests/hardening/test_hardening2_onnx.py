"""Issue 22 ("Hardening, round 2"), the ONNX items 2, 3, 5, 7, 8, 9 and 14: results checked against onnxruntime,
blow-ups in a child process that reports its own peak memory."""

import os
import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convcore  # noqa: E402
import convcore.onnx  # noqa: E402

from .helpers import run_child  # noqa: E402


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    """A ModelProto; `inputs` / `outputs` are (name, shape) pairs of float32 tensors (shape None: unknown)."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _ort(model, *inputs):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)})


def _ints(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


# ---- item 5: exported node names are unique --------------------------------------------------------------------

def test_item05_exported_node_names_are_unique():
    """A ReduceMean over H and W without keepdims imports as two graph nodes of the ONNX node's name (a global pool
    and a flatten); the export named both ONNX nodes 'n_ReduceMean_148' and onnxruntime refused the file."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("ReduceMean", ["r", "axes"], ["y"], name="n_ReduceMean_148", keepdims=0),
             helper.make_node("Sigmoid", ["y"], ["z"], name="n_ReduceMean_148_1")]
    model = _model(nodes, [("x", ["N", 3, 4, 4])], [("z", None)], [_ints("axes", [2, 3])], opset=18)
    net = convcore.onnx.load(model.SerializeToString())
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for opset in (13, 18, 21):
        exported = convcore.onnx.export(net, opset=opset)
        names = [n.name for n in exported.graph.node]
        assert len(names) == len(set(names)), names
        np.testing.assert_allclose(_ort(exported, x)[0], net(x), rtol=1e-6, atol=1e-6)


def test_item05_backend_densenet_exports_and_loads_in_onnxruntime():
    import onnx.backend.test

    path = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "light", "light_densenet121.onnx")
    net = convcore.onnx.load(path)
    exported = convcore.onnx.export(net, opset=18)
    names = [n.name for n in exported.graph.node]
    assert len(names) == len(set(names))
    ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])


# ---- item 14: import time is linear in nodes sharing one name --------------------------------------------------

def _same_name_chain(n):
    """n HardSigmoid nodes all named 'h' (each imports as mul + add + clip, whose values are named from 'h')."""
    nodes, prev = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("HardSigmoid", [prev], [f"v{i}"], name="h", alpha=0.3))
        prev = f"v{i}"
    return _model(nodes, [("x", [1, 2])], [(prev, [1, 2])]).SerializeToString()


def test_item14_load_is_linear_in_duplicate_node_names():
    def load_seconds(data):
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            convcore.onnx.load(data)
            best = min(best, time.perf_counter() - start)
        return best

    small, large = _same_name_chain(3000), _same_name_chain(6000)
    load_seconds(small)  # warm up
    t_small, t_large = load_seconds(small), load_seconds(large)
    assert t_large <= 3 * t_small, (t_small, t_large)
    net = convcore.onnx.load(small)
    names = [v for node in net.graph.nodes for v in node.outputs]
    assert len(names) == len(set(names))
