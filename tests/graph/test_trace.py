"""convcore.trace and the Graph IR: node names, params, shapes, Graph.run against eager execution, printing,
passes' helpers (validate, topological_sort, infer_shapes) and pickling."""

import pickle
import random

import numpy as np
import pytest

from reference import assert_close

from convcore import nn
import convcore.functional as F
from convcore import ops
from convcore.graph import Graph, Node, Value, trace  # noqa: E402

BOUND = 1e-4


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        return self.fc(F.flatten(self.avgpool(x), 1))


class SqueezeExcite(nn.Module):
    """Uses Value * Value broadcasting, a constant, concat and two outputs."""

    def __init__(self, c):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(c, c, 1)
        self.gate = nn.Hardsigmoid()
        self.offset = np.full((1, c, 1, 1), 0.5, np.float32)  # a plain attribute: not owned -> a constant

    def forward(self, x):
        s = self.gate(self.fc(self.pool(x)))
        y = x * s
        y = 2.0 * y + self.offset
        z = self.offset + F.relu(y)
        return F.concat([y, z], axis=1), F.global_max_pool2d(z)


def randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    sd = {}
    for key, value in model.state_dict().items():
        if key.endswith("running_var"):
            sd[key] = rng.random(value.shape) + 0.5
        elif key.endswith("num_batches_tracked"):
            sd[key] = value
        else:
            sd[key] = rng.standard_normal(value.shape) * 0.3
    model.load_state_dict(sd)
    return model.eval()


def intermediate_shapes(model, x):
    """Record each functional call's output shape eagerly by wrapping the ops (not through the tracer)."""
    shapes = []
    originals = {}
    for op in ("conv2d", "batch_norm", "relu", "max_pool2d", "adaptive_avg_pool2d", "flatten", "linear"):
        originals[op] = getattr(F, op)

        def wrapped(*args, _fn=originals[op], **kwargs):
            out = _fn(*args, **kwargs)
            shapes.append(out.shape)
            return out

        setattr(F, op, wrapped)
    try:
        model(x)
    finally:
        for op, fn in originals.items():
            setattr(F, op, fn)
    return shapes


