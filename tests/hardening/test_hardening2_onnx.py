"""Issue 22 ("Hardening, round 2"), the ONNX items 2, 3, 5, 7, 8, 9 and 14: results checked against onnxruntime,
blow-ups in a child process that reports its own peak memory."""

import os
import tempfile

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
    """n HardSigmoid nodes all named 'h' (each imports as mul + add + clip, whose values are named from 'h'), on an
    input with a dynamic batch (so the import's second conversion, item 3, is timed too)."""
    nodes, prev = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("HardSigmoid", [prev], [f"v{i}"], name="h", alpha=0.3))
        prev = f"v{i}"
    return _model(nodes, [("x", ["N", 2])], [(prev, ["N", 2])]).SerializeToString()


def test_item14_load_is_linear_in_duplicate_node_names():
    """Timed in a fresh child (the suite's large heap makes garbage collection pauses grow with it), the best of three
    loads each, the collector off while timing: doubling the nodes at most triples the time (it quadrupled, from
    unique_name, and again from the batch check's per-node records until they were made linear)."""
    code, out, err = run_child("""
        import gc, time
        import convcore.onnx
        from tests.hardening.test_hardening2_onnx import _same_name_chain
        small, large = _same_name_chain(3000), _same_name_chain(6000)

        def seconds(data):
            best = float("inf")
            for _ in range(3):
                gc.collect()
                gc.disable()
                start = time.perf_counter()
                net = convcore.onnx.load(data)
                best = min(best, time.perf_counter() - start)
                gc.enable()
            return best, net

        seconds(small)  # warm up
        (t_small, net), (t_large, _) = seconds(small), seconds(large)
        names = [v for node in net.graph.nodes for v in node.outputs]
        report(small=t_small, large=t_large, unique=len(names) == len(set(names)))
    """)
    assert code == 0, err[-3000:]
    assert out["unique"] and out["large"] <= 3 * out["small"], out


# ---- item 7: folded constants are bounded before they are allocated ---------------------------------------------

def _load_in_child(model, extra_mb=1024, run=None):
    """Load `model` in a child whose address space is capped `extra_mb` above its start; reports the outcome and the
    peak memory growth. `run`: optional input shape to run the loaded model (eager and compiled) on."""
    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(model.SerializeToString())
        f.flush()
        return _load_file_in_child(f.name, extra_mb, run)


def _load_file_in_child(path, extra_mb, run):
    code, out, err = run_child(f"""
        import convcore, convcore.onnx
        with open({path!r}, "rb") as f:
            data = f.read()
        limit_address_space({extra_mb})
        mark()
        try:
            net = convcore.onnx.load(data)
            outcome = "loaded"
            if {run!r} is not None:
                x = np.zeros({run!r}, np.float32)
                net(x)
                convcore.compile(net, {run!r})(x)
                outcome = "ran"
            report(outcome=outcome)
        except ValueError as exc:
            report(outcome="ValueError", message=str(exc))
        report(peak_mb=peak_mb())
    """)
    assert code == 0, err[-3000:]
    return out


def test_item07_tile_with_more_repeats_than_axes_is_refused_before_allocating():
    """Tile of a 1-element constant with repeats [2^14, 2^15]: the bound read zip(shape, repeats) = [2^14] and numpy
    then built a 2^29-element (2 GiB) array."""
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(1, np.float32), "c")),
             helper.make_node("Tile", ["c", "r"], ["t"], name="tile"),
             helper.make_node("Add", ["x", "t"], ["y"])]
    model = _model(nodes, [("x", [1, 1])], [("y", None)], [_ints("r", [2**14, 2**15])])
    assert len(model.SerializeToString()) < 250
    out = _load_in_child(model)
    assert out["outcome"] == "ValueError" and "node 'tile' (Tile)" in out["message"], out
    assert "one repeat per axis" in out["message"] and out["peak_mb"] < 100, out


