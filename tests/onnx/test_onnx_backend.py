"""onnx.backend.test.BackendTest over convcore.onnx.backend: every node test of the ops convcore imports, the
real-model tests the installed onnx ships and its pytorch-converted / pytorch-operator model tests; the cases on the
one documented exclusion list (tests/onnx/backend_cases.py, docs/onnx.md) are reported as skipped with their reason.
Everything else must pass."""

import os
import re
import tempfile
import warnings

import pytest

pytest.importorskip("onnx")
import onnx.backend.test  # noqa: E402
from backend_cases import EXCLUDE, INCLUDE  # noqa: E402

import convcore.onnx.backend as backend  # noqa: E402

# The real-model tests write their generated inputs under ONNX_HOME: keep them out of the user's ~/.onnx.
os.environ.setdefault("ONNX_HOME", tempfile.mkdtemp(prefix="convcore-onnx-home-"))

with warnings.catch_warnings():  # onnx's case generators divide by zero on purpose (empty reductions, ...)
    warnings.simplefilter("ignore")
    _runner = onnx.backend.test.BackendTest(backend, __name__)
for _pattern in EXCLUDE:
    _runner.exclude(_pattern)
_INCLUDED = [re.compile(p) for p in INCLUDE]


def _selected(name):
    return name.endswith("_cpu") and any(p.search(name) for p in _INCLUDED)


# Only the selected CPU cases are collected (the CUDA twins and other ops' tests would be thousands of skips).
for _name, _case in _runner.test_cases.items():
    for _attr in [a for a in vars(_case) if a.startswith("test_") and not _selected(a)]:
        delattr(_case, _attr)
    globals()[_name] = _case


def selected_cases():
    """(included names, excluded names -> reason) over every backend test case of the installed onnx."""
    names = sorted(a for case in _runner.test_cases.values() for a in dir(case) if a.startswith("test_"))
    names = [n for n in names if _selected(n)]
    excluded = {n: reason for n in names for pattern, reason in EXCLUDE.items() if re.search(pattern, n)}
    return names, excluded


def test_every_exclusion_pattern_matches_a_selected_case():
    names, excluded = selected_cases()
    for pattern in EXCLUDE:
        assert any(re.search(pattern, n) for n in names), f"stale exclusion {pattern!r}"
    assert len(names) - len(excluded) >= 684, "fewer backend cases run than when the list was written"


def test_backend_api():
    import numpy as np
    from onnx import helper

    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    x = np.arange(6, dtype=np.float32)
    (y,) = backend.run_node(node, [x, np.array([2, -1], np.int64)])
    np.testing.assert_array_equal(y, x.reshape(2, 3))
    (y,) = backend.run_node(node, [x, np.array([3, 2], np.int64)])  # another bound value: another import
    np.testing.assert_array_equal(y, x.reshape(3, 2))
    with pytest.raises(ValueError, match="DOUBLE"):
        backend.run_node(helper.make_node("Relu", ["x"], ["y"]), [x.astype(np.float64)])
