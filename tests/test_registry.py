"""The op registry (docs/architecture.md, docs/adding-an-op.md): every op declared once, its normalised attribute
forms (what graph nodes store and later back ends rely on), and the consumers reading the declarations."""

import inspect
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import convcore.functional as F
from convcore import ops
from convcore.graph import TensorType, trace
from reference.activation import CASES as ACTIVATIONS

# The normalised attribute form of every op: name -> (attribute -> a checker of its value).
PAIR = ("pair", lambda v: isinstance(v, tuple) and len(v) == 2 and all(type(i) is int and i >= 1 for i in v))
PADS = ("pads", lambda v: isinstance(v, tuple) and len(v) == 4 and all(type(i) is int and i >= 0 for i in v))
INT = ("int", lambda v: type(v) is int)
AXIS = ("axis", lambda v: type(v) is int and v >= 0)
FLOAT = ("float", lambda v: type(v) is float)
BOOL = ("bool", lambda v: type(v) is bool)
STR = ("str", lambda v: type(v) is str)
INTS = ("ints", lambda v: isinstance(v, tuple) and all(type(i) is int for i in v))
AXES = ("axes", lambda v: isinstance(v, tuple) and all(type(i) is int and i >= 0 for i in v) and list(v) == sorted(v))
FLOATS = ("floats", lambda v: isinstance(v, tuple) and all(type(i) is float for i in v))
SIGNED_PADS = ("signed pads", lambda v: isinstance(v, tuple) and len(v) == 4 and all(type(i) is int for i in v))
PAIR0 = ("pair", lambda v: isinstance(v, tuple) and len(v) == 2 and all(type(i) is int and i >= 0 for i in v))
SIZES = ("sizes", lambda v: isinstance(v, tuple) and all(i is None or type(i) is int and i >= 0 for i in v))
ROI = ("roi", lambda v: v is None or isinstance(v, tuple) and all(type(i) is float for i in v))
REDUCE = {"axes": AXES, "keepdims": BOOL}
WINDOW = {"stride": PAIR, "padding": PADS, "dilation": PAIR}
FORMS = {
    "conv2d": {**WINDOW, "groups": INT},
    "depthwise_conv2d": WINDOW,
    "separable_conv2d": WINDOW,
    "max_pool2d": {"kernel_size": PAIR, "stride": PAIR, "padding": PADS, "dilation": PAIR, "ceil_mode": BOOL},
    "avg_pool2d": {"kernel_size": PAIR, "stride": PAIR, "padding": PADS, "ceil_mode": BOOL, "count_include_pad": BOOL},
    "adaptive_avg_pool2d": {"output_size": PAIR},
    "adaptive_max_pool2d": {"output_size": PAIR},
    "global_avg_pool2d": {},
    "global_max_pool2d": {},
    "batch_norm": {"eps": FLOAT},
    "local_response_norm": {"size": INT, "alpha": FLOAT, "beta": FLOAT, "k": FLOAT},
    "softmax": {"axis": AXIS},
    "log_softmax": {"axis": AXIS},
    "linear": {}, "add": {}, "mul": {},
    "concat": {"axis": AXIS},
    "flatten": {"start_dim": AXIS, "end_dim": AXIS},
    "conv_transpose2d": {"stride": PAIR, "padding": SIGNED_PADS, "output_padding": PAIR0, "dilation": PAIR,
                         "groups": INT},
    "lp_pool2d": {"kernel_size": PAIR, "stride": PAIR, "padding": PADS, "dilation": PAIR, "ceil_mode": BOOL,
                  "p": FLOAT},
    "instance_norm": {"eps": FLOAT},
    "layer_norm": {"axis": AXIS, "eps": FLOAT},
    "attention": {"heads": INT, "scale": FLOAT},
    "quantize_linear": {"scale": FLOATS, "zero_point": INTS, "axis": AXIS, "dtype": STR},
    "dequantize_linear": {"scale": FLOATS, "zero_point": INTS, "axis": AXIS, "dtype": STR},
    "dynamic_quantize_linear": {"output": STR},
    "lstm": {"hidden_size": INT, "direction": STR, "output": STR},
    "gru": {"hidden_size": INT, "direction": STR, "output": STR, "linear_before_reset": BOOL},
    "prelu": {},
    "matmul": {}, "sub": {}, "div": {}, "pow": {}, "maximum": {}, "minimum": {},
    "less": {}, "less_equal": {}, "greater": {}, "greater_equal": {}, "equal": {}, "where": {},
    **{f"reduce_{k}": REDUCE for k in ("sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum",
                                       "log_sum_exp")},
    "reshape": {"shape": INTS}, "identity": {}, "transpose": {"perm": INTS},
    "slice": {"starts": INTS, "ends": INTS, "axes": AXES, "steps": INTS},
    "pad": {"pads": INTS, "mode": STR, "value": FLOAT},
    "gather": {"indices": INTS, "indices_shape": INTS, "axis": AXIS},
    "expand": {"shape": INTS}, "tile": {"repeats": INTS},
    "resize": {"size": SIZES, "scales": FLOATS, "mode": STR, "coordinate_transformation_mode": STR,
               "nearest_mode": STR, "cubic_coeff_a": FLOAT, "exclude_outside": BOOL, "extrapolation_value": FLOAT,
               "antialias": BOOL, "roi": ROI},
    # The activations' forms are in their row of reference.activation.CASES.
    **{case.op: {name: {"float": FLOAT, "str": STR, "int": INT}[kind] for name, kind in case.forms.items()}
       for case in ACTIVATIONS.values()},
}

