"""convcore: fast CNN inference on the CPU.

C++ kernels (SIMD chosen at run time for this CPU, threads on convcore's own pool) under a numpy API. Start with
:mod:`convcore.functional`; :func:`show_config` tells what this build runs on.
"""

from __future__ import annotations

import os as _os
import typing as _typing

from . import _core
from . import cuda, functional, nn
from .graph import Graph, trace
from .io import load_checkpoint
from .plan import Plan, compile
from .quantization import quantize
from . import gradients
from .gradients import grad

if _typing.TYPE_CHECKING:  # imported on first use (__getattr__ below); type checkers see it as a submodule
    from . import visualize

# One source: pyproject.toml's [project] version, compiled into _core by CMake (`convcore --version` prints this).
__version__ = _core.config()["version"]

__all__ = ["cuda", "functional", "nn", "trace", "Graph", "Plan", "compile", "quantize", "grad", "gradients",
           "visualize", "load_checkpoint", "show_config", "set_num_threads", "get_num_threads", "available_isas",
           "get_isa", "set_isa"]


if not _typing.TYPE_CHECKING:  # hidden from type checkers, which would read every unknown attribute as its result
    def __getattr__(name):
        # convcore.visualize on first use: it brings in the model zoo and the bundled data, which `import convcore`
        # need not pay for.
        if name == "visualize":
            import importlib

            return importlib.import_module(".visualize", __name__)
        raise AttributeError(f"module 'convcore' has no attribute {name!r}")


def show_config(print_out: bool = True) -> dict[str, _typing.Any]:
    """Returns (and prints, unless ``print_out=False``) what was compiled, detected and chosen.

    Keys: ``version``, ``compiled_isas``, ``available_isas``, ``isa`` (the active one), ``conv_kernel``,
    ``int8_kernels`` (per usable ISA, the int8 convolution kernels it runs), ``num_threads``, ``thread_pool``,
    ``cpu`` (brand and feature flags), ``compiler``, ``cuda`` (the GPU backend: ``built``, ``available`` or the
    ``reason`` why not, driver and runtime versions, compiled ``architectures``, and per GPU its name, compute
    capability and memory; see :func:`convcore.cuda.config`).
    """
    cfg = _core.config()
    cfg["cuda"] = cuda.config()
    if print_out:
        cpu = cfg["cpu"]
        flags = ", ".join(k for k, v in cpu.items() if v is True) or "none"
        print(f"convcore {cfg['version']}")
        print(f"  cpu:            {cpu['brand'] or 'unknown'}")
        print(f"  cpu features:   {flags}")
        print(f"  compiled ISAs:  {', '.join(cfg['compiled_isas'])}")
        print(f"  usable ISAs:    {', '.join(cfg['available_isas'])}")
        forced = "  (forced by CONVCORE_ISA)" if _os.environ.get("CONVCORE_ISA") else ""
        print(f"  active ISA:     {cfg['isa']}{forced}")
        print(f"  conv kernel:    {cfg['conv_kernel']}")
        print(f"  int8 kernels:   {cfg['int8_kernels'].get(cfg['isa'], 'none')} (int8 convolutions of QDQ graphs)")
        print(f"  bf16 kernels:   {cfg['bf16_kernels'].get(cfg['isa']) or 'none'} (compile(..., precision='bf16'))")
        print(f"  threads:        {cfg['num_threads']}")
        print(f"  thread pool:    {cfg['thread_pool']}")
        print(f"  compiler:       {cfg['compiler']}")
        gpu = cfg["cuda"]
        if not gpu["built"]:
            print("  CUDA backend:   not built (no CUDA compiler at build time, or CONVCORE_CUDA=off)")
        else:
            print(f"  CUDA backend:   built for {gpu['architectures']} (CUDA runtime {gpu['runtime_version']}"
                  + (", CPU emulator" if gpu.get("emulated") else "") + ")")
            if gpu["available"]:
                print(f"  CUDA driver:    {gpu['driver_version']}")
                for d in gpu["devices"]:
                    major, minor = d["compute_capability"]
                    print(f"  GPU {d['index']}:          {d['name']} (compute capability {major}.{minor}, "
                          f"{d['memory_bytes'] / 2**30:.1f} GiB, {d['multiprocessors']} multiprocessors)")
            else:
                print(f"  GPU:            none ({gpu['reason']})")
        print("  engine:         compiled plans (convcore.compile; the commands use them, --eager runs op by op)")
    return cfg


MAX_THREADS = _core.MAX_THREADS  # the most threads set_num_threads accepts (docs/limits.md)


def set_num_threads(n: int) -> None:
    """Sets the number of threads every kernel uses (default: ``CONVCORE_NUM_THREADS``, else
    ``OMP_NUM_THREADS``, else the CPUs this process may use).

    Args:
        n: an int in ``[1, MAX_THREADS]`` (1024). A count above any used before is tried first: its threads are
            started once, so that a system that cannot run them refuses here rather than failing inside a kernel.

    Raises:
        ValueError: ``n`` is outside ``[1, MAX_THREADS]``.
        RuntimeError: the system cannot start ``n`` threads (the count stays as it was).
    """
    from ._validate import integer, is_int

    if is_int(n) and int(n) > MAX_THREADS:
        raise ValueError(f"n: expected a thread count in [1, {MAX_THREADS}] (got {int(n)})")
    _core.set_num_threads(integer(n, "n", 1))


def get_num_threads() -> int:
    """The number of threads kernels use."""
    return _core.get_num_threads()


def available_isas() -> list[str]:
    """Instruction sets this build has kernels for and this CPU can run: a subset of ``scalar``, ``avx2``,
    ``avx512`` (``scalar`` = the plain reference kernels)."""
    return list(_core.available_isas())


def get_isa() -> str:
    """The instruction set the kernels run with now."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Forces an instruction set (as the ``CONVCORE_ISA`` environment variable does at import), for tests and
    benchmarks. Raises ``ValueError`` for an unknown name or one this CPU lacks."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str (got {type(name).__name__})")
    _core.set_isa(name)
