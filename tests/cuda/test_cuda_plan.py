"""GPU plans as a whole: the zoo's GPU Plan against its CPU Plan (<= 1e-4 of max|y| in fp32), TF32 / bf16 within
their bounds, inputs and outputs on the device (DeviceArray, __cuda_array_interface__, DLPack; PyTorch and CuPy
arrays on a real GPU) without a host round trip, errors, pickling, profiles, graphs with CPU-only nodes, threads.

On the CPU emulator of CUDA (no GPU here) the zoo runs a subset at small sizes; on a GPU, every model.
"""

import pickle
import threading

import numpy as np
import pytest

import convcore
import convcore.cuda
import convcore.functional as F
from convcore import models
from reference import activation


def _randomize(model, gain=1.0, seed=0):
    """Random weights and batch-norm statistics, as tests/plan/test_plan_models.py makes them."""
    rng = np.random.default_rng(seed)
    for key, value in model.state_dict().items():
        if value.ndim >= 2:
            value[...] = rng.standard_normal(value.shape) * np.sqrt(gain / int(np.prod(value.shape[1:])))
        elif key.endswith("running_mean"):
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
        elif key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith("weight") and value.ndim == 1:
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif key.endswith("bias") and value.ndim == 1:
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return model


def _gain(name):
    return 1.6 if name.startswith(("efficientnet", "mnasnet", "mobilenet")) else 1.0

_SIZE = {"lenet5": 32, "amoebanet": 64, "alexnet": 64, "googlenet": 64}
# On the emulator: one model of each kind (residual, pre-activation, grouped, depthwise with squeeze-excitation,
# dense concatenations, inception branches).
EMULATED = {"lenet5", "resnet18", "resnext50_32x4d", "mobilenet_v2", "efficientnet_b0", "densenet121", "googlenet",
            "mnasnet0_5", "preact_resnet18"}


def _close(got, want, bound):
    err = float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())
    assert err <= bound, f"max|err| / max|y| = {err:.2e} > {bound}"
    return err


@pytest.mark.parametrize("name", models.list_models())
def test_zoo_gpu_plan_matches_cpu_plan(gpu, name):
    if gpu == "emulator" and name not in EMULATED:
        pytest.skip("the emulator runs a subset of the zoo (every model runs on a GPU)")
    info = models.get_model_info(name)
    c = info.input_size[0]
    size = _SIZE.get(name, 48) if gpu == "gpu" else (_SIZE.get(name, 32))
    model = _randomize(models.get_model(name), _gain(name)).eval()
    x = np.random.default_rng(1).standard_normal((3, c, size, size)).astype(np.float32)
    cpu = convcore.compile(model, (1, c, size, size))
    gpu_plan = convcore.compile(model, (1, c, size, size), device="cuda")
    want = cpu(x)
    _close(gpu_plan(x), want, 1e-4)
    _close(gpu_plan(x[:1]), want[:1], 1e-4)
    if gpu == "gpu":
        _close(convcore.compile(model, (3, c, size, size), device="cuda", fuse=False)(x), want, 1e-4)


# Whole-model bounds of the tensor-core precisions (max|err| / max|y| against the fp32 CPU Plan; docs/cuda.md gives
# the measured figures).
MODEL_BOUNDS = {"tf32": 1e-2, "bf16": 5e-2}


@pytest.mark.parametrize("precision", sorted(MODEL_BOUNDS))
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_tensor_core_precisions_on_models(gpu, name, precision):
    size, batch = (64, 2) if gpu == "gpu" else (32, 1)
    if gpu == "emulator" and name != "mobilenet_v2":
        pytest.skip("the emulator's tensor cores are slow: one model")
    model = _randomize(models.get_model(name), _gain(name)).eval()
    x = np.random.default_rng(1).standard_normal((batch, 3, size, size)).astype(np.float32)
    want = convcore.compile(model, x.shape)(x)
    _close(convcore.compile(model, x.shape, device="cuda", precision=precision)(x), want, MODEL_BOUNDS[precision])


