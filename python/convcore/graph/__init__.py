"""convcore.graph: the Graph IR and the module tracer.

`trace(model, input_shape)` turns an `nn.Module` into a `Graph` of op `Node`s (ops declared in `convcore.ops`, with
normalised attributes) over typed values (`TensorType`) and named parameters; `Graph.run(x)` executes it. The ONNX
exporter and importer read and write the same Graph.

Example:
    >>> import convcore
    >>> g = convcore.trace(model, (1, 3, 224, 224))
    >>> print(g)
    >>> np.allclose(g.run(x), model.eval()(x))
    True
"""

from .ir import Graph, Node, TensorType
from .passes import fold_batchnorm
from .tracer import Value, trace

__all__ = ["Graph", "Node", "TensorType", "Value", "fold_batchnorm", "trace"]