# (op, input shapes, attributes as a caller may write them)
CASES = [
    ("conv2d", [(1, 3, 10, 9), (6, 3, 3, 3), (6,)], dict(stride=2, padding="same", dilation=np.int64(2))),
    ("conv2d", [(1, 4, 9, 7), (6, 2, 3, 2), None], dict(stride=(2, 1), padding=(1, 2), groups=2)),
    ("depthwise_conv2d", [(1, 4, 9, 9), (8, 1, 3, 3)], dict(stride=2, padding="full")),
    ("separable_conv2d", [(1, 4, 9, 9), (4, 1, 5, 5), (6, 4, 1, 1)], dict(padding="valid")),
    ("max_pool2d", [(1, 3, 10, 11)], dict(kernel_size=3, stride=None, padding=1, ceil_mode=1)),
    ("avg_pool2d", [(1, 3, 10, 11)], dict(kernel_size=(2, 3), padding=(1, 0, 1, 1), count_include_pad=0)),
    ("adaptive_avg_pool2d", [(1, 3, 10, 11)], dict(output_size=(None, 4))),
    ("adaptive_max_pool2d", [(1, 3, 10, 11)], dict(output_size=2)),
    ("global_avg_pool2d", [(2, 3, 5, 4)], {}),
    ("global_max_pool2d", [(2, 3, 5, 4)], {}),
    ("batch_norm", [(2, 3, 5, 4), (3,), (3,)], dict(eps=0)),
    ("local_response_norm", [(1, 6, 4, 4)], dict(size=3, alpha=1, beta=np.float32(0.5))),
    ("softmax", [(2, 10)], dict(axis=-1)),
    ("log_softmax", [(2, 10, 3)], dict(axis=1)),
    ("concat", [(1, 2, 4, 4), (1, 5, 4, 4)], dict(axis=-3)),
    ("flatten", [(2, 3, 4, 5)], dict(start_dim=-3, end_dim=-2)),
] + [(case.op, [(2, 3, 4, 4)], case.attrs) for case in ACTIVATIONS.values()] \
  + [("leaky_relu", [(2, 3)], dict(negative_slope=1)), ("elu", [(2, 3)], dict(alpha=2)),
     ("celu", [(2, 3)], dict(alpha=np.float32(0.5))), ("clip", [(2, 3)], dict(min=0, max=None))] \
  + [("linear", [(3, 16), (10, 16), (10,)], {}), ("add", [(2, 8, 4, 4), (8, 1, 1)], {}),
     ("mul", [(2, 8, 4, 4), ()], {})] \
  + [(name, [(2, 8, 4, 4), (8, 1, 1)], {}) for name in ("sub", "div", "pow", "maximum", "minimum", "less",
                                                       "less_equal", "greater", "greater_equal", "equal")] \
  + [("where", [(8, 1, 1), (2, 8, 4, 4), ()], {})] \
  + [(f"reduce_{k}", [(2, 3, 4, 5)], dict(axes=[-1, np.int64(1)], keepdims=0))
     for k in ("sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum", "log_sum_exp")] + [
    ("conv_transpose2d", [(1, 4, 5, 6), (4, 3, 3, 3), (6,)], dict(stride=2, padding=(1, -1), output_padding=1,
                                                                  groups=2)),
    ("lp_pool2d", [(1, 3, 10, 11)], dict(kernel_size=3, padding=1, p=3)),
    ("instance_norm", [(2, 3, 5, 4), (3,), (3,)], dict(eps=0)),
    ("layer_norm", [(2, 3, 5, 4), (5, 4), (4,)], dict(axis=np.int64(-2), eps=0)),
    ("attention", [(2, 5, 12)], dict(heads=np.int64(2), scale=np.float32(0.5))),
    ("quantize_linear", [(2, 3, 4, 4)], dict(scale=[0.5, np.float32(0.25), 2], zero_point=np.array([1, -2, 0]),
                                              axis=np.int64(-3))),
    ("dequantize_linear", [(2, 3, 4, 4)], dict(scale=np.float32(0.1), zero_point=7, dtype="uint8")),
    ("fake_quantize", [(2, 3, 4, 4)], dict(scale=[np.float32(0.1)], zero_point=np.array([3]), dtype="uint8")),
    ("dynamic_quantize_linear", [(2, 3, 4, 4)], dict(output="scale")),
    ("lstm", [(3, 2, 4), (2, 20, 4), (2, 20, 5), (2, 40), None, None, None],
     dict(hidden_size=np.int64(5), direction="bidirectional", output="c")),
    ("gru", [(3, 2, 4), (1, 15, 4), (1, 15, 5)], dict(hidden_size=5, output="h", linear_before_reset=1)),
    ("prelu", [(2, 3, 4, 4), (3, 1, 1)], {}), ("matmul", [(2, 1, 3, 4), (5, 4, 2)], {}),
    ("reshape", [(2, 3, 4)], dict(shape=[-1, np.int64(12)])), ("identity", [(2, 3)], {}),
    ("transpose", [(2, 3, 4)], dict(perm=None)),
    ("slice", [(5, 6, 7)], dict(starts=[-1, 1], ends=[0, 2**62], axes=[2, 0], steps=[-2, 1])),
    ("pad", [(2, 3, 4)], dict(pads=[0, 0, 1, -1, 2, 3], mode="reflect", value=0)),
    ("gather", [(5, 6)], dict(indices=np.array([[0, -1], [2, 3]]), axis=-1)),
    ("expand", [(3, 1)], dict(shape=[2, 1, 4])), ("tile", [(2, 3)], dict(repeats=[2, np.int64(1)])),
    ("resize", [(1, 3, 4, 5)], dict(scales=[1, 1, 2, 1.5], mode="linear")),
    ("resize", [(1, 3, 4, 5)], dict(size=[1, 3, 3, 7], mode="cubic",
                                    coordinate_transformation_mode="tf_crop_and_resize",
                                    roi=[0, 0, 0.1, 0.2, 1, 1, 0.9, 0.8], extrapolation_value=1)),
]