# ----------------------------------------------------------------------------------------- device arrays
class CudaArrayInterface:
    """A foreign GPU array seen only through __cuda_array_interface__ (as numba, CuPy, PyTorch expose)."""

    def __init__(self, array, **changes):
        self.array = array  # keeps the memory alive
        self._interface = dict(array.__cuda_array_interface__, **changes)

    @property
    def __cuda_array_interface__(self):
        return self._interface

    @property
    def shape(self):
        return tuple(self._interface["shape"])


class DLPackOnly:
    """A foreign GPU array seen only through DLPack."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.consumed = 0

    def __dlpack__(self, stream=None):
        self.consumed += 1
        return self.array.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def _small_plan():
    rng = np.random.default_rng(0)
    w, b, wl = (rng.standard_normal(s).astype(np.float32) for s in ((8, 3, 3, 3), (8,), (5, 8)))

    def fn(x):
        h = F.relu(F.conv2d(x, w, b, padding=1))
        return h, F.linear(F.flatten(F.global_avg_pool2d(h)), wl)

    return fn


def test_device_arrays_in_and_out(gpu):
    fn = _small_plan()
    plan = convcore.compile(fn, (2, 3, 6, 7), device="cuda")
    assert plan._single is not None  # one GPU call from input to outputs
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 7)).astype(np.float32)
    h, logits = convcore.compile(fn, x.shape)(x)
    dx = convcore.cuda.to_device(x)
    assert isinstance(dx, convcore.cuda.DeviceArray) and dx.shape == x.shape and dx.device == 0
    for given in (dx, CudaArrayInterface(dx), DLPackOnly(dx)):
        yh, y = plan(given)  # a GPU array in: DeviceArrays out, no host round trip
        assert isinstance(y, convcore.cuda.DeviceArray) and y.shape == (2, 5)
        np.testing.assert_allclose(np.asarray(y), logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y.numpy(), logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(yh), h, rtol=1e-5, atol=1e-5)
        as_numpy = plan(given, output="numpy")
        assert isinstance(as_numpy[1], np.ndarray)
        np.testing.assert_allclose(as_numpy[1], logits, rtol=1e-5, atol=1e-5)
    dl = DLPackOnly(dx)
    plan(dl)
    assert dl.consumed == 1
    on_device = plan(x, output="device")  # numpy in, GPU arrays out
    assert isinstance(on_device[1], convcore.cuda.DeviceArray)
    np.testing.assert_allclose(np.asarray(on_device[1]), logits, rtol=1e-5, atol=1e-5)
    outs = [convcore.cuda.DeviceArray((2, 8, 6, 7)), convcore.cuda.DeviceArray((2, 5))]
    assert plan(CudaArrayInterface(dx), out=[CudaArrayInterface(o) for o in outs])[1].array is outs[1]
    np.testing.assert_allclose(outs[1].numpy(), logits, rtol=1e-5, atol=1e-5)
    host = [np.empty((2, 8, 6, 7), np.float32), np.empty((2, 5), np.float32)]
    assert plan(dx, out=host)[0] is host[0]
    np.testing.assert_allclose(host[0], h, rtol=1e-5, atol=1e-5)


def test_device_array_protocols(gpu):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    d = convcore.cuda.to_device(x)
    cai = d.__cuda_array_interface__
    assert cai["shape"] == (2, 3, 4) and cai["typestr"] == "<f4" and cai["version"] == 3 and cai["data"][0] == d.ptr
    assert d.__dlpack_device__() == (2, 0)
    assert type(d.__dlpack__()).__name__ == "PyCapsule"  # dropped unconsumed: freed by the capsule's destructor
    assert d.nbytes == 96 and d.ndim == 3 and len(d) == 2 and "DeviceArray(shape=(2, 3, 4)" in repr(d)
    np.testing.assert_array_equal(np.asarray(d, dtype=np.float64), x)
    np.testing.assert_array_equal(convcore.cuda._module.to_host(CudaArrayInterface(d)), x)
    np.testing.assert_array_equal(convcore.cuda._module.to_host(DLPackOnly(d)), x)
    with pytest.raises(TypeError, match="float32"):
        convcore.cuda.to_device(x.astype(np.float64))


def test_device_input_errors(gpu):
    plan = convcore.compile(_small_plan(), (2, 3, 6, 7), device="cuda")
    x = np.zeros((2, 3, 6, 7), np.float32)
    d = convcore.cuda.to_device(x)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3, 6, 7\)"):
        plan(convcore.cuda.to_device(np.zeros((2, 3, 7, 6), np.float32)))
    with pytest.raises(TypeError, match="float32"):
        plan(CudaArrayInterface(d, typestr="<f8"))
    with pytest.raises(ValueError, match="C-contiguous"):
        plan(CudaArrayInterface(d, strides=(4, 8 * 42, 4 * 7, 4)))
    host = CudaArrayInterface(d, data=(x.__array_interface__["data"][0], False))
    with pytest.raises(ValueError, match="expected GPU memory"):
        plan(host)
    outs = [convcore.cuda.DeviceArray((2, 8, 6, 7)), convcore.cuda.DeviceArray((2, 5))]
    with pytest.raises(ValueError, match="read-only"):
        plan(d, out=[CudaArrayInterface(outs[0], data=(outs[0].ptr, True)), outs[1]])
    with pytest.raises(ValueError, match=r"out\[0\]: expected shape"):
        plan(d, out=[convcore.cuda.DeviceArray((2, 8, 6, 6)), outs[1]])
    with pytest.raises(ValueError, match=r"out: expected 2"):
        plan(d, out=outs[:1])
    with pytest.raises(ValueError, match="not both"):
        plan(d, out=[outs[0], np.empty((2, 5), np.float32)])
    with pytest.raises(ValueError, match="output"):
        plan(x, output="gpu")
    with pytest.raises(TypeError):
        plan(x.astype(np.float64))


def test_out_of_memory_is_an_exception(gpu):
    with pytest.raises(RuntimeError, match="out of memory|cudaErrorMemoryAllocation"):
        convcore.cuda.DeviceArray((1 << 24, 1 << 24))  # 1 PiB


def test_plan_api(gpu, tmp_path):
    fn = _small_plan()
    plan = convcore.compile(fn, (2, 3, 6, 7), device="cuda")
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 7)).astype(np.float32)
    want = plan(x)
    assert plan.isa.startswith("cuda:0") and "CudaPlan(" in repr(plan)
    rows = plan.profile(x, repeats=2)
    assert rows[0][0] == "input0" and all(r[1].startswith("cuda_") for r in rows)
    assert "cuda" in plan.summary(x, print_out=False)
    assert plan.memory_bytes > 0 and plan.weight_bytes >= 4 * (8 * 27 + 8 + 40)
    again = pickle.loads(pickle.dumps(plan))
    assert again.device == 0 and again.precision == "fp32"
    for got, ref in zip(again(x), want):
        np.testing.assert_array_equal(got, ref)
    for batch in (3, 1, 2):  # another batch size, then the compiled one again
        xb = np.random.default_rng(batch).standard_normal((batch, 3, 6, 7)).astype(np.float32)
        for got, ref in zip(plan(xb), convcore.compile(fn, xb.shape)(xb)):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_graph_with_cpu_only_nodes(gpu):
    """A node plans do not cover (softmax over a spatial axis) runs on the CPU between two GPU segments."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal((2, 4, 1, 1)).astype(np.float32)

    def fn(x):
        return F.conv2d(F.softmax(F.conv2d(x, w1, padding=1), axis=3), w2)

    x = np.random.default_rng(4).standard_normal((2, 3, 5, 6)).astype(np.float32)
    cpu = convcore.compile(fn, x.shape)
    plan = convcore.compile(fn, x.shape, device="cuda")
    assert plan.eager_nodes and len(plan._segments()) == 2
    want = cpu(x)
    np.testing.assert_allclose(plan(x), want, rtol=1e-5, atol=1e-5)
    on_device = plan(convcore.cuda.to_device(x))
    assert isinstance(on_device, convcore.cuda.DeviceArray)
    np.testing.assert_allclose(np.asarray(on_device), want, rtol=1e-5, atol=1e-5)
    out = convcore.cuda.DeviceArray(want.shape)
    assert plan(x, out=out) is out
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-5)


