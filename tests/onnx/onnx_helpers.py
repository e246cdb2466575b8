"""Helpers shared by the ONNX tests (a plain module: test folders without __init__.py share one namespace)."""

import numpy as np

try:
    import onnxruntime as ort
except ImportError:  # the tests importorskip it
    ort = None


def ort_session(model, optimize=True):
    """An onnxruntime CPU session for a ModelProto (or bytes), as a function: inputs -> list of outputs.
    `optimize=False` turns onnxruntime's graph optimizations off."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *inputs: session.run(None, dict(zip(names, inputs)))


def ort_run(model, *inputs):
    """Run an ONNX ModelProto (or bytes) with onnxruntime on the CPU once; returns the list of outputs."""
    return ort_session(model)(*inputs)


def max_rel_error(ours, reference):
    """max|ours - reference| / max|reference| (0-safe)."""
    reference = np.asarray(reference, np.float64)
    assert np.shape(ours) == reference.shape, (np.shape(ours), reference.shape)
    return float(np.abs(np.asarray(ours, np.float64) - reference).max() / max(np.abs(reference).max(), 1e-30))


def assert_parity(ours, reference, rtol=1e-4, atol=1e-5):
    """The whole-model bound: max|err| <= rtol * max|reference| + atol."""
    reference = np.asarray(reference, np.float64)
    assert np.shape(ours) == reference.shape, (np.shape(ours), reference.shape)
    err = float(np.abs(np.asarray(ours, np.float64) - reference).max())
    bound = rtol * float(np.abs(reference).max()) + atol
    assert err <= bound, f"max error {err:.3g} > bound {bound:.3g}"


def randomize_batch_norm(model, seed=0):
    """Give every convcore BatchNorm2d non-trivial statistics and affine parameters (fresh ones are identities)."""
    from convcore import nn

    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean = (rng.random(c) - 0.5).astype(np.float32)
            module.running_var = (rng.random(c) * 1.5 + 0.5).astype(np.float32)
            module.weight = (rng.random(c) + 0.5).astype(np.float32)
            module.bias = (rng.random(c) - 0.5).astype(np.float32)
    return model


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=None):
    """A ModelProto from helper-made parts; `inputs` / `outputs` are (name, shape) pairs of float32 tensors, or
    (name, shape, element type) triples."""
    from onnx import TensorProto, helper

    def info(value):
        return helper.make_tensor_value_info(value[0], value[2] if len(value) > 2 else TensorProto.FLOAT, value[1])

    graph = helper.make_graph(nodes, "test", [info(v) for v in inputs], [info(v) for v in outputs],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version or helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    return model
