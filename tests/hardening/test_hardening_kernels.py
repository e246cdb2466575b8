"""Issue 10, items 1, 2, 3 and 11: hostile arguments to the eager kernels, each compared with torch where torch
answers. The crashing cases run in a child process, so that a regression fails its test instead of the whole run."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convcore
import convcore.functional as F

from .helpers import run_child

BIG = 2**31 - 1
ISAS = convcore.available_isas()


def _torch_conv(x, w, stride, padding, groups=1):
    return TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride, padding=padding, groups=groups).numpy()


# ---- item 1: C++ exceptions escaping a parallel region or a binding abort the process ----------------------------

@pytest.mark.parametrize("isa", ISAS)
def test_item01_depthwise_huge_stride_does_not_abort(isa):
    code, out, err = run_child(f"""
        import convcore, convcore.functional as F
        convcore.set_isa({isa!r})
        x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 1, 3, 3), np.float32)
        mark()
        a = F.depthwise_conv2d(x, w, stride={BIG})
        b = F.depthwise_conv2d(x, w, stride=({BIG}, 10**8), padding=({BIG}, {BIG}, 10**8, 10**8))
        report(a=a.tolist(), b=b.tolist(), peak_mb=peak_mb())
    """)
    assert code == 0, err[-2000:]
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 1, 3, 3), np.float32)
    np.testing.assert_array_equal(out["a"], _torch_conv(x, w, BIG, 0, groups=2))
    np.testing.assert_array_equal(out["b"], _torch_conv(x, w, (BIG, 10**8), (BIG, 10**8), groups=2))
    assert out["peak_mb"] < 100


def test_item01_onnx_grouped_conv_with_huge_strides_runs():
    """The same through ONNX: a checker-valid one-node Conv(group=2, strides=[2^31-1]*2) loads and runs."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], group=2, strides=[BIG, BIG], kernel_shape=[3, 3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 1, 1])],
                              [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    code, out, err = run_child(f"""
        import convcore, convcore.onnx
        net = convcore.onnx.load(bytes.fromhex({model.SerializeToString().hex()!r}))
        x = np.ones((1, 2, 4, 4), np.float32)
        report(eager=net(x).tolist(), plan=convcore.compile(net, (1, 2, 4, 4))(x).tolist())
    """)
    assert code == 0, err[-2000:]
    assert out["eager"] == out["plan"] == [[[[9.0]], [[9.0]]]]


@pytest.mark.parametrize("case", ["depthwise", "lrn"])
def test_item01_allocation_failure_inside_a_kernel_is_memory_error(case):
    """A kernel's per-thread scratch (the depthwise padded plane, LRN's accumulators) that cannot be allocated is a
    MemoryError, never std::terminate from a pool thread. The address space is capped just above the
    arrays, which are allocated first."""
    code, out, err = run_child(f"""
        import convcore, convcore.functional as F
        convcore.set_num_threads(2)
        convcore._core.set_grain_scale(0.0)  # both threads run even on small shapes
        case = {case!r}
        small = np.ones((1, 2, 8, 8), np.float32)
        if case == "depthwise":
            w = np.ones((2, 1, 3, 3), np.float32)
            run = lambda x, out=None: F.conv2d(x, w, padding=1, groups=2, out=out)
            x = np.ones((1, 2, 3000, 3000), np.float32)
            out = np.empty_like(x)
            extra = 32  # MiB; the two padded planes need 72
        else:
            run = lambda x, out=None: F.local_response_norm(x, 3)
            small = np.ones((1, 4, 8, 8), np.float32)
            x = np.ones((1, 4, 3000, 3000), np.float32)
            out = None
            extra = 138 + 40  # MiB: the output fits, the two threads' 69 MiB accumulators do not
        run(small)  # the pool's threads exist before the cap
        limit_address_space(extra)
        try:
            run(x, out)
            report(outcome="ran")
        except MemoryError:
            report(outcome="MemoryError")
        report(after=float(run(small).sum()) > 0)
    """)
    assert code == 0, err[-2000:]
    assert out == {"outcome": "MemoryError", "after": True}


# ---- item 2: thread counts -------------------------------------------------------------------------------------

def test_item02_thread_count_is_bounded():
    previous = convcore.get_num_threads()
    try:
        for bad in (100000, convcore.MAX_THREADS + 1, 2**40):
            with pytest.raises(ValueError, match=r"n: expected .*\[1, 1024\]"):
                convcore.set_num_threads(bad)
            assert convcore.get_num_threads() == previous
    finally:
        convcore.set_num_threads(previous)


def test_item02_set_num_threads_100000_then_a_conv_does_not_crash():
    code, out, err = run_child("""
        import convcore, convcore.functional as F
        try:
            convcore.set_num_threads(100000)
            report(set="accepted")
        except ValueError as exc:
            report(set=str(exc))
        convcore._core.set_grain_scale(0.0)
        y = F.conv2d(np.ones((1, 16, 32, 32), np.float32), np.ones((16, 16, 3, 3), np.float32), padding=1)
        report(y=float(y[0, 0, 1, 1]), threads=convcore.get_num_threads())
    """)
    assert code == 0, err[-2000:]
    assert "[1, 1024]" in out["set"] and out["y"] == 144.0


def test_item02_thread_creation_failure_is_an_error_not_an_exit():
    """With too little address space for 1000 thread stacks, set_num_threads(1000) refuses (RuntimeError) and
    keeps the count, instead of libgomp ending the process ("Thread creation failed") at the next kernel."""
    code, out, err = run_child("""
        import convcore, convcore.functional as F
        convcore.set_num_threads(2)
        before = convcore.get_num_threads()
        limit_address_space(1024)  # 1000 stacks of 2-8 MiB do not fit
        try:
            convcore.set_num_threads(1000)
            report(set="accepted")
        except RuntimeError as exc:
            report(set=str(exc))
        convcore._core.set_grain_scale(0.0)
        y = F.conv2d(np.ones((1, 16, 32, 32), np.float32), np.ones((16, 16, 3, 3), np.float32), padding=1)
        report(y=float(y[0, 0, 1, 1]), kept=convcore.get_num_threads() == before)
    """)
    assert code == 0, err[-2000:]
    assert "cannot run 1000 threads" in out["set"] and out["kept"] and out["y"] == 144.0


def test_item02_omp_num_threads_beyond_the_bound_is_clamped():
    code, out, err = run_child("""
        import convcore
        report(threads=convcore.get_num_threads())
    """, env={"OMP_NUM_THREADS": "100000"})
    assert code == 0, err[-2000:]
    assert out["threads"] == convcore.MAX_THREADS


# ---- item 3: cost follows the output, not the padded extent ----------------------------------------------------

@pytest.mark.parametrize("isa", ISAS)
def test_item03_conv_cost_follows_the_output(isa):
    code, out, err = run_child(f"""
        import time
        import convcore, convcore.functional as F
        convcore.set_isa({isa!r})
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((1, 7, 5, 19), dtype=np.float32), rng.standard_normal((3, 7, 3, 3), dtype=np.float32)
        mark()
        t0 = time.perf_counter()
        a = F.conv2d(x, w, stride={BIG})
        b = F.conv2d(np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32), stride=(1, 3 * 10**8),
                     padding=(0, 0, 3 * 10**8, 3 * 10**8))
        c = F.conv2d(x, w, stride=(3, 10**6), padding=(0, 0, 10**9, 10**9), dilation=(1, 10**6))
        report(a=a.tolist(), b=b.tolist(), c=c.tolist(), seconds=time.perf_counter() - t0, peak_mb=peak_mb())
    """)
    assert code == 0, err[-2000:]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 7, 5, 19), dtype=np.float32), rng.standard_normal((3, 7, 3, 3), dtype=np.float32)
    np.testing.assert_allclose(out["a"], _torch_conv(x, w, BIG, 0), rtol=1e-5, atol=1e-5)
    ones = np.ones((1, 1, 1, 1), np.float32)
    np.testing.assert_array_equal(out["b"], _torch_conv(ones, ones, (1, 3 * 10**8), (0, 3 * 10**8)))
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=(3, 10**6), padding=(0, 10**9),
                         dilation=(1, 10**6)).numpy()
    np.testing.assert_allclose(out["c"], expected, rtol=1e-5, atol=1e-5)
    assert out["peak_mb"] < 100 and out["seconds"] < 5


# ---- item 11: 0-d arrays keep their shape ----------------------------------------------------------------------

def test_item11_zero_d_arrays_keep_their_shape():
    a, b = np.array(2, np.float32), np.array(3, np.float32)
    ta, tb = torch.tensor(2.0), torch.tensor(3.0)
    for got, want in [(F.add(a, b), ta + tb), (F.mul(a, b), ta * tb), (F.relu(-a), torch.relu(-ta)),
                      (F.sigmoid(a), torch.sigmoid(ta)), (F.softmax(a, axis=0), torch.softmax(ta, 0)),
                      (F.softmax(a, axis=-1), torch.softmax(ta, -1)),
                      (F.log_softmax(a, axis=0), torch.log_softmax(ta, 0))]:
        assert got.shape == () == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"axis: expected 0 or -1 for a 0D input \(got 1\)"):
        F.softmax(a)  # the default axis 1 does not exist on a 0-d array (torch: IndexError)
    for op in (F.softmax, F.log_softmax):
        assert np.isnan(op(np.array(np.nan, np.float32), axis=0))
