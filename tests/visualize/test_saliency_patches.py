"""Saliency by SmoothGrad and Integrated Gradients, over the photo; top patches that give k patches at every depth;
the combined figures captioned with the real layer names."""

import os

import numpy as np
import pytest

from convcore import data, models, nn, visualize
from convcore.cli import main
from convcore.visualize._maps import _strongest

pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def small_net():
    nn.init.manual_seed(0)
    net = visualize.resolve(models.get_model("mobilenet_v2"))
    net.size = 64
    return net


def _maps(net, samples, seed):
    photo = data.sample_images()[:1]
    pictures = visualize.saliency(net, photo, target="tabby", method="smoothgrad", samples=samples, seed=seed,
                                  overlay=False)
    return pictures["saliency_chelsea_tabby.png"].astype(np.float64).ravel()


def test_smoothgrad_averages_the_noise_away(small_net):
    """Two SmoothGrad maps from different noise agree better with 64 samples than with 1: the average converges to
    the smoothed gradient, where one noisy gradient is mostly noise (a random-weight network's gradient varies a
    lot within the noise, so the agreement grows slowly: about 0.5 -> 0.75 here)."""
    one = np.corrcoef(_maps(small_net, 1, 0), _maps(small_net, 1, 1))[0, 1]
    many = np.corrcoef(_maps(small_net, 64, 0), _maps(small_net, 64, 1))[0, 1]
    assert many > one + 0.15, (one, many)
    np.testing.assert_array_equal(_maps(small_net, 3, 5), _maps(small_net, 3, 5))  # seeded


def test_integrated_gradients_sum_to_the_score_change(small_net):
    from convcore.gradients import GradientProgram, logit
    from convcore.visualize._maps import _saliency_maps

    x = small_net.load(data.sample_images()[0])[None]
    c = small_net.class_index("tabby")
    program = GradientProgram(small_net.model, x.shape, logit(c))
    base = small_net.normalize(np.zeros_like(x))
    change = program(x).value - program(base).value
    attributions = _saliency_maps(small_net, x, logit(c), None, "integrated", 64, 0.0, 0)  # |sum over channels|
    signed = np.zeros_like(x, dtype=np.float64)
    for k in range(64):  # the same path sum, signed: it must add up to the score's change (completeness)
        signed += program((base + (k + 0.5) / 64 * (x - base)).astype(np.float32)).grads[program.wrt[0]]
    total = float(((x - base) * signed / 64).sum())
    assert total == pytest.approx(change, rel=0.05, abs=0.05 * abs(change) + 1e-3)
    assert attributions.shape == (1, 64, 64) and attributions.min() >= 0


def test_overlay_puts_the_map_over_the_photo(small_net):
    photo = data.sample_images()[:1]
    pictures = visualize.saliency(small_net, photo, target="tabby", method="integrated", samples=4)
    img = pictures["saliency_chelsea_tabby.png"]
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert img.std() > 10
    with pytest.raises(ValueError, match="method: expected one of gradient, smoothgrad, integrated"):
        visualize.saliency(small_net, photo, method="occlusion")
    with pytest.raises(ValueError, match="samples: expected a positive int"):
        visualize.saliency(small_net, photo, samples=0)


def test_deep_layers_still_give_k_patches():
    maps = np.zeros((3, 1, 4, 4), np.float32)
    maps[:, 0] = np.arange(16, dtype=np.float32).reshape(4, 4) + 1
    picks = _strongest(maps[:, 0], 9, 4, 4)  # a gap of the whole map: one maximum per image at first
    assert len(picks) == 9 and len({(i, y, x) for i, y, x, _ in picks}) == 9
    assert len(_strongest(maps[:, 0], 2, 4, 4)) == 2


def test_patches_and_feature_figures_are_captioned_with_layer_names(tmp_path, capsys, monkeypatch):
    captions = []
    original = visualize.montage

    def spy(pictures, *args, **kwargs):
        captions.append(list(pictures))
        return original(pictures, *args, **kwargs)

    monkeypatch.setattr(visualize, "montage", spy)
    weights = tmp_path / "w.npz"
    np.savez(weights, **models.get_model("mobilenet_v2").state_dict())
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in data.sample_images()[:2]:
        os.symlink(path, folder / os.path.basename(path))
    common = ["--model", "mobilenet_v2", "--weights", str(weights), "--out", str(tmp_path / "out")]
    assert main(["visualize", "patches", "--images", str(folder), "--unit", "features.17:3", "-k", "4"] + common) == 0
    assert main(["visualize", "feature", "features.4:3", "--steps", "2", "--size", "32"] + common) == 0
    assert main(["visualize", "saliency", str(folder), "--method", "gradient"] + common) == 0
    err = capsys.readouterr().err
    assert "error" not in err
    assert captions[0] == ["features.17:3"] and captions[1] == ["features.4:3"]
