"""BatchNorm2d and LocalResponseNorm."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import functional as F
from .._types import Array
from ._utils import check_channels, check_input
from .module import Module


class BatchNorm2d(Module):
    """Batch normalization over the channels of NCHW input, like `torch.nn.BatchNorm2d`.

    In eval mode (`.eval()`, what inference wants) it normalizes with the running statistics:
    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias. In training mode, or without running
    statistics (track_running_stats=False), it normalizes with the batch's own mean and biased variance, and in
    training mode it also updates the running statistics, as torch does (momentum; cumulative average when momentum
    is None). A traced graph always uses running statistics.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance. Default 1e-5.
        momentum: weight of the new batch in the running statistics. Default 0.1.
        affine: learn a per-channel weight (init 1) and bias (init 0). Default True.
        track_running_stats: keep running_mean (init 0), running_var (init 1) and num_batches_tracked (int64, init
            0) buffers. Default True.

    Shape:
        input (N, C, H, W) -> output of the same shape.

    Example:
        >>> bn = BatchNorm2d(16).eval()
        >>> list(bn.state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"expected a positive int for num_features (got {num_features!r})")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.register_parameter("weight", np.ones(num_features, np.float32) if affine else None)
        self.register_parameter("bias", np.zeros(num_features, np.float32) if affine else None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, np.float32))
            self.register_buffer("running_var", np.ones(num_features, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _optional_state_keys(self):
        # Like torch: checkpoints saved before num_batches_tracked existed (old torchvision weights) lack it.
        return ("num_batches_tracked",)

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        check_channels(self, x, self.num_features)
        if not self.training and self.running_mean is not None:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps)
        if not isinstance(x, np.ndarray):
            raise NotImplementedError("BatchNorm2d: batch statistics cannot be traced; call .eval() on a module "
                                      "with track_running_stats=True")
        mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
        var = x.var(axis=(0, 2, 3), dtype=np.float64)
        if self.training and self.running_mean is not None:
            self._update_running_stats(mean, var, x.size // x.shape[1])
        return F.batch_norm(x, mean.astype(np.float32), var.astype(np.float32), self.weight, self.bias, eps=self.eps)

    def _update_running_stats(self, mean, var, count):
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * count / max(count - 1, 1)
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean
        self.running_var[...] = (1 - factor) * self.running_var + factor * unbiased

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class LocalResponseNorm(Module):
    """Local response normalization across channels (AlexNet / GoogLeNet), like `torch.nn.LocalResponseNorm`.

    y = x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta.

    Args:
        size: number of channels in the window.
        alpha: scale. Default 1e-4.
        beta: exponent. Default 0.75.
        k: additive constant. Default 1.0.

    Shape:
        input (N, C, H, W) -> output of the same shape.

    Example:
        >>> lrn = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"expected a positive int for size (got {size!r})")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, x: Array) -> Array:
        check_input(self, x, 4)
        return F.local_response_norm(x, self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
