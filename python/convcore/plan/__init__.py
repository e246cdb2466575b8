"""Compiled plans: `convcore.compile(model, input_shape)` runs a whole network in one C++ call.

The model is traced into a `Graph`, batch norms are folded into convolutions, activations, residual adds and
concatenations are fused into the ops that produce their inputs (see `convcore.plan.lower`), weights are packed once
for this CPU's kernels, and activations stay channels-last in one arena planned per batch size. Eager `model(x)`
stays the readable reference; a Plan gives the same results (within float rounding) faster.

Example:
    >>> plan = convcore.compile(convcore.models.get_model("resnet50"), (1, 3, 224, 224))
    >>> logits = plan(x)                 # any batch size: (N, 3, 224, 224) -> (N, 1000)
    >>> plan.summary()                   # the fused ops, their kernels, GFLOP and time
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _core
from ..graph import Graph, trace
from ..nn import Module
from .lower import lower

__all__ = ["Plan", "compile"]


def _as_graph(model, input_shape):
    """A Graph from a Graph, an ONNX-imported module, an ONNX file / bytes, or a Module traced at input_shape."""
    if isinstance(model, Graph):
        return model, tuple(model.shapes[model.inputs[0]])
    graph = getattr(model, "graph", None)
    if isinstance(graph, Graph):  # an imported ONNX model carries its graph and declared input shape
        shape = tuple(input_shape) if input_shape is not None else tuple(graph.shapes[graph.inputs[0]])
        if input_shape is not None and tuple(shape[1:]) != tuple(graph.shapes[graph.inputs[0]][1:]):
            raise ValueError(f"input_shape: this imported model was loaded for {graph.shapes[graph.inputs[0]]}; load "
                             f"it again with convcore.onnx.load(path, input_shape={shape})") from None
        return graph, shape
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__") or type(model).__name__ == "ModelProto":
        from ..onnx import load

        if type(model).__name__ == "ModelProto":
            model = model.SerializeToString()
        module = load(model, input_shape=input_shape)
        return module.graph, tuple(module.graph.shapes[module.graph.inputs[0]])
    if not isinstance(model, Module) and not callable(model):
        raise TypeError(f"model: expected a convcore.nn.Module, a Graph or an ONNX model (got {type(model).__name__})")
    if input_shape is None:
        raise TypeError("input_shape: required to trace a module, e.g. (1, 3, 224, 224)")
    return trace(model, tuple(input_shape)), tuple(input_shape)


class Plan:
    """A network compiled for this CPU: call it like the model.

    `plan(x)` takes a float32 (N, C, H, W) array (any N) and returns the output array (a tuple for several outputs);
    `plan.run(x, out=...)` writes into preallocated arrays. Buffers are planned on the first call at each batch size
    and reused, so later calls allocate nothing but their result. Calls from several Python threads are safe: they
    run one at a time (each call uses all the plan's threads). Plans pickle as their graph and options and are
    recompiled (repacked for the receiving CPU) when loaded.

    Attributes:
        input_shape: the traced (N, C, H, W); only N may differ at run time.
        num_threads: threads per call (None: `convcore.get_num_threads()` at each call).
        isa: the kernels it was packed for ('avx512', 'avx2' or 'scalar').
    """

    def __init__(self, graph, input_shape, num_threads=None, winograd="auto", isa=None):
        self.graph = graph
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_threads = num_threads
        self.winograd = winograd
        self.isa = isa or _core.get_isa()
        self._plan = lower(graph, self.isa, winograd)
        self._out_count = len(graph.outputs)
        self._lock = threading.Lock()
        self._last_batch = self.input_shape[0]

    # --------------------------------------------------------------------------------------------------- running
    def _threads(self):
        return int(self.num_threads) if self.num_threads is not None else _core.get_num_threads()

    def _check_input(self, x):
        c, h, w = self.input_shape[1:]
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x: expected a numpy.ndarray of float32 (got {type(x).__name__})")
        if x.dtype != np.float32:
            raise TypeError(f"x: expected dtype float32 (got {x.dtype}); convert with .astype(numpy.float32)")
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w) or x.shape[0] < 1:
            raise ValueError(f"x: expected shape (N, {c}, {h}, {w}) (got {x.shape})")
        return np.ascontiguousarray(x)

    def output_shapes(self, batch):
        return [tuple(s) for s in self._plan.output_shapes(int(batch))]

    def run(self, x, out=None):
        """Run on `x`; write into `out` (an array, or a list with one per output) when given. Returns the output(s).
        """
        x = self._check_input(x)
        shapes = self.output_shapes(x.shape[0])
        if out is None:
            outs = [np.empty(s, np.float32) for s in shapes]
        else:
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            if len(outs) != len(shapes):
                raise ValueError(f"out: expected {len(shapes)} array(s) (got {len(outs)})")
            for i, (o, s) in enumerate(zip(outs, shapes)):
                if not isinstance(o, np.ndarray) or o.dtype != np.float32 or tuple(o.shape) != s or \
                        not o.flags.c_contiguous or not o.flags.writeable:
                    raise ValueError(f"out[{i}]: expected a writeable C-contiguous float32 array of shape {s} (got "
                                     f"{getattr(o, 'shape', type(o).__name__)})")
                if np.may_share_memory(o, x):
                    raise ValueError(f"out[{i}]: must not overlap the input")
        self._plan.run(x, outs, self._threads())
        self._last_batch = x.shape[0]
        return outs[0] if len(outs) == 1 else tuple(outs)

    __call__ = run

    # ---------------------------------------------------------------------------------------------- inspection
    @property
    def memory_bytes(self):
        """Arena size in bytes for the batch of the last call (the compiled batch before any call)."""
        return int(self._plan.arena_bytes(self._last_batch))

    @property
    def weight_bytes(self):
        """Bytes of packed weights and constants."""
        return int(self._plan.weight_bytes)

    def ops(self):
        """The fused op list: (name, kernel, shapes, FLOPs per image) tuples."""
        return [tuple(op) for op in self._plan.ops()]

    def profile(self, x=None, repeats=10):
        """Per-op times: a list of (name, kernel, shapes, FLOPs, seconds) averaged over `repeats` runs on `x`
        (random data of the compiled shape when None)."""
        if x is None:
            x = np.random.default_rng(0).standard_normal(self.input_shape).astype(np.float32)
        x = self._check_input(x)
        outs = [np.empty(s, np.float32) for s in self.output_shapes(x.shape[0])]
        return [tuple(e) for e in self._plan.profile(x, outs, self._threads(), int(repeats))]

    def summary(self, x=None, repeats=10, print_out=True):
        """The fused op list with each op's kernel, shapes, GFLOP and share of the time (measured on `x`, or on
        random data of the compiled shape). Returns the text."""
        rows = self.profile(x, repeats)
        total = sum(r[4] for r in rows) or 1.0
        flops = sum(r[3] for r in rows)
        lines = [f"Plan {self.graph.name}: {len(rows)} ops, isa {self.isa}, {self._threads()} threads, "
                 f"{flops / 1e9:.2f} GFLOP, {total * 1e3:.2f} ms ({flops / total / 1e9:.1f} GFLOP/s), arena "
                 f"{self.memory_bytes / 2**20:.1f} MiB, weights {self.weight_bytes / 2**20:.1f} MiB"]
        header = ("op", "kernel", "shapes", "GFLOP", "ms", "share")
        body = [(n, k, d, f"{f / 1e9:.3f}", f"{t * 1e3:.3f}", f"{100 * t / total:.1f}%") for n, k, d, f, t in rows]
        widths = [max(len(str(r[i])) for r in [header] + body) for i in range(6)]
        for r in [header] + body:
            lines.append("  ".join(str(v).ljust(w) if i < 3 else str(v).rjust(w) for i, (v, w) in
                                   enumerate(zip(r, widths))).rstrip())
        text = "\n".join(lines)
        if print_out:
            print(text)
        return text

    def __repr__(self):
        return (f"Plan({self.graph.name}, input_shape={self.input_shape}, ops={len(self._plan.ops())}, "
                f"isa={self.isa!r})")

    # ------------------------------------------------------------------------------------------------ pickling
    def __getstate__(self):
        return {"graph": self.graph, "input_shape": self.input_shape, "num_threads": self.num_threads,
                "winograd": self.winograd}

    def __setstate__(self, state):
        self.__init__(state["graph"], state["input_shape"], state["num_threads"], state["winograd"])


def compile(model, input_shape=None, *, num_threads=None, winograd="auto"):  # noqa: A001 (torch.compile's name)
    """Compile a model into a `Plan` that runs the whole network in one C++ call.

    Args:
        model: a `convcore.nn.Module` (traced at `input_shape`), a `Graph`, a model imported with
            `convcore.onnx.load`, or an ONNX file path / bytes / ModelProto.
        input_shape: (N, C, H, W) to trace at; optional for graphs and ONNX models that declare it. The batch N
            may differ at run time.
        num_threads: threads per call; None follows `convcore.set_num_threads`.
        winograd: "auto" (Winograd F(4x4, 3x3) on the 3x3 stride-1 layers where it is measured faster and within
            the documented error bound), True (every eligible layer) or False (never).

    Returns:
        A `Plan`.
    """
    if num_threads is not None:
        from .._validate import integer

        num_threads = integer(num_threads, "num_threads", 1)
    if winograd not in ("auto", True, False):
        raise ValueError(f"winograd: expected 'auto', True or False (got {winograd!r})")
    graph, shape = _as_graph(model, input_shape)
    return Plan(graph, shape, num_threads, winograd)
