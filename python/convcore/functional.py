"""Functional CNN operators: float32 NCHW numpy arrays in, new numpy arrays out, torch.nn.functional semantics.

Every operator validates its arguments in Python (clear ``TypeError`` / ``ValueError`` naming the argument) and runs
its compute in C++ (``convcore._core``) with the GIL released. Inputs may be read-only or non-contiguous (one
contiguous copy is made only when needed); inputs of another dtype are refused rather than silently cast.

Each function here is the public face of one op declared in `convcore.ops` (signature, docs, shape rule, kernel and
ONNX form in one place); while `convcore.trace` runs in this thread, calls are recorded as graph nodes instead.

Example:
    >>> import numpy as np, convcore.functional as F
    >>> x = np.random.rand(1, 3, 32, 32).astype(np.float32)
    >>> w = np.random.rand(8, 3, 3, 3).astype(np.float32)
    >>> F.relu(F.conv2d(x, w, padding="same")).shape
    (1, 8, 32, 32)
"""

from __future__ import annotations

from .ops import OPS
from .ops.activation import *  # noqa: F401,F403
from .ops.conv import *  # noqa: F401,F403
from .ops.elementwise import *  # noqa: F401,F403
from .ops.norm import *  # noqa: F401,F403
from .ops.pool import *  # noqa: F401,F403
from .ops.quantize import *  # noqa: F401,F403
from .ops.recurrent import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.resize import *  # noqa: F401,F403
from .ops.shape import *  # noqa: F401,F403
from .ops.tensor import *  # noqa: F401,F403

__all__ = list(OPS)
