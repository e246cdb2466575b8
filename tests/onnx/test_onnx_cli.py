"""convcore.cli._onnx: export_command / run_command (the `convcore export` / `convcore run` commands)."""

import argparse

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx_helpers import assert_parity, ort_run  # noqa: E402

from convcore import models  # noqa: E402
from convcore.cli import _onnx as cli  # noqa: E402
from convcore.cli._common import UsageError  # noqa: E402


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_export_then_run(tmp_path, capsys):
    model = models.get_model("lenet5")
    weights = tmp_path / "lenet.npz"
    np.savez(weights, **{k: v + np.float32(0.01) for k, v in model.state_dict().items()})
    out = tmp_path / "lenet.onnx"
    proto = cli.export_command("lenet5", out, weights=str(weights), opset=13)
    assert "wrote" in capsys.readouterr().out and out.exists()
    assert onnx.load(str(out)) == proto and proto.opset_import[0].version == 13
    assert _dims(proto.graph.input[0]) == ["N", 1, 32, 32]

    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x.astype(np.float64))  # another float dtype is converted
    y = cli.run_command(out, tmp_path / "x.npy", tmp_path / "y.npy")
    printed = capsys.readouterr().out
    expected = models.get_model("lenet5", weights=str(weights))(x)
    assert_parity(y, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y)
    assert "shape (4, 10)" in printed and str(expected.argmax(1).tolist()) in printed


def test_static_batch_and_input_size(tmp_path):
    proto = cli.export_command("mobilenet_v2", tmp_path / "m.onnx", batch=2, input_size=(40, 48))
    assert _dims(proto.graph.input[0]) == [2, 3, 40, 48]
    x = np.random.default_rng(1).standard_normal((2, 3, 40, 48)).astype(np.float32)
    assert_parity(ort_run(proto, x)[0], cli.run_command(tmp_path / "m.onnx", _save(tmp_path, x)))


def _save(tmp_path, x):
    path = tmp_path / "input.npy"
    np.save(path, x)
    return path


@pytest.mark.parametrize("batch", [0, -1, "big", 1.5, True])
def test_bad_batch(tmp_path, batch):
    with pytest.raises(ValueError, match="batch"):
        cli.export_command("lenet5", tmp_path / "m.onnx", batch=batch)


def test_run_refuses_non_float_input(tmp_path):
    cli.export_command("lenet5", tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.int64))
    with pytest.raises(ValueError, match="float input"):
        cli.run_command(tmp_path / "m.onnx", tmp_path / "x.npy")


def test_subcommands_parse(tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "lenet5", str(tmp_path / "l.onnx"), "--opset", "21", "--batch", "3"])
    proto = args.func(args)
    assert proto.opset_import[0].version == 21 and _dims(proto.graph.input[0])[0] == 3
    np.save(tmp_path / "x.npy", np.ones((3, 1, 32, 32), np.float32))
    args = parser.parse_args(["run", str(tmp_path / "l.onnx"), str(tmp_path / "x.npy")])
    assert args.func(args).shape == (3, 10)
    # The spelling: `run MODEL.onnx --input x.npy [--output y.npy]`; the input must be given exactly once.
    out = tmp_path / "y.npy"
    args = parser.parse_args(["run", str(tmp_path / "l.onnx"), "--input", str(tmp_path / "x.npy"),
                              "--output", str(out)])
    assert args.func(args).shape == (3, 10) and np.load(out).shape == (3, 10)
    for argv in (["run", str(tmp_path / "l.onnx")],
                 ["run", str(tmp_path / "l.onnx"), str(tmp_path / "x.npy"), "--input", str(tmp_path / "x.npy")]):
        with pytest.raises(UsageError, match="input .npy once"):  # exit status 2
            args = parser.parse_args(argv)
            args.func(args)