def test_calls_from_several_threads(gpu):
    fn = _small_plan()
    plan = convcore.compile(fn, (2, 3, 6, 7), device="cuda")
    xs = [np.random.default_rng(i).standard_normal((2, 3, 6, 7)).astype(np.float32) for i in range(6)]
    want = [plan(x)[0] for x in xs]
    got = [None] * len(xs)

    def work(i):
        got[i] = plan(xs[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_torch_and_cupy_arrays(gpu):
    """PyTorch CUDA tensors (DLPack and __cuda_array_interface__) and CuPy arrays in and out, on a real GPU."""
    if gpu != "gpu":
        pytest.skip("needs a GPU: PyTorch / CuPy arrays live in real device memory")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    fn = _small_plan()
    plan = convcore.compile(fn, (2, 3, 6, 7), device="cuda")
    x = torch.randn(2, 3, 6, 7, device="cuda")
    want = convcore.compile(fn, (2, 3, 6, 7))(x.cpu().numpy())
    y, h = plan(x)
    np.testing.assert_allclose(torch.from_dlpack(y).cpu().numpy(), want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.as_tensor(h, device="cuda").cpu().numpy(), want[1], rtol=1e-5, atol=1e-5)
    out = [torch.empty(2, 5, device="cuda"), torch.empty(2, 8, 6, 7, device="cuda")]
    plan(x, out=out)
    np.testing.assert_allclose(out[0].cpu().numpy(), want[0], rtol=1e-5, atol=1e-5)
    try:
        import cupy
    except ImportError:
        return
    y, _ = plan(cupy.asarray(x.cpu().numpy()))
    np.testing.assert_allclose(cupy.asnumpy(cupy.asarray(y)), want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(activation.CASES))
def test_every_activation_runs_inside_the_gpu_plan(gpu, case):
    """Each activation of reference.activation.CASES in the epilogue of a convolution, a depthwise convolution, a
    residual add and a multiply: all on the GPU (no CPU segment), equal to the CPU Plan; the GPU kernels compute it
    with the one definition in csrc/kernels/elementwise.h."""
    c = activation.CASES[case]
    fn, x = c.in_epilogues(F)
    want = convcore.compile(fn, x.shape)(x)
    plan = convcore.compile(fn, x.shape, device="cuda")
    assert plan.eager_nodes == [] and len(plan._segments()) == 1
    c.assert_close(plan(x), want)


def test_ops_needing_a_capability_the_gpu_lacks_run_outside_its_plan(gpu):
    """conv_transpose2d needs the CPU builder's transposed-convolution ops (capability 'backward'): a GPU Plan runs
    it between two GPU segments, a CPU Plan inside its one segment; the results agree."""
    rng = np.random.default_rng(5)
    w1, wt = rng.standard_normal((8, 3, 3, 3)).astype(np.float32), rng.standard_normal((8, 4, 2, 2)).astype(np.float32)

    def fn(x):
        return F.relu(F.conv_transpose2d(F.relu(F.conv2d(x, w1, padding=1)), wt, stride=2))

    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    cpu, plan = convcore.compile(fn, x.shape), convcore.compile(fn, x.shape, device="cuda")
    assert cpu.eager_nodes == [] and len(plan.eager_nodes) == 1
    np.testing.assert_allclose(plan(x), cpu(x), rtol=1e-5, atol=1e-5)
