"""LSTM and GRU (ONNX semantics): the ops against torch's nn.LSTM / nn.GRU, ONNX files against onnxruntime (every
direction, initial states, peepholes, only some outputs read), the ops' ONNX export, and clear errors for what
convcore does not run. The ONNX backend node tests (tests/onnx/backend_cases.py) cover the spec's own cases."""

import numpy as np
import pytest

from reference import assert_close

import convcore
import convcore.functional as F
import convcore.onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def rand(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _model(op, direction, hidden, outputs, rng, peepholes=False, initial=True, attrs=None, length=6, batch=3):
    d, g, features = (2 if direction == "bidirectional" else 1), (4 if op == "LSTM" else 3), 5
    arrays = {"W": rand(rng, d, g * hidden, features), "R": rand(rng, d, g * hidden, hidden),
              "B": rand(rng, d, 2 * g * hidden)}
    inputs = ["x", "W", "R", "B", ""]
    if initial:
        arrays["h0"] = rand(rng, d, batch, hidden)
        inputs.append("h0")
        if op == "LSTM":
            arrays["c0"] = rand(rng, d, batch, hidden)
            inputs.append("c0")
    if peepholes:
        arrays["P"] = rand(rng, d, 3 * hidden)
        inputs += [""] * (7 - len(inputs)) + ["P"]
    names = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[:3 if op == "LSTM" else 2]]
    while not names[-1]:
        names.pop()
    node = helper.make_node(op, inputs, names, hidden_size=hidden, direction=direction, **(attrs or {}))
    graph = helper.make_graph([node], "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [length, batch, features])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n],
                              [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString(), rand(rng, length, batch, features, scale=1.0)


@pytest.mark.parametrize("op, direction, outputs, peepholes, initial, attrs", [
    ("LSTM", "forward", ["Y"], False, False, None),
    ("LSTM", "bidirectional", ["Y", "Y_h", "Y_c"], True, True, None),
    ("LSTM", "reverse", ["Y_h"], False, True, None),
    ("LSTM", "reverse", ["Y_c"], True, False, None),
    ("GRU", "forward", ["Y", "Y_h"], False, True, {"linear_before_reset": 1}),
    ("GRU", "bidirectional", ["Y"], False, False, None),
    ("GRU", "reverse", ["Y_h"], False, True, {"linear_before_reset": 0}),
])
def test_onnx_recurrent_matches_onnxruntime(op, direction, outputs, peepholes, initial, attrs):
    rng = np.random.default_rng(len(outputs) + 3 * peepholes)
    data, x = _model(op, direction, 7, outputs, rng, peepholes, initial, attrs)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = convcore.onnx.load(data)(x)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want):
        assert_close(g, w, 1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_ops_match_torch(kind, bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = getattr(torch.nn, kind)(5, 6, bidirectional=bidirectional)
    x = np.random.default_rng(1).standard_normal((7, 2, 5)).astype(np.float32)
    want = net(torch.from_numpy(x))[0].detach().numpy()  # (L, N, D * H)
    d = 2 if bidirectional else 1
    # torch's gate order: LSTM i, f, g, o; GRU r, z, n. ONNX's: LSTM i, o, f, c; GRU z, r, h.
    order = (0, 3, 1, 2) if kind == "LSTM" else (1, 0, 2)

    def onnx_order(a):
        chunks = np.split(a.detach().numpy(), len(order), axis=0)
        return np.concatenate([chunks[i] for i in order], axis=0)

    def param(name):
        return np.stack([onnx_order(getattr(net, f"{name}_l0{s}")) for s in ["", "_reverse"][:d]])

    w, r = param("weight_ih"), param("weight_hh")
    b = np.concatenate([param("bias_ih"), param("bias_hh")], axis=1)
    direction = "bidirectional" if bidirectional else "forward"
    if kind == "LSTM":
        y = F.lstm(x, w, r, b, hidden_size=6, direction=direction)
    else:  # torch's GRU applies the reset gate after the recurrent product
        y = F.gru(x, w, r, b, hidden_size=6, direction=direction, linear_before_reset=True)
    assert_close(y.transpose(0, 2, 1, 3).reshape(7, 2, d * 6), want, 1e-5)


def test_ops_export_to_onnx(tmp_path):
    rng = np.random.default_rng(2)
    w, r, b = rand(rng, 2, 16, 3), rand(rng, 2, 16, 4), rand(rng, 2, 32)
    wg, rg = rand(rng, 1, 9, 8), rand(rng, 1, 9, 3)

    def fn(x):
        y = F.lstm(x, w, r, b, hidden_size=4, direction="bidirectional")  # (L, 2, N, 4)
        seq = F.flatten(F.transpose(y, (0, 2, 1, 3)), 2)  # (L, N, 8): both directions' states
        return F.gru(seq, wg, rg, hidden_size=3, output="h", linear_before_reset=True)

    x = rand(rng, 5, 2, 3)
    path = tmp_path / "rnn.onnx"
    convcore.onnx.export(convcore.trace(fn, x.shape), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {session.get_inputs()[0].name: x})[0], fn(x), 1e-5)


@pytest.mark.parametrize("attrs, match", [
    ({"activations": ["Relu", "Tanh", "Tanh"]}, "default activations"),
    ({"clip": 2.0}, "clip"),
    ({"input_forget": 1}, "input_forget"),
])
def test_unsupported_variants_are_clear_errors(attrs, match):
    data, _ = _model("LSTM", "forward", 3, ["Y"], np.random.default_rng(3), attrs=attrs)
    with pytest.raises(ValueError, match=match):
        convcore.onnx.load(data)


def test_bad_shapes_name_the_argument():
    rng = np.random.default_rng(4)
    x, w, r = rand(rng, 4, 2, 3), rand(rng, 1, 8, 3), rand(rng, 1, 8, 2)
    with pytest.raises(ValueError, match="r: expected shape"):
        F.lstm(x, w, rand(rng, 1, 8, 3), hidden_size=2)
    with pytest.raises(ValueError, match="direction"):
        F.lstm(x, w, r, hidden_size=2, direction="both")
    with pytest.raises(ValueError, match="output"):
        F.gru(x, rand(rng, 1, 6, 3), rand(rng, 1, 6, 2), hidden_size=2, output="c")
    with pytest.raises(ValueError, match="x: expected"):
        F.lstm(np.zeros((0, 2, 3), np.float32), w, r, hidden_size=2)