def test_every_op_is_declared_once_and_public():
    assert list(ops.OPS) == F.__all__ and set(FORMS) == set(ops.OPS)
    for name, op in ops.OPS.items():
        assert getattr(F, name) is op.function and op.function.op is op
        params = list(inspect.signature(op.function).parameters)
        assert params[:len(op.inputs)] == list(op.inputs)
        assert op.onnx is not None, f"{name} has no ONNX form"
        spec = inspect.signature(op.function)  # the public signature, typed (tests/test_typing.py checks the types)
        untyped = [p for p in spec.parameters.values() if p.annotation is p.empty]
        assert not untyped and spec.return_annotation is not spec.empty, f"{name}: annotate {untyped or 'the return'}"


def test_every_kernel_activation_has_one_declaration_and_one_test_row():
    """An activation is its entry in csrc/kernels/elementwise.h, the op declaring it, its stub and its row of
    reference.activation.CASES - the rows drive its eager, backward, Plan, gradient-Plan and GPU tests. Nothing else
    lists the activations: no other C++ file switches over them (activations_simd.inc's vector formulas are optional
    speed-ups), and Python reads them from _core.Act, never by number."""
    from convcore import _core

    kernel_acts = set(_core.Act.__members__) - {"none"}
    declared = {}
    for name, case in ACTIVATIONS.items():
        op = ops.get(case.op)
        act = op.plan.epilogue(op.infer([(1, 1)], case.attrs)[0])[0]
        assert act not in declared, f"rows {declared.get(act)} and {name} test the same activation"
        declared[act] = name
    assert set(declared) == kernel_acts, "each kernel activation needs a declaration and a row in CASES"
    root = Path(__file__).resolve().parents[1]
    switches = {p.relative_to(root).as_posix() for p in (root / "csrc").rglob("*.*") if "case Act::" in p.read_text()}
    assert switches <= {"csrc/kernels/elementwise.h", "csrc/kernels/activations_simd.inc"}, switches
    by_number = [p for p in (root / "python" / "convcore").rglob("*.py") if re.search(r"\bAct\(\d", p.read_text())]
    assert not by_number


