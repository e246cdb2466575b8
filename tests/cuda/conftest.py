"""Fixtures of the GPU tests.

`gpu` runs a test on a GPU when convcore was built with CUDA and one is usable. Elsewhere it runs the test on the CPU
emulator of CUDA: the same kernel and plan sources compiled as C++ against csrc/cuda/emu.h (CONVCORE_CUDA=emulate),
built once per Python environment into build/test-cuda-emulator (incrementally afterwards) and swapped in as
convcore's CUDA backend for the test. It checks the kernels' arithmetic, indexing, bounds, barriers and launch
configurations, not speed. Without CMake, pybind11 or a C++ compiler the tests are skipped, with the reason.

Environment:
    CONVCORE_TEST_GPU=1         the GPU suite (scripts/gpu_check.sh): a real GPU or a failure, never the emulator;
    CONVCORE_TEST_EMULATOR=0    skip instead of building the emulator;
    CONVCORE_CUDA_EMULATOR=PATH use an emulator module built elsewhere.
"""

import hashlib
import os
import sys
import sysconfig
from pathlib import Path

import pytest

import convcore
import convcore.cuda

sys.path.insert(0, str(Path(__file__).parent))
import cuda_build  # noqa: E402


def _real_gpu():
    return convcore.cuda.is_available() and not convcore.cuda.config().get("emulated")


@pytest.fixture(scope="session")
def _cuda_module():
    if _real_gpu():
        return "gpu", None
    if os.environ.get("CONVCORE_TEST_GPU") == "1":
        pytest.fail(f"CONVCORE_TEST_GPU=1 but no GPU is usable: {convcore.cuda.unavailable_reason()}")
    path = os.environ.get("CONVCORE_CUDA_EMULATOR")
    if not path:
        if os.environ.get("CONVCORE_TEST_EMULATOR") == "0":
            pytest.skip(f"no GPU ({convcore.cuda.unavailable_reason()}) and CONVCORE_TEST_EMULATOR=0")
        reason = cuda_build.missing_tools()
        if reason:
            pytest.skip(f"no GPU ({convcore.cuda.unavailable_reason()}) and the CUDA emulator cannot be built: "
                        f"{reason}")
        # One build per Python environment (the CI's wheel environment and a development one share the checkout).
        key = hashlib.sha1(sys.prefix.encode()).hexdigest()[:8]
        folder = cuda_build.ROOT / "build" / "test-cuda-emulator" / f"{sysconfig.get_config_var('SOABI')}-{key}"
        path = cuda_build.build("emulate", folder)
    return "emulator", cuda_build.load(path)


@pytest.fixture
def gpu(_cuda_module):
    """'gpu' or 'emulator': convcore's CUDA backend for this test."""
    kind, module = _cuda_module
    previous = convcore.cuda._set_module(module) if module is not None else None
    yield kind
    if module is not None:
        convcore.cuda._set_module(previous)