def test_resnet_trace_structure():
    model = randomized(TinyResNet())
    g = trace(model, (2, 3, 32, 32))
    names = [n.name for n in g.nodes]
    assert names[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1.0.conv1"]
    # A reused ReLU gets suffixes; a block's own `+=` is named by the block and the op.
    assert names[5:11] == ["layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2", "layer1.0.add",
                           "layer1.0.relu_1"]
    assert "layer1.1.downsample.0" in names and "layer1.1.downsample.1" in names
    assert names[-3:] == ["avgpool", "flatten", "fc"]
    assert len(names) == len(set(names)) == 23
    assert g.inputs == ["input"] and g.outputs == ["fc"] and g.shapes["fc"] == (2, 10)
    conv = g.nodes[0]
    assert conv.op == "conv2d" and conv.inputs == ["input", "conv1.weight", ""]
    # Attributes are stored normalised (docs/architecture.md): pairs, 4-sided padding, every default filled in.
    assert conv.attrs == {"stride": (2, 2), "padding": (3, 3, 3, 3), "dilation": (1, 1), "groups": 1}
    bn = g.nodes[1]
    assert bn.inputs == ["conv1", "bn1.running_mean", "bn1.running_var", "bn1.weight", "bn1.bias"]
    assert bn.attrs["eps"] == 1e-5
    add = g.nodes[9]
    assert add.op == "add" and add.inputs == ["layer1.0.bn2", "maxpool"]
    # Params: named by module path, the same arrays as the model's (num_batches_tracked is never used).
    sd = model.state_dict()
    assert set(g.params) == {k for k in sd if not k.endswith("num_batches_tracked")}
    assert all(g.params[k] is sd[k] for k in g.params)
    # Recorded shapes equal the eager ones, op by op (eagerly, `out += identity` is numpy's add, not F.add).
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert [g.shapes[n.outputs[0]] for n in g.nodes if n.op != "add"] == intermediate_shapes(model, x)


def test_trace_runs_no_kernels(monkeypatch):
    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel ran during tracing")

    model = randomized(TinyResNet())
    for op in ops.OPS.values():
        monkeypatch.setattr(op, "kernel", no_kernel)
    g = trace(model, (1, 3, 32, 32))
    assert len(g.nodes) == 23 and g.shapes["fc"] == (1, 10)


def test_trace_is_exported_by_convcore():
    import convcore
    import convcore.graph

    assert convcore.trace is convcore.graph.trace and convcore.Graph is convcore.graph.Graph


def test_resnet_graph_runs_like_eager():
    model = randomized(TinyResNet())
    g = trace(model, (2, 3, 32, 32))
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert_close(g.run(x), model(x), BOUND)
    x5 = np.random.default_rng(2).standard_normal((5, 3, 32, 32)).astype(np.float32)
    assert_close(g.run(x5), model(x5), BOUND)  # another batch size
    with pytest.raises(ValueError, match=r"expected input 'input' of shape \(N, 3, 32, 32\)"):
        g.run(x[:, :, :31])
    with pytest.raises(TypeError, match="1 input"):
        g.run(x, x)


def test_trace_restores_modes_and_hooks():
    model = TinyResNet()
    model.layer1[0].train()
    model.fc.eval()
    before = [m.training for m in model.modules()]
    trace(model, (1, 3, 16, 16))
    assert [m.training for m in model.modules()] == before
    assert ops.active_tracer() is None

    class Broken(nn.Module):
        def forward(self, x):
            return np.maximum(x, 0)  # numpy on a Value: refused

    with pytest.raises(TypeError):
        trace(Broken(), (1, 3, 4, 4))
    assert ops.active_tracer() is None


def test_values_constants_concat_and_multiple_outputs():
    model = randomized(SqueezeExcite(4))
    g = trace(model, (1, 4, 6, 6))
    ops = [(n.name, n.op) for n in g.nodes]
    assert ops == [("pool", "adaptive_avg_pool2d"), ("fc", "conv2d"), ("gate", "hardsigmoid"), ("mul", "mul"),
                   ("mul_1", "mul"), ("add", "add"), ("relu", "relu"), ("add_1", "add"), ("concat", "concat"),
                   ("global_max_pool2d", "global_max_pool2d")]
    scale = g.nodes[4]
    assert scale.inputs[1] == "mul" and g.params[scale.inputs[0]].shape == ()  # 2.0 * y: a constant first
    assert float(g.params[scale.inputs[0]]) == 2.0
    offset_names = {g.nodes[5].inputs[1], g.nodes[7].inputs[0]}
    assert len(offset_names) == 1 and g.params[offset_names.pop()] is model.offset  # one constant, used twice
    assert g.nodes[8].inputs == ["add", "add_1"] and g.shapes["concat"] == (1, 8, 6, 6)
    assert g.outputs == ["concat", "global_max_pool2d"] and g.shapes["global_max_pool2d"] == (1, 4, 1, 1)
    x = np.random.default_rng(3).standard_normal((1, 4, 6, 6)).astype(np.float32)
    got, ref = g.run(x), model(x)
    assert len(got) == 2
    for a, b in zip(got, ref):
        assert_close(a, b, BOUND)


def test_value_protocol():
    v = Value("v", (2, 3, 4, 4))
    assert v.shape == (2, 3, 4, 4) and v.ndim == 4 and v.dtype == np.float32
    assert "shape=(2, 3, 4, 4)" in repr(v)
    with pytest.raises(TypeError, match="no data"):
        np.asarray(v)


def test_constant_only_calls_are_computed_eagerly():
    class Const(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = np.array([[-1.0, 2.0]], np.float32)

        def forward(self, x):
            return F.linear(x, F.relu(self.table))  # relu of a constant: folded, not a node

    model = Const()
    g = trace(model, (3, 2))
    assert [n.op for n in g.nodes] == ["linear"]
    np.testing.assert_array_equal(g.params[g.nodes[0].inputs[1]], [[0.0, 2.0]])
    x = np.ones((3, 2), np.float32)
    assert_close(g.run(x), model(x), BOUND)


def test_trace_errors():
    with pytest.raises(TypeError, match="input_shape"):
        trace(nn.ReLU(), 5)
    with pytest.raises(ValueError, match="positive"):
        trace(nn.ReLU(), (1, 0, 3))

    class ReturnsArray(nn.Module):
        def forward(self, x):
            return np.zeros(3, np.float32)

    with pytest.raises(TypeError, match="return a traced Value"):
        trace(ReturnsArray(), (1, 3))
    with pytest.raises(ValueError, match="channels"):
        trace(nn.Conv2d(4, 4, 3), (1, 3, 8, 8))

    class Nested(nn.Module):
        def forward(self, x):
            trace(nn.ReLU(), (1,))
            return x

    with pytest.raises(RuntimeError, match="inside another trace"):
        trace(Nested(), (1, 2))


def test_single_layer_and_sequential_names():
    g = trace(nn.Conv2d(3, 4, 3), (1, 3, 8, 8))
    assert [n.name for n in g.nodes] == ["conv2d"] and set(g.params) == {"weight", "bias"}
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 2))
    g = trace(seq, (1, 3, 8, 8))
    assert [n.name for n in g.nodes] == ["0", "1", "2", "3"] and g.shapes["3"] == (1, 2)
    assert g.nodes[0].attrs["padding"] == (1, 1, 1, 1)  # 'same' resolved for the traced 8x8 input


