"""Fuzz target: `convcore.io.load_checkpoint` on mutated .pth (zip and legacy), .safetensors and .npz bytes.

Contract: it returns a dict of arrays or raises ValueError (UnsafeCheckpointError is one), never anything else,
never runs code from the file, never crashes, hangs or allocates far more than the file's tensors need.

    python fuzz/fuzz_checkpoint.py -max_total_time=60      # seeds: fuzz/seeds/checkpoint
"""

import os
import tempfile

import numpy as np

from _harness import main

from convcore.io import load_checkpoint

_DIR = tempfile.mkdtemp(prefix="convcore-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PATH = os.path.join(_DIR, "checkpoint.pth")


def test_one_input(data):
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        state = load_checkpoint(_PATH)
    except ValueError:
        return
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray)
                                              for k, v in state.items()):
        raise AssertionError(f"expected a dict of str -> ndarray (got {type(state).__name__})")


if __name__ == "__main__":
    main(test_one_input, "checkpoint", instrument=("pickletools", "zipfile"))
