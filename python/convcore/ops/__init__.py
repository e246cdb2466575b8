"""convcore.ops: the op registry. Every operator is declared once here, and every consumer reads that declaration.

    >>> from convcore import ops
    >>> op = ops.get("conv2d")
    >>> op.inputs, list(op.attrs)
    (('x', 'weight', 'bias'), ['stride', 'padding', 'dilation', 'groups'])
    >>> op.infer([(1, 3, 224, 224), (64, 3, 7, 7), None], {"stride": 2, "padding": "same"})
    ({'stride': (2, 2), 'padding': (2, 3, 2, 3), 'dilation': (1, 1), 'groups': 1}, (1, 64, 112, 112))

`convcore.functional` is the public face of these declarations; the tracer, `Graph` shape inference and passes, and
the ONNX exporter and importer read them. `window` holds the sliding-window arithmetic they all share. See
docs/architecture.md (the layers) and docs/adding-an-op.md (the recipe).
"""

from . import window
# imported to declare their ops, in OPS order
from . import conv, pool, norm, activation, tensor, elementwise, reduce, shape, resize, recurrent, quantize  # noqa: F401, I001
from .registry import OPS, Backward, BackwardCall, Op, OnnxOp, active_tracer, declare, get, tracing

__all__ = ["OPS", "Backward", "BackwardCall", "Op", "OnnxOp", "active_tracer", "declare", "get", "tracing", "window"]
