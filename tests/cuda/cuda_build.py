"""Building convcore._cuda outside pip, for the tests: with nvcc (the compile test) or against the CPU emulator of
CUDA (CONVCORE_CUDA=emulate: the GPU tests on machines without a GPU). Only the _cuda target is built."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def missing_tools():
    """Why _cuda cannot be built here (no source tree, CMake, pybind11 or C++ compiler), or None."""
    if not (ROOT / "CMakeLists.txt").is_file() or not (ROOT / "csrc" / "cuda").is_dir():
        return "no convcore source tree beside the tests"
    if shutil.which("cmake") is None:
        return "cmake is not installed (pip install cmake)"
    try:
        import pybind11  # noqa: F401
    except ImportError:
        return "pybind11 is not installed (pip install pybind11)"
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        return "no C++ compiler"
    return None


def build(mode, build_dir, architectures=None, timeout=1800):
    """Configure and build the _cuda target with CONVCORE_CUDA=`mode` in `build_dir`; returns the module's path.
    Raises RuntimeError with the build log's tail on failure."""
    import pybind11

    build_dir = Path(build_dir)
    args = ["cmake", "-S", str(ROOT), "-B", str(build_dir), f"-DCONVCORE_CUDA={mode}",
            "-DSKBUILD_PROJECT_NAME=convcore", "-DSKBUILD_PROJECT_VERSION=0.0.0",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release"]
    if architectures:
        args.append(f"-DCONVCORE_CUDA_ARCHITECTURES={architectures}")
    if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
        args += ["-G", "Ninja"]
    log = []
    for command in (args, ["cmake", "--build", str(build_dir), "--target", "_cuda", "--parallel", "2"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        log.append(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise RuntimeError("building convcore._cuda failed:\n" + "\n".join(log)[-6000:])
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    path = build_dir / f"_cuda{suffix}"
    if not path.is_file():
        raise RuntimeError(f"the build did not produce {path}")
    return path


def load(path):
    """Import the module built at `path` without touching sys.modules. Its name ends in `_cuda` (the init function's
    name) but is not convcore._cuda, which CPython would answer with the installed module."""
    name = "convcore_test_" + Path(path).parent.name.replace("-", "_").replace(".", "_") + "._cuda"
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
