"""Without an optional package (onnx, Pillow, onnxruntime), every command and API entry point that needs it says so in
one line naming the extra that installs it (`pip install 'convcore[onnx]'`), with no traceback and no exception class
name. Each scenario runs in a fresh process whose import system refuses the package, as on a machine without it."""

import json
import os
import subprocess
import sys
import textwrap
import tomllib

import numpy as np
import pytest

from convcore._optional import PACKAGES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in the child: the import system's finders find nothing for the blocked packages (so importing one raises
# ModuleNotFoundError and importlib.util.find_spec returns None, as where it is not installed), then each scenario;
# prints one JSON line per scenario.
CHILD = textwrap.dedent("""
    import contextlib, io, json, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Hide:  # every finder finds nothing for a blocked package, as where it is not installed
        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                return None
            return self.finder.find_spec(name, path, target)

        def __getattr__(self, name):
            return getattr(self.finder, name)

    sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
    from convcore.cli import main

    for line in sys.stdin:
        kind, args = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if kind == "cli":
                status = main(args)
            else:
                status = 0
                try:
                    exec(args, {})
                except Exception as exc:
                    status, err = 1, io.StringIO(f"{type(exc).__name__}|{exc}")
        print(json.dumps([status, out.getvalue(), err.getvalue()]), flush=True)
""")


def scenarios(blocked, cases, cwd):
    """[(status, stdout, stderr)] of each (kind, args) case, run in one child process with `blocked` refused."""
    text = "".join(json.dumps(case) + "\n" for case in cases)
    done = subprocess.run([sys.executable, "-c", CHILD, ",".join(blocked)], input=text, capture_output=True,
                          text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nodeps")
    (folder / "model.onnx").write_bytes(b"\x08\x07")  # only its name matters: nothing may get as far as parsing it
    np.save(folder / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    from convcore import models

    np.savez(folder / "lenet5.npz", **models.get_model("lenet5").state_dict())
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "red.png")
    return folder


def _one_line(err, needle):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], err
    assert "Error" not in lines[0] and "Traceback" not in err, err


def test_without_onnx_every_command_names_the_onnx_extra(files):
    cases = [("cli", ["export", "lenet5", "out.onnx"]),
             ("cli", ["run", "model.onnx", "x.npy"]),
             ("cli", ["classify", "red.png", "--model", "model.onnx"]),
             ("cli", ["bench", "model.onnx", "--batch", "1", "--min-time", "0"]),
             ("cli", ["visualize", "filters", "--model", "model.onnx"])]
    for (status, out, err), case in zip(scenarios(["onnx"], cases, files), cases):
        assert status == 1, (case, err)
        _one_line(err, "needs the onnx package: pip install 'convcore[onnx]'")
    assert not (files / "out.onnx").exists()


def test_without_onnx_the_api_names_the_onnx_extra(files):
    cases = [("py", "import convcore.onnx"),
             ("py", "import convcore; convcore.compile('model.onnx')"),
             ("py", "import convcore; convcore.visualize.resolve('model.onnx')"),
             ("py", "import convcore; convcore.compile(open('model.onnx', 'rb').read())")]
    for (status, out, err), case in zip(scenarios(["onnx"], cases, files), cases):
        kind, message = err.split("|", 1)
        assert status == 1 and kind == "ModuleNotFoundError", (case, err)
        assert message.startswith("convcore.onnx (ONNX export and import) needs the onnx package: "
                                  "pip install 'convcore[onnx]'"), (case, err)
        assert "\n" not in message


def test_without_pillow_classify_and_visualize_name_the_demo_extra(files):
    cases = [("cli", ["classify", "red.png", "--model", "lenet5", "--weights", "none.pth"]),
             ("cli", ["classify", "red.png", "--model", "lenet5", "--weights", "lenet5.npz"]),
             ("py", "import convcore.transforms as T; T.load_image('red.png')")]
    (s1, _, e1), (s2, _, e2), (s3, _, e3) = scenarios(["PIL"], cases, files)
    assert s1 == 2 and "--weights: no such file: none.pth" in e1  # usage errors come first, as with Pillow
    _one_line(e2, "decoding images needs the Pillow package: pip install 'convcore[demo]'")
    assert s2 == 1
    assert s3 == 1 and e3 == ("ModuleNotFoundError|decoding images needs the Pillow package: "
                              "pip install 'convcore[demo]'")


def test_bench_peers_without_onnxruntime_says_which_extra(files):
    cases = [("cli", ["bench", "lenet5", "--peers", "--batch", "1", "--min-time", "0", "--warmup", "0"])]
    [(status, out, err)] = scenarios(["onnxruntime"], cases, files)
    assert status == 0, err
    assert "onnxruntime skipped for lenet5: timing onnxruntime needs the onnxruntime package: " \
           "pip install 'convcore[bench]'" in err
    assert "skipped" in out  # the table says which peers are missing too, not only the log


def test_every_extra_named_in_messages_exists_in_pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for module, (package, extra) in PACKAGES.items():
        assert extra in extras, f"{module}: the extra {extra!r} is not in pyproject.toml"
        names = [req.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower() for req in extras[extra]]
        assert package.split("[")[0].lower() in names, f"{extra} does not install {package}"
    assert "onnx>=1.15" in extras["onnx"]
    for requirement in extras["onnx"] + extras["bench"]:  # the test extra covers what the tests of these need
        assert requirement in extras["test"], requirement
