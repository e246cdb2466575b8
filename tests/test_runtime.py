"""Runtime behaviour: configuration, ISA forcing, threads, the GIL, and living beside torch in one process."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import convcore
import convcore.functional as F


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_show_config_reports_build_and_choice(capsys):
    cfg = convcore.show_config()
    printed = capsys.readouterr().out
    assert cfg["isa"] in cfg["available_isas"]
    assert set(cfg["available_isas"]) <= set(cfg["compiled_isas"])
    assert "scalar" in cfg["available_isas"]
    assert cfg["num_threads"] == convcore.get_num_threads() >= 1
    assert "active ISA" in printed and cfg["isa"] in printed
    assert cfg["thread_pool"].startswith("convcore")


def test_default_isa_is_the_best_available():
    order = ["scalar", "avx2", "avx512"]
    best = max(convcore.available_isas(), key=order.index)
    result = _run("import convcore; print(convcore.get_isa())", CONVCORE_ISA="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == best


@pytest.mark.parametrize("isa", convcore.available_isas())
def test_convcore_isa_env_forces_a_path(isa):
    result = _run("import convcore; print(convcore.get_isa(), convcore.show_config(False)['conv_kernel'])",
                  CONVCORE_ISA=isa)
    assert result.returncode == 0, result.stderr
    name, kernel = result.stdout.split(maxsplit=1)
    assert name == isa
    assert (isa in kernel) if isa != "scalar" else ("reference" in kernel)


def test_convcore_isa_env_rejects_unknown_names():
    result = _run("import convcore", CONVCORE_ISA="sse9")
    assert result.returncode != 0
    assert "sse9" in result.stderr and "expected one of" in result.stderr


def test_set_isa_validates():
    with pytest.raises(ValueError, match="expected one of"):
        convcore.set_isa("neon")
    with pytest.raises(TypeError, match="name"):
        convcore.set_isa(2)


def test_num_threads_default_follows_omp_num_threads():
    result = _run("import convcore; print(convcore.get_num_threads())", OMP_NUM_THREADS="3")
    assert result.stdout.strip() == "3", result.stderr


def test_set_num_threads_validates_and_applies():
    previous = convcore.get_num_threads()
    try:
        convcore.set_num_threads(1)
        assert convcore.get_num_threads() == 1
        for bad in (0, -2):
            with pytest.raises(ValueError, match="n: expected an int >= 1"):
                convcore.set_num_threads(bad)
        with pytest.raises(TypeError, match="n: expected an int"):
            convcore.set_num_threads(1.5)
    finally:
        convcore.set_num_threads(previous)


def test_compute_releases_the_gil():
    """While one thread runs a long convolution, a pure-Python thread must keep making progress."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64, 64, 64), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    previous = convcore.get_num_threads()
    convcore.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        F.conv2d(x, w, padding=1)
        single = time.perf_counter() - t0
        ticks = 0
        done = threading.Event()

        def count():
            nonlocal ticks
            while not done.is_set():
                ticks += 1

        counter = threading.Thread(target=count)
        counter.start()
        try:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < max(0.5, 5 * single):
                F.conv2d(x, w, padding=1)
        finally:
            done.set()
            counter.join()
    finally:
        convcore.set_num_threads(previous)
    # With the GIL held by the kernel the counter would get almost nothing; it gets well over a thousand increments.
    assert ticks > 1000


def test_concurrent_calls_from_python_threads_are_correct():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 17, 13), dtype=np.float32)
    w = rng.standard_normal((16, 8, 3, 3), dtype=np.float32)
    expected = F.conv2d(x, w, padding=1)
    results = [None] * 4

    def work(i):
        results[i] = F.conv2d(x, w, padding=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_import_beside_torch_in_one_process():
    pytest.importorskip("torch")
    code = (
        "import torch, convcore, numpy as np, convcore.functional as F\n"
        "x = np.ones((1, 2, 5, 5), np.float32); w = np.ones((3, 2, 3, 3), np.float32)\n"
        "a = F.conv2d(x, w, padding=1)\n"
        "b = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()\n"
        "assert np.allclose(a, b), (a, b)\n"
        "print('ok')\n"
    )
    for order in (code, code.replace("import torch, convcore,", "import convcore, torch,")):
        result = _run(order)
        assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_console_script_and_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "convcore", "info", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout)["isa"] in convcore.available_isas()


_MODELS_BESIDE_TORCH = r"""
import sys, threading
if sys.argv[1] == "torch-first":
    import torch, convcore
else:
    import convcore, torch
import numpy as np, torchvision
import convcore.models

torch.manual_seed(0)
torch.set_num_threads(2)
convcore.set_num_threads(2)
reference = torchvision.models.resnet18().eval()
model = convcore.models.get_model("resnet18")
model.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
plan = convcore.compile(model, x.shape)


def torch_run():
    with torch.inference_mode():
        return reference(torch.from_numpy(x)).numpy()


def check(got, expected):
    err = np.abs(got - expected).max() / np.abs(expected).max()
    assert err < 1e-4, err


expected = torch_run()
check(model(x), expected)
check(plan(x), expected)

# torch's OpenMP runtime and convcore's pool busy at the same time, from Python threads (both release the GIL).
results = {}
runs = {"torch": torch_run, "eager": lambda: model(x), "plan": lambda: plan(x)}
workers = [threading.Thread(target=lambda n=n: results.setdefault(n, [f() for _ in range(3)])) for n, f in runs.items()]
for w in workers:
    w.start()
for w in workers:
    w.join()
for name in runs:
    for got in results[name]:
        check(got, expected)
print(sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line}))
print("ok")
"""


@pytest.mark.parametrize("order", ["torch-first", "convcore-first"])
def test_models_beside_torch_in_one_process(order):
    """torch (libgomp) and convcore (its own pool, no OpenMP runtime) in one process: ResNet-18 runs in both, alone
    and concurrently, with 2 threads each, without an abort or a deadlock (the timeout), and convcore's eager and
    compiled outputs match torch's; convcore loads no OpenMP runtime of its own."""
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    result = subprocess.run([sys.executable, "-c", _MODELS_BESIDE_TORCH, order], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "ok", result.stdout
    assert "convcore" not in result.stdout.splitlines()[-2], result.stdout  # the libgomp paths mapped: torch's only
