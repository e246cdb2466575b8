"""The GPU backend: is a GPU usable, which ones, and arrays in GPU memory.

convcore's CUDA kernels live in a module of their own, ``convcore._cuda``, built when the CUDA toolkit is present at
build time (``CONVCORE_CUDA=auto|on|off``). The CPU package never needs it: without it, or without a driver or a GPU,
everything else works and ``convcore.compile(..., device="cuda")`` raises a ``RuntimeError`` that says which of the
three is missing.

Example:
    >>> import convcore, convcore.cuda
    >>> convcore.cuda.is_available(), convcore.cuda.device_count()
    (True, 1)
    >>> plan = convcore.compile(model, (1, 3, 224, 224), device="cuda")
    >>> plan(x)                                   # numpy in, numpy out (copied to and from the GPU)
    >>> y = plan(torch_tensor_on_gpu)             # a GPU array in (no host round trip), a DeviceArray out
    >>> torch.from_dlpack(y)                      # ... which any DLPack / CUDA-array-interface library takes as is
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

# convcore._cuda, or None in a build without the CUDA backend (the tests swap in the emulator's build: _set_module).
_module: Optional[ModuleType] = None
_IMPORT_ERROR: Optional[ImportError] = None
try:
    from . import _cuda

    _module = _cuda
except ImportError as _exc:  # a build without the CUDA backend
    _IMPORT_ERROR = _exc

__all__ = ["is_available", "device_count", "unavailable_reason", "get_device_info", "to_device", "config",
           "parse_device", "DeviceArray", "CudaError"]

NOT_BUILT = ("this convcore build has no CUDA backend (convcore._cuda was not built: no CUDA compiler was found at "
             "build time, or it was built with CONVCORE_CUDA=off); rebuild from source on a machine with the CUDA "
             "toolkit, e.g. CONVCORE_CUDA=on pip install --no-binary convcore convcore")


if TYPE_CHECKING:  # type checkers see the backend's classes (convcore/_cuda.pyi)
    from ._cuda import CudaError as CudaError, DeviceArray as DeviceArray
else:
    class CudaError(RuntimeError):
        """A CUDA call or kernel failed (convcore._cuda raises its own CudaError, also a RuntimeError)."""

    if _module is not None:
        CudaError = _module.CudaError  # noqa: F811
        DeviceArray = _module.DeviceArray
    else:
        class DeviceArray:
            """Stands in for convcore._cuda.DeviceArray in a build without the CUDA backend."""

            def __init__(self, *args, **kwargs):
                raise RuntimeError(NOT_BUILT)


def _set_module(module):
    """Use `module` as the CUDA backend (tests: the CPU emulator build of _cuda); returns the previous one."""
    global _module, CudaError, DeviceArray
    previous = _module
    _module = module
    if module is not None:
        CudaError, DeviceArray = module.CudaError, module.DeviceArray
    return previous


def _status() -> dict[str, Any]:
    assert _module is not None
    return _module.status()


def unavailable_reason() -> str | None:
    """Why ``device="cuda"`` cannot be used here (no CUDA backend in this build, no driver, no GPU), or None."""
    if _module is None:
        return NOT_BUILT
    return _status()["reason"]


def is_available() -> bool:
    """Whether this build has the CUDA backend and a GPU is usable."""
    return _module is not None and bool(_status()["available"])


def device_count() -> int:
    """The number of usable GPUs (0 without the CUDA backend, a driver or a GPU)."""
    return int(_status()["device_count"]) if _module is not None else 0


def parse_device(device: int | str | None) -> int | None:
    """'cpu' -> None; 'cuda' / 'cuda:N' (or a GPU index N) -> N. Raises ValueError for anything else."""
    if device is None or device == "cpu":
        return None
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool) and device >= 0:
        return int(device)
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        index = device[5:] or "0"
        if index.isdigit():
            return int(index)
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N' (got {device!r})")


def require(device: int = 0) -> ModuleType:
    """The CUDA backend module, once a GPU `device` is known to be usable; RuntimeError (saying what is missing)
    otherwise."""
    if _module is None:
        raise RuntimeError(f"device='cuda': {NOT_BUILT}")
    status = _status()
    if not status["available"]:
        raise RuntimeError(f"device='cuda': {status['reason']}")
    if not 0 <= device < status["device_count"]:
        raise ValueError(f"device: expected a GPU index below {status['device_count']} (got {device})")
    return _module


def get_device_info(device: int = 0) -> dict[str, Any]:
    """Name, compute capability, memory and multiprocessors of GPU `device`."""
    return dict(require(device).device_info(device))


def to_device(array: np.ndarray, device: int = 0) -> DeviceArray:
    """A `DeviceArray` copy of a float32 numpy array on GPU `device`."""
    module = require(device)
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        got = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"array: expected a float32 numpy.ndarray (got {got})")
    return module.DeviceArray.from_numpy(np.ascontiguousarray(array), device)


def is_device_array(x: object) -> bool:
    """Whether x is GPU memory: a DeviceArray, or an object with ``__cuda_array_interface__`` or a DLPack CUDA
    device (CuPy, PyTorch CUDA tensors, ...)."""
    if isinstance(x, np.ndarray):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    dlpack_device = getattr(x, "__dlpack_device__", None)
    if dlpack_device is None:
        return False
    try:
        kind = int(dlpack_device()[0])
    except Exception:
        return False
    return kind in (2, 13)  # kDLCUDA, kDLCUDAManaged


def config() -> dict[str, Any]:
    """What ``convcore.show_config()`` reports about the GPU backend: built, available (or why not), driver and
    runtime versions, the compiled architectures and each GPU's name, compute capability and memory."""
    if _module is None:
        return {"built": False, "available": False, "reason": NOT_BUILT, "devices": []}
    status = dict(_status())
    devices = [dict(_module.device_info(i)) for i in range(status["device_count"])] if status["available"] else []
    return {"built": True, **status, "devices": devices}
