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

import time
from collections import OrderedDict
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from .. import _core
from .._types import Array, Outputs
from ..graph import Graph, trace
from ..graph.tracer import batch_shape
from ..nn import Module
from ..graph.ir import call_node
from .lower import FUSIONS, Segment, lower, rewrite

__all__ = ["FUSIONS", "CPU_PRECISIONS", "Plan", "compile"]

CPU_PRECISIONS = ("auto", "fp32", "int8", "bf16")


class _Retrace:
    """A model's graph at any input shape: the Module traced again (picklable with the model)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, shape):
        return trace(self.model, tuple(shape))


class _Reimport:
    """An ONNX file's graph at any input shape: the file (path or bytes) imported again at that shape, so that sizes
    its exporter computed from the input (Shape -> ... -> Reshape) are folded for that shape."""

    def __init__(self, source):
        self.source = source

    def __call__(self, shape):
        from ..onnx import load

        module = load(self.source, input_shape=tuple(shape))
        if not isinstance(getattr(module, "graph", None), Graph):
            raise ValueError("model: this ONNX file binds inputs at each call; compile model.specialize(...)")
        return module.graph


def _source_of(model):
    """How to get `model`'s graph at another input shape: a `_Retrace` / `_Reimport`, or None for a Graph or an
    imported module (their sizes were fixed when they were built)."""
    if isinstance(model, Graph) or isinstance(getattr(model, "graph", None), Graph) or hasattr(model, "bound"):
        return None
    if type(model).__name__ == "ModelProto":
        return _Reimport(model.SerializeToString())
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        return _Reimport(model)
    return _Retrace(model) if isinstance(model, Module) or callable(model) else None


def _module_without_size(model, input_shape):
    """A Module (or function) with no registered input size, and no input_shape given: compile at the first call."""
    if input_shape is not None or isinstance(model, (Graph, str, bytes)) or hasattr(model, "__fspath__") or \
            isinstance(getattr(model, "graph", None), Graph) or type(model).__name__ == "ModelProto":
        return False
    size = getattr(model, "input_size", None)
    return (isinstance(model, Module) or callable(model)) and not (isinstance(size, tuple) and len(size) == 3)


def _as_graph(model, input_shape):
    """A Graph from a Graph, an ONNX-imported module, an ONNX file / bytes, or a Module traced at input_shape."""
    if isinstance(model, Graph):
        return model, tuple(model.shapes[model.inputs[0]])
    if hasattr(model, "specialize") and hasattr(model, "bound"):  # an ONNX model binding inputs at each call
        raise ValueError(f"model: its inputs {model.bound} are bound at each call (convcore.onnx.BoundONNXModule); "
                         f"compile the model for one set of their values: convcore.compile(model.specialize("
                         f"{{{', '.join(repr(n) + ': ...' for n in model.bound)}}}), input_shape)")
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
    shape = tuple(batch_shape(model, input_shape))  # a zoo model's registered size by default
    return trace(model, shape), shape


class Plan:
    """A network compiled for this CPU: call it like the model.

    `plan(x)` takes a float32 (N, C, H, W) array (any N; or the (N, ...) input of 2 or 3 dims of a graph that has
    one: audio, features) and returns the output array (a tuple for several outputs);
    `plan.run(x, out=...)` writes into preallocated arrays. Buffers are planned on the first call at each batch size
    and reused, so later calls allocate nothing but their result. Calls from several Python threads are safe: they
    run one at a time (each call uses all the plan's threads). Plans pickle as their graph and options and are
    recompiled (repacked for the receiving CPU) when loaded.

    A graph whose values keep the batch as their first axis runs at any N as compiled. One that moves the batch
    elsewhere (a transpose or reshape across it, a reduction over it) is compiled again at each new N it meets
    (re-inferred from the graph, the last `MAX_BATCH_VARIANTS` kept); `batch_fixed` says why it needs that, and a
    graph that cannot follow another N at all (a size frozen at the traced batch) raises a ValueError naming the
    node.

    A batch whose images' activations outweigh the weights (text detectors on large pages) runs each segment one
    image per call, so that each layer works in cache (`SPLIT_BYTES`).

    Another height and width (other sizes of a 2- or 3-dim input): a plan compiled from a Module (or function) or an
    ONNX file compiles the model again at each new (H, W) it meets (traced again, or the file imported again at that
    size, so sizes computed from the input follow it), the last `MAX_SHAPE_VARIANTS` sizes kept. A plan compiled
    from a Graph or an imported module serves its own size only. Compiled without input_shape from a model that has
    no size of its own, a plan compiles at its first call (`compiled` is False until then).

    Attributes:
        input_shape: the traced (N, C, H, W); only N may differ at run time.
        num_threads: threads per call (None: `convcore.get_num_threads()` at each call).
        isa: the kernels it was packed for ('avx512', 'avx2' or 'scalar').
        batch_fixed: None, or why the compiled plan serves its traced batch only (see above).
    """

    MAX_BATCH_VARIANTS = 4
    MAX_SHAPE_VARIANTS = 4
    SPLIT_BYTES = 16 << 20  # see `_run_segment` (0: never split a batch)

    def __init__(self, graph: Optional[Graph], input_shape: Optional[Sequence[int]], num_threads: Optional[int] = None,
                 winograd: Union[str, bool] = "auto", fuse: Union[bool, Iterable[str]] = True,
                 source: Any = None, precision: str = "fp32") -> None:
        self.num_threads = num_threads
        self.winograd = winograd
        self.fuse = fuse
        self.precision = precision  # "bf16": the convolutions' products in bf16 (the builder's kernels)
        self._source = source  # input shape -> the model's Graph at that shape (None: this graph's size only)
        self._shape_variants: OrderedDict[tuple[int, int], Plan] = OrderedDict()  # (H, W) -> plan at that size
        self.compiled = graph is not None
        if graph is None or input_shape is None:  # compiled at the first call (`compile` without a shape)
            if source is None or graph is not None:
                raise ValueError("compile: a plan without a graph and shape needs a model to trace or import at its "
                                 "first call")
            self.compiled = False
            self.input_shape = None
            return
        self.input_shape = tuple(int(d) for d in input_shape)
        if graph.inputs and graph.shapes[graph.inputs[0]][:1] != self.input_shape[:1] and graph.batch_fixed_at():
            graph = graph.at_batch(self.input_shape[0])  # its shapes are those of another batch: infer them here
        self.graph = graph
        self.isa = _core.get_isa()
        if len(graph.inputs) != 1 or len(graph.shapes[graph.inputs[0]]) not in (2, 3, 4):
            raise ValueError(f"compile: expected a graph with one input of 2 to 4 dims, (N, C, H, W) for a CNN (got "
                             f"inputs {[graph.shapes[n] for n in graph.inputs]})")
        fusions = _fusions(fuse)
        rewritten = rewrite(graph, fusions)
        self._steps = lower(rewritten, self._new_builder, winograd, fusions)
        # The segments hold their packed weights: keep only the parameters nodes run eagerly still read (folded
        # batch-norm weights would otherwise double the plan's memory).
        eager = {v for step in self._steps if not isinstance(step, Segment) for v in step.inputs}
        self._shapes = dict(rewritten.shapes)
        self._params = {k: v for k, v in rewritten.params.items() if k in eager}
        self._input, self._outputs = rewritten.inputs[0], list(rewritten.outputs)
        # The common case, a graph plans cover entirely: one C++ call from input to outputs.
        only = self._steps[0] if len(self._steps) == 1 and isinstance(self._steps[0], Segment) else None
        self._single = only if only is not None and only.inputs == list(graph.inputs) and \
            only.outputs == list(graph.outputs) else None
        self._last_batch = self.input_shape[0]
        self.batch_fixed = graph.batch_fixed_at()
        self._variants: OrderedDict[int, Plan] = OrderedDict()  # batch -> this plan compiled at that batch
        # One call at the compiled batch now: plans and touches the arenas and starts the thread pool, so that the
        # caller's first call runs at full speed.
        self.run(np.zeros(self.input_shape, np.float32))

    def _new_builder(self):
        """A new, empty C++ plan builder for one segment (the GPU plan, plan/cuda.py, returns a _cuda.Plan)."""
        return _core.Plan(self.isa, bf16=self.precision == "bf16")

    # --------------------------------------------------------------------------------------------------- running
    def _threads(self):
        return int(self.num_threads) if self.num_threads is not None else _core.get_num_threads()

    def _check_input(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x: expected a numpy.ndarray of float32 (got {type(x).__name__})")
        if x.dtype != np.float32:
            raise TypeError(f"x: expected dtype float32 (got {x.dtype}); convert with .astype(numpy.float32)")
        if not self.compiled:
            if x.ndim not in (2, 3, 4) or min(x.shape) < 1:
                raise ValueError(f"x: expected a non-empty (N, C, H, W) array, or one of 2 or 3 dims (got shape "
                                 f"{x.shape})")
            return np.ascontiguousarray(x)
        rank, dims = len(self.input_shape), tuple(self.input_shape[1:])
        resizable = self._source is not None and x.ndim == rank and min(x.shape) >= 1 and (
            rank != 4 or x.shape[1] == dims[0])  # a map keeps its channels
        if x.ndim != rank or tuple(x.shape[1:]) != dims and not resizable or x.shape[0] < 1:
            other = "" if self._source is not None else (
                "; this plan was compiled from a graph or an imported module, for that size only: compile the model "
                "or the ONNX file itself to run other sizes")
            raise ValueError(f"x: expected shape (N, {', '.join(map(str, dims))}) (got {x.shape}){other}")
        return np.ascontiguousarray(x)

    def _for_input(self, x):
        """The plan that runs `x`: this one, or this model compiled at x's (H, W) (compiled on first use; the last
        MAX_SHAPE_VARIANTS sizes kept), or at its batch where the graph fixes it."""
        if not self.compiled:
            state = self.__getstate__()
            Plan.__init__(self, self._source(x.shape), x.shape, state["num_threads"], state["winograd"],
                          state["fuse"], state["source"], state["precision"])
        if tuple(x.shape[1:]) != tuple(self.input_shape[1:]):
            key = tuple(int(d) for d in x.shape[2:]) if x.ndim == 4 else tuple(int(d) for d in x.shape[1:])
            plan = self._shape_variants.pop(key, None)
            if plan is None:
                shape = (int(x.shape[0]), *self.input_shape[1:x.ndim - len(key)], *key)
                plan = type(self)(self._source(shape), shape, self.num_threads, self.winograd, self.fuse,
                                  self._source, self.precision)
            self._shape_variants[key] = plan  # the most recent last
            while len(self._shape_variants) > self.MAX_SHAPE_VARIANTS:
                self._shape_variants.popitem(last=False)
            return plan._for_input(x)
        return self._at_batch(x.shape[0]) if self._other_batch(x.shape[0]) else self

    def _compiled_shape(self):
        """The compiled input shape; a clear error before a deferred plan's first call."""
        if not self.compiled:
            raise ValueError("plan: not compiled yet (convcore.compile without input_shape compiles at the first "
                             "call): call it on an input first")
        return self.input_shape

    def output_shapes(self, batch: int) -> list[tuple[int, ...]]:
        """The output arrays' shapes for a batch of `batch` images."""
        self._compiled_shape()
        if self._other_batch(batch):
            return self._at_batch(batch).output_shapes(batch)
        return [self._shape_at(name, batch) for name in self._outputs]

    def _shape_at(self, value, batch):
        """The shape of `value` at `batch` (its compiled shape where the plan is fixed to its batch)."""
        shape = tuple(self._shapes[value])
        return shape if self.batch_fixed is not None else (int(batch), *shape[1:])

    def _other_batch(self, batch):
        return self.batch_fixed is not None and int(batch) != self.input_shape[0]

    def _at_batch(self, batch):
        """This plan compiled again at `batch` (a plan whose graph moves the batch axis: see the class doc)."""
        batch = int(batch)
        plan = self._variants.pop(batch, None)
        if plan is None:
            state = self.__getstate__()
            try:
                state["graph"] = self.graph.at_batch(batch)
            except ValueError:  # a size frozen at the traced batch: the model itself, at this batch
                if self._source is None:
                    raise
                state["graph"] = self._source((batch, *self.input_shape[1:]))
            state["input_shape"] = (batch, *self.input_shape[1:])
            plan = type(self).__new__(type(self))
            plan.__setstate__(state)
        self._variants[batch] = plan  # the most recent last
        while len(self._variants) > self.MAX_BATCH_VARIANTS:
            self._variants.popitem(last=False)
        return plan

    def _check_out(self, out, shapes, x):
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
            for j in range(i):
                if np.may_share_memory(o, outs[j]):  # one output would overwrite part of another
                    raise ValueError(f"out[{i}]: must not overlap out[{j}]")
        return outs

    def _run_steps(self, x, timer=None):
        """Run every step on x; returns {value: array} with the graph outputs. `timer(step, fn)` may wrap steps."""
        env = {self._input: x}
        threads = self._threads()
        for step in self._steps:
            if isinstance(step, Segment):
                ins = step.arrays(env)
                outs = [np.empty(self._shape_at(v, x.shape[0]), np.float32) for v in step.outputs]
                if timer is None:
                    self._run_segment(step, ins, outs, threads)
                else:
                    timer(step, ins, outs, threads)
                env.update(zip(step.outputs, outs))
            else:
                args = [env[v] if v in env else self._params[v] if v else None for v in step.inputs]
                env[step.outputs[0]] = call_node(step, args) if timer is None else timer(step, args, None, None)
        return env

    def run(self, x: Array, out: Union[Array, Sequence[Array], None] = None) -> Outputs:
        """Run on `x`; write into `out` (an array, or a list with one per output) when given. Returns the output(s).
        """
        x = self._check_input(x)
        plan = self._for_input(x)
        if plan is not self:
            return plan.run(x, out)
        shapes = self.output_shapes(x.shape[0])
        outs = self._check_out(out, shapes, x) if out is not None else None
        if self._single is not None:
            outs = outs or [np.empty(s, np.float32) for s in shapes]
            self._run_segment(self._single, [x], outs, self._threads())
        else:
            env = self._run_steps(x)
            results = [np.ascontiguousarray(env[name], np.float32) for name in self._outputs]
            if outs is None:
                outs = results
            else:
                for o, r in zip(outs, results):
                    o[...] = r
        self._last_batch = x.shape[0]
        return outs[0] if len(outs) == 1 else tuple(outs)

    __call__ = run

    def _run_segment(self, segment, ins, outs, threads):
        """A segment's C++ plan on the batch: in one call, or one image per call where one image's activations (its
        share of the arena) exceed both the weights, which each call reads again, and SPLIT_BYTES (more than the
        caches a core can count on): each layer then works in cache instead of streaming the whole batch's maps
        through memory (DB text detectors at 640 x 640, batch 4: 1.2-1.4x faster image by image; the zoo, whose
        weights outweigh its maps, 1.1-1.4x faster in whole batches)."""
        batch = ins[0].shape[0] if ins else 0
        if batch > 1 and self.SPLIT_BYTES and self.batch_fixed is None and \
                all(a.shape[0] == batch for a in (*ins, *outs)):
            split = segment.split.get(batch)
            if split is None:
                share = segment.plan.arena_bytes(batch) / batch
                split = segment.split[batch] = share > max(segment.plan.weight_bytes, self.SPLIT_BYTES)
            if split:
                for i in range(batch):
                    segment.plan.run([a[i:i + 1] for a in ins], [o[i:i + 1] for o in outs], threads)
                return
        segment.plan.run(ins, outs, threads)

    # ---------------------------------------------------------------------------------------------- inspection
    def _segments(self):
        self._compiled_shape()
        return [s for s in self._steps if isinstance(s, Segment)]

    @property
    def memory_bytes(self) -> int:
        """Arena bytes (all segments) for the batch of the last call (the compiled batch before any call)."""
        if self.batch_fixed is not None:  # each segment at its own compiled first axis
            return int(sum(s.plan.arena_bytes(self._shapes[s.inputs[0]][0]) for s in self._segments()))
        return int(sum(s.plan.arena_bytes(self._last_batch) for s in self._segments()))

    @property
    def weight_bytes(self) -> int:
        """Bytes of packed weights and constants."""
        return int(sum(s.plan.weight_bytes for s in self._segments()))

    @property
    def eager_nodes(self) -> list[str]:
        """Names of the nodes compiled plans do not cover, which run op by op between the plan's segments."""
        self._compiled_shape()
        return [s.name for s in self._steps if not isinstance(s, Segment)]

    @property
    def int8_ops(self) -> list[str]:
        """Names of the convolutions running on int8 kernels (a quantized graph's; see `compile`'s precision)."""
        return [row[0] for row in self.ops() if row[1].endswith("_qconv")]

    @property
    def bf16_ops(self) -> list[str]:
        """Names of the ops whose convolutions run on bf16 kernels (`compile(..., precision="bf16")`; a fused
        inverted-residual block counts once)."""
        return [row[0] for row in self.ops() if "bf16" in row[1]]

    def ops(self) -> list[tuple[str, str, str, float]]:
        """The op list: (name, kernel, shapes, FLOPs per image) tuples; nodes run eagerly show kernel 'eager <op>'."""
        self._compiled_shape()
        rows = []
        for step in self._steps:
            if isinstance(step, Segment):
                rows += [tuple(op) for op in step.plan.ops()]
            else:
                rows.append((step.name, f"eager {step.op}", str(self._shapes[step.outputs[0]]), 0.0))
        return rows

    def profile(self, x: Optional[Array] = None, repeats: int = 10,
                statistic: str = "min") -> list[tuple[str, str, str, float, float]]:
        """Per-op times: a list of (name, kernel, shapes, FLOPs, seconds), each op timed in `repeats` runs of the
        whole plan on `x` (random data of the compiled shape when None).

        Args:
            statistic: "min" (default: each op's fastest run, the figure that is stable on a shared machine, where
                another process's burst inflates single runs) or "mean" (each op's average).
        """
        if statistic not in ("min", "mean"):
            raise ValueError(f"statistic: expected 'min' or 'mean' (got {statistic!r})")
        repeats = int(repeats)
        if repeats < 1:
            raise ValueError(f"repeats: expected a positive int (got {repeats})")
        if x is None:
            x = np.random.default_rng(0).standard_normal(self._compiled_shape()).astype(np.float32)
        x = self._check_input(x)
        plan = self._for_input(x)
        if plan is not self:
            return plan.profile(x, repeats, statistic)
        rows = []
        combine = min if statistic == "min" else (lambda times: sum(times) / len(times))

        def timer(step, ins, outs, threads):
            if isinstance(step, Segment):  # one timed run of the segment per repeat: the C++ side times each op
                runs = [step.plan.profile(ins, outs, threads, 1) for _ in range(repeats)]
                for entries in zip(*runs):
                    rows.append((*tuple(entries[0])[:4], combine([e[4] for e in entries])))
                return None
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                result = call_node(step, ins)
                times.append(time.perf_counter() - start)
            rows.append((step.name, f"eager {step.op}", str(self._shapes[step.outputs[0]]), 0.0, combine(times)))
            return result

        self._run_steps(x, timer)
        return rows

    def summary(self, x: Optional[Array] = None, repeats: int = 10, print_out: bool = True,
                statistic: str = "min") -> str:
        """The fused op list with each op's kernel, shapes, GFLOP and share of the time (measured on `x`, or on
        random data of the compiled shape; each op's fastest of `repeats` runs, or their mean with
        `statistic="mean"`). Returns the text."""
        rows = self.profile(x, repeats, statistic)
        total = sum(r[4] for r in rows) or 1.0
        flops = sum(r[3] for r in rows)
        lines = [f"Plan {self.graph.name}: {len(rows)} ops, isa {self.isa}, {self._threads()} threads, "
                 f"{flops / 1e9:.2f} GFLOP, {total * 1e3:.2f} ms ({flops / total / 1e9:.1f} GFLOP/s), arena "
                 f"{self.memory_bytes / 2**20:.1f} MiB, weights {self.weight_bytes / 2**20:.1f} MiB; each op's "
                 f"{statistic} of {repeats} runs"]
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

    def __repr__(self) -> str:
        if not self.compiled:
            return "Plan(compiled at its first call)"
        return (f"Plan({self.graph.name}, input_shape={self.input_shape}, ops={len(self.ops())}, "
                f"isa={self.isa!r})")

    # ------------------------------------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        return {"graph": self.graph if self.compiled else None, "input_shape": self.input_shape,
                "num_threads": self.num_threads, "winograd": self.winograd, "fuse": self.fuse, "source": self._source,
                "precision": self.precision}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Plan.__init__(self, state["graph"], state["input_shape"], state["num_threads"], state["winograd"],
                      state["fuse"], state.get("source"), state.get("precision", "fp32"))


