"""GPU plans: `convcore.compile(model, input_shape, device="cuda")`.

The same lowering as the CPU Plan (`plan.lower`: the same fusions, the same op list) drives the GPU builder
`convcore._cuda.Plan`, whose methods match `_core.Plan`'s; its weights are packed and uploaded once, its activations
live in one GPU arena per batch size, and from the second call at a batch size on its ops run as one CUDA graph.

Inputs and outputs: a numpy array is copied to the GPU and the result back to a numpy array. A GPU array - a
`convcore.cuda.DeviceArray`, or anything with `__cuda_array_interface__` or a CUDA DLPack device (CuPy arrays,
PyTorch CUDA tensors) - is read where it lies, and the result is a `DeviceArray` (which CuPy / PyTorch take back
without a copy); `output="numpy"` or `output="device"` chooses explicitly, and `out=` takes arrays of either kind.
A graph that plans cover entirely (the whole zoo) runs as one GPU call; nodes they do not cover run on the CPU
between segments, which costs a host round trip.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from .. import cuda
from .._types import Outputs
from ..graph import Graph
from . import Plan

__all__ = ["CudaPlan", "PRECISIONS"]

PRECISIONS = ("fp32", "tf32", "bf16")


class CudaPlan(Plan):
    """A network compiled for a GPU: call it like the model (see the module docstring for inputs and outputs).

    Attributes:
        input_shape: the traced (N, C, H, W); only N may differ at run time.
        device: the GPU index.
        precision: 'fp32' (default: CUDA cores, fp32 products), 'tf32' or 'bf16' (tensor cores for the dense and
            grouped convolutions and linear layers; accuracy in docs/cuda.md).
    """

    SPLIT_BYTES = 0  # a GPU call takes the whole batch

    def __init__(self, graph: Graph, input_shape: Sequence[int], device: int = 0, precision: str = "fp32",
                 fuse: Union[bool, Iterable[str]] = True) -> None:
        self.device = int(device)
        self.precision = precision
        self._module = cuda.require(self.device)
        super().__init__(graph, input_shape, None, False, fuse, None, precision)
        self.isa = f"cuda:{self.device} {precision}"
        # A second call at the compiled batch captures the CUDA graph, so the caller's first call is a fast one.
        if not self._module.status()["emulated"]:
            self.run(np.zeros(self.input_shape, np.float32))

    def _new_builder(self):
        return self._module.Plan(self.device, self.precision)

    # --------------------------------------------------------------------------------------------------- running
    def _device_outputs(self, batch):
        return [self._module.DeviceArray(shape, self.device) for shape in self.output_shapes(batch)]

    def _check_device_input(self, x):
        c, h, w = self.input_shape[1:]
        shape = tuple(int(d) for d in getattr(x, "shape", ()))
        if len(shape) != 4 or shape[1:] != (c, h, w) or shape[0] < 1:
            raise ValueError(f"x: expected shape (N, {c}, {h}, {w}) (got {shape})")
        return shape[0]

    @staticmethod
    def _check_device_out(outs, shapes):
        if len(outs) != len(shapes):
            raise ValueError(f"out: expected {len(shapes)} array(s) (got {len(outs)})")
        for i, (o, s) in enumerate(zip(outs, shapes)):
            shape = tuple(int(d) for d in getattr(o, "shape", ()))
            if shape != tuple(s):
                raise ValueError(f"out[{i}]: expected shape {tuple(s)} (got {shape})")

    def run(self, x: Any, out: Any = None, output: Optional[str] = None) -> Outputs:
        """Run on `x` (a numpy or GPU array); write into `out` (an array or a list, one per output: numpy or GPU
        arrays) when given. `output`: 'numpy' or 'device' (default: the kind of `out`, else of `x`). Returns the
        output(s)."""
        if output not in (None, "numpy", "device"):
            raise ValueError(f"output: expected 'numpy' or 'device' (got {output!r})")
        on_device = cuda.is_device_array(x)
        outs = None if out is None else (list(out) if isinstance(out, (list, tuple)) else [out])
        if outs is not None:
            kinds = {cuda.is_device_array(o) for o in outs}
            if len(kinds) != 1:
                raise ValueError("out: expected numpy arrays or GPU arrays, not both")
            out_device = kinds.pop()
            if output is not None and (output == "device") != out_device:
                raise ValueError(f"output: {output!r} does not match the out= arrays")
        else:
            out_device = output == "device" if output is not None else on_device
        if not on_device and not out_device:  # numpy in, numpy out: the CPU Plan's path
            return super().run(x, out=outs if out is not None else None)
        if on_device:
            batch = self._check_device_input(x)
        else:
            x = self._check_input(x)
            batch = x.shape[0]
        if self._other_batch(batch):
            return self._at_batch(batch).run(x, out, output)
        shapes = self.output_shapes(batch)
        if outs is not None and out_device:
            self._check_device_out(outs, shapes)
        if self._single is None:  # eager nodes between segments: run on the host
            host_x = self._module.to_host(x) if on_device else x
            results = super().run(host_x)
            results = list(results) if isinstance(results, tuple) else [results]
            if out_device:
                device_results = [cuda.to_device(np.ascontiguousarray(r, np.float32), self.device) for r in results]
                if outs is not None:
                    for o, r in zip(outs, device_results):
                        self._module.copy(r, o)
                    device_results = outs
                results = device_results
            elif outs is not None:
                for o, r in zip(outs, results):
                    o[...] = r
                results = outs
            return results[0] if len(results) == 1 else tuple(results)
        if not on_device:
            x = self._module.DeviceArray.from_numpy(x, self.device)
        if out_device:
            targets = outs if outs is not None else self._device_outputs(batch)
            self._single.plan.run_device([x], targets)
            results = targets
        else:
            host_outs = self._check_out(outs, shapes, np.empty(0, np.float32)) if outs is not None else None
            device_outs = self._device_outputs(batch)
            self._single.plan.run_device([x], device_outs)
            results = [d.numpy() for d in device_outs]
            if host_outs is not None:
                for o, r in zip(host_outs, results):
                    o[...] = r
                results = host_outs
        self._last_batch = batch
        return results[0] if len(results) == 1 else tuple(results)

    __call__ = run

    def __repr__(self) -> str:
        return (f"CudaPlan({self.graph.name}, input_shape={self.input_shape}, ops={len(self.ops())}, "
                f"device={self.device}, precision={self.precision!r})")

    # ------------------------------------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        return {"graph": self.graph, "input_shape": self.input_shape, "device": self.device,
                "precision": self.precision, "fuse": self.fuse}

    def __setstate__(self, state: dict[str, Any]) -> None:
        CudaPlan.__init__(self, state["graph"], state["input_shape"], state["device"], state["precision"],
                          state["fuse"])