@pytest.mark.parametrize("op, shapes, attrs", CASES, ids=[c[0] for c in CASES])
def test_rules_normalise_once_into_the_documented_forms(op, shapes, attrs):
    normalised, shape = ops.get(op).infer(shapes, attrs)
    forms = FORMS[op]
    assert set(normalised) == set(forms)
    for key, (kind, check) in forms.items():
        assert check(normalised[key]), f"{op}.{key} = {normalised[key]!r} is not a {kind}"
    assert ops.get(op).infer(shapes, normalised) == (normalised, shape)  # normalising again changes nothing


@pytest.mark.parametrize("op, shapes, attrs", CASES, ids=[c[0] for c in CASES])
def test_the_eager_op_computes_what_the_rule_says(op, shapes, attrs):
    rng = np.random.default_rng(0)
    arrays = [None if s is None else (rng.random(s) + 0.5).astype(np.float32) for s in shapes]
    normalised, shape = ops.get(op).infer(shapes, attrs)
    function = getattr(F, op)
    raw = function(arrays, **attrs) if op == "concat" else function(*arrays, **attrs)
    again = function(arrays, **normalised) if op == "concat" else function(*arrays, **normalised)
    assert raw.shape == shape
    np.testing.assert_array_equal(raw, again)


def test_resolved_padding_forms():
    w = ops.window
    assert w.conv_padding("same", (10, 9), (3, 3), (2, 2), (2, 2)) == w.same_padding((10, 9), (3, 3), (2, 2), (2, 2))
    assert w.same_padding((4, 4), (2, 2), (1, 1), (1, 1)) == (0, 1, 0, 1)  # SAME_UPPER: the extra pad at the end
    assert w.same_padding((4, 4), (2, 2), (1, 1), (1, 1), lower=True) == (1, 0, 1, 0)
    assert w.to_onnx_pads((1, 2, 3, 4)) == [1, 3, 2, 4]
    assert w.window_count(5, 0, 0, 2, 2, ceil_mode=True) == 3  # torch: the last window starts inside
    assert w.window_count(4, 0, 1, 2, 2, ceil_mode=True) == 2  # a window starting in the end padding is dropped
    assert w.window_count(4, 0, 1, 2, 2, ceil_mode=True, torch_ceil=False) == 3  # ONNX's plain ceil keeps it


def test_unknown_attributes_and_missing_inputs_are_refused():
    with pytest.raises(TypeError, match="strides"):
        ops.get("conv2d").infer([(1, 3, 8, 8), (4, 3, 3, 3)], {"strides": 2})
    with pytest.raises(ValueError, match="running_mean: expected a tensor"):
        ops.get("batch_norm").infer([(1, 3, 8, 8), None, (3,)], {})
    with pytest.raises(ValueError, match="expected a declared op"):
        ops.get("no_such_op")


def test_graph_values_are_typed():
    from convcore import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 2))
    g = trace(model, (1, 3, 8, 8))
    assert g.values["input"] == TensorType((1, 3, 8, 8), "float32", "NCHW")
    assert g.values["0"] == TensorType((1, 4, 6, 6), "float32", "NCHW")
    assert g.values["1"] == TensorType((1, 144), "float32", None)  # not a feature map
    assert g.values["0.weight"] == TensorType((4, 3, 3, 3), "float32", None)  # a parameter
    assert dict(g.shapes) == {name: t.shape for name, t in g.values.items()}
    with pytest.raises(TypeError):
        g.shapes["0"] = (1,)  # a read-only view: types are written through `values`
    assert pickle.loads(pickle.dumps(g)).values == g.values


def test_ops_without_tensors_compute_while_tracing():
    # An op called on constants only during a trace runs eagerly (the tracer hands it back to Op.compute).
    from convcore import nn

    class Const(nn.Module):
        def forward(self, x):
            return F.add(x, F.relu(np.array([-1.0, 2.0], np.float32)))

    g = trace(Const(), (2, 2))
    assert [n.op for n in g.nodes] == ["add"]
    np.testing.assert_array_equal(g.run(np.zeros((2, 2), np.float32)), [[0, 2], [0, 2]])
