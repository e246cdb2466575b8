"""Fuzzed variants of the ONNX backend test models convcore imports (byte flips, truncation, and structured
mutations: wrong element types, attribute values and types, shapes, op types, dangling names) are refused with a
ValueError or TypeError naming what is wrong, or load and run: never a crash, a hang or another exception.

A short seeded run is part of the suite; `CONVCORE_FUZZ_CASES=20000 pytest tests/onnx/test_onnx_fuzz.py` runs a
longer one."""

import copy
import os
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")
import onnx  # noqa: E402
from backend_cases import EXCLUDE, INCLUDE  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402

import convcore.onnx  # noqa: E402
from convcore.onnx.backend import ConvcoreRep  # noqa: E402

CASES = int(os.environ.get("CONVCORE_FUZZ_CASES", "1500"))
MAX_ELEMENTS = 1 << 16  # a fuzzed model runs only when its inputs are this small
MAX_VALUE = 1 << 22  # ... and every value it computes (an imported model may legitimately ask for large outputs)


def _models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests = load_model_tests(kind="node")
    selected = []
    for test in sorted(tests, key=lambda t: t.name):
        name = f"{test.name}_cpu"
        if any(re.search(p, name) for p in INCLUDE) and not any(re.search(p, name) for p in EXCLUDE):
            selected.append(test.model)
    return selected


MODELS = _models()
INT_ATTRS = [0, 1, -1, 2, 3, 7, -7, 2**31 - 1, -2**31, 2**62, 10**6]
TYPES = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BOOL,
         TensorProto.STRING, TensorProto.UINT8, 0, 99]
OPS = ["Conv", "Relu", "Add", "Reshape", "Slice", "Pad", "Resize", "Gemm", "MaxPool", "ReduceSum", "Softmax",
       "Gather", "Split", "Transpose", "ConvTranspose", "Clip", "NoSuchOp"]


def _mutate(model, rng):
    """A structured mutant of `model` (a copy)."""
    m = copy.deepcopy(model)
    g = m.graph
    kind = int(rng.integers(9))
    node = g.node[int(rng.integers(len(g.node)))] if g.node else None
    if kind == 0 and node is not None and node.attribute:  # an attribute's value
        a = node.attribute[int(rng.integers(len(node.attribute)))]
        if a.type == onnx.AttributeProto.INT:
            a.i = int(rng.choice(INT_ATTRS))
        elif a.type == onnx.AttributeProto.INTS and len(a.ints):
            a.ints[int(rng.integers(len(a.ints)))] = int(rng.choice(INT_ATTRS))
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = float(rng.choice([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30]))
        elif a.type == onnx.AttributeProto.STRING:
            a.s = [b"", b"bogus", b"\xff\xfe", b"SAME_UPPER", b"reflect", b"cubic"][int(rng.integers(6))]
    elif kind == 1 and node is not None:  # an attribute of another type
        node.attribute.append(helper.make_attribute(str(rng.choice(["axis", "axes", "pads", "mode", "perm", "group",
                                                                   "kernel_shape", "strides"])),
                                                    [[1, 2], 3, "x", 1.5, [0.5]][int(rng.integers(5))]))
    elif kind == 2 and g.input:  # an input's element type or shape
        v = g.input[int(rng.integers(len(g.input)))]
        if rng.integers(2):
            v.type.tensor_type.elem_type = int(rng.choice(TYPES))
        elif len(v.type.tensor_type.shape.dim):
            v.type.tensor_type.shape.dim[int(rng.integers(len(v.type.tensor_type.shape.dim)))].dim_value = \
                int(rng.choice([0, 1, 2, 5, 2**20]))
    elif kind == 3 and node is not None:  # another op type
        node.op_type = str(rng.choice(OPS))
    elif kind == 4 and node is not None and node.input:  # a dangling or swapped input
        names = ["", "nowhere"] + [v.name for v in g.input]
        node.input[int(rng.integers(len(node.input)))] = names[int(rng.integers(len(names)))]
    elif kind == 5 and node is not None:  # an extra or missing input
        if rng.integers(2) and len(node.input):
            del node.input[-1]
        elif g.input:
            node.input.append(g.input[0].name)
    elif kind == 6:  # the opset
        m.opset_import[0].version = int(rng.choice([1, 5, 6, 7, 9, 11, 13, 18, 28, 29, 10**6]))
    elif kind == 7 and node is not None:  # a Constant node with a bad tensor feeding an input
        name = f"fuzz_const_{rng.integers(10**6)}"
        t = onnx.TensorProto(name=name, data_type=int(rng.choice(TYPES)), dims=[int(rng.choice([0, 1, 3, 2**40]))])
        if rng.integers(2):
            t.raw_data = bytes(rng.integers(0, 256, int(rng.integers(0, 16)), dtype=np.uint8))
        g.node.insert(0, helper.make_node("Constant", [], [name], value=t))
        if node.input:
            node.input[int(rng.integers(len(node.input)))] = name
    elif kind == 8 and node is not None:  # another output arity
        node.output.append(f"extra_{rng.integers(10**6)}")
    return m