def test_graph_str_is_a_readable_table():
    g = trace(randomized(TinyResNet()), (1, 3, 32, 32))
    text = str(g)
    lines = text.splitlines()
    assert lines[0].startswith("Graph TinyResNet: 23 nodes")
    assert "input (1, 3, 32, 32)" in lines[1]
    conv_line = next(line for line in lines if line.startswith("conv1 "))
    for part in ["conv2d", "input", "(1, 8, 16, 16)", "stride=(2, 2)", "padding=(3, 3)"]:
        assert part in conv_line, conv_line
    assert "groups" not in conv_line  # defaults are left out
    add_line = next(line for line in lines if line.startswith("layer1.0.add "))
    assert "layer1.0.bn2, maxpool" in add_line
    assert lines[-1] == "outputs: fc (1, 10)"
    assert "nodes=23" in repr(g)


def test_infer_shapes_topological_sort_validate_and_pickle():
    model = randomized(TinyResNet())
    g = trace(model, (2, 3, 32, 32))
    recorded = dict(g.shapes)
    g.infer_shapes()
    assert g.shapes == recorded
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = g.run(x)
    shuffled = Graph(list(g.nodes), g.inputs, g.outputs, g.params, g.shapes)
    random.Random(0).shuffle(shuffled.nodes)
    with pytest.raises(ValueError, match="not defined before"):
        shuffled.validate()
    shuffled.topological_sort()
    shuffled.validate()
    np.testing.assert_array_equal(shuffled.run(x), expected)
    clone = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(clone.run(x), expected)
    cyclic = Graph([Node("relu", "a", ["b"], ["a"]), Node("relu", "b", ["a"], ["b"])], ["input"], ["b"])
    with pytest.raises(ValueError, match="cycle"):
        cyclic.topological_sort()
    with pytest.raises(ValueError, match="unknown op"):
        Graph([Node("no_such_op", "a", ["input"], ["a"])], ["input"], ["a"]).validate()


def test_two_threads_trace_and_run_at_the_same_time():
    # The tracer belongs to the thread that traces (docs/architecture.md): while thread A is inside a trace, thread
    # B computes eagerly, traces a model of its own and runs graphs, and neither sees the other's calls.
    import threading

    inside, resume = threading.Event(), threading.Event()

    class Pausing(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            if isinstance(y, Value):  # tracing: hold the trace open until thread B is done
                inside.set()
                assert resume.wait(30)
            return F.relu(y)

    model_a, model_b = randomized(Pausing()), randomized(TinyResNet(), seed=1)
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)
    results, errors = {}, []

    def thread_a():
        try:
            results["a"] = trace(model_a, (1, 3, 16, 16))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def thread_b():
        try:
            assert inside.wait(30)
            results["b_eager"] = model_b(x)
            results["b_graph"] = trace(model_b, (1, 3, 16, 16))
            results["b_run"] = results["b_graph"].run(x)
        except BaseException as exc:
            errors.append(exc)
        finally:
            resume.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert [n.op for n in results["a"].nodes] == ["conv2d", "relu"]
    assert len(results["b_graph"].nodes) == 23
    assert_close(results["b_eager"], model_b(x), BOUND)
    assert_close(results["b_run"], model_b(x), BOUND)
    assert_close(results["a"].run(x), model_a(x), BOUND)