@pytest.mark.parametrize("op", ["Div", "Mod", "Add", "Where", "Tile", "Expand", "Gather"])
def test_item07_every_folded_op_is_bounded_before_allocating(op):
    """Each folder on broadcast-shaped constants (ConstantOfShape: no memory until used) whose result has 2^32
    elements: Div and Mod had no bound at all."""
    def const_of_shape(name, shape, value=1.0):
        return helper.make_node("ConstantOfShape", [f"{name}.shape"], [name],
                                value=numpy_helper.from_array(np.array([value], np.float32), "v")), \
            _ints(f"{name}.shape", shape)

    (na, sa), (nb, sb) = const_of_shape("a", [2**16, 1]), const_of_shape("b", [1, 2**16])
    extra = [_ints("r", [1, 2**16]), _ints("s", [2**16, 2**16]), _ints("i", np.zeros((2**10, 2**7)))]
    body = {"Div": ["a", "b"], "Mod": ["a", "b"], "Add": ["a", "b"], "Where": ["a", "a", "b"], "Tile": ["a", "r"],
            "Expand": ["a", "s"], "Gather": ["b", "i"]}[op]
    attrs = {"fmod": 1} if op == "Mod" else {}
    nodes = [na, nb, helper.make_node(op, body, ["c"], name="big", **attrs), helper.make_node("Add", ["x", "c"], ["y"])]
    out = _load_in_child(_model(nodes, [("x", [1, 1])], [("y", None)], [sa, sb, *extra]))
    assert out["outcome"] == "ValueError" and f"node 'big' ({op})" in out["message"], out
    assert "at most 134217728 elements" in out["message"] and out["peak_mb"] < 100, out


def test_item07_integer_lists_from_constants_are_bounded():
    """A shape-like input (here Tile's repeats) given as a 2^26-element ConstantOfShape became a Python list of
    2^26 ints (gigabytes) before any check."""
    value = numpy_helper.from_array(np.array([1], np.int64), "v")
    nodes = [helper.make_node("ConstantOfShape", ["n"], ["r"], value=value),
             helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(1, np.float32), "c")),
             helper.make_node("Tile", ["c", "r"], ["t"], name="tile"), helper.make_node("Add", ["x", "t"], ["y"])]
    out = _load_in_child(_model(nodes, [("x", [1, 1])], [("y", None)], [_ints("n", [2**26])]))
    assert out["outcome"] == "ValueError" and "node 'tile' (Tile)" in out["message"], out
    assert "at most 65536 repeats" in out["message"] and out["peak_mb"] < 100, out


def test_item07_gather_folds_by_its_result_size():
    """Gather's bound was indices.size * data.size: 4 rows of a 2^25 x 4 constant (16 elements) were refused."""
    value = numpy_helper.from_array(np.array([2.5], np.float32), "v")
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["table"], value=value),
             helper.make_node("Gather", ["table", "i"], ["rows"]), helper.make_node("Add", ["x", "rows"], ["y"])]
    model = _model(nodes, [("x", [1, 4])], [("y", None)], [_ints("s", [2**25, 4]), _ints("i", [0, 5, 7, 2**25 - 1])])
    net = convcore.onnx.load(model.SerializeToString())
    np.testing.assert_array_equal(net(np.zeros((1, 4), np.float32)), np.full((4, 4), 2.5, np.float32))


@pytest.mark.parametrize("op, words", [("Gather", "at most 1048576 constant indices"),
                                       ("Reshape", "at most 65536 shape")])
def test_item07_converters_bound_integer_constants(op, words):
    """The same for a computed value's Gather indices and Reshape shape (a node attribute of Python ints)."""
    value = numpy_helper.from_array(np.array([0], np.int64), "v")
    nodes = [helper.make_node("ConstantOfShape", ["n"], ["k"], value=value),
             helper.make_node(op, ["x", "k"], ["y"], name="big")]
    out = _load_in_child(_model(nodes, [("x", [1, 1])], [("y", None)], [_ints("n", [2**26])]))
    assert out["outcome"] == "ValueError" and f"node 'big' ({op})" in out["message"], out
    assert words in out["message"] and out["peak_mb"] < 200, out


# ---- item 8: an average pool with huge pads is refused before its divisor table is allocated --------------------