def _feeds(model, rng):
    """Random inputs of the declared shapes (float32, or small integers), or None when too large / undeclared."""
    initializers = {i.name for i in model.graph.initializer}
    feeds = []
    for v in model.graph.input:
        if v.name in initializers:
            continue
        t = v.type.tensor_type
        shape = [d.dim_value for d in t.shape.dim]
        if int(np.prod(shape, dtype=np.int64)) > MAX_ELEMENTS:
            return None
        if t.elem_type == TensorProto.FLOAT:
            feeds.append(rng.standard_normal(shape).astype(np.float32))
        elif t.elem_type in (TensorProto.INT64, TensorProto.INT32):
            feeds.append(rng.integers(-3, 4, shape).astype(np.int64 if t.elem_type == TensorProto.INT64 else np.int32))
        else:
            return None
    return feeds


def _try(data_or_model, rng):
    """Load (and, when small, run) a mutant; returns the exception type name a refusal raised, or 'ok'."""
    try:
        if isinstance(data_or_model, bytes):
            convcore.onnx.load(data_or_model)
            return "ok"
        rep = ConvcoreRep(data_or_model)
        feeds = _feeds(data_or_model, rng)
        if feeds is None:
            return "ok"
        names = [v.name for v in data_or_model.graph.input
                 if v.name not in {i.name for i in data_or_model.graph.initializer}]
        arrays = dict(zip(names, feeds))
        constants = {n: arrays[n] for n in rep.module.bound}
        module = rep.module.specialize(constants, {n: a.shape for n, a in arrays.items() if n not in constants})
        if max((int(np.prod(t.shape)) for t in module.graph.values.values()), default=0) <= MAX_VALUE:
            rep.run(feeds)
        return "ok"
    except (ValueError, TypeError) as exc:
        assert str(exc), "an empty error message"
        return type(exc).__name__


def test_fuzzed_backend_models_are_refused_cleanly():
    rng = np.random.default_rng(20240611)
    outcomes = {}
    for i in range(CASES):
        model = MODELS[int(rng.integers(len(MODELS)))]
        how = i % 3
        if how == 0:
            mutant = _mutate(model, rng)
        else:
            data = bytearray(model.SerializeToString())
            if how == 1:  # byte flips
                for _ in range(int(rng.integers(1, 6))):
                    data[int(rng.integers(len(data)))] = int(rng.integers(256))
            else:  # truncation
                data = data[:int(rng.integers(len(data)))]
            mutant = bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = _try(mutant, rng)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert set(outcomes) <= {"ok", "ValueError", "TypeError"}, outcomes
    assert outcomes.get("ValueError", 0) > CASES // 4  # the mutations do reach the checks
