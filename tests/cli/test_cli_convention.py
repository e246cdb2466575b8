"""One convention for every `convcore` command: exit 0 / 1 (a runtime failure) / 2 (bad arguments, a missing file),
messages without exception class names, `--threads` everywhere, helps that describe every command and option with
its default, and a checkpoint that does not fit explained in a few lines naming the zoo model it looks like."""

import argparse
import re

import numpy as np
import pytest

from convcore import models
from convcore.cli import build_parser, main
from convcore.cli._common import error_message, exit_status

from cli_helpers import run


def _commands(parser, prefix=()):
    """(argv prefix, parser) of every command and visualize kind."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _commands(sub, prefix + (name,))


COMMANDS = dict(_commands(build_parser()))
LEAVES = {argv: p for argv, p in COMMANDS.items() if not any(isinstance(a, argparse._SubParsersAction)
                                                             for a in p._actions)}


def test_every_command_is_listed():
    assert {argv[0] for argv in COMMANDS} == {"info", "classify", "models", "layers", "bench", "visualize", "export",
                                              "run", "quantize"}


@pytest.mark.parametrize("argv", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_a_description_and_every_option_a_help_with_its_default(argv):
    parser = COMMANDS[argv]
    assert parser.description and len(parser.description) > 20, argv
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{' '.join(argv)} {name}: no help"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            shown = formatter._expand_help(action)  # the help as --help prints it
            assert "default" in shown, f"{' '.join(argv)} {name}: the help does not give its default"


# Arguments that make each leaf command valid but for its --threads.
VALID = {("info",): [], ("classify",): ["--model", "lenet5", "--weights", "W"], ("models",): ["lenet5", "--brief"],
         ("layers",): ["lenet5"], ("bench",): ["lenet5", "--batch", "1", "--min-time", "0", "--warmup", "0"],
         ("export",): ["lenet5", "OUT"], ("run",): ["M", "X"], ("quantize",): ["lenet5", "--out", "q.onnx"]}


@pytest.mark.parametrize("argv", sorted(LEAVES), ids=" ".join)
def test_every_command_takes_threads(argv, capsys):
    args = list(argv) + VALID.get(argv, ["--model", "lenet5"] + (["red"] if argv[-1] == "class" else []) +
                                  (["conv1"] if argv[-1] == "feature" else []))
    status, _, err = run(capsys, *args, "--threads", "0")
    assert status == 2 and "--threads: expected an integer in [1," in err, (args, err)


def test_threads_apply_to_the_command_and_not_after(capsys, tmp_path):
    import convcore

    before = convcore.get_num_threads()
    status, out, _ = run(capsys, "info", "--json", "--threads", "1")
    assert status == 0 and '"num_threads": 1' in out
    assert run(capsys, "export", "lenet5", str(tmp_path / "l.onnx"), "--threads", "1")[0] == 0
    assert convcore.get_num_threads() == before


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convention")
    np.savez(folder / "resnet18.npz", **models.get_model("resnet18").state_dict())
    np.save(folder / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    np.save(folder / "ints.npy", np.zeros((1, 1, 32, 32), np.int64))
    (folder / "garbage.onnx").write_bytes(b"\xff" * 64)
    assert main(["export", "lenet5", str(folder / "lenet5.onnx")]) == 0
    from PIL import Image

    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "green.png")
    return folder


@pytest.mark.parametrize("argv, needle", [
    (["classify", "{d}/missing.jpg"], "no such file or folder: {d}/missing.jpg"),
    (["classify", "{d}/green.png", "--model", "{d}/missing.onnx"], "no such ONNX file: {d}/missing.onnx"),
    (["classify", "{d}/green.png", "--model", "lenet5", "--weights", "{d}/missing.pth"],
     "--weights: no such file: {d}/missing.pth"),
    (["run", "{d}/missing.onnx", "{d}/x.npy"], "model: no such file: {d}/missing.onnx"),
    (["run", "{d}/lenet5.onnx", "{d}/missing.npy"], "input: no such file: {d}/missing.npy"),
    (["export", "lenet5", "{d}/out.onnx", "--weights", "{d}/missing.pth"], "--weights: no such file"),
    (["bench", "{d}/missing.onnx"], "no such ONNX file"),
    (["visualize", "saliency", "{d}/missing.jpg", "--model", "lenet5"], "no such file or folder"),
    (["layers", "{d}/missing.onnx"], "no such ONNX file"),
    (["quantize", "lenet5", "--out", "{d}/q.onnx", "--calib", "{d}/nowhere"], "--calib: no such file or folder"),
    (["quantize", "lenet5", "--out", "{d}/q.txt"], "--out: expected a .onnx file"),
    (["classify", "{d}/green.png", "--precision", "tf32"], "--precision: tf32 applies to GPU plans"),
    (["classify", "{d}/green.png", "--precision", "bf16", "--eager"], "--precision bf16 runs compiled plans"),
    (["export", "lenet6", "{d}/out.onnx"], "did you mean 'lenet5'"),
    (["export", "lenet5", "{d}/out.onnx", "--batch", "zero"], "--batch: expected 'dynamic' or a positive integer"),
])
def test_bad_arguments_and_missing_files_exit_2(argv, needle, files, capsys):
    status, out, err = run(capsys, *[a.format(d=files) for a in argv])
    assert status == 2, err
    assert err.startswith("convcore: error: ") and needle.format(d=files) in err, err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, needle", [
    (["run", "{d}/lenet5.onnx", "{d}/ints.npy"], "expected a float input array"),
    (["run", "{d}/garbage.onnx", "{d}/x.npy"], "garbage.onnx"),
    (["run", "{d}/lenet5.onnx", "{d}/x.npy", "--precision", "int8"], "'int8' needs a quantized graph"),
    (["classify", "{d}/green.png", "--model", "{d}/garbage.onnx"], "not a valid ONNX model"),
])
def test_runtime_failures_exit_1_without_class_names(argv, needle, files, capsys):
    status, out, err = run(capsys, *[a.format(d=files) for a in argv])
    assert status == 1, err
    assert needle.format(d=files) in err, err
    assert not re.search(r"\b[A-Z][A-Za-z]*(Error|Exception)\b", err), err


def test_a_checkpoint_of_another_model_names_the_model_it_looks_like(files, capsys):
    status, _, err = run(capsys, "classify", str(files / "green.png"), "--model", "resnet50", "--weights",
                         str(files / "resnet18.npz"))
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == "convcore: error: error(s) loading state_dict for ResNet from resnet18.npz:", err
    assert 3 <= len(lines) <= 8 and len(err) < 1200, err
    assert re.search(r"165 missing keys: 'layer1\.0\.conv3\.weight', .*, \.\.\. and 162 more", err), err
    assert "looks like zoo model 'resnet18' (100% of its keys match" in lines[-1], err


def test_the_api_error_keeps_every_key_and_says_what_fits():
    state = models.get_model("mobilenet_v2", num_classes=10).state_dict()
    with pytest.raises(ValueError) as info:
        models.get_model("mobilenet_v2", weights=state)
    error = info.value
    assert set(error.mismatched) == {"classifier.1.weight", "classifier.1.bias"}
    assert error.mismatched["classifier.1.weight"] == ((1000, 1280), (10, 1280))
    assert "get_model('mobilenet_v2', num_classes=10) loads it" in str(error)
    wrong = models.get_model("densenet121").state_dict()
    with pytest.raises(ValueError) as info:
        models.get_model("resnet18", weights=wrong)
    assert len(info.value.missing_keys) == 102 and len(info.value.unexpected_keys) == len(wrong)
    assert "looks like zoo model 'densenet121'" in str(info.value) and len(str(info.value).splitlines()) == 4


def test_closest_models_builds_the_zoo_quickly():
    import time

    start = time.perf_counter()
    assert models.closest_models(models.get_model("mnasnet0_5").state_dict(), n=2)[0] == ("mnasnet0_5", 1.0)
    assert time.perf_counter() - start < 10
    assert models.closest_models({"a": np.zeros(3)}) == []


@pytest.mark.parametrize("exc, text, status", [
    (KeyError("no such layer 'x'"), "no such layer 'x'", 1),
    (FileNotFoundError(2, "No such file or directory", "a.pth"), "a.pth: No such file or directory", 2),
    (ValueError("line one\n  line two"), "line one\n  line two", 1),
    (AttributeError("'NoneType' object has no attribute 'shape'"), "internal error: 'NoneType' object has no "
     "attribute 'shape' (CONVCORE_DEBUG=1 shows the traceback; please report it)", 1),
    (MemoryError(), "out of memory", 1),
])
def test_error_messages_and_statuses(exc, text, status):
    assert error_message(exc) == text and exit_status(exc) == status


def test_a_long_message_keeps_its_first_lines():
    text = error_message(ValueError("\n".join(f"line {i}" for i in range(30))))
    assert text.splitlines()[-1].strip() == "... (23 more lines)" and len(text.splitlines()) == 8