@pytest.mark.parametrize("op, pads", [("AveragePool", 2**20), ("AveragePool", 15000), ("MaxPool", 2**20)])
def test_item08_pool_with_huge_pads_is_refused_before_allocating(op, pads):
    """count_include_pad=1 with pads beyond half the kernel: the window-count table (out_h x out_w float64) was
    allocated before any size check (pads 2^20: MemoryError; pads 15000: 7.2 + 7.2 + 3.6 GB)."""
    attrs = {"count_include_pad": 1} if op == "AveragePool" else {}
    node = helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=[3, 3], pads=[pads] * 4, **attrs)
    model = _model([node], [("x", [1, 1, 1, 1])], [("y", None)])
    assert len(model.SerializeToString()) < 160
    out = _load_in_child(model)
    assert out["outcome"] == "ValueError" and f"node 'pool' ({op}): expected pads giving at most" in out["message"]
    assert out["peak_mb"] < 100, out


def test_item08_pool_with_pads_beyond_half_the_kernel_still_matches_onnxruntime():
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 6)).astype(np.float32)
    for op, attrs in [("AveragePool", {"count_include_pad": 1}), ("AveragePool", {"ceil_mode": 1}), ("MaxPool", {})]:
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 1], pads=[2, 2, 1, 2], **attrs)
        model = _model([node], [("x", ["N", 3, 5, 6])], [("y", None)])
        np.testing.assert_allclose(convcore.onnx.load(model.SerializeToString())(x), _ort(model, x)[0], rtol=1e-5,
                                   atol=1e-6)


# ---- item 9: the tensor bound holds for every value at import --------------------------------------------------

def _huge_conv_model():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[2**15] * 4)
    return _model([node], [("x", [1, 1, 1, 1])], [("y", None)],
                  [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")])


def test_item09_conv_output_beyond_the_tensor_bound_is_refused_at_import():
    """A 1x1 Conv with pads 2^15 on a 1x1 input: a 1x1x65537x65537 output (4295098369 elements) loaded, and
    compile / `convcore run` then allocated a 16 GiB output and a 16 GiB arena."""
    model = _huge_conv_model()
    assert len(model.SerializeToString()) < 130
    out = _load_in_child(model, run=(1, 1, 1, 1))
    assert out["outcome"] == "ValueError" and "node 'conv'" in out["message"], out
    assert "(1, 1, 65537, 65537) has 4295098369 elements; at most 2147483647" in out["message"], out
    assert out["peak_mb"] < 100, out


def test_item09_declared_input_beyond_the_tensor_bound_is_refused():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 3, 40000, 40000])], [("y", None)])
    with pytest.raises(ValueError, match=r"input 'x': a tensor of shape \(1, 3, 40000, 40000\) has 4800000000"):
        convcore.onnx.load(model.SerializeToString())
    small = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3, "H", "W"])], [("y", None)])
    with pytest.raises(ValueError, match=r"input 'x': a tensor of shape \(1, 3, 40000, 40000\)"):
        convcore.onnx.load(small.SerializeToString(), input_shape=(1, 3, 40000, 40000))


def test_item09_convcore_run_refuses_the_model_without_allocating(tmp_path):
    path = tmp_path / "huge.onnx"
    path.write_bytes(_huge_conv_model().SerializeToString())
    np.save(tmp_path / "x.npy", np.ones((1, 1, 1, 1), np.float32))
    code, out, err = run_child(f"""
        from convcore.cli import main
        limit_address_space(1024)
        mark()
        report(status=main(["run", {str(path)!r}, "--input", {str(tmp_path / "x.npy")!r}]), peak_mb=peak_mb())
    """)
    assert code == 0, err[-3000:]
    assert out["status"] == 1 and out["peak_mb"] < 100, out
    assert f"convcore: error: {path}: node 'conv'" in err and "at most 2147483647" in err, err[-2000:]
    assert "ValueError" not in err  # no exception class names in the command's messages


# ---- item 2: a -inf Pad folds into a ceil_mode MaxPool only when the windows stay the same ------------------------

