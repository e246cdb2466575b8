"""The CUDA backend builds where a CUDA compiler is present, and a CPU-only build stays CPU-only.

On a machine with nvcc (GPU or not; the CI machines have one and no GPU), the CUDA sources are compiled and linked
into convcore._cuda with CONVCORE_CUDA=on, for one architecture to keep it short, in a temporary folder; the module
must import in a fresh process and, without a GPU, say "no GPU" (which part is missing) instead of failing.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cuda_build

NVCC = os.environ.get("CUDACXX") or shutil.which("nvcc") or (
    "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").is_file() else None)

IMPORT_CHECK = """
import sys
sys.path.insert(0, sys.argv[2])
import cuda_build, numpy as np, convcore, convcore.cuda
module = cuda_build.load(sys.argv[1])
convcore.cuda._set_module(module)
status = module.status()
assert status["architectures"] == "80-real" and not status["emulated"], status
config = convcore.show_config(print_out=False)["cuda"]
assert config["built"], config
if status["available"]:  # a GPU machine: the module sees it (sm_80 code does not run on every GPU: no launch)
    assert module.device_count() >= 1 and convcore.cuda.get_device_info(0)["name"]
    print("GPU", convcore.cuda.get_device_info(0)["name"])
else:
    reason = status["reason"]
    assert reason.startswith("no GPU: "), reason
    assert not convcore.cuda.is_available() and convcore.cuda.device_count() == 0
    assert convcore.cuda.unavailable_reason() == reason
    try:
        convcore.compile(lambda x: x * 2.0 if False else convcore.functional.relu(x), (1, 3, 4, 4), device="cuda")
    except RuntimeError as exc:
        assert "no GPU" in str(exc), exc
    else:
        raise AssertionError("compile(device='cuda') without a GPU must raise")
    try:
        module.Plan(0, "fp32")
    except module.CudaError as exc:
        assert "no GPU" in str(exc)
    else:
        raise AssertionError("a GPU plan without a GPU must raise")
    print("NO GPU", reason)
"""


@pytest.mark.skipif(NVCC is None, reason="no CUDA compiler (nvcc) on this machine")
def test_cuda_backend_compiles_links_and_imports(tmp_path):
    reason = cuda_build.missing_tools()
    if reason:
        pytest.skip(reason)
    env_compiler = {"CUDACXX": NVCC} if NVCC else {}
    os.environ.update(env_compiler)
    path = cuda_build.build("on", tmp_path / "build", architectures="80-real")
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK, str(path), str(Path(__file__).parent)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(("NO GPU no GPU: ", "GPU "))


def test_cuda_on_without_a_compiler_fails_clearly(tmp_path):
    reason = cuda_build.missing_tools()
    if reason:
        pytest.skip(reason)
    import pybind11

    env = dict(os.environ, CUDACXX=str(tmp_path / "no-nvcc-here"), PATH=os.path.dirname(shutil.which("cmake")) +
               os.pathsep + "/usr/bin:/bin")
    result = subprocess.run(["cmake", "-S", str(cuda_build.ROOT), "-B", str(tmp_path / "build"), "-DCONVCORE_CUDA=on",
                             "-DSKBUILD_PROJECT_NAME=convcore", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                             f"-DPython_EXECUTABLE={sys.executable}"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode != 0
    assert "CONVCORE_CUDA=on, but no CUDA compiler was found" in result.stdout + result.stderr


def test_release_wheels_are_built_without_cuda():
    """scripts/build_release.sh (and so .ci/run) builds the CPU wheel: CONVCORE_CUDA=off, whatever the machine has."""
    script = (cuda_build.ROOT / "scripts" / "build_release.sh").read_text()
    assert "export CONVCORE_CUDA=off" in script