def _fusions(fuse):
    if fuse is True:
        return FUSIONS
    if fuse is False:
        return frozenset()
    names = frozenset(fuse)
    if not names <= FUSIONS:
        raise ValueError(f"fuse: expected True, False or a subset of {sorted(FUSIONS)} (got {sorted(names)})")
    return names


def compile(model: Any, input_shape: Optional[Sequence[int]] = None, *, num_threads: Optional[int] = None,  # noqa: A001
            winograd: Union[str, bool] = "auto", fuse: Union[bool, Iterable[str]] = True,
            device: Union[str, int, None] = "cpu", precision: Optional[str] = None) -> Plan:
    """Compile a model into a `Plan` that runs the whole network in one C++ call.

    Args:
        model: a `convcore.nn.Module` (traced at `input_shape`), a `Graph`, a model imported with
            `convcore.onnx.load`, or an ONNX file path / bytes / ModelProto.
        input_shape: (N, C, H, W) to trace at; optional for graphs and ONNX models that declare it, and for zoo
            models (batch 1 at their registered input size). The batch N may differ at run time, and so may H x W
            for a Module or an ONNX file (compiled again per size, see `Plan`). Without it, for a model that has no
            size of its own, the plan compiles at its first call.
        num_threads: threads per call; None follows `convcore.set_num_threads`.
        winograd: "auto" (Winograd F(4x4, 3x3) on the 3x3 stride-1 layers where it is measured faster and within
            the documented error bound), True (every eligible layer) or False (never).
        fuse: True (every graph rewrite), False (none: one Plan op per graph node, for debugging) or a subset of
            `FUSIONS`: "batchnorm" (fold into the conv before), "affine" (per-channel arithmetic chains as one
            scale-shift, into the unpadded conv after), "activation" (into the producer's epilogue), "residual" (an
            add into the conv producing one operand), "concat" (write in place), "gates" (x * sigmoid(x) -> silu,
            spelled hard-swish and GELU), "shuffle" (a channel shuffle as one channel gather), "layernorm"
            (a layer norm spelled out in elementary ops as one), "attention" (multi-head self-attention spelled out
            as one op), "mbconv" (inverted-residual blocks as one op).
        device: "cpu" (default), or "cuda" / "cuda:N" for a GPU plan (`convcore.plan.cuda.CudaPlan`: numpy or GPU
            arrays in, see docs/cuda.md); RuntimeError when this build has no CUDA backend or no GPU is usable.
        precision: on the CPU, "auto" (default: the convolutions of a quantized graph - a QDQ file, or
            `convcore.quantize`'s result - in int8, everything else in fp32), "int8" (the same, and a ValueError for
            a graph with no quantized convolution) or "fp32" (a quantized graph's quantize / dequantize steps
            computed in float, no int8 kernel) or "bf16" (the dense and grouped convolutions and fully connected
            layers with bf16 inputs and weights, fp32 sums: AMX-BF16 or AVX512-BF16, a ValueError on a CPU with
            neither; relative error about 3e-3 of the output's scale; depthwise and elementwise ops stay fp32). On a
            GPU: "fp32" (default), "tf32" or "bf16" (tensor cores for
            the convolutions).

    Returns:
        A `Plan` (a `CudaPlan` for a GPU).
    """
    if num_threads is not None:
        from .._validate import integer

        num_threads = integer(num_threads, "num_threads", 1)
    if winograd not in ("auto", True, False):
        raise ValueError(f"winograd: expected 'auto', True or False (got {winograd!r})")
    _fusions(fuse)
    # The GPU backend: the same lowering into a _cuda.Plan.
    from .. import cuda

    gpu = cuda.parse_device(device)
    if gpu is not None:
        from .cuda import PRECISIONS, CudaPlan

        precision = precision or "fp32"
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS} (got {precision!r})")
        if winograd is True:
            raise ValueError("winograd: GPU plans have no Winograd kernels (leave it 'auto')")
        cuda.require(gpu)
        graph, shape = _as_graph(model, input_shape)
        return CudaPlan(graph, shape, gpu, precision, fuse)
    precision = precision or "auto"
    if precision not in CPU_PRECISIONS:
        raise ValueError(f"precision: expected one of {CPU_PRECISIONS} on the CPU (got {precision!r}; tf32 is for "
                         f"device='cuda')")
    if precision in ("fp32", "bf16"):
        fuse = _fusions(fuse) - {"int8"}
    plan_precision = "bf16" if precision == "bf16" else "fp32"
    if precision == "bf16":
        _core.Plan(_core.get_isa(), bf16=True)  # a clear ValueError now on a CPU without bf16 kernels
    from ..onnx.importer.structure import ShapeNeeded

    source = _source_of(model)
    if _module_without_size(model, input_shape):
        return Plan(None, None, num_threads, winograd, fuse, source, plan_precision)
    try:
        graph, shape = _as_graph(model, input_shape)
    except ShapeNeeded:  # an ONNX file with dynamic height / width: its first input decides
        return Plan(None, None, num_threads, winograd, fuse, source, plan_precision)
    plan = Plan(graph, shape, num_threads, winograd, fuse, source, plan_precision)
    if precision == "int8" and plan.compiled and not plan.int8_ops:
        raise ValueError("precision: 'int8' needs a quantized graph (a QDQ file, or convcore.quantize(model, "
                         "calibration)); this one has no convolution with a quantized input and int8 weights")
    return plan
