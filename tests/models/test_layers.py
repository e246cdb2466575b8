"""One shape convention: (N, C, H, W) everywhere, zoo models defaulting to their registered input size; and the layer
listing (`models.layers`, `convcore layers MODEL`) that names what the gradient objectives accept."""

import json

import numpy as np
import pytest

import convcore
from convcore import gradients, models, nn
from convcore.cli import main


def test_layers_count_what_summary_counts():
    rows = models.layers("resnet18")
    nodes = [r for r in rows if r.op != "block"]
    stats = models.summary("resnet18")
    assert sum(r.macs for r in nodes) == stats["macs"]
    assert sum(r.params for r in nodes) == stats["params"]
    assert (rows[0].name, rows[0].op, rows[0].output_shape, rows[0].params) == ("conv1", "conv2d", (1, 64, 112, 112),
                                                                                  64 * 3 * 7 * 7)
    by_name = {r.name: r for r in rows}
    inside = [r for r in nodes if r.name.startswith("layer1.")]
    assert by_name["layer1"].op == "block" and by_name["layer1"].params == sum(r.params for r in inside)
    assert by_name["layer1"].macs == sum(r.macs for r in inside) and by_name["layer1"].output_shape == (1, 64, 56, 56)
    order = [r.name for r in rows]
    assert order.index("layer1.1") < order.index("layer1") < order.index("layer2.0.conv1")  # a block after its nodes
    assert rows[-1].name == "fc" and rows[-1].output_shape == (1, 1000)


def test_every_listed_layer_is_an_objective_name():
    model = models.get_model("mobilenet_v2")
    names = set(gradients.layer_names(model))  # no shape: the zoo model's registered one
    assert names == set(gradients.layer_names(model, (1, 3, 224, 224)))
    assert {r.name for r in models.layers(model)} <= names
    assert models.layers(model, (1, 3, 96, 96))[0].output_shape == (1, 32, 48, 48)


def test_one_shape_convention():
    lenet = models.get_model("lenet5")
    assert lenet.input_size == (1, 32, 32) and models.lenet5(in_channels=3).input_size == (3, 32, 32)
    for shape in [None, (1, 1, 32, 32)]:
        assert convcore.trace(lenet, shape).shapes["input"] == (1, 1, 32, 32)
        assert models.summary(lenet, shape)["input_size"] == (1, 32, 32)
        assert models.layers(lenet, shape)[-1].output_shape == (1, 10)
    for call in (lambda: convcore.trace(lenet, (1, 32, 32)), lambda: convcore.compile(lenet, (1, 32, 32)),
                 lambda: gradients.layer_names(lenet, (1, 32, 32))):
        with pytest.raises(ValueError, match=r"expected \(N, C, H, W\) .*without the batch"):
            call()
    bare = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(TypeError, match="input_shape: required"):
        gradients.layer_names(bare)
    with pytest.raises(ValueError, match="input_size: required"):
        models.layers(bare)
    assert [(r.name, r.output_shape, r.params) for r in models.layers(bare, (1, 3, 8, 8))] == [("0", (1, 4, 6, 6),
                                                                                                 4 * 3 * 9 + 4)]


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_layers_command(capsys, tmp_path):
    status, out, _ = run(capsys, "layers", "resnet18", "--blocks")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["layer", "op", "output", "(C", "x", "H", "x", "W)", "params", "MMACs"]
    assert lines[2].split() == ["layer1.0", "block", "64x56x56", "73,984", "231.2"]  # 2 convs + 2 BNs (no stats)
    assert "layer4" in out and "conv1" not in out and lines[-1].startswith("(resnet18: 15 layers")
    status, out, _ = run(capsys, "layers", "resnet18", "layer1.0.conv*", "--json", "--input-size", "64", "64")
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and [r["name"] for r in records] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert records[0] == {"name": "layer1.0.conv1", "op": "conv2d", "output_shape": [1, 64, 16, 16], "params": 36864,
                          "macs": 36864 * 16 * 16}
    assert run(capsys, "layers", "lenet5", "nothing*")[0] == 2
    assert run(capsys, "layers", "lenet5", "--input-size", "4", "4")[0] == 2  # too small: a usage error
    pytest.importorskip("onnx")
    from convcore.onnx import export

    path = tmp_path / "lenet.onnx"
    export(models.get_model("lenet5"), str(path), input_shape=(1, 1, 32, 32))
    status, out, _ = run(capsys, "layers", str(path))
    assert status == 0 and "conv2d" in out and "lenet.onnx" in out.splitlines()[-1]
    assert np.isclose(sum(float(line.split()[-1].replace(",", "")) for line in out.splitlines()[2:-1]),
                      models.summary("lenet5")["macs"] / 1e6, atol=0.2)
