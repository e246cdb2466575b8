"""convcore.onnx: export convcore models to ONNX and import ONNX CNNs as convcore modules.

    >>> import convcore.onnx
    >>> proto = convcore.onnx.export(model, "model.onnx", input_shape=(1, 3, 224, 224))   # opset 17, batch "N"
    >>> net = convcore.onnx.load("model.onnx")                                            # a convcore.nn.Module
    >>> y = net(x)

Both directions go through the one Graph IR (`convcore.graph`). `convcore.onnx.backend` is the ONNX Backend API
(`onnx.backend.base`). Needs the `onnx` package (``pip install 'convcore[onnx]'``; without it, importing this
package raises one `ModuleNotFoundError` line saying so); docs/onnx.md lists the ops and opsets.
"""

from .._optional import require

require("onnx", "convcore.onnx (ONNX export and import)")

from .export import EXPORTED_OPS, export  # noqa: E402
from .importer import IMPORTED_OPS, BoundONNXModule, ONNXModule, load  # noqa: E402

__all__ = ["EXPORTED_OPS", "IMPORTED_OPS", "BoundONNXModule", "ONNXModule", "export", "load"]
