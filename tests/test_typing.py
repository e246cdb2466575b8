"""The static checks, each a subprocess: stubtest of `convcore._core` and `convcore._cuda` against their stubs, mypy
on the convcore package (with pyproject.toml's [tool.mypy]) and on a user's script, and ruff on the source tree.

stubtest and mypy check the convcore this interpreter imports (the installed wheel under `.ci/run`); ruff checks the
checkout's files and skips where the tests run without the source tree beside them. A check whose tool is not
installed skips (the `test` extra installs mypy and ruff).
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ALLOWLIST = ROOT / "tests" / "stubtest_allowlist.txt"
LINTED = ["python", "tests", "benchmarks", "fuzz", "scripts"]  # what ruff checks, relative to the checkout


def _require(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'convcore[test]' installs it)")


def _run(args, cwd):
    """`python -m <args>` in `cwd`: (exit status, stdout and stderr)."""
    done = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stdout + done.stderr


def _mypy(tmp_path, *targets):
    """mypy with the project's configuration, from a folder outside the checkout (so `-p convcore` is the package
    this interpreter imports), with a cache of its own."""
    return _run(["mypy", "--config-file", PYPROJECT, "--cache-dir", tmp_path / "mypy-cache", *targets], tmp_path)


def test_the_stubs_match_the_compiled_modules(tmp_path):
    """_core.pyi, and _cuda.pyi where the CUDA module was built (a CUDA compiler at build time)."""
    _require("mypy")
    modules = ["convcore._core"]
    if importlib.util.find_spec("convcore._cuda") is not None:
        modules.append("convcore._cuda")
    else:  # its allowlist entries are unused then
        modules.append("--ignore-unused-allowlist")
    status, out = _run(["mypy.stubtest", *modules, "--allowlist", ALLOWLIST, "--mypy-config-file", PYPROJECT],
                       tmp_path)
    assert status == 0, out


def test_mypy_passes_on_the_package(tmp_path):
    _require("mypy")
    status, out = _mypy(tmp_path, "-p", "convcore")
    assert status == 0, out
    checked = re.search(r"no issues found in (\d+) source files", out)
    assert checked and int(checked.group(1)) > 50, out  # the whole package, not a stray module of that name


# A user's script: the marked lines must be errors (each marker names its error code), all others clean. The marked
# errors exist only where the public signatures reach the type checker (an Any return or argument checks nothing).
USER_SCRIPT = '''
import numpy as np

import convcore
import convcore.models
import convcore.onnx
from convcore import functional as F
from convcore import nn

x = np.zeros((1, 3, 32, 32), np.float32)
w = np.zeros((8, 3, 3, 3), np.float32)
y = F.relu(F.conv2d(x, w, padding="same", stride=(1, 2)))
z = F.reduce_mean(y, axes=(2, 3), keepdims=False)
shape: tuple[int, ...] = z.shape
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(8, 10)).eval()
first: nn.Module = net[0]
missing: list[str] = net.load_state_dict(net.state_dict()).missing_keys
weights = [p.shape for p in net.parameters()]
plan = convcore.compile(net, (1, 3, 32, 32), num_threads=1)
logits = plan(x)
names: list[str] = convcore.models.list_models("resnet*")
value, dx = convcore.grad(net, x, 3)
grad_shape: tuple[int, ...] = dx.shape
threads: int = convcore.get_num_threads()

text: str = F.relu(x)  # E: assignment
F.conv2d(x, w, padding=1.5)  # E: arg-type
F.max_pool2d(x, 2, ceil_mode="yes")  # E: arg-type
nn.Conv2d(3, 8, "3")  # E: arg-type
convcore.set_num_threads("2")  # E: arg-type
model: str = convcore.models.get_model("resnet18")  # E: assignment
count: str = convcore.models.summary("resnet18")  # E: assignment
module: str = convcore.onnx.load("model.onnx")  # E: assignment
plan.run(x, out=3)  # E: arg-type
convcore.no_such_function()  # E: attr-defined
'''


def test_user_code_sees_the_public_signatures(tmp_path):
    _require("mypy")
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    expected = {(n, m.group(1)) for n, line in enumerate(USER_SCRIPT.splitlines(), 1)
                if (m := re.search(r"# E: ([\w-]+)", line))}
    status, out = _mypy(tmp_path, script)
    got = {(int(m.group(1)), m.group(2)) for m in re.finditer(r"user_script\.py:(\d+): error: .*\[([\w-]+)\]", out)}
    assert got == expected, out


def test_ruff_passes_on_the_source_tree():
    _require("ruff")
    if not (PYPROJECT.is_file() and (ROOT / "python" / "convcore").is_dir()):
        pytest.skip("the source tree is not beside the tests (ruff lints the checkout)")
    status, out = _run(["ruff", "check", "--no-cache", *LINTED], ROOT)
    assert status == 0, out