def _pad_maxpool(pads, kernel, stride, ceil_mode):
    nodes = [helper.make_node("Pad", ["x", "p", "v"], ["xp"], name="pad"),
             helper.make_node("MaxPool", ["xp"], ["y"], name="pool", kernel_shape=[kernel] * 2, strides=[stride] * 2,
                              ceil_mode=ceil_mode)]
    return _model(nodes, [("x", ["N", 2, 4, 5])], [("y", None)],
                  [_ints("p", pads), numpy_helper.from_array(np.array(-np.inf, np.float32), "v")])


@pytest.mark.parametrize("ceil_mode", [1, 0])
@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (2, 3), (3, 1)])
def test_item02_inf_pad_before_ceil_mode_maxpool_matches_onnxruntime(ceil_mode, kernel, stride):
    """Pad(-inf) then MaxPool(ceil_mode=1): folded into pool padding, the ceil rule dropped windows that start in
    the (formerly data) padded cells: onnxruntime gave (1, 2, 3, 3), convcore (1, 2, 2, 2)."""
    x = np.random.default_rng(2).standard_normal((2, 2, 4, 5)).astype(np.float32)
    lowest = np.finfo(np.float32).min  # onnxruntime's max over a window of only -inf and overrun cells
    for top, bottom, left, right in [(0, 1, 0, 1), (1, 0, 1, 0), (0, 2, 2, 0), (1, 1, 1, 1), (2, 1, 0, 2)]:
        model = _pad_maxpool([0, 0, top, left, 0, 0, bottom, right], kernel, stride, ceil_mode)
        expected = _ort(model, x)[0]
        net = convcore.onnx.load(model.SerializeToString())
        got = net(x)
        assert got.shape == expected.shape, (top, bottom, left, right, got.shape, expected.shape)
        np.testing.assert_array_equal(np.maximum(got, lowest), np.maximum(expected, lowest))
        np.testing.assert_array_equal(convcore.compile(net)(x), got)


def test_item02_exact_folds_are_kept():
    """Where the window counts agree the Pad still becomes pool padding (one max_pool2d node)."""
    net = convcore.onnx.load(_pad_maxpool([0, 0, 1, 1, 0, 0, 1, 1], 3, 2, 1).SerializeToString())
    assert [n.op for n in net.graph.nodes] == ["max_pool2d"]
    net = convcore.onnx.load(_pad_maxpool([0, 0, 0, 0, 0, 0, 1, 1], 2, 2, 1).SerializeToString())
    assert [n.op for n in net.graph.nodes] == ["pad", "max_pool2d"]


# ---- item 3: a graph whose batch was folded at import never gives a silent wrong result at another batch --------

def _batch_model(nodes, initializers=()):
    return _model(nodes, [("x", ["N", 2, 3, 4])], [("y", None)], initializers)


def _batch_models():
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    return {
        # x * Cast(Shape(x)[0])
        "mul": (_batch_model([helper.make_node("Shape", ["x"], ["s"], name="shape"),
                              helper.make_node("Gather", ["s", "zero"], ["n"], name="batch"),
                              helper.make_node("Cast", ["n"], ["nf"], name="cast", to=TensorProto.FLOAT),
                              helper.make_node("Mul", ["x", "nf"], ["y"], name="mul")], [zero]), "'mul' (Mul)"),
        # Reshape(x, [1, -1, H, W])
        "reshape": (_batch_model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
                                 [_ints("shape", [1, -1, 3, 4])]), "'reshape' (Reshape)"),
        # Concat(x, zeros_like(x), axis=0)
        "concat": (_batch_model([helper.make_node("Shape", ["x"], ["s"], name="shape"),
                                 helper.make_node("ConstantOfShape", ["s"], ["z"], name="zeros"),
                                 helper.make_node("Concat", ["x", "z"], ["y"], name="concat", axis=0)]),
                   "'concat' (Concat)"),
    }


