"""Checkpoint reading: PyTorch ``.pth`` (zip and legacy), ``.safetensors`` and ``.npz`` to numpy, without torch."""

from .checkpoint import UnsafeCheckpointError, load_checkpoint

__all__ = ["UnsafeCheckpointError", "load_checkpoint"]