@pytest.mark.parametrize("case", ["mul", "reshape", "concat"])
def test_item03_batch_arithmetic_matches_onnxruntime_at_the_imported_batch(case):
    """Imported at batch 3 (input_shape), each reproducer gives onnxruntime's answer at batch 3, eager and compiled;
    imported at the default batch 1, batch 1 is right too."""
    model, _ = _batch_models()[case]
    for batch in (3, 1):
        x = np.random.default_rng(batch).standard_normal((batch, 2, 3, 4)).astype(np.float32)
        expected = _ort(model, x)[0]
        net = convcore.onnx.load(model.SerializeToString(), input_shape=(batch, 2, 3, 4) if batch != 1 else None)
        got = net(x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        np.testing.assert_allclose(convcore.compile(net)(x), expected, rtol=1e-6)


@pytest.mark.parametrize("case", ["mul", "reshape", "concat"])
def test_item03_another_batch_is_refused_naming_the_node_that_froze_it(case):
    """Imported at batch 1 and run at batch 3: x * 1, (3, C, H, W) and a batch of 4 came back silently
    (onnxruntime: x * 3, (1, 3C, H, W), a batch of 6). Now eager, compiled and pickled plans refuse batch 3."""
    import pickle

    model, node = _batch_models()[case]
    net = convcore.onnx.load(model.SerializeToString())
    plan = convcore.compile(net)
    x = np.ones((3, 2, 3, 4), np.float32)
    for run in (net, net.graph.run, plan, pickle.loads(pickle.dumps(plan))):
        with pytest.raises(ValueError, match=r"input 'x': expected batch 1 \(got shape \(3, 2, 3, 4\)\): this model "
                                             r"was imported for batch 1") as info:
            run(x)
        message = str(info.value)
        assert f"node {node}" in message and "input_shape=(3, 2, 3, 4)" in message, message
        if case != "reshape":
            assert "by node 'shape' (Shape)" in message, message
    exported = convcore.onnx.export(net)  # the export keeps the batch it can compute
    assert [d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim] == [1, 2, 3, 4]


def test_item03_models_that_follow_the_batch_stay_open():
    """x.view(x.size(0), -1) as exporters write it (Shape, Gather, Unsqueeze, Concat, Reshape), a Resize to sizes
    computed from Shape, and a plain CNN run at every batch: no guard."""
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    flatten = _batch_model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"]),
                            helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
                            helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
                            helper.make_node("Reshape", ["x", "shape"], ["y"])],
                           [zero, _ints("axes", [0]), _ints("minus1", [-1])])
    resize = _batch_model([helper.make_node("Shape", ["x"], ["s"]),
                           helper.make_node("Slice", ["s", "start", "end"], ["nc"]),
                           helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
                           helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")],
                          [_ints("start", [0]), _ints("end", [2]), _ints("hw", [6, 8])])
    for model in (flatten, resize):
        net = convcore.onnx.load(model.SerializeToString())
        assert not any(node.guard for node in net.graph.nodes)
        plan = convcore.compile(net)
        for batch in (1, 3, 5):
            x = np.random.default_rng(batch).standard_normal((batch, 2, 3, 4)).astype(np.float32)
            expected = _ort(model, x)[0]
            np.testing.assert_allclose(net(x), expected, rtol=1e-6)
            np.testing.assert_allclose(plan(x), expected, rtol=1e-6)


def test_item03_a_model_that_cannot_import_at_another_batch_is_guarded():
    """Squeeze(x, [0]) needs batch 1: imported at 1 it runs there; batch 2 is refused, not squeezed wrongly."""
    model = _model([helper.make_node("Squeeze", ["x", "axes"], ["y"], name="squeeze")], [("x", ["N", 2, 3])],
                   [("y", None)], [_ints("axes", [0])])
    net = convcore.onnx.load(model.SerializeToString())
    x = np.ones((1, 2, 3), np.float32)
    np.testing.assert_array_equal(net(x), _ort(model, x)[0])
    with pytest.raises(ValueError, match=r"importing it at batch 2 fails \(node 'squeeze' \(Squeeze\)"):
        net(np.ones((2, 2, 3), np.float32))


def test_item03_duplicate_graph_inputs_are_refused():
    """Found by the dynamic-batch fuzz check: two graph inputs named 'x' (one with a dynamic batch) imported as one
    input of the last declaration's shape, so the batch check read the wrong declaration."""
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 2, 2, 2]), ("x", [1, 3, 4])], [("y", None)])
    with pytest.raises(ValueError, match=r"graph input\(s\) 'x': declared more than once"):
        convcore.onnx.load(model.SerializeToString())
